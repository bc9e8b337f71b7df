"""Chat: conversations, messages, read pointers (既読), presence, integrations.

Ordering and resume.  Every change inside a conversation (a new message, an edit, a
deletion, a reaction, a pin) takes the conversation's next ``seq`` under the
conversation row's lock (``Conversation.last_seq``), so seqs commit in order within a
conversation.  A message keeps the seq it was created with (``seq``: its place in the
timeline and what read pointers compare with) and the seq of its latest change
(``changed_seq``).  A client that knows a conversation up to seq S asks for the messages
whose ``changed_seq`` is above S and gets their current state: nothing lost, nothing
twice, however long it was away (docs/chat.md).

既読 (read receipts).  A member's ``Membership.last_read_seq`` only moves forward; each
move is kept as one ``ReadMark`` (from, to, when).  "既読 N" of a message is the number
of other members whose pointer reached its seq; who read it and when comes from the
marks.  One row per reading, not one per message and reader.
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from yakuba.directory.models import Department
from yakuba.lib import clock


class Conversation(models.Model):
    """A channel (所属 or project), a direct or group message, or a person's お知らせ."""

    class Kind(models.TextChoices):
        DEPARTMENT = "department", _("所属チャンネル")
        PROJECT = "project", _("プロジェクトチャンネル")
        DIRECT = "direct", _("ダイレクトメッセージ")
        GROUP = "group", _("グループメッセージ")
        # One per person: what the system tells them (a released room, approved minutes).
        NOTICES = "notices", _("お知らせ")

    kind = models.CharField(_("種類"), max_length=12, choices=Kind.choices)
    name = models.CharField(_("名前"), max_length=80, blank=True)
    description = models.CharField(_("説明"), max_length=500, blank=True)
    # 所属 channels only: membership follows the directory (chat/membership.py).
    department = models.OneToOneField(
        Department,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="chat_channel",
    )
    # Project channels: a private one is seen and joined by invitation only.
    is_private = models.BooleanField(_("非公開"), default=False)
    # Direct messages: "<low user id>:<high user id>", so a pair has one conversation;
    # a person's お知らせ: "notices:<user id>".
    direct_key = models.CharField(max_length=40, null=True, blank=True, unique=True)
    # 既読 shown to members; switched off for large channels (CHAT_READ_RECEIPTS_MAX_MEMBERS).
    read_receipts = models.BooleanField(_("既読を表示"), default=True)
    # Days messages are kept; None: the global CHAT_RETENTION_DAYS (0 there: forever).
    retention_days = models.PositiveIntegerField(_("保存期間（日）"), null=True, blank=True)
    legal_hold = models.BooleanField(_("訴訟ホールド"), default=False)
    archived_at = models.DateTimeField(_("アーカイブ日時"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=clock.now)
    # The head of the conversation's change sequence (see the module docstring).
    last_seq = models.BigIntegerField(default=0)
    last_message_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("会話")
        verbose_name_plural = _("会話")
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=~Q(kind="department") | Q(department__isnull=False),
                name="chat_department_channel_has_department",
            )
        ]

    def __str__(self) -> str:
        return self.name or f"{self.get_kind_display()} {self.pk}"


class Membership(models.Model):
    """One person in one conversation, with their read pointer and notification choice."""

    class Role(models.TextChoices):
        OWNER = "owner", _("オーナー")
        MEMBER = "member", _("メンバー")

    class Notify(models.TextChoices):
        ALL = "all", _("すべて")
        MENTIONS = "mentions", _("メンションのみ")
        NONE = "none", _("通知しない")

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="memberships"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    joined_at = models.DateTimeField(default=clock.now)
    notify = models.CharField(_("通知"), max_length=10, choices=Notify.choices, default=Notify.ALL)
    muted = models.BooleanField(_("ミュート"), default=False)
    # The seq of the newest message this member has been shown (only moves forward).
    last_read_seq = models.BigIntegerField(default=0)
    last_read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("参加者")
        verbose_name_plural = _("参加者")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["conversation", "user"], name="chat_member_once")
        ]
        indexes: ClassVar = [models.Index(fields=["user"], name="chat_member_user")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.conversation_id}"


class Message(models.Model):
    """One message.  Never deleted by a person: a deletion blanks ``text`` and sets
    ``deleted_at``; the text stays in ``MessageRevision`` for auditors until retention."""

    class Kind(models.TextChoices):
        TEXT = "text", _("メッセージ")
        SYSTEM = "system", _("お知らせ")
        WEBHOOK = "webhook", _("外部連携")

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    seq = models.BigIntegerField()
    changed_seq = models.BigIntegerField()
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.TEXT)
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Shown instead of a sender for webhook and system messages.
    sender_label = models.CharField(max_length=100, blank=True)
    # Chosen by the client for each send; a retried send with the same key returns the
    # message made the first time instead of a second one.
    client_key = models.CharField(max_length=64, null=True, blank=True)
    text = models.TextField(blank=True)
    thread_root = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="replies"
    )
    reply_count = models.PositiveIntegerField(default=0)
    last_reply_seq = models.BigIntegerField(default=0)
    # Users mentioned by name or through a 所属, and whether the whole channel was.
    mentions = models.JSONField(default=list, blank=True)
    mentions_channel = models.BooleanField(default=False)
    has_file = models.BooleanField(default=False)
    forwarded_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="forwards"
    )
    created_at = models.DateTimeField(default=clock.now)
    edited_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    pinned_at = models.DateTimeField(null=True, blank=True)
    pinned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = _("メッセージ")
        verbose_name_plural = _("メッセージ")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="chat_message_seq_once"),
            models.UniqueConstraint(
                fields=["sender", "client_key"],
                condition=Q(client_key__isnull=False),
                name="chat_message_client_key_once",
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["conversation", "changed_seq"], name="chat_message_changes"),
            models.Index(fields=["thread_root", "seq"], name="chat_message_thread"),
            models.Index(fields=["created_at"], name="chat_message_created"),
            models.Index(fields=["sender", "created_at"], name="chat_message_sender"),
        ]

    def __str__(self) -> str:
        return f"message {self.seq} in {self.conversation_id}"


class MessageRevision(models.Model):
    """A message's text before an edit or deletion: the history auditors and
    information-disclosure exports see."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="revisions")
    text = models.TextField()
    replaced_at = models.DateTimeField(default=clock.now)
    replaced_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    # "edit" or "delete": what replaced this text.
    change = models.CharField(max_length=10)

    def __str__(self) -> str:
        return f"revision of {self.message_id}"


class Reaction(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reactions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    emoji = models.CharField(max_length=32)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["message", "user", "emoji"], name="chat_reaction_once")
        ]

    def __str__(self) -> str:
        return f"{self.emoji} by {self.user_id}"


class ReadMark(models.Model):
    """One forward move of a member's read pointer: messages with ``from_seq < seq <=
    to_seq`` were shown to ``user`` at ``read_at``."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    from_seq = models.BigIntegerField()
    to_seq = models.BigIntegerField()
    read_at = models.DateTimeField(default=clock.now)

    class Meta:
        indexes: ClassVar = [
            models.Index(fields=["conversation", "to_seq"], name="chat_readmark_to"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} read {self.from_seq}..{self.to_seq}"


class ThreadRead(models.Model):
    """A person's read pointer inside one thread (threads have their own unread state)."""

    root = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    last_read_seq = models.BigIntegerField(default=0)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["root", "user"], name="chat_thread_read_once")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in thread {self.root_id}"


class Attachment(models.Model):
    """A file sent with a message, stored under CHAT_MEDIA_DIR.  Uploaded first (no
    message yet), then attached by the send that names it."""

    class Scan(models.TextChoices):
        PENDING = "pending", _("検査待ち")
        CLEAN = "clean", _("問題なし")
        INFECTED = "infected", _("検出")
        SKIPPED = "skipped", _("検査なし")

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="attachments"
    )
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.CASCADE, related_name="attachments"
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    name = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    # Relative to CHAT_MEDIA_DIR.
    path = models.CharField(max_length=300)
    thumbnail_path = models.CharField(max_length=300, blank=True)
    scan = models.CharField(max_length=10, choices=Scan.choices, default=Scan.PENDING)
    created_at = models.DateTimeField(default=clock.now)

    def __str__(self) -> str:
        return self.name


class Presence(models.Model):
    """在席 status of one person.  ``status`` is what they chose or what was set for them
    (会議中 by a meeting, テレワーク中 by telework); ``online`` is whether any client of
    theirs is connected; what others see is ``effective_status`` (chat/presence.py)."""

    class Status(models.TextChoices):
        AVAILABLE = "available", _("在席")
        AWAY = "away", _("離席")
        IN_MEETING = "meeting", _("会議中")
        TELEWORK = "telework", _("テレワーク中")
        LEAVE = "leave", _("休暇")
        OFFLINE = "offline", _("オフライン")

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.AVAILABLE)
    # Set by the person or another feature; automatic 離席 never overrides it.
    status_set_by = models.CharField(max_length=20, blank=True)
    message = models.CharField(_("ひとこと"), max_length=100, blank=True)
    message_expires_at = models.DateTimeField(null=True, blank=True)
    online = models.BooleanField(default=False)
    idle = models.BooleanField(default=False)
    # Renewed in batches while a client is connected; a sweep marks stale ones offline.
    seen_at = models.DateTimeField(null=True, blank=True)
    changed_at = models.DateTimeField(default=clock.now)

    def __str__(self) -> str:
        return f"{self.user_id}: {self.status}"


class IncomingWebhook(models.Model):
    """A secret URL that posts JSON into one conversation (e.g. disaster alerts)."""

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="incoming_webhooks"
    )
    name = models.CharField(_("名前"), max_length=100)
    # SHA-256 of the secret in the URL; the secret itself is shown once.
    digest = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=clock.now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


class OutgoingWebhook(models.Model):
    """A bot's URL called (POST JSON, signed with HMAC) when the bot is mentioned."""

    bot = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_outgoing_webhooks"
    )
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=64)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=clock.now)
    is_active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.url


class MentionNotice(models.Model):
    """Outbox of mentions that may become an e-mail: due ``CHAT_MENTION_EMAIL_DELAY``
    after the mention; dropped if the person read the message first."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    due_at = models.DateTimeField()
    handled_at = models.DateTimeField(null=True, blank=True)
    # "mailed", "read", "muted", "no_address".
    outcome = models.CharField(max_length=12, blank=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["user", "message"], name="chat_mention_notice_once")
        ]
        indexes: ClassVar = [
            models.Index(
                fields=["due_at"], condition=Q(handled_at__isnull=True), name="chat_notice_due"
            )
        ]

    def __str__(self) -> str:
        return f"mention of {self.user_id} in {self.message_id}"


class DisclosureExport(models.Model):
    """A record of one export for an information-disclosure request (情報公開請求)."""

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    conversation = models.ForeignKey(
        Conversation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    person = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reference = models.CharField(_("請求番号"), max_length=100, blank=True)
    created_at = models.DateTimeField(default=clock.now)
    message_count = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"export {self.pk}"

"""The audit log (操作ログ): an append-only table of who did what, when and from where.

Four insert-only tables (the database refuses UPDATE and DELETE, see migration 0003):
``AuditEntry`` (what happened), ``AuditSeal`` (its place in the hash chain),
``AuditCheckpoint`` (a signed chain head) and ``AuditPruneAnchor`` (a signed head of
what retention removed).  ``AuditPending`` is the sealer's work queue, filled by a
database trigger on every entry insert.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from django.db import models
from django.utils.translation import gettext_lazy as _

from yakuba.lib import clock


class CanonicalJSONEncoder(json.JSONEncoder):
    """The audit chain's JSON: sorted keys, no spaces, UTF-8 text (no \\u escapes)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.update(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        super().__init__(**kwargs)


class AuditAction(models.TextChoices):
    """Every kind of audited action.  Values are stable: they are stored and hashed."""

    # Sign-in and sessions
    LOGIN_SUCCEEDED = "auth.login", _("サインイン")
    LOGIN_FAILED = "auth.login_failed", _("サインイン失敗")
    ACCOUNT_LOCKED = "auth.locked", _("アカウントロック")
    ACCOUNT_UNLOCKED = "auth.unlocked", _("アカウントロック解除")
    LOGOUT = "auth.logout", _("サインアウト")
    LOGOUT_EVERYWHERE = "auth.logout_everywhere", _("全端末からサインアウト")
    SESSIONS_ENDED = "auth.sessions_ended", _("セッション強制終了")
    SESSION_EXPIRED = "auth.session_expired", _("セッション期限切れ")
    PASSWORD_CHANGED = "auth.password_changed", _("パスワード変更")
    TOTP_ENABLED = "auth.totp_enabled", _("二要素認証の設定")
    TOTP_DISABLED = "auth.totp_disabled", _("二要素認証の解除")
    TOKEN_CREATED = "auth.token_created", _("APIトークン発行")
    TOKEN_REVOKED = "auth.token_revoked", _("APIトークン失効")
    LANGUAGE_CHANGED = "auth.language_changed", _("表示言語の変更")
    PERMISSION_DENIED = "auth.denied", _("権限のない操作")
    # Directory
    DEPARTMENT_CREATED = "directory.department_created", _("所属の作成")
    DEPARTMENT_CHANGED = "directory.department_changed", _("所属の変更")
    STAFF_CREATED = "directory.staff_created", _("職員の登録")
    STAFF_CHANGED = "directory.staff_changed", _("職員の変更")
    USER_DEACTIVATED = "directory.user_deactivated", _("利用停止")
    USER_REACTIVATED = "directory.user_reactivated", _("利用再開")
    ROLE_GRANTED = "directory.role_granted", _("ロール付与")
    ROLE_REVOKED = "directory.role_revoked", _("ロール解除")
    GUEST_INVITED = "directory.guest_invited", _("ゲスト招待")
    GUEST_CHANGED = "directory.guest_changed", _("ゲスト変更")
    CSV_IMPORTED = "directory.csv_imported", _("CSV取込")
    CSV_EXPORTED = "directory.csv_exported", _("CSV出力")
    TRANSFER_SCHEDULED = "directory.transfer_scheduled", _("人事異動の登録")
    TRANSFER_APPLIED = "directory.transfer_applied", _("人事異動の発令")
    TRANSFER_CANCELLED = "directory.transfer_cancelled", _("人事異動の取消")
    ADMIN_CHANGE = "admin.change", _("管理画面での変更")
    DEMO_LOADED = "system.demo_loaded", _("デモデータ投入")
    # Meeting rooms
    ROOM_CREATED = "rooms.room_created", _("会議室の登録")
    ROOM_CHANGED = "rooms.room_changed", _("会議室の変更")
    ROOMS_IMPORTED = "rooms.imported", _("会議室CSV取込")
    ROOM_PANEL_PAIRED = "rooms.panel_paired", _("ドアパネル端末の登録")
    BOOKING_CREATED = "rooms.booking_created", _("会議室の予約")
    BOOKING_CHANGED = "rooms.booking_changed", _("会議室予約の変更")
    BOOKING_CANCELLED = "rooms.booking_cancelled", _("会議室予約の取消")
    BOOKING_APPROVED = "rooms.booking_approved", _("会議室予約の承認")
    BOOKING_REJECTED = "rooms.booking_rejected", _("会議室予約の却下")
    BOOKING_CHECKED_IN = "rooms.checked_in", _("会議室のチェックイン")
    BOOKING_EXTENDED = "rooms.extended", _("会議室利用の延長")
    BOOKING_ENDED_EARLY = "rooms.ended_early", _("会議室利用の早期終了")
    BOOKING_RELEASED = "rooms.released", _("未使用予約の自動解放")
    SERIES_CREATED = "rooms.series_created", _("定期予約の登録")
    SERIES_CHANGED = "rooms.series_changed", _("定期予約の変更")
    SERIES_CANCELLED = "rooms.series_cancelled", _("定期予約の取消")
    SERIES_NO_SHOW_WARNED = "rooms.series_warned", _("定期予約の未使用警告")
    BOOKINGS_IMPORTED = "rooms.bookings_imported", _("予約のiCalendar取込")
    HOLIDAYS_CHANGED = "rooms.holidays_changed", _("祝日・休庁日の変更")
    CALENDAR_FEED_CREATED = "rooms.feed_created", _("カレンダー配信URLの発行")
    CALENDAR_FEED_RESET = "rooms.feed_reset", _("カレンダー配信URLの再発行")
    ROOM_REPORT_EXPORTED = "rooms.report_exported", _("稼働率レポート出力")
    # Minutes (議事録)
    MEETING_CREATED = "minutes.meeting_created", _("会議の登録")
    MEETING_CHANGED = "minutes.meeting_changed", _("会議の変更")
    MEETING_DELETED = "minutes.meeting_deleted", _("会議の削除")
    RECORDING_UPLOADED = "minutes.recording_uploaded", _("録音の登録")
    RECORDING_DELETED = "minutes.recording_deleted", _("録音の削除")
    TRANSCRIPTION_REQUESTED = "minutes.transcription_requested", _("文字起こしの開始")
    TRANSCRIPTION_CANCELLED = "minutes.transcription_cancelled", _("文字起こしの中止")
    TRANSCRIPTION_FINISHED = "minutes.transcription_finished", _("文字起こしの完了")
    TRANSCRIPTION_FAILED = "minutes.transcription_failed", _("文字起こしの失敗")
    TRANSCRIPT_EDITED = "minutes.transcript_edited", _("発言の編集")
    SPEAKER_CHANGED = "minutes.speaker_changed", _("話者の変更")
    DICTIONARY_CHANGED = "minutes.dictionary_changed", _("辞書の変更")
    MINUTES_CHANGED = "minutes.minutes_changed", _("議事録の編集")
    MINUTES_SUMMARISED = "minutes.summarised", _("議事録の要約")
    MINUTES_REVIEW_REQUESTED = "minutes.review_requested", _("議事録の確認依頼")
    MINUTES_RETURNED = "minutes.returned", _("議事録の差し戻し")
    MINUTES_APPROVED = "minutes.approved", _("議事録の承認")
    MINUTES_COMMENTED = "minutes.commented", _("議事録へのコメント")
    MINUTES_EXPORTED = "minutes.exported", _("議事録の出力")
    # Chat.  Sending, reacting and reading are not audited one by one: the message table
    # is itself the record (edits and deletions keep the old text), and an audit row per
    # chat message would double the write load of the busiest feature.
    CHAT_CONVERSATION_CREATED = "chat.conversation_created", _("チャンネル・会話の作成")
    CHAT_CONVERSATION_CHANGED = "chat.conversation_changed", _("チャンネル設定の変更")
    CHAT_MEMBERS_CHANGED = "chat.members_changed", _("チャンネル参加者の変更")
    CHAT_ARCHIVED = "chat.archived", _("チャンネルのアーカイブ")
    CHAT_UNARCHIVED = "chat.unarchived", _("チャンネルのアーカイブ解除")
    CHAT_MESSAGE_EDITED = "chat.message_edited", _("メッセージの編集")
    CHAT_MESSAGE_DELETED = "chat.message_deleted", _("メッセージの削除")
    CHAT_MESSAGE_PINNED = "chat.message_pinned", _("メッセージのピン留め")
    CHAT_MESSAGE_UNPINNED = "chat.message_unpinned", _("メッセージのピン留め解除")
    CHAT_FILE_BLOCKED = "chat.file_blocked", _("添付ファイルの検疫")
    CHAT_WEBHOOK_CREATED = "chat.webhook_created", _("Webhookの作成")
    CHAT_WEBHOOK_REVOKED = "chat.webhook_revoked", _("Webhookの失効")
    CHAT_BOT_CHANGED = "chat.bot_changed", _("ボットの設定")
    CHAT_RETENTION_CHANGED = "chat.retention_changed", _("メッセージ保存期間の変更")
    CHAT_LEGAL_HOLD_CHANGED = "chat.legal_hold_changed", _("訴訟ホールドの変更")
    CHAT_MESSAGES_PURGED = "chat.messages_purged", _("保存期間経過メッセージの削除")
    CHAT_EXPORTED = "chat.exported", _("メッセージの開示用出力")
    # The audit log itself
    AUDIT_CHECKPOINT = "audit.checkpoint", _("チェックポイント作成")
    AUDIT_EXPORTED = "audit.exported", _("監査ログ出力")
    AUDIT_PRUNED = "audit.pruned", _("監査ログ削除（保存期間経過）")
    AUDIT_SEARCHED = "audit.searched", _("監査ログ検索")


class ActorKind(models.TextChoices):
    STAFF = "staff", _("職員")
    GUEST = "guest", _("ゲスト")
    DEVICE = "device", _("端末・ボット")
    SYSTEM = "system", _("システム")
    ANONYMOUS = "anonymous", _("未認証")


class AuditEntry(models.Model):
    """One audited action.  Rows are only ever inserted: the database refuses UPDATE and
    DELETE (see the migration that installs the triggers).  The hash chain lives in
    ``AuditSeal`` so that sealing never has to update an entry."""

    occurred_at = models.DateTimeField(_("日時"), default=clock.now, db_index=True)
    actor_kind = models.CharField(_("操作者種別"), max_length=10, choices=ActorKind.choices)
    actor_id = models.BigIntegerField(_("操作者ID"), null=True, blank=True, db_index=True)
    actor_label = models.CharField(_("操作者"), max_length=200, blank=True)
    # Stored without ``choices`` so that new actions need no migration; ``record``
    # only accepts members of ``AuditAction``.
    action = models.CharField(_("操作"), max_length=64, db_index=True)
    target_type = models.CharField(_("対象種別"), max_length=64, blank=True)
    target_id = models.CharField(_("対象ID"), max_length=64, blank=True)
    target_label = models.CharField(_("対象"), max_length=300, blank=True)
    # Stored in canonical form (sorted keys, compact) so that SQLite's copy is already
    # the text the chain hashes; PostgreSQL's jsonb reorders keys, which is harmless
    # because verification re-serialises from the parsed value.
    details = models.JSONField(_("詳細"), default=dict, encoder=CanonicalJSONEncoder)
    source_ip = models.GenericIPAddressField(_("接続元"), null=True, blank=True)

    class Meta:
        verbose_name = _("監査ログ")
        verbose_name_plural = _("監査ログ")
        indexes: ClassVar = [models.Index(fields=["target_type", "target_id"], name="audit_target")]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action}"

    @property
    def action_label(self) -> str:
        """The action's name in the active language (the stored code when it is not a
        known action)."""
        try:
            return str(AuditAction(self.action).label)
        except ValueError:
            return self.action

    @property
    def details_text(self) -> str:
        return json.dumps(self.details, ensure_ascii=False, sort_keys=True)

    @property
    def seal_seq(self) -> int | None:
        """The entry's place in the chain, or None while it waits for the sealer."""
        seal = getattr(self, "seal", None)
        return seal.seq if seal is not None else None


class AuditSeal(models.Model):
    """An entry's place in the hash chain: ``hash = SHA-256(prev_hash + canonical JSON)``.

    Seals are made by the sealer after the entry's transaction committed, in the order
    the sealer saw them (``seq``), which is not always entry id order: on PostgreSQL an
    id is taken before its transaction commits.  Only ever inserted.
    """

    # The seq is the key: SQLite then stores seals in chain order, and verification
    # reads them with a plain table scan.
    seq = models.BigIntegerField(_("連番"), primary_key=True)
    entry = models.OneToOneField(
        AuditEntry, verbose_name=_("監査ログ"), on_delete=models.PROTECT, related_name="seal"
    )
    prev_hash = models.CharField(_("直前のハッシュ"), max_length=64)
    hash = models.CharField(_("ハッシュ"), max_length=64)
    sealed_at = models.DateTimeField(_("封印日時"), default=clock.now)

    class Meta:
        verbose_name = _("監査ログの封印")
        verbose_name_plural = _("監査ログの封印")

    def __str__(self) -> str:
        return f"#{self.seq} {self.hash[:12]}"


class AuditPending(models.Model):
    """The sealer's queue: one row per committed entry not yet sealed.  A trigger
    inserts it with the entry, in the same transaction, so an entry cannot commit
    without being queued; the sealer deletes the row when it seals the entry."""

    entry_id = models.BigIntegerField(primary_key=True)

    class Meta:
        verbose_name = _("封印待ち")
        verbose_name_plural = _("封印待ち")

    def __str__(self) -> str:
        return str(self.entry_id)


class AuditCheckpoint(models.Model):
    """A signed statement "the chain had this hash at this seq" (Ed25519).  Entries up to
    a checkpoint cannot be changed, removed or reordered without failing verification,
    even by someone who can rewrite every row, because they lack the private key."""

    seq = models.BigIntegerField(_("連番"), db_index=True)
    hash = models.CharField(_("ハッシュ"), max_length=64)
    created_at = models.DateTimeField(_("作成日時"), default=clock.now)
    key_fingerprint = models.CharField(_("公開鍵指紋"), max_length=64)
    public_key = models.CharField(_("公開鍵"), max_length=64)
    signature = models.CharField(_("署名"), max_length=128)

    class Meta:
        verbose_name = _("チェックポイント")
        verbose_name_plural = _("チェックポイント")

    def __str__(self) -> str:
        return f"checkpoint #{self.pk} seq {self.seq}"


class AuditPruneAnchor(models.Model):
    """A signed record that retention removed the chain up to ``seq``, whose last hash
    was ``hash``; the remaining chain is verified from here.  The database only lets
    seals at or below the highest anchor be deleted, so deleting entries needs an
    anchor first, and a forged anchor fails its signature check."""

    seq = models.BigIntegerField(_("連番"), db_index=True)
    hash = models.CharField(_("ハッシュ"), max_length=64)
    max_entry_id = models.BigIntegerField(_("削除した最大ID"))
    before = models.DateTimeField(_("削除基準日時"))
    created_at = models.DateTimeField(_("作成日時"), default=clock.now)
    key_fingerprint = models.CharField(_("公開鍵指紋"), max_length=64)
    public_key = models.CharField(_("公開鍵"), max_length=64)
    signature = models.CharField(_("署名"), max_length=128)

    class Meta:
        verbose_name = _("削除アンカー")
        verbose_name_plural = _("削除アンカー")

    def __str__(self) -> str:
        return f"prune anchor seq {self.seq}"

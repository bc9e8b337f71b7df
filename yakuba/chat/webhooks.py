"""Integrations: incoming webhooks, bot accounts and their outgoing webhooks.

Incoming webhook (外部連携の受信).  A secret URL ``/api/chat/hooks/<secret>`` that another
system (a disaster-alert feed, a monitoring tool) POSTs JSON to; each accepted request
becomes one message of kind ``webhook`` in one conversation, shown under the webhook's
name or the ``username`` of the payload.  The secret is shown once, when the webhook is
created; only its SHA-256 is kept (like API tokens, ``yakuba.directory.tokens``).  The
conversation's managers create and revoke them (audited).

Bots (ボット).  A user of kind ``bot`` with an API token of scope ``chat:send``, made a
member of named conversations by an IT administrator (``yakuba chatbot`` or
``POST /api/chat/bots``).  A bot reads and posts only where it is a member, through the
same API as people.  A bot may have an outgoing webhook: when a message mentions it, the
job ``chat.outgoing_webhook`` POSTs the message to the URL the administrator registered,
signed ``X-Yakuba-Signature: sha256=<HMAC-SHA256(secret, body)>``; a JSON answer with
``text`` is posted as the bot's reply in the message's thread.

Rate limits.  Each incoming webhook may make ``CHAT_WEBHOOK_RATE_PER_MINUTE`` requests
per clock minute (``take_rate``).  Bots are held to the API's own throttle
(``API_RATE_PER_MINUTE``, counted per process); ``check_bot_rate`` offers the same shared
per-minute count for bots, but no route calls it yet.  The counter lives in Redis when
``REDIS_URL`` is set, so that every worker of the ward tier shares it; the embedded tier
runs one process and counts in Django's cache.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache as django_cache
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils.translation import gettext as _

from yakuba.audit.models import AuditAction
from yakuba.audit.record import Actor, record
from yakuba.chat.actions import ChatError
from yakuba.chat.models import (
    Conversation,
    IncomingWebhook,
    Membership,
    Message,
    OutgoingWebhook,
)
from yakuba.directory.actions.auth import do_create_token, do_deactivate_user, do_revoke_token
from yakuba.directory.models import ApiToken, User
from yakuba.lib import clock
from yakuba.tasks.registry import enqueue, job

log = logging.getLogger(__name__)

HOOK_MARK = "ykh_"
CHAT_SCOPE = "chat:send"
# The display label a payload may choose (``username``), in characters.
LABEL_MAX = 50
BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
NAME_MAX = 100
# The kinds of conversation an incoming webhook may post into.
WEBHOOK_KINDS = frozenset(
    {Conversation.Kind.DEPARTMENT, Conversation.Kind.PROJECT, Conversation.Kind.GROUP}
)
# Outgoing webhooks: the largest answer read, and attempts before giving up.
REPLY_MAX_BYTES = 65536
SIGNATURE_HEADER = "X-Yakuba-Signature"

Acting = User | Actor | None


def _actor(acting_user: Acting, fallback: str) -> User | Actor:
    return Actor.system(fallback) if acting_user is None else acting_user


# --- Rate limits ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    # Seconds until the next request may succeed (0 when allowed).
    retry_after: int


@cache
def _redis_client() -> Any:
    import redis

    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def take_rate(key: str, limit: int | None = None) -> RateDecision:
    """Count one request against ``key`` in the current clock minute and say whether it
    is within ``limit`` (default ``CHAT_WEBHOOK_RATE_PER_MINUTE``).

    Counted with Redis ``INCR`` when ``REDIS_URL`` is set (shared by every worker), else in
    Django's cache (one process: the embedded tier).  A fixed window: a caller may send up
    to twice the limit across a minute boundary, which is fine for a guard against a
    runaway script.  If Redis is unreachable the request is allowed (and logged): an
    alert must not be lost because the counter is.
    """
    rate = settings.CHAT_WEBHOOK_RATE_PER_MINUTE if limit is None else limit
    now = clock.now().timestamp()
    window = int(now // 60)
    retry_after = max(1, int(60 - now % 60 + 0.999))
    name = f"{settings.REDIS_PREFIX}:chat-rate:{key}:{window}"
    if settings.REDIS_URL:
        try:
            pipe = _redis_client().pipeline()
            pipe.incr(name)
            pipe.expire(name, 120)
            count = int(pipe.execute()[0])
        except Exception:
            log.exception("rate counter unavailable; allowing %s", key)
            return RateDecision(True, 0)
    else:
        django_cache.add(name, 0, timeout=120)
        try:
            count = django_cache.incr(name)
        except ValueError:  # evicted between add and incr
            django_cache.set(name, 1, timeout=120)
            count = 1
    if count > rate:
        return RateDecision(False, retry_after)
    return RateDecision(True, 0)


def check_bot_rate(user: User) -> None:
    """Raise a 429 ``ChatError`` when a bot has made more than its minute's requests.
    People are limited by the API's own throttle only."""
    if user.kind != User.Kind.BOT:
        return
    decision = take_rate(f"bot:{user.pk}")
    if not decision.allowed:
        raise _rate_error(decision)


def _rate_error(decision: RateDecision) -> ChatError:
    return ChatError(
        _("送信が多すぎます。{seconds}秒ほど待ってから送り直してください。").format(
            seconds=decision.retry_after
        ),
        f"Too many requests; retry after {decision.retry_after} s.",
        code="rate_limited",
        status=429,
        details={"retry_after": decision.retry_after},
    )


# --- Incoming webhooks -----------------------------------------------------------------------


def new_hook_secret() -> tuple[str, str]:
    """A fresh ``(prefix, secret)``: ``ykh_<8 hex>_<43 url-safe characters>``."""
    prefix = secrets.token_hex(4)
    return prefix, f"{HOOK_MARK}{prefix}_{secrets.token_urlsafe(32)}"


def hook_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def hook_path(secret: str) -> str:
    return f"/api/chat/hooks/{secret}"


def do_create_incoming_webhook(
    conversation: Conversation, *, name: str, acting_user: Acting
) -> tuple[IncomingWebhook, str]:
    """Create a webhook posting into ``conversation``; returns it and its secret, which is
    shown once and never stored (only its SHA-256).  The caller checked that
    ``acting_user`` manages the conversation (``access_conversation_for_manage``)."""
    name = " ".join(name.split())
    if not name:
        raise ChatError(
            _("Webhookの名前を入力してください（例: 防災情報システム）。"),
            "Enter a name for the webhook.",
            field="name",
        )
    if len(name) > NAME_MAX:
        raise ChatError(
            _("Webhookの名前は{max}文字以内にしてください。").format(max=NAME_MAX),
            f"The name must be at most {NAME_MAX} characters.",
            field="name",
        )
    if conversation.kind not in WEBHOOK_KINDS:
        # A direct message is two people's alone: nobody but IT "manages" it, and a
        # system posting into it would look like part of their conversation.
        raise ChatError(
            _("Webhookはチャンネルとグループメッセージにだけ作れます。"),
            "Webhooks can post into channels and group messages only.",
            code="forbidden",
            status=403,
        )
    if conversation.archived_at is not None:
        raise ChatError(
            _("アーカイブされた会話にはWebhookを作れません。先にアーカイブを解除してください。"),
            "The conversation is archived.",
            code="archived",
            status=409,
        )
    prefix, secret = new_hook_secret()
    with transaction.atomic():
        webhook = IncomingWebhook.objects.create(
            conversation=conversation,
            name=name,
            digest=hook_digest(secret),
            prefix=prefix,
            created_by=acting_user if isinstance(acting_user, User) else None,
            created_at=clock.now(),
        )
        record(
            AuditAction.CHAT_WEBHOOK_CREATED,
            actor=_actor(acting_user, "chat"),
            target=webhook,
            details={"conversation": conversation.pk, "name": name, "prefix": prefix},
        )
    return webhook, secret


def do_revoke_incoming_webhook(webhook: IncomingWebhook, *, acting_user: Acting) -> bool:
    """Revoke a webhook; its URL answers 404 from now on.  False (nothing audited) when it
    was revoked already."""
    with transaction.atomic():
        now = clock.now()
        changed = IncomingWebhook.objects.filter(pk=webhook.pk, revoked_at__isnull=True).update(
            revoked_at=now
        )
        if not changed:
            return False
        webhook.revoked_at = now
        record(
            AuditAction.CHAT_WEBHOOK_REVOKED,
            actor=_actor(acting_user, "chat"),
            target=webhook,
            details={"conversation": webhook.conversation_id, "prefix": webhook.prefix},
        )
    return True


def webhook_for_secret(secret: str) -> IncomingWebhook:
    """The active webhook whose URL holds ``secret``; ``Http404`` otherwise (the secret
    is the permission: a wrong one and a revoked one look the same)."""
    secret = secret.strip()
    if not secret.startswith(HOOK_MARK) or len(secret) > 100:
        raise Http404("no such webhook")
    digest = hook_digest(secret)
    found = (
        IncomingWebhook.objects.select_related("conversation")
        .filter(digest=digest, revoked_at__isnull=True)
        .first()
    )
    # The lookup is by the digest (an index), so its timing tells nothing about the secret;
    # the comparison below only guards against a database that compares loosely.
    if found is None or not hmac.compare_digest(found.digest, digest):
        raise Http404("no such webhook")
    return found


def webhook_rate(webhook: IncomingWebhook) -> None:
    """Count one request to ``webhook``; raise a 429 ``ChatError`` past the limit."""
    decision = take_rate(f"hook:{webhook.pk}")
    if not decision.allowed:
        raise _rate_error(decision)


@dataclass(frozen=True)
class HookPayload:
    text: str
    label: str


def parse_hook_payload(data: Any, *, default_label: str) -> HookPayload:
    """Check a decoded JSON body: ``{"text": str, "username"?: str}`` (Slack's shape is
    the same).  Raises ``ChatError`` (400) that names what is wrong."""
    if not isinstance(data, dict):
        raise ChatError(
            _('本文はJSONのオブジェクトにしてください（例: {"text": "お知らせ"}）。'),
            'The body must be a JSON object such as {"text": "..."}.',
        )
    text = data.get("text")
    if text is None:
        raise ChatError(
            _("text（投稿する本文）がありません。"), 'The field "text" is missing.', field="text"
        )
    if not isinstance(text, str):
        raise ChatError(
            _("text は文字列で指定してください。"),
            'The field "text" must be a string.',
            field="text",
        )
    if not text.strip():
        raise ChatError(
            _("text が空です。投稿する本文を入れてください。"),
            'The field "text" is empty.',
            field="text",
        )
    limit: int = settings.CHAT_MESSAGE_MAX_CHARS
    if len(text) > limit:
        raise ChatError(
            _("text は{max}文字以内にしてください。").format(max=limit),
            f'The field "text" must be at most {limit} characters.',
            field="text",
        )
    username = data.get("username")
    if username is not None and not isinstance(username, str):
        raise ChatError(
            _("username は文字列で指定してください。"),
            'The field "username" must be a string.',
            field="username",
        )
    label = " ".join((username or "").split())
    if any(unicodedata.category(ch) == "Cc" or ch in BIDI_CONTROLS for ch in label):
        # NUL cannot even be stored on PostgreSQL; a bidi override would disguise the
        # sender shown.
        raise ChatError(
            _("username に制御文字は使えません。取り除いてから送ってください。"),
            'The field "username" contains control characters.',
            field="username",
        )
    if len(label) > LABEL_MAX:
        raise ChatError(
            _("username は{max}文字以内にしてください。").format(max=LABEL_MAX),
            f'The field "username" must be at most {LABEL_MAX} characters.',
            field="username",
        )
    return HookPayload(text=text, label=label or default_label)


def check_post_incoming(
    webhook: IncomingWebhook, payload: HookPayload, *, idempotency_key: str | None
) -> tuple[Message, bool]:
    """Post ``payload`` into the webhook's conversation; returns the message and whether
    it is new.  A repeated ``idempotency_key`` returns the message made the first time.

    Locks the webhook's row while it looks for the key and posts, so two identical
    requests at once make one message (the database's unique constraint on
    ``(sender, client_key)`` does not hold for messages without a sender)."""
    from yakuba.chat.actions.messages import do_post_notice

    key = (idempotency_key or "").strip()
    if len(key) > 40 or any(not (32 < ord(c) < 127) for c in key):
        raise ChatError(
            _("Idempotency-Key は40文字以内の英数字と記号にしてください。"),
            "Idempotency-Key must be at most 40 printable ASCII characters.",
            field="Idempotency-Key",
        )
    client_key = f"hook{webhook.pk}:{key}" if key else None
    with transaction.atomic():
        locked = IncomingWebhook.objects.select_for_update().filter(pk=webhook.pk).first()
        if locked is None or locked.revoked_at is not None:
            raise Http404("no such webhook")
        conversation = Conversation.objects.get(pk=webhook.conversation_id)
        if conversation.archived_at is not None:
            raise ChatError(
                _("この会話はアーカイブされているため投稿できません。"),
                "The conversation is archived.",
                code="archived",
                status=409,
            )
        if client_key is not None:
            existing = Message.objects.filter(
                conversation=conversation, sender__isnull=True, client_key=client_key
            ).first()
            if existing is not None:
                return existing, False
        message = do_post_notice(
            conversation, payload.text, label=payload.label, kind=Message.Kind.WEBHOOK
        )
        if client_key is not None:
            # do_post_notice takes no client key (yet): set it in the same transaction,
            # under the webhook's lock, so the look-up above finds it next time.
            Message.objects.filter(pk=message.pk).update(client_key=client_key)
            message.client_key = client_key
        IncomingWebhook.objects.filter(pk=webhook.pk).update(last_used_at=clock.now())
    return message, True


# --- Bots ------------------------------------------------------------------------------------


def _clean_bot_name(username: str) -> str:
    username = username.strip()
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789-_.")
    if not username or len(username) > 60 or set(username.lower()) - allowed:
        raise ChatError(
            _("ボットのユーザー名は60文字以内の英数字・ハイフン・下線・ピリオドにしてください。"),
            "A bot's username is up to 60 letters, digits, '-', '_' or '.'.",
            field="username",
        )
    if User.objects.filter(username=username).exists():
        raise ChatError(
            _("ユーザー名 {name} は使われています。別の名前にしてください。").format(name=username),
            f"The username {username} is taken.",
            code="conflict",
            status=409,
            field="username",
        )
    return username


def _clean_outgoing_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 500:
        raise ChatError(
            _("送信先URLは http:// または https:// で始まる500文字以内のURLにしてください。"),
            "The URL must be an http(s) URL of at most 500 characters.",
            field="outgoing_url",
        )
    return url


@dataclass(frozen=True)
class NewBot:
    """A bot just created, with the secrets shown once."""

    user: User
    token: ApiToken
    raw_token: str
    outgoing: OutgoingWebhook | None
    outgoing_secret: str | None


def do_create_bot(
    *,
    username: str,
    display_name: str,
    conversations: Sequence[Conversation],
    outgoing_url: str | None = None,
    acting_user: Acting,
) -> NewBot:
    """Create a bot account with a ``chat:send`` token, make it a member of
    ``conversations`` and register its outgoing webhook, in one transaction.  The caller
    checked that ``acting_user`` is an IT administrator.  The raw token and the webhook
    secret are returned once and never stored in clear (the webhook secret is kept,
    because signing needs it)."""
    username = _clean_bot_name(username)
    display_name = " ".join(display_name.split()) or username
    if len(display_name) > 100:
        raise ChatError(
            _("表示名は100文字以内にしてください。"),
            "The display name must be at most 100 characters.",
            field="display_name",
        )
    url = _clean_outgoing_url(outgoing_url) if outgoing_url else None
    for conversation in conversations:
        _check_bot_may_join(conversation)
    with transaction.atomic():
        try:
            with transaction.atomic():
                bot = User.objects.create_user(
                    username, None, display_name=display_name, kind=User.Kind.BOT
                )
        except IntegrityError:
            raise ChatError(
                _("ユーザー名 {name} は使われています。別の名前にしてください。").format(
                    name=username
                ),
                f"The username {username} is taken.",
                code="conflict",
                status=409,
                field="username",
            ) from None
        record(
            AuditAction.CHAT_BOT_CHANGED,
            actor=_actor(acting_user, "yakuba chatbot"),
            target=bot,
            details={
                "change": "created",
                "username": username,
                "conversations": [c.pk for c in conversations],
                "outgoing_url": url,
            },
        )
        token, raw = do_create_token(
            bot,
            name=_("チャットボット"),
            scopes=[CHAT_SCOPE],
            expires_at=None,
            acting_user=acting_user,
        )
        do_add_bot_to_conversations(bot, conversations, acting_user=acting_user)
        outgoing, secret = (None, None)
        if url is not None:
            outgoing, secret = _create_outgoing(bot, url, acting_user=acting_user)
    return NewBot(bot, token, raw, outgoing, secret)


def _check_bot_may_join(conversation: Conversation) -> None:
    # 所属 channels hold exactly the staff of the 所属 (chat.membership removes anyone
    # else), and direct and group messages are between people.
    if conversation.kind != Conversation.Kind.PROJECT:
        raise ChatError(
            _("ボットはプロジェクトチャンネルにだけ参加できます（{name}）。").format(
                name=conversation
            ),
            "A bot can join project channels only.",
            field="conversations",
        )
    if conversation.archived_at is not None:
        raise ChatError(
            _("{name} はアーカイブされています。先にアーカイブを解除してください。").format(
                name=conversation
            ),
            "The conversation is archived.",
            code="archived",
            status=409,
            field="conversations",
        )


def do_add_bot_to_conversations(
    bot: User, conversations: Iterable[Conversation], *, acting_user: Acting
) -> None:
    """Make a bot a member of more project channels (audited as a members change by
    ``do_add_members``)."""
    from yakuba.chat.actions.conversations import do_add_members

    conversations = list(conversations)
    for conversation in conversations:
        _check_bot_may_join(conversation)
    with transaction.atomic():
        for conversation in conversations:
            do_add_members(conversation, [bot], acting_user=_actor(acting_user, "yakuba chatbot"))


def _create_outgoing(bot: User, url: str, *, acting_user: Acting) -> tuple[OutgoingWebhook, str]:
    secret = secrets.token_hex(32)
    OutgoingWebhook.objects.filter(bot=bot, is_active=True).update(is_active=False)
    hook = OutgoingWebhook.objects.create(
        bot=bot,
        url=url,
        secret=secret,
        created_by=acting_user if isinstance(acting_user, User) else None,
        created_at=clock.now(),
    )
    record(
        AuditAction.CHAT_BOT_CHANGED,
        actor=_actor(acting_user, "yakuba chatbot"),
        target=bot,
        details={"change": "outgoing_webhook", "url": url, "outgoing_webhook": hook.pk},
    )
    return hook, secret


def do_set_outgoing_webhook(
    bot: User, url: str, *, acting_user: Acting
) -> tuple[OutgoingWebhook, str]:
    """Register (or replace) the bot's outgoing webhook; returns it and its signing
    secret, shown once."""
    if bot.kind != User.Kind.BOT:
        raise ChatError(_("ボットではありません。"), "Not a bot.", field="bot")
    url = _clean_outgoing_url(url)
    with transaction.atomic():
        return _create_outgoing(bot, url, acting_user=acting_user)


@dataclass(frozen=True)
class BotSummary:
    conversations: list[int]
    outgoing_url: str | None


def bot_summaries(bots: Sequence[User]) -> dict[int, BotSummary]:
    """Each bot's conversations and active outgoing URL, in two queries for all of them
    (the API's list and ``yakuba chatbot list``)."""
    ids = [bot.pk for bot in bots]
    conversations: dict[int, list[int]] = {pk: [] for pk in ids}
    for user_id, conversation_id in Membership.objects.filter(user_id__in=ids).values_list(
        "user_id", "conversation_id"
    ):
        conversations[user_id].append(conversation_id)
    urls: dict[int, str] = {}
    for bot_id, url in (
        OutgoingWebhook.objects.filter(bot_id__in=ids, is_active=True)
        .order_by("pk")
        .values_list("bot_id", "url")
    ):
        urls[bot_id] = url  # the newest wins
    return {pk: BotSummary(sorted(conversations[pk]), urls.get(pk)) for pk in ids}


def do_revoke_bot(bot: User, *, acting_user: Acting) -> bool:
    """Stop a bot: its tokens are revoked, its outgoing webhook switched off and the
    account deactivated.  False when it was stopped already."""
    if bot.kind != User.Kind.BOT:
        raise ChatError(_("ボットではありません。"), "Not a bot.", field="bot")
    with transaction.atomic():
        for token in ApiToken.objects.filter(user=bot, revoked_at__isnull=True):
            do_revoke_token(token, acting_user=acting_user)
        hooks = OutgoingWebhook.objects.filter(bot=bot, is_active=True).update(is_active=False)
        deactivated = do_deactivate_user(bot, acting_user=acting_user, reason="chat bot revoked")
        if not (hooks or deactivated):
            return False
        record(
            AuditAction.CHAT_BOT_CHANGED,
            actor=_actor(acting_user, "yakuba chatbot"),
            target=bot,
            details={"change": "revoked", "username": bot.username},
        )
    return True


# --- Outgoing webhooks ---------------------------------------------------------------------


def on_message_sent(message: Message) -> int:
    """Queue a call of the outgoing webhook of every bot that ``message`` mentions and
    that is a member of its conversation.  Returns the number of calls queued.

    Call it inside the send transaction (the jobs then commit with the message, so none
    is lost) or right after it; the jobs only write rows.  Messages of bots never call
    webhooks: two bots answering each other's mentions would loop for ever."""
    mentioned = [int(uid) for uid in (message.mentions or []) if isinstance(uid, int)]
    if not mentioned or message.deleted_at is not None:
        return 0
    if (
        message.sender_id is not None
        and User.objects.filter(pk=message.sender_id, kind=User.Kind.BOT).exists()
    ):
        return 0
    hooks = OutgoingWebhook.objects.filter(
        bot_id__in=mentioned,
        is_active=True,
        bot__is_active=True,
        bot__kind=User.Kind.BOT,
        bot__chat_memberships__conversation_id=message.conversation_id,
    )
    count = 0
    with transaction.atomic(savepoint=False):
        for hook in hooks:
            enqueue("chat.outgoing_webhook", hook_id=hook.pk, message_id=message.pk)
            count += 1
    return count


def signature(secret: str, body: bytes) -> str:
    """The value of ``X-Yakuba-Signature`` for ``body``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class OutgoingWebhookFailed(RuntimeError):
    """The receiver was unreachable or answered an error that may pass: retried by the
    worker with backoff."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Calls go to the registered URL only, never where a redirect points."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _opener() -> urllib.request.OpenerDirector:
    # No proxies from the environment: the receiver is inside the ward's network.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def _give_up(error: str, *, hook_id: int, message_id: int) -> None:
    log.warning("outgoing webhook %s gave up on message %s: %s", hook_id, message_id, error)


@job("chat.outgoing_webhook", on_give_up=_give_up)
def call_outgoing_webhook(hook_id: int, message_id: int) -> None:
    """POST the message to the bot's URL and post a ``text`` answer as the bot's reply.

    Raises ``OutgoingWebhookFailed`` on a network error, a timeout, 429 or 5xx, so the
    worker retries with backoff; other answers (4xx) are final.  The reply carries a
    client key made of the message and the hook, so a retry after a lost answer never
    posts it twice."""
    from yakuba.chat.events import message_dict

    hook = OutgoingWebhook.objects.select_related("bot").filter(pk=hook_id, is_active=True).first()
    message = Message.objects.select_related("conversation", "sender").filter(pk=message_id).first()
    if hook is None or message is None or message.deleted_at is not None:
        return
    bot = hook.bot
    conversation = message.conversation
    # Checked again here, not only when queued: the bot may have been removed, revoked
    # or the conversation archived meanwhile, and then the message must not leave.
    if _bot_membership(bot, conversation) is None:
        return
    body = json.dumps(
        {
            "conversation": {
                "id": conversation.pk,
                "name": str(conversation),
                "kind": conversation.kind,
            },
            "message": message_dict(message),
            "bot": {"id": bot.pk, "username": bot.username, "name": bot.display_name},
        },
        ensure_ascii=False,
    ).encode("utf-8")
    request = urllib.request.Request(  # noqa: S310  (http(s) only: _clean_outgoing_url)
        hook.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Yakuba-Webhook/1",
            SIGNATURE_HEADER: signature(hook.secret, body),
        },
    )
    timeout = settings.CHAT_OUTGOING_WEBHOOK_TIMEOUT_SECONDS
    try:
        with _opener().open(request, timeout=timeout) as response:
            status = response.status
            answer = response.read(REPLY_MAX_BYTES + 1)
            content_type = response.headers.get_content_type()
    except urllib.error.HTTPError as exc:
        if exc.code == 429 or exc.code >= 500:
            raise OutgoingWebhookFailed(f"{hook.url}: HTTP {exc.code}") from exc
        log.warning(
            "outgoing webhook %s refused message %s: HTTP %s", hook.pk, message.pk, exc.code
        )
        return
    except (urllib.error.URLError, OSError) as exc:
        raise OutgoingWebhookFailed(f"{hook.url}: {exc}") from exc
    if not 200 <= status < 300 or content_type != "application/json":
        return
    if len(answer) > REPLY_MAX_BYTES:
        log.warning("outgoing webhook %s answered more than %d bytes", hook.pk, REPLY_MAX_BYTES)
        return
    try:
        data = json.loads(answer)
    except ValueError:
        log.warning("outgoing webhook %s answered malformed JSON", hook.pk)
        return
    text = data.get("text") if isinstance(data, dict) else None
    if isinstance(text, str) and text.strip():
        _post_reply(bot, message, text, hook)


def _bot_membership(bot: User, conversation: Conversation) -> Membership | None:
    """The bot's membership, if it may post there now (active, a member, not archived).
    Asked quietly: a bot removed before its job ran is no refused request to audit."""
    from yakuba.chat.access import membership_of

    if conversation.archived_at is not None:
        return None
    membership = membership_of(bot, conversation)
    if membership is not None:
        membership.conversation = conversation
    return membership


def _post_reply(bot: User, message: Message, text: str, hook: OutgoingWebhook) -> None:
    from yakuba.chat.actions.messages import check_send_message

    conversation = Conversation.objects.get(pk=message.conversation_id)
    membership = _bot_membership(bot, conversation)
    if membership is None:
        return
    root_id = message.thread_root_id or message.pk
    try:
        check_send_message(
            membership,
            text=text[: settings.CHAT_MESSAGE_MAX_CHARS],
            client_key=f"outgoing:{hook.pk}:{message.pk}",
            thread_root_id=root_id,
            acting_user=bot,
        )
    except ChatError as exc:
        log.warning("reply of outgoing webhook %s not posted: %s", hook.pk, exc)


def _after_send(message: Message) -> None:
    """Runs after the send's commit (``register_after_send``): the message is
    acknowledged already, so a failure here is logged, never raised to the sender."""
    try:
        on_message_sent(message)
    except Exception:
        log.exception("outgoing webhooks for message %s not queued", message.pk)


def _register() -> None:
    from yakuba.chat.actions.messages import register_after_send

    register_after_send(_after_send)


_register()

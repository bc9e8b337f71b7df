"""Chat integrations in the JSON API: incoming webhooks (the public secret URL and the
managers' routes) and bot accounts (IT administrators).

``POST /api/chat/hooks/{secret}`` takes no session and no token (the secret in the URL is
the permission) and so no CSRF token either.  Every refusal answers in the one error
format, with a status that says what to fix: 404 unknown or revoked secret, 415 not JSON,
413 too large, 400 malformed JSON or a missing ``text`` (saying where), 409 archived
conversation, 429 too many requests (with ``Retry-After``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from ninja import Router, Schema, Status

from yakuba.audit.record import record_denial
from yakuba.chat import webhooks
from yakuba.chat.access import access_conversation_for_manage
from yakuba.chat.actions import ChatError
from yakuba.chat.models import Conversation, IncomingWebhook
from yakuba.directory.access import is_it_admin
from yakuba.directory.models import User
from yakuba.lib.api_auth import caller
from yakuba.lib.api_errors import ApiError, error_body

log = logging.getLogger(__name__)

router = Router()

JSON_TYPES = ("application/json",)


# --- Schemas ---------------------------------------------------------------------------


class HookPosted(Schema):
    message: int
    conversation: int
    seq: int


class WebhookIn(Schema):
    name: str


class WebhookOut(Schema):
    id: int
    conversation: int
    name: str
    prefix: str
    created_at: str
    created_by: int | None
    last_used_at: str | None
    revoked: bool


class WebhookCreated(WebhookOut):
    # Shown once: only its SHA-256 is kept.
    secret: str
    url: str


class WebhookList(Schema):
    items: list[WebhookOut]


class BotIn(Schema):
    username: str
    display_name: str = ""
    conversations: list[int] = []
    outgoing_url: str | None = None


class BotOut(Schema):
    id: int
    username: str
    display_name: str
    is_active: bool
    conversations: list[int]
    outgoing_url: str | None


class BotCreated(BotOut):
    # Shown once.
    token: str
    outgoing_secret: str | None


class BotList(Schema):
    items: list[BotOut]


# --- Errors ------------------------------------------------------------------------------


def _chat_error(exc: ChatError) -> JsonResponse:
    fields = {exc.field: [exc.message]} if exc.field else {}
    body = error_body(exc.code, message=exc.message, message_en=exc.english, fields=fields)
    if exc.details:
        body["error"]["details"] = exc.details
    response = JsonResponse(body, status=exc.status, json_dumps_params={"ensure_ascii": False})
    retry_after = exc.details.get("retry_after")
    if exc.status == 429 and retry_after:
        response["Retry-After"] = str(retry_after)
    return response


def _bad(status: int, code: str, message: str | None, message_en: str | None) -> JsonResponse:
    body = error_body(code, message=message, message_en=message_en)
    return JsonResponse(body, status=status, json_dumps_params={"ensure_ascii": False})


# --- The secret URL --------------------------------------------------------------------------


@router.post(
    "/hooks/{secret}",
    auth=None,
    response={200: HookPosted, 201: HookPosted},
    summary="Webhookでチャットに投稿する",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["text"],
                        "properties": {
                            "text": {"type": "string"},
                            "username": {"type": "string", "maxLength": webhooks.LABEL_MAX},
                        },
                    }
                }
            }
        },
        "responses": {
            400: {"description": "malformed JSON or no text"},
            404: {"description": "unknown or revoked webhook"},
            409: {"description": "archived conversation"},
            413: {"description": "body too large"},
            415: {"description": "not JSON"},
            429: {"description": "rate limited (Retry-After)"},
        },
    },
)
def post_to_hook(request: HttpRequest, secret: str) -> HttpResponse:
    """Post ``{"text": …, "username"?: …}`` as a message of the webhook's conversation.
    An ``Idempotency-Key`` header makes a retry return the first message (200) instead
    of posting again (201).

    The path is the secret, so no refusal may reach Django's request log, which writes
    the path of every 4xx and 5xx ("Not Found: /api/chat/hooks/…"): each one is logged
    here with the public prefix only and marked as logged."""
    try:
        response = _post_to_hook(request, secret)
    except Http404:
        response = _bad(
            404,
            "not_found",
            _("このWebhookのURLは無効です（失効したか、URLが違います）。"),
            "Unknown or revoked webhook URL.",
        )
    except Exception:
        log.exception("incoming webhook %s failed", _public_part(secret))
        response = _bad(500, "server_error", None, None)
    if response.status_code >= 400:
        response._has_been_logged = True  # type: ignore[attr-defined]  # django.utils.log
        log.warning("incoming webhook %s answered %s", _public_part(secret), response.status_code)
    return response


def _public_part(secret: str) -> str:
    """``ykh_<prefix>…``: the part of a hook URL that webhook lists show anyway."""
    return secret[: len(webhooks.HOOK_MARK) + 8] + "…"


def _post_to_hook(request: HttpRequest, secret: str) -> HttpResponse:
    webhook = webhooks.webhook_for_secret(secret)
    try:
        webhooks.webhook_rate(webhook)
    except ChatError as exc:
        return _chat_error(exc)
    if request.content_type not in JSON_TYPES:
        return _bad(
            415,
            "unsupported_media_type",
            _("本文はJSONにし、Content-Type: application/json を付けて送ってください。"),
            "Send the body with Content-Type: application/json.",
        )
    limit: int = settings.CHAT_WEBHOOK_MAX_BYTES
    too_large = _bad(
        413,
        "payload_too_large",
        _("本文が大きすぎます。{limit}バイト以内にしてください。").format(limit=limit),
        f"The body is larger than {limit} bytes.",
    )
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if declared.isdecimal() and int(declared) > limit:
        return too_large
    body = request.read(limit + 1)
    if len(body) > limit:
        return too_large
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        return _bad(
            400,
            "bad_json",
            _("本文をUTF-8で送ってください。"),
            "The body is not valid UTF-8.",
        )
    except json.JSONDecodeError as exc:
        return _bad(
            400,
            "bad_json",
            _("JSONの形式が正しくありません（{line}行{column}文字目: {reason}）。").format(
                line=exc.lineno, column=exc.colno, reason=exc.msg
            ),
            f"Malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}.",
        )
    except RecursionError:
        return _bad(
            400,
            "bad_json",
            _("JSONの入れ子が深すぎます。入れ子を浅くして送ってください。"),
            "The JSON is nested too deeply.",
        )
    try:
        payload = webhooks.parse_hook_payload(data, default_label=webhook.name)
        message, created = webhooks.check_post_incoming(
            webhook, payload, idempotency_key=request.headers.get("Idempotency-Key")
        )
    except ChatError as exc:
        return _chat_error(exc)
    return JsonResponse(
        {"message": message.pk, "conversation": message.conversation_id, "seq": message.seq},
        status=201 if created else 200,
    )


# --- Managing webhooks ---------------------------------------------------------------------


def _webhook_out(webhook: IncomingWebhook) -> dict[str, Any]:
    return {
        "id": webhook.pk,
        "conversation": webhook.conversation_id,
        "name": webhook.name,
        "prefix": webhook.prefix,
        "created_at": webhook.created_at.isoformat(),
        "created_by": webhook.created_by_id,
        "last_used_at": webhook.last_used_at.isoformat() if webhook.last_used_at else None,
        "revoked": webhook.revoked_at is not None,
    }


@router.get(
    "/conversations/{conversation_id}/webhooks",
    response=WebhookList,
    summary="会話のWebhook一覧",
)
def list_webhooks(request: HttpRequest, conversation_id: int) -> dict[str, Any]:
    """The conversation's webhooks, newest first (never their secrets).  Managers only."""
    conversation = access_conversation_for_manage(caller(request), conversation_id)
    rows = IncomingWebhook.objects.filter(conversation=conversation).order_by("-created_at", "-pk")
    return {"items": [_webhook_out(row) for row in rows]}


@router.post(
    "/conversations/{conversation_id}/webhooks",
    response={201: WebhookCreated},
    summary="Webhookを作成する",
)
def create_webhook(
    request: HttpRequest, conversation_id: int, payload: WebhookIn
) -> Status[dict[str, Any]] | HttpResponse:
    """A new webhook; ``secret`` and ``url`` are in this response only."""
    user = caller(request)
    conversation = access_conversation_for_manage(user, conversation_id)
    try:
        webhook, secret = webhooks.do_create_incoming_webhook(
            conversation, name=payload.name, acting_user=user
        )
    except ChatError as exc:
        return _chat_error(exc)
    url = f"{settings.SITE_URL}{webhooks.hook_path(secret)}"
    return Status(201, {**_webhook_out(webhook), "secret": secret, "url": url})


@router.delete("/webhooks/{webhook_id}", response={204: None}, summary="Webhookを失効させる")
def revoke_webhook(request: HttpRequest, webhook_id: int) -> Status[None]:
    user = caller(request)
    webhook = IncomingWebhook.objects.filter(pk=webhook_id).first()
    if webhook is None:
        raise ApiError(
            "not_found", message=_("Webhookが見つかりません。"), message_en="No such webhook."
        )
    access_conversation_for_manage(user, webhook.conversation_id)
    webhooks.do_revoke_incoming_webhook(webhook, acting_user=user)
    return Status(204, None)


# --- Bots ------------------------------------------------------------------------------------


def _require_it_admin(user: User) -> None:
    if not is_it_admin(user):
        record_denial(actor=user, what="chat.bots")
        raise ApiError(
            "forbidden",
            message=_("ボットを管理できるのは情報システム管理者だけです。"),
            message_en="Only IT administrators manage bots.",
        )


def _bot_out(bot: User, summary: webhooks.BotSummary | None = None) -> dict[str, Any]:
    summary = summary or webhooks.bot_summaries([bot])[bot.pk]
    return {
        "id": bot.pk,
        "username": bot.username,
        "display_name": bot.display_name,
        "is_active": bot.is_active,
        "conversations": summary.conversations,
        "outgoing_url": summary.outgoing_url,
    }


@router.get("/bots", response=BotList, summary="チャットボットの一覧")
def list_bots(request: HttpRequest) -> dict[str, Any]:
    _require_it_admin(caller(request))
    bots = list(User.objects.filter(kind=User.Kind.BOT).order_by("username"))
    summaries = webhooks.bot_summaries(bots)
    return {"items": [_bot_out(bot, summaries[bot.pk]) for bot in bots]}


@router.post("/bots", response={201: BotCreated}, summary="チャットボットを作成する")
def create_bot(request: HttpRequest, payload: BotIn) -> Status[dict[str, Any]] | HttpResponse:
    """A bot with a ``chat:send`` token, member of the named project channels, with an
    optional outgoing webhook.  ``token`` and ``outgoing_secret`` are in this response
    only.  IT administrators only."""
    user = caller(request)
    _require_it_admin(user)
    conversations = list(Conversation.objects.filter(pk__in=payload.conversations))
    missing = sorted(set(payload.conversations) - {c.pk for c in conversations})
    if missing:
        raise ApiError(
            "not_found",
            message=_("会話 {ids} が見つかりません。").format(ids=", ".join(map(str, missing))),
            message_en=f"No conversation {missing}.",
            fields={"conversations": [_("見つからない会話があります。")]},
        )
    try:
        bot = webhooks.do_create_bot(
            username=payload.username,
            display_name=payload.display_name,
            conversations=conversations,
            outgoing_url=payload.outgoing_url,
            acting_user=user,
        )
    except ChatError as exc:
        return _chat_error(exc)
    return Status(
        201,
        {**_bot_out(bot.user), "token": bot.raw_token, "outgoing_secret": bot.outgoing_secret},
    )


@router.delete("/bots/{bot_id}", response={204: None}, summary="チャットボットを停止する")
def revoke_bot(request: HttpRequest, bot_id: int) -> Status[None]:
    user = caller(request)
    _require_it_admin(user)
    bot = User.objects.filter(pk=bot_id, kind=User.Kind.BOT).first()
    if bot is None:
        raise ApiError(
            "not_found", message=_("ボットが見つかりません。"), message_en="No such bot."
        )
    webhooks.do_revoke_bot(bot, acting_user=user)
    return Status(204, None)

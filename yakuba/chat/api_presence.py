"""Presence over the chat API (``/api/chat/``).

- ``GET presence?users=1,2,3``: the current presence (``presence.presence_dict``: user,
  effective status, message, message_expires_at) of up to ``presence.MAX_WATCH`` people.
  Staff see everyone; guests and bots only the people they share a conversation with
  (the others are left out of the answer).
- ``PUT presence`` ``{"status", "message", "expires_at"}``: the signed-in person sets
  their own status (``presence.check_set_presence``).  ``message`` omitted keeps the
  current one, ``""`` clears it.  Answers the new presence.

Live changes come over the WebSocket (``chat.presence_watch``); these calls are for a
page's first paint and for the status menu.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Router, Schema

from yakuba.chat import presence
from yakuba.chat.actions import ChatError
from yakuba.lib.api_auth import caller
from yakuba.lib.api_errors import ApiError

router = Router()


class PresenceIn(Schema):
    status: str
    message: str | None = None
    expires_at: dt.datetime | None = None


def _bad_users(message_en: str) -> ApiError:
    return ApiError(
        "bad_request",
        status=400,
        message=_(
            "users には利用者IDをカンマ区切りで%(max)d件まで指定してください（例: users=1,2,3）。"
        )
        % {"max": presence.MAX_WATCH},
        message_en=message_en,
        fields={"users": [_("利用者IDをカンマ区切りで指定してください。")]},
    )


def _parse_users(raw: str) -> list[int]:
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    if not parts:
        raise _bad_users("users is required: comma-separated user ids")
    if len(parts) > presence.MAX_WATCH:
        raise _bad_users(f"at most {presence.MAX_WATCH} user ids")
    try:
        ids = [int(part) for part in parts]
    except ValueError:
        raise _bad_users("users must be comma-separated integers") from None
    if any(i <= 0 for i in ids):
        raise _bad_users("user ids are positive integers")
    return ids


@router.get("/presence", response=list[dict[str, Any]], summary="在席状況の取得")
def get_presence(request: HttpRequest, users: str = "") -> list[dict[str, Any]]:
    user = caller(request)
    return presence.read_presence(user.pk, _parse_users(users))


@router.put("/presence", response=dict[str, Any], summary="自分の在席状況の変更")
def put_presence(request: HttpRequest, payload: PresenceIn) -> dict[str, Any]:
    user = caller(request)
    try:
        presence.check_set_presence(
            user, status=payload.status, message=payload.message, expires_at=payload.expires_at
        )
    except ChatError as error:
        raise ApiError(
            error.code,
            status=error.status,
            message=error.message,
            message_en=error.english,
            fields={error.field: [error.message]} if error.field else None,
        ) from None
    return presence.read_presence(user.pk, [user.pk])[0]

"""Search, retention, legal hold and disclosure exports over the chat API (``/api/chat/``).

- ``GET search?q=…``: Japanese substring search (``chat.search``) in the conversations
  the caller may read.  Filters: ``conversation`` (id), ``person`` (sender's user id),
  ``from``/``to`` (Tokyo dates, YYYY-MM-DD, both included), ``has_file`` (true/false);
  ``limit`` (1–100, default 30) and ``before`` (the ``next_before`` of the previous
  page).  Answers ``{"results": [message_dict + conversation_name, snippet,
  highlights, matched_files], "next_before": id|null, "scan_limited": bool}``.
- ``GET|PUT conversations/{id}/retention`` (``{"days": n|null}``) and
  ``PUT conversations/{id}/legal-hold`` (``{"on": bool, "reason": "…"}``): IT
  administrators and auditors (``access_disclosure``; a refusal is audited, 403).
- ``GET export?conversation=&person=&from=&to=&reference=&format=csv|json``: the same
  people; a file download (``chat.disclosure``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema

from yakuba.chat import access
from yakuba.chat.actions import ChatError
from yakuba.chat.disclosure import do_export_messages
from yakuba.chat.models import Conversation
from yakuba.chat.retention import check_set_legal_hold, check_set_retention, retention_dict
from yakuba.chat.search import MAX_LIMIT, search_messages
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.lib.api_auth import caller
from yakuba.lib.api_errors import ApiError

router = Router()


def _api_error(error: ChatError) -> ApiError:
    return ApiError(
        error.code,
        status=error.status,
        message=error.message,
        message_en=error.english,
        fields={error.field: [error.message]} if error.field else None,
    )


# Dates outside these years are typing mistakes, and at the calendar's ends the next
# day (the end of a range) or the instant in UTC does not exist: a 500, not an answer.
FIRST_DATE = dt.date(1900, 1, 1)
LAST_DATE = dt.date(2999, 12, 31)
# Ids beyond a 64-bit integer cannot name a row (and SQLite cannot bind them).
MAX_ID = 2**63 - 1


def _date(value: str | None, name: str) -> dt.date | None:
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        message = _("日付は 2026-04-01 のように 年-月-日 で指定してください。")
        raise ApiError(
            "bad_date",
            status=400,
            message=message,
            message_en=f"{name}: a date is written YYYY-MM-DD",
            fields={name: [message]},
        ) from None
    if not FIRST_DATE <= day <= LAST_DATE:
        message = _("日付は1900年から2999年までの範囲で指定してください。")
        raise ApiError(
            "bad_date",
            status=400,
            message=message,
            message_en=f"{name}: a date between 1900 and 2999",
            fields={name: [message]},
        )
    return day


def _id(value: str | None, name: str) -> int | None:
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_ID:
        message = _("番号（ID）の形式が正しくありません。")
        raise ApiError(
            "bad_request",
            status=400,
            message=message,
            message_en=f"{name} must be a positive integer id",
            fields={name: [message]},
        )
    return number


def _limit(value: str | None) -> int:
    if not value:
        return 30
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_LIMIT:
        message = _("件数は1から%(n)dまでの数で指定してください。") % {"n": MAX_LIMIT}
        raise ApiError(
            "bad_request",
            status=400,
            message=message,
            message_en=f"limit must be a number from 1 to {MAX_LIMIT}",
            fields={"limit": [message]},
        )
    return number


def _flag(value: str | None, name: str) -> bool | None:
    if value is None or value == "":
        return None
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    message = _("true か false で指定してください。")
    raise ApiError(
        "bad_request",
        status=400,
        message=message,
        message_en=f"{name} must be true or false",
        fields={name: [message]},
    )


class SearchQuery(Schema):
    """Strings on purpose: a malformed value gets a 400 that says what is wrong, in the
    API's one format, not a generic validation error."""

    q: str = ""
    conversation: str | None = None
    person: str | None = None
    date_from: str | None = Field(None, alias="from")
    date_to: str | None = Field(None, alias="to")
    has_file: str | None = None
    limit: str | None = None
    before: str | None = None


@router.get("/search", summary="メッセージの検索")
def search(request: HttpRequest, filters: Query[SearchQuery]) -> dict[str, Any]:
    user = caller(request)
    try:
        page = search_messages(
            user,
            query=filters.q,
            conversation_id=_id(filters.conversation, "conversation"),
            sender_id=_id(filters.person, "person"),
            date_from=_date(filters.date_from, "from"),
            date_to=_date(filters.date_to, "to"),
            has_file=_flag(filters.has_file, "has_file"),
            limit=_limit(filters.limit),
            before_id=_id(filters.before, "before"),
        )
    except ChatError as exc:
        raise _api_error(exc) from None
    return {
        "results": page.results,
        "next_before": page.next_before,
        "scan_limited": page.scan_limited,
    }


def _conversation_for_disclosure(user: User, conversation_id: int) -> Conversation:
    access.access_disclosure(user)
    found = Conversation.objects.filter(pk=conversation_id).first()
    if found is None:
        raise Http404("no such conversation")
    return found


@router.get("/conversations/{conversation_id}/retention", summary="保存期間と訴訟ホールド")
def get_retention(request: HttpRequest, conversation_id: int) -> dict[str, Any]:
    conversation = _conversation_for_disclosure(caller(request), conversation_id)
    return retention_dict(conversation)


class RetentionIn(Schema):
    days: int | None = None


@router.put("/conversations/{conversation_id}/retention", summary="保存期間の変更")
def put_retention(request: HttpRequest, conversation_id: int, body: RetentionIn) -> dict[str, Any]:
    user = caller(request)
    conversation = _conversation_for_disclosure(user, conversation_id)
    try:
        changed = check_set_retention(conversation, days=body.days, acting_user=user)
    except ChatError as exc:
        raise _api_error(exc) from None
    return retention_dict(changed)


class LegalHoldIn(Schema):
    on: bool
    reason: str = ""


@router.put("/conversations/{conversation_id}/legal-hold", summary="訴訟ホールドの設定・解除")
def put_legal_hold(request: HttpRequest, conversation_id: int, body: LegalHoldIn) -> dict[str, Any]:
    user = caller(request)
    conversation = _conversation_for_disclosure(user, conversation_id)
    try:
        changed = check_set_legal_hold(
            conversation, on=body.on, reason=body.reason, acting_user=user
        )
    except ChatError as exc:
        raise _api_error(exc) from None
    return retention_dict(changed)


class ExportQuery(Schema):
    conversation: str | None = None
    person: str | None = None
    date_from: str | None = Field(None, alias="from")
    date_to: str | None = Field(None, alias="to")
    reference: str = ""
    format: str = "csv"


CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json; charset=utf-8"}


@router.get("/export", summary="情報公開請求のためのメッセージ出力")
def export(request: HttpRequest, filters: Query[ExportQuery]) -> HttpResponse:
    user = caller(request)
    access.access_disclosure(user)
    conversation_id = _id(filters.conversation, "conversation")
    person_id = _id(filters.person, "person")
    conversation = None
    if conversation_id is not None:
        conversation = Conversation.objects.filter(pk=conversation_id).first()
        if conversation is None:
            raise Http404("no such conversation")
    person = None
    if person_id is not None:
        person = User.objects.filter(pk=person_id).first()
        if person is None:
            raise Http404("no such person")
    fmt = filters.format.lower()
    try:
        content = do_export_messages(
            conversation=conversation,
            person=person,
            date_from=_date(filters.date_from, "from"),
            date_to=_date(filters.date_to, "to"),
            reference=filters.reference,
            fmt=fmt,
            acting_user=user,
        )
    except ChatError as exc:
        raise _api_error(exc) from None
    stamp = clock.local(clock.now()).strftime("%Y%m%d-%H%M%S")
    scope = f"c{conversation_id}" if conversation_id else f"p{person_id}"
    response = HttpResponse(content, content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = (
        f'attachment; filename="chat-disclosure-{scope}-{stamp}.{fmt}"'
    )
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response

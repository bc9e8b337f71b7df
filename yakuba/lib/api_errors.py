"""The one error format of the JSON API, for every error the API can answer::

    {"error": {"code": "not_found",
               "message": "…日本語…", "message_en": "…English…",
               "fields": {"limit": ["…"]}}}

``message`` is always Japanese and ``message_en`` always English, whatever language the
caller chose, so that a client can show either without a second request.  ``fields`` is
present (possibly empty) on every error; per-field messages are Japanese.

``install(api)`` makes a ``NinjaAPI`` answer every exception in this format: our own
``ApiError``, ninja's validation, authentication, throttling and HTTP errors, Django's
``Http404`` and ``PermissionDenied``, and unexpected exceptions (logged, answered 500
without details).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError

logger = logging.getLogger(__name__)

# code: (HTTP status, Japanese message, English message)
CATALOGUE: dict[str, tuple[int, str, str]] = {
    "bad_request": (400, "リクエストの形式が正しくありません。", "The request is malformed."),
    "validation_error": (
        422,
        "入力内容に誤りがあります。項目ごとの説明を確認してください。",
        "Some fields are invalid; see the message for each field.",
    ),
    "unauthorized": (
        401,
        "認証が必要です。サインインするか、有効なAPIトークンを指定してください。",
        "Authentication required: sign in or send a valid API token.",
    ),
    "csrf_failed": (
        403,
        "CSRFトークンが確認できません。ページを再読み込みしてからやり直してください。",
        "CSRF verification failed; reload the page and try again.",
    ),
    "forbidden": (
        403,
        "この操作を行う権限がありません。",
        "You do not have permission to do this.",
    ),
    "not_found": (
        404,
        "指定されたものは見つかりません。",
        "The requested resource was not found.",
    ),
    "too_large": (
        413,
        "送信された内容が大きすぎます。短くするか、ファイルとして添付してください。",
        "The request body is too large; shorten it or send it as a file.",
    ),
    "method_not_allowed": (
        405,
        "この操作はこのURLでは使えません。",
        "This method is not allowed on this URL.",
    ),
    "rate_limited": (
        429,
        "短時間にリクエストが多すぎます。しばらく待ってからやり直してください。",
        "Too many requests; wait a moment and try again.",
    ),
    "server_error": (
        500,
        "サーバーで問題が発生しました。時間をおいてやり直してください。",
        "Something went wrong on the server; try again later.",
    ),
}

_CODE_FOR_STATUS = {status: code for code, (status, _ja, _en) in CATALOGUE.items()}
_CODE_FOR_STATUS[403] = "forbidden"


class ApiError(Exception):
    """Raised by an endpoint to answer an error in the one format.

    ``message``/``message_en`` default to the catalogue's text for ``code``.
    """

    def __init__(
        self,
        code: str,
        *,
        status: int | None = None,
        message: str | None = None,
        message_en: str | None = None,
        fields: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        default_status, default_ja, default_en = CATALOGUE.get(code, CATALOGUE["bad_request"])
        self.code = code
        self.status = status or default_status
        self.message = message or default_ja
        self.message_en = message_en or default_en
        self.fields = {name: list(messages) for name, messages in (fields or {}).items()}
        super().__init__(f"{code}: {self.message_en}")


def error_body(
    code: str,
    *,
    message: str | None = None,
    message_en: str | None = None,
    fields: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    _status, default_ja, default_en = CATALOGUE.get(code, CATALOGUE["bad_request"])
    return {
        "error": {
            "code": code,
            "message": message or default_ja,
            "message_en": message_en or default_en,
            "fields": {name: list(messages) for name, messages in (fields or {}).items()},
        }
    }


def error_response(
    status: int,
    code: str,
    *,
    message: str | None = None,
    message_en: str | None = None,
    fields: Mapping[str, Sequence[str]] | None = None,
) -> JsonResponse:
    """A JSON response in the one format (also used by the 403/404/500 handlers)."""
    body = error_body(code, message=message, message_en=message_en, fields=fields)
    response = JsonResponse(body, status=status, json_dumps_params={"ensure_ascii": False})
    return response


def answer(request: HttpRequest, exc: Exception | type[Exception]) -> HttpResponse:
    """The one-format response for any exception raised under the API."""
    if isinstance(exc, ApiError):
        return error_response(
            exc.status, exc.code, message=exc.message, message_en=exc.message_en, fields=exc.fields
        )
    if isinstance(exc, ValidationError):
        fields: dict[str, list[str]] = {}
        for error in exc.errors:
            fields.setdefault(_field_name(error.get("loc", ())), []).append(_field_message(error))
        return error_response(422, "validation_error", fields=fields)
    if isinstance(exc, AuthenticationError):
        response = error_response(401, "unauthorized")
        response["WWW-Authenticate"] = 'Bearer realm="yakuba"'
        return response
    if isinstance(exc, Throttled):
        return error_response(429, "rate_limited")
    if isinstance(exc, HttpError):
        if exc.status_code == 403 and "CSRF" in str(exc):
            return error_response(403, "csrf_failed")
        return error_response(exc.status_code, _CODE_FOR_STATUS.get(exc.status_code, "bad_request"))
    if isinstance(exc, Http404):
        return error_response(404, "not_found")
    if isinstance(exc, PermissionDenied):
        # The access_* helper that raised it has already written the audit entry.
        return error_response(403, "forbidden")
    if isinstance(exc, RequestDataTooBig):
        # A body over DATA_UPLOAD_MAX_MEMORY_SIZE (a form or JSON, not a file upload).
        return error_response(413, "too_large")
    # Details stay in the server log: a stack trace can hold personal data or secrets.
    logger.error(
        "unexpected error in %s %s",
        request.method,
        request.path,
        exc_info=exc if isinstance(exc, BaseException) else None,
    )
    return error_response(500, "server_error")


def install(api: NinjaAPI) -> None:
    """Answer every exception raised under ``api`` in the one format.  Ninja picks the
    handler of the most specific class, so each class it has a default for is named."""
    for exception_class in (
        Exception,
        Http404,
        PermissionDenied,
        HttpError,
        AuthenticationError,
        Throttled,
        ValidationError,
        ApiError,
        RequestDataTooBig,
    ):
        api.add_exception_handler(exception_class, answer)


def _field_name(loc: Sequence[Any]) -> str:
    """``("query", "limit")`` → ``limit``; ``("body", "payload", "name")`` → ``name``."""
    parts = [str(part) for part in loc[1:]]
    if loc and loc[0] == "body" and len(parts) > 1:
        parts = parts[1:]
    return ".".join(parts) or "__all__"


def _field_message(error: Mapping[str, Any]) -> str:
    """A Japanese message for one pydantic error (English pydantic text as a fallback)."""
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    messages = {
        "missing": "この項目は必須です。",
        "int_parsing": "整数で指定してください。",
        "int_type": "整数で指定してください。",
        "bool_parsing": "true か false で指定してください。",
        "string_type": "文字列で指定してください。",
        "json_invalid": "JSONの形式が正しくありません。",
        "greater_than_equal": f"{ctx.get('ge')} 以上の値を指定してください。",
        "greater_than": f"{ctx.get('gt')} より大きい値を指定してください。",
        "less_than_equal": f"{ctx.get('le')} 以下の値を指定してください。",
        "less_than": f"{ctx.get('lt')} より小さい値を指定してください。",
        "string_too_short": f"{ctx.get('min_length')} 文字以上で入力してください。",
        "string_too_long": f"{ctx.get('max_length')} 文字以内で入力してください。",
        "enum": "指定できない値です。",
        "literal_error": "指定できない値です。",
        "date_from_datetime_parsing": "日付の形式が正しくありません（例: 2025-04-01）。",
        "date_parsing": "日付の形式が正しくありません（例: 2025-04-01）。",
        "datetime_parsing": "日時の形式が正しくありません。",
    }
    return messages.get(kind) or str(error.get("msg", "値が正しくありません。"))

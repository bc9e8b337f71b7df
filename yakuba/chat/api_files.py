"""Attachments over the chat API (``/api/chat/``): upload, download, thumbnail.

- ``POST conversations/{id}/attachments``: multipart, the file in the field ``file``; a
  member of a conversation that is not archived; answers 201 with the attachment
  (``events.attachment_dict``), whose ``id`` the next send names.
- ``GET attachments/{id}`` and ``GET attachments/{id}/thumbnail``: every download goes
  through ``access.access_attachment`` (a reader of the conversation; a refusal is
  audited).  An upload not sent yet is its uploader's alone; a deleted message's files
  are gone for everyone; a file the scanner has not cleared (pending) or found infected
  is never served.

Download headers: ``Content-Disposition`` always carries the name both as a plain ASCII
``filename`` and as RFC 5987 ``filename*`` (UTF-8, so 「議事録.pdf」 arrives as such);
``inline`` only for PNG, JPEG, GIF and WebP (sniffed from the content at upload), an
``attachment`` for everything else (no HTML, SVG or PDF is ever rendered on our origin);
``X-Content-Type-Options: nosniff`` and a sandboxing ``Content-Security-Policy`` on
every file.  The ETag is the file's SHA-256, so a browser revalidates instead of fetching
again, after the permission check.

Size: the site-wide ``SizeLimitUploadHandler`` caps bodies at the minutes limit; the
chat limit (``CHAT_MAX_ATTACHMENT_MB``) is enforced here and in the action, as 413 either
way.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from django.core.files.uploadedfile import UploadedFile
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.utils.translation import gettext as _
from ninja import Router, Status

from yakuba.chat import access, events
from yakuba.chat.actions import ChatError
from yakuba.chat.attachments import (
    INLINE_TYPES,
    StoredPathError,
    attachment_path,
    check_upload_attachment,
    thumbnail_path,
    too_large,
)
from yakuba.chat.models import Attachment
from yakuba.directory.models import User
from yakuba.lib.api_auth import caller
from yakuba.lib.api_errors import ApiError

router = Router()

UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


def _api_error(error: ChatError) -> ApiError:
    return ApiError(
        error.code,
        status=error.status,
        message=error.message,
        message_en=error.english,
        fields={error.field: [error.message]} if error.field else None,
    )


@router.post(
    "/conversations/{conversation_id}/attachments",
    response={201: dict[str, Any]},
    summary="ファイルのアップロード（送信前）",
    openapi_extra=UPLOAD_BODY,
)
def upload_attachment(request: HttpRequest, conversation_id: int) -> Status[dict[str, Any]]:
    user = caller(request)
    membership = access.access_conversation_for_post(user, conversation_id)
    # Read the body first: only then has the site-wide handler had its say.
    upload = request.FILES.get("file")
    if getattr(request, "upload_refused", False):
        # The site-wide handler stopped reading a body above its own (larger) limit.
        raise _api_error(too_large())
    if not isinstance(upload, UploadedFile):
        raise ApiError(
            "file_missing",
            status=400,
            message=_("添付するファイルを選んでください（フォームの項目名は file）。"),
            message_en="No file: send it as multipart/form-data in the field 'file'.",
            fields={"file": [_("添付するファイルを選んでください。")]},
        )
    try:
        attachment = check_upload_attachment(membership, upload=upload, acting_user=user)
    except ChatError as exc:
        raise _api_error(exc) from None
    return Status(201, events.attachment_dict(attachment))


def _downloadable(user: User, attachment_id: int) -> Attachment:
    attachment = access.access_attachment(user, attachment_id)
    if attachment.message_id is None and attachment.uploaded_by_id != user.pk:
        # An upload not sent yet belongs to its uploader alone.
        raise Http404("attachment not sent")
    if attachment.message_id is not None:
        message = attachment.message
        if message is not None and message.deleted_at is not None:
            raise Http404("message deleted")
    if attachment.scan == Attachment.Scan.INFECTED:
        raise ApiError(
            "file_blocked",
            status=403,
            message=_("このファイルはウイルス検査で問題が見つかったため、ダウンロードできません。"),
            message_en="This file failed the malware scan and cannot be downloaded.",
        )
    if attachment.scan == Attachment.Scan.PENDING:
        raise ApiError(
            "scan_pending",
            status=409,
            message=_("このファイルはウイルス検査中です。しばらく待ってから開いてください。"),
            message_en="This file is still being scanned; try again shortly.",
        )
    return attachment


def content_disposition(disposition: str, name: str) -> str:
    """``inline`` or ``attachment`` with the name as ASCII ``filename`` (anything else
    replaced by ``_``) and as RFC 5987 ``filename*``."""
    fallback = "".join(ch if 0x20 <= ord(ch) < 0x7F and ch not in '"\\;%' else "_" for ch in name)
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _serve(
    request: HttpRequest, path: Any, *, content_type: str, name: str, etag: str
) -> HttpResponseBase:
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
        "Cache-Control": "private, no-cache",
        "ETag": etag,
    }
    if request.headers.get("If-None-Match") == etag:
        return HttpResponse(status=304, headers=headers)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise Http404("file missing") from None
    inline = content_type in INLINE_TYPES
    response = FileResponse(handle, content_type=content_type)
    for header, value in headers.items():
        response[header] = value
    response["Content-Disposition"] = content_disposition(
        "inline" if inline else "attachment", name
    )
    return response


@router.get("/attachments/{attachment_id}", summary="添付ファイルのダウンロード")
def download_attachment(request: HttpRequest, attachment_id: int) -> HttpResponseBase:
    attachment = _downloadable(caller(request), attachment_id)
    try:
        path = attachment_path(attachment)
    except StoredPathError:
        raise Http404("file outside CHAT_MEDIA_DIR") from None
    return _serve(
        request,
        path,
        content_type=attachment.content_type,
        name=attachment.name,
        etag=f'"{attachment.sha256}"',
    )


@router.get("/attachments/{attachment_id}/thumbnail", summary="添付画像の縮小版")
def download_thumbnail(request: HttpRequest, attachment_id: int) -> HttpResponseBase:
    attachment = _downloadable(caller(request), attachment_id)
    try:
        path = thumbnail_path(attachment)
    except StoredPathError:
        path = None
    if path is None:
        raise ApiError(
            "not_found",
            message=_("このファイルには縮小画像がありません。"),
            message_en="This file has no thumbnail.",
        )
    is_png = path.suffix == ".png"
    stem = attachment.name.rsplit(".", 1)[0] if "." in attachment.name else attachment.name
    return _serve(
        request,
        path,
        content_type="image/png" if is_png else "image/jpeg",
        name=f"{stem}-thumbnail.{'png' if is_png else 'jpg'}",
        etag=f'"{attachment.sha256}-thumbnail"',
    )

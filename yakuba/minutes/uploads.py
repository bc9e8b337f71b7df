"""An upload handler that stops reading a request body past the upload limit: chat's
``CHAT_MAX_ATTACHMENT_MB`` under ``/api/chat/``, ``MINUTES_MAX_UPLOAD_MB`` elsewhere.

Django's own handlers copy any upload, however large, to a temporary file before a view
can look at it.  This handler, first in ``FILE_UPLOAD_HANDLERS`` (site-wide), stops at
the limit instead: for a ``Content-Length`` over the limit it lets the small form fields
before the file be parsed (the CSRF token among them, so the CSRF check still passes and
the view can answer with the reason) and stops at the first file without reading it; a
body without a trustworthy length is cut off at the limit.  Either way
``request.upload_refused`` is set and the request has no file; the minutes upload view
answers 400 with the reason, other upload views see no file and say so.

Under ASGI (``yakuba serve``) Django receives the whole body before any of this runs:
the proxy's body limit (nginx ``client_max_body_size``, docs/minutes.md) is what keeps
a huge body off the disk there.
"""

from __future__ import annotations

from typing import IO, Any, NoReturn

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest

# Room for the form's other fields and the multipart framing around the file.
FORM_ALLOWANCE_BYTES = 1024 * 1024


def body_limit(request: HttpRequest | None = None) -> int:
    """The most bytes of a request body read for ``request``: a chat attachment is held
    to chat's (smaller) limit, so it is refused before it reaches the disk."""
    megabytes = settings.MINUTES_MAX_UPLOAD_MB
    if request is not None and request.path.startswith("/api/chat/"):
        megabytes = settings.CHAT_MAX_ATTACHMENT_MB
    return int(megabytes) * 1024 * 1024 + FORM_ALLOWANCE_BYTES


class SizeLimitUploadHandler(FileUploadHandler):
    def __init__(self, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.received = 0
        self.limit = body_limit(request)
        self.declared_too_large = False

    def _refuse(self) -> NoReturn:
        if self.request is not None:
            self.request.upload_refused = True  # type: ignore[attr-defined]  # read by the view
        # Stop reading: the rest of the body is not drained.
        raise StopUpload(connection_reset=True)

    def handle_raw_input(
        self,
        input_data: IO[bytes],
        META: dict[str, str],
        content_length: int,
        boundary: str,
        encoding: str | None = None,
    ) -> None:
        # Not refused here: the fields before the first file are still wanted.
        self.declared_too_large = content_length > self.limit

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        if self.declared_too_large:
            self._refuse()
        super().new_file(*args, **kwargs)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        if self.received > self.limit:
            self._refuse()
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None

"""An upload handler that stops reading a request body past ``MINUTES_MAX_UPLOAD_MB``.

Django's own handlers write any upload, however large, to a temporary file before a
view can look at it: a 5 GB body would fill the disk first and be refused after.  This
handler refuses early: a ``Content-Length`` over the limit is not parsed at all (the
request gets an empty POST and FILES), and a body without a trustworthy length is cut
off at the limit.  Either way ``request.upload_refused`` is set, and the upload view
answers 400 with the reason.

It must be first in the chain.  For every upload of the site, list it first in
``FILE_UPLOAD_HANDLERS``; the upload view also puts it first on its own request, which
helps only when no middleware parsed the body before the view.
"""

from __future__ import annotations

from typing import IO

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest, QueryDict
from django.utils.datastructures import MultiValueDict

# Room for the form's other fields and the multipart framing around the file.
FORM_ALLOWANCE_BYTES = 1024 * 1024


def body_limit() -> int:
    return int(settings.MINUTES_MAX_UPLOAD_MB) * 1024 * 1024 + FORM_ALLOWANCE_BYTES


def declared_too_large(request: HttpRequest) -> bool:
    """Whether the request says, before anything is read, that its body is too large."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    return length > body_limit()


class SizeLimitUploadHandler(FileUploadHandler):
    def __init__(self, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.received = 0
        self.limit = body_limit()

    def _refuse(self) -> None:
        if self.request is not None:
            self.request.upload_refused = True  # type: ignore[attr-defined]  # read by the view

    def handle_raw_input(
        self,
        input_data: IO[bytes],
        META: dict[str, str],
        content_length: int,
        boundary: str,
        encoding: str | None = None,
    ) -> tuple[QueryDict, MultiValueDict[str, UploadedFile]] | None:
        if content_length > self.limit:
            self._refuse()
            # "Handled": the body is never read, the request has no fields and no files.
            return QueryDict(encoding=encoding), MultiValueDict()
        return None

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        if self.received > self.limit:
            self._refuse()
            # Stop reading: the rest of the body is not drained.
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None

"""Who is asking and from where, for the audit log, without passing ``request`` down.

Actions take ``acting_user`` explicitly (it decides permissions); the source address
is only recorded, so the middleware puts it in a context variable that ``record``
reads.  Context variables follow asyncio tasks and threads started with
``contextvars.copy_context``, unlike thread locals.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

source_address: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "source_address", default=None
)


def client_address(request: HttpRequest) -> str | None:
    """The client's IP address, honouring X-Forwarded-For only when configured to."""
    if settings.TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return str(forwarded.split(",")[0].strip())
    address = request.META.get("REMOTE_ADDR")
    return str(address) if address else None


class RequestContextMiddleware:
    """Sets ``source_address`` for the duration of each request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = source_address.set(client_address(request))
        try:
            return self.get_response(request)
        finally:
            source_address.reset(token)

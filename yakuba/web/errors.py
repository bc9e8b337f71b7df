"""Error pages (403, 404, 500) in Japanese, and the same errors as JSON under ``/api/``.

Set as ``handler403``/``handler404``/``handler500`` in ``yakuba.urls``.  A 403 page never
says what was refused or why (that could confirm that a thing exists); the denial itself
is in the audit log, written by the ``access_*`` helper that refused.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from yakuba.lib.api_errors import error_response

logger = logging.getLogger(__name__)


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """403: the same page whatever was refused."""
    if _is_api(request):
        return error_response(403, "forbidden")
    return _page(request, "web/errors/403.html", 403)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """403 for a form whose CSRF token failed (``CSRF_FAILURE_VIEW``): usually a page left
    open past the session's end.  Says what to do; never shows Django's English page."""
    if _is_api(request):
        return error_response(403, "csrf_failed")
    return _page(request, "web/errors/csrf.html", 403)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """404: says the page does not exist, never echoes the path."""
    if _is_api(request):
        return error_response(404, "not_found")
    return _page(request, "web/errors/404.html", 404)


def server_error(request: HttpRequest) -> HttpResponse:
    """500: rendered without touching the database when it may be what failed."""
    if _is_api(request):
        return error_response(500, "server_error")
    return _page(request, "web/errors/500.html", 500, plain=True)


def _page(request: HttpRequest, template: str, status: int, *, plain: bool = False) -> HttpResponse:
    """Render with the full shell (navigation, signed-in person) when that works.

    ``plain`` skips the request context (context processors read the session and
    therefore the database), so a 500 caused by a broken database still gets a page.
    """
    if not plain:
        try:
            return HttpResponse(render_to_string(template, request=request), status=status)
        except Exception:
            logger.exception("rendering the %s page with the full shell failed", status)
    context = {"site_name": settings.SITE_NAME, "municipality_name": settings.MUNICIPALITY_NAME}
    body: str
    try:
        body = render_to_string(template, context)
    except Exception:
        logger.exception("rendering the plain %s page failed", status)
        body = f"<!doctype html><html lang=ja><title>{status}</title><h1>{status}</h1></html>"
    return HttpResponse(body, status=status)

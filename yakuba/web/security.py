"""Content-Security-Policy: the browser itself refuses anything not served by Yakuba.

The closed network has no CDN, no font service and no map tiles; a page that tried to load
one would hang on a timeout at best.  This header turns such a mistake into an immediate,
visible refusal (and blocks injected scripts).  Inline ``<script>`` and ``hx-on``/``on*``
attributes are refused too: behaviour lives in the static files built from frontend/.

A feature that needs more (WebRTC media from ``blob:``, a worker script) adds the source to
``POLICY`` here, with a comment saying why.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest

POLICY: dict[str, str] = {
    "default-src": "'self'",
    "script-src": "'self'",
    # Style attributes (Django admin uses a few) cannot fetch anything img-src refuses.
    "style-src": "'self' 'unsafe-inline'",
    # data: for QR codes (TOTP enrolment) and small inline icons.
    "img-src": "'self' data:",
    "font-src": "'self'",
    # 'self' covers ws:/wss: to the same host (CSP level 3) for /ws.
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
HEADER_VALUE = "; ".join(f"{name} {sources}" for name, sources in POLICY.items())


class ContentSecurityPolicyMiddleware:
    """Adds the policy to every response that does not set its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", HEADER_VALUE)
        return response


class RejectNulCharactersMiddleware:
    """Answers 400 to a request whose path or parameters hold a NUL character.  No form
    or API of ours takes one, PostgreSQL refuses it in text (a 500 at the first query),
    and SQLite would store it; refusing it here covers every view at once."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (
            "\x00" in request.path
            or any(
                "\x00" in key or any("\x00" in value for value in values)
                for key, values in request.GET.lists()
            )
            or (
                # Form fields only (CSRF checking parses them anyway); files and JSON
                # bodies are their views' business.
                request.method == "POST"
                and any(
                    "\x00" in key or any("\x00" in value for value in values)
                    for key, values in request.POST.lists()
                )
            )
        ):
            return HttpResponseBadRequest(
                "リクエストに使えない文字（NUL）が含まれています。"
                " (The request holds a NUL character, which is not allowed.)",
                content_type="text/plain; charset=utf-8",
            )
        return self.get_response(request)

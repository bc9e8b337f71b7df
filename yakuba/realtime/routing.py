"""WebSocket routing: ``/ws`` behind an origin check."""

from __future__ import annotations

from typing import Any
from urllib.parse import ParseResult

from channels.routing import URLRouter
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.urls import path

from yakuba.realtime.gateway import Gateway


class SameSiteOrigin(OriginValidator):  # type: ignore[misc]  # channels is untyped
    """Refuses a handshake whose ``Origin`` is not one of ``ALLOWED_HOSTS`` or
    ``CSRF_TRUSTED_ORIGINS`` (cross-site WebSocket hijacking with the session cookie).

    A handshake without ``Origin`` passes: browsers always send one, so its absence means
    a bot or device, which authenticates with a token and cannot be hijacked.  Settings are
    read per handshake, so tests can change them.
    """

    def __init__(self, application: Any) -> None:
        super().__init__(application, [])

    def valid_origin(self, parsed_origin: ParseResult | None) -> bool:
        if parsed_origin is None:
            return True
        self.allowed_origins = [*settings.ALLOWED_HOSTS, *settings.CSRF_TRUSTED_ORIGINS]
        return bool(self.validate_origin(parsed_origin))


websocket_application: Any = SameSiteOrigin(URLRouter([path("ws", Gateway.as_asgi())]))

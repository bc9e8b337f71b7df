"""WebSocket routing (the gateway is filled in by the real-time work)."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import URLRouter
from django.urls import path


class NotReadyConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]  # channels is untyped
    async def connect(self) -> None:
        await self.close(code=4503)


websocket_application: Any = URLRouter([path("ws", NotReadyConsumer.as_asgi())])

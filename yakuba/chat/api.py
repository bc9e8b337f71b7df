"""The chat JSON API under ``/api/chat/``: the web client and bots use the same calls.

Callers: signed-in browsers (session, CSRF on writes) and bots with a bearer token that
carries the ``chat:send`` scope (``ChatTokenAuth``): a bot reads and posts only in the
conversations it is a member of.  Errors come in the one format of
``yakuba.lib.api_errors``; a ``ChatError`` becomes its status with ``error.code``.

The routes are split by owner: conversations and messages here, files and search in
``api_files``, presence in ``api_presence``, webhooks and bots in ``api_integrations``.
"""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router
from ninja.errors import AuthenticationError
from ninja.security import HttpBearer

from yakuba.audit.record import record_denial
from yakuba.directory.models import User
from yakuba.directory.tokens import authenticate_token
from yakuba.lib.api_auth import SessionAuth
from yakuba.lib.api_errors import ApiError

CHAT_SCOPE = "chat:send"


class ChatTokenAuth(HttpBearer):
    """``Authorization: Bearer …`` with the ``chat:send`` scope."""

    def authenticate(self, request: HttpRequest, token: str) -> User:
        found = authenticate_token(token)
        if found is None:
            raise AuthenticationError()
        user, api_token = found
        if CHAT_SCOPE not in api_token.scopes:
            record_denial(actor=user, what="chat.api_token_scope")
            raise ApiError(
                "forbidden",
                message="このAPIトークンにはチャット（chat:send）の権限がありません。",
                message_en="This API token lacks the chat:send scope.",
            )
        return user


router = Router(tags=["chat"], auth=[ChatTokenAuth(), SessionAuth()])


def _mount() -> None:
    from yakuba.chat import api_files, api_integrations, api_presence

    router.add_router("/", api_files.router)
    router.add_router("/", api_presence.router)
    router.add_router("/", api_integrations.router)


_mount()

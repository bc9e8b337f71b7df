"""Who is on the other end of a WebSocket: a signed-in browser or a token holder.

Browsers send the Django session cookie with the handshake.  Bots and devices send an API
token with the ``realtime`` scope, as ``Authorization: Bearer <token>`` or, where the client
cannot set headers, as the ``token`` query parameter (it then appears in access logs that
record query strings: prefer the header).  These functions touch the database: run them in
a thread (``gateway.in_db_thread``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from importlib import import_module
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user
from django.http.cookie import parse_cookie

from yakuba.directory.middleware import SESSION_SEEN, SESSION_STARTED
from yakuba.directory.models import ApiToken, User
from yakuba.directory.tokens import authenticate_token
from yakuba.lib import clock

TOKEN_SCOPE = "realtime"  # noqa: S105  # a scope name, not a secret


@dataclass(frozen=True)
class Principal:
    """An authenticated socket's user and the credential it used (exactly one of the two)."""

    user_id: int
    session_key: str | None = None
    token_id: int | None = None


def header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def authenticate(
    headers: list[tuple[bytes, bytes]], query: dict[str, list[str]]
) -> Principal | None:
    """The principal behind a handshake, or None.  A token, when given, decides alone:
    a bad token is refused even if a session cookie came along."""
    raw_token = _bearer(headers) or (query.get("token") or [""])[0]
    if raw_token:
        return _token_principal(raw_token)
    cookies = parse_cookie(header(headers, b"cookie") or "")
    session_key = cookies.get(settings.SESSION_COOKIE_NAME, "")
    if session_key:
        return _session_principal(session_key)
    return None


def still_valid(principal: Principal) -> bool:
    """Is the credential the socket was opened with still good (session not ended, token
    not revoked or expired, user still active)?"""
    if principal.token_id is not None:
        token = ApiToken.objects.select_related("user").filter(pk=principal.token_id).first()
        return token is not None and token.is_usable(clock.now()) and token.user.is_active
    if principal.session_key is None:
        return False
    again = _session_principal(principal.session_key)
    return again is not None and again.user_id == principal.user_id


def _bearer(headers: list[tuple[bytes, bytes]]) -> str:
    value = header(headers, b"authorization") or ""
    scheme, _, credentials = value.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


def _token_principal(raw: str) -> Principal | None:
    found = authenticate_token(raw, scope=TOKEN_SCOPE)
    if found is None:
        return None
    user, token = found
    if not user.is_active:
        return None
    return Principal(user_id=user.pk, token_id=token.pk)


def _session_principal(session_key: str) -> Principal | None:
    engine: Any = import_module(settings.SESSION_ENGINE)
    session = engine.SessionStore(session_key)
    # get_user only reads request.session: it checks the session's auth hash (a changed
    # password ends old sessions) and, through the backend, that the user is active.
    user = get_user(SimpleNamespace(session=session))  # type: ignore[arg-type]  # duck-typed request
    if not isinstance(user, User) or not user.is_active or _past_policy_limits(session):
        return None
    return Principal(user_id=user.pk, session_key=session_key)


def _past_policy_limits(session: Any) -> bool:
    """The idle and absolute timeouts of ``SessionPolicyMiddleware``, checked read-only."""
    started = session.get(SESSION_STARTED)
    seen = session.get(SESSION_SEEN)
    if started is None or seen is None:
        return False
    now = clock.now().timestamp()
    idle = dt.timedelta(minutes=settings.SESSION_IDLE_TIMEOUT_MINUTES).total_seconds()
    absolute = dt.timedelta(hours=settings.SESSION_ABSOLUTE_TIMEOUT_HOURS).total_seconds()
    return bool(now - float(seen) > idle or now - float(started) > absolute)

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

from yakuba.directory.middleware import guest_expires_at, session_deadlines
from yakuba.directory.models import ApiToken, User
from yakuba.directory.tokens import authenticate_token, token_holds
from yakuba.lib import clock

TOKEN_SCOPE = "realtime"  # noqa: S105  # a scope name, not a secret


@dataclass(frozen=True)
class Principal:
    """An authenticated socket's user and the credential it used (exactly one of the two).

    ``recheck_at`` (a ``clock`` timestamp, None: never) is when the credential may stop
    holding by itself, with no event to say so: the token's expiry, the session's idle or
    absolute limit, or a guest's invitation running out.  The gateway asks
    ``reauthenticate`` again then.
    """

    user_id: int
    session_key: str | None = None
    token_id: int | None = None
    recheck_at: float | None = None


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


def reauthenticate(principal: Principal) -> Principal | None:
    """The principal again, with a fresh ``recheck_at``, if the credential the socket was
    opened with still holds (session not ended or timed out, token not revoked or
    expired, user still active and the same, a guest still invited); else None."""
    if principal.token_id is not None:
        token = ApiToken.objects.select_related("user").filter(pk=principal.token_id).first()
        if token is None or not token_holds(token, clock.now()):
            return None
        return _token_principal_of(token)
    if principal.session_key is None:
        return None
    again = _session_principal(principal.session_key)
    return again if again is not None and again.user_id == principal.user_id else None


def _bearer(headers: list[tuple[bytes, bytes]]) -> str:
    value = header(headers, b"authorization") or ""
    scheme, _, credentials = value.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


def _token_principal(raw: str) -> Principal | None:
    # authenticate_token refuses revoked, expired and out-of-scope tokens and inactive users.
    found = authenticate_token(raw, scope=TOKEN_SCOPE)
    return None if found is None else _token_principal_of(found[1])


def _token_principal_of(token: ApiToken) -> Principal:
    deadline = _earliest(token.expires_at, guest_expires_at(token.user))
    return Principal(user_id=token.user_id, token_id=token.pk, recheck_at=deadline)


def _earliest(*moments: dt.datetime | float | None) -> float | None:
    stamps = [m.timestamp() if isinstance(m, dt.datetime) else m for m in moments]
    known = [stamp for stamp in stamps if stamp is not None]
    return min(known) if known else None


def _session_principal(session_key: str) -> Principal | None:
    engine: Any = import_module(settings.SESSION_ENGINE)
    session = engine.SessionStore(session_key)
    # get_user only reads request.session: it checks the session's auth hash (a changed
    # password ends old sessions) and, through the backend, that the user is active.
    user = get_user(SimpleNamespace(session=session))  # type: ignore[arg-type]  # duck-typed request
    if not isinstance(user, User) or not user.is_active:
        return None
    limits = session_deadlines(session)
    deadline = _earliest(min(limits) if limits else None, guest_expires_at(user))
    if deadline is not None and deadline <= clock.now().timestamp():
        return None
    return Principal(user_id=user.pk, session_key=session_key, recheck_at=deadline)

"""API tokens for bots and devices: the secret is shown once, only its SHA-256 is kept.

A raw token looks like ``ykb_1a2b3c4d_<43 url-safe characters>``: the fixed ``ykb_`` marks
it as ours (so secret scanners and people recognise it), the 8 hex characters are the
``prefix`` stored in clear to tell tokens apart in lists, and the rest is 256 bits from
``secrets``.  The database holds ``sha256(raw)`` only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from django.db.models import Q
from django.utils.translation import gettext_noop

from yakuba.directory.middleware import guest_expired
from yakuba.directory.models import ApiToken, User
from yakuba.lib import clock

TOKEN_MARK = "ykb_"  # noqa: S105  (a public marker, not a secret)

# Every scope a token may carry, in one place: the API and real-time code check these
# names, and the admin page and ``yakuba token create`` offer exactly these.  The values
# are msgids: pages show them through ``gettext``.
TOKEN_SCOPES: dict[str, str] = {
    "api:read": gettext_noop("APIでの読み取り"),
    "api:write": gettext_noop("APIでの書き込み"),
    "realtime": gettext_noop("リアルタイム通知（WebSocket）の受信"),
    "chat:send": gettext_noop("チャットへの投稿"),
    "rooms": gettext_noop("会議室の予約（API）"),
    "rooms.panel": gettext_noop("会議室ドアパネル"),
}

# ``last_used_at`` is written at most this often per token, so a busy bot does not turn
# every authenticated call into a write.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


class UnknownScope(ValueError):
    """A scope that is not in ``TOKEN_SCOPES``."""


def validate_scopes(scopes: list[str]) -> list[str]:
    """The scopes, de-duplicated in ``TOKEN_SCOPES`` order; raises ``UnknownScope``."""
    unknown = sorted(set(scopes) - set(TOKEN_SCOPES))
    if unknown:
        raise UnknownScope(", ".join(unknown))
    return [scope for scope in TOKEN_SCOPES if scope in scopes]


def new_raw_token() -> tuple[str, str]:
    """A fresh ``(prefix, raw)`` pair."""
    prefix = secrets.token_hex(4)
    return prefix, f"{TOKEN_MARK}{prefix}_{secrets.token_urlsafe(32)}"


def token_digest(raw: str) -> str:
    """The SHA-256 kept at rest.  A fast hash suffices: the secret has 256 bits of entropy,
    so there is nothing to brute-force and a slow hash would only add latency per call."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _prefix_of(raw: str) -> str | None:
    if not raw.startswith(TOKEN_MARK):
        return None
    prefix, sep, secret = raw[len(TOKEN_MARK) :].partition("_")
    if not sep or len(prefix) != 8 or not secret:
        return None
    return prefix


def authenticate_token(raw: str, *, scope: str | None = None) -> tuple[User, ApiToken] | None:
    """The active user and token for a raw bearer token, or None.

    A token that is unknown, revoked, expired, lacks ``scope`` or belongs to an inactive
    user or a guest whose invitation ran out authenticates nobody.  The digest is compared
    in constant time.  ``last_used_at`` is updated at most once a minute (a conditional
    UPDATE, so concurrent calls write once).
    """
    if scope is not None and scope not in TOKEN_SCOPES:
        raise UnknownScope(scope)
    prefix = _prefix_of(raw.strip())
    if prefix is None:
        return None
    digest = token_digest(raw.strip())
    now = clock.now()
    match: ApiToken | None = None
    # Looked up by the public prefix and compared in constant time, so the response time
    # says nothing about how much of a guessed digest matched.
    for candidate in ApiToken.objects.filter(prefix=prefix).select_related("user"):
        if hmac.compare_digest(candidate.digest, digest):
            match = candidate
    if match is None or not token_holds(match, now):
        return None
    if scope is not None and scope not in match.scopes:
        return None
    _touch(match, now)
    return match.user, match


def token_holds(token: ApiToken, now: dt.datetime) -> bool:
    """Neither revoked nor expired, and its user active (and, for a guest, invited still).
    Reads ``token.user``: fetch it with ``select_related``."""
    return token.is_usable(now) and token.user.is_active and not guest_expired(token.user)


def _touch(token: ApiToken, now: dt.datetime) -> None:
    stale = now - LAST_USED_RESOLUTION
    if token.last_used_at is not None and token.last_used_at > stale:
        return
    ApiToken.objects.filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale), pk=token.pk
    ).update(last_used_at=now)
    token.last_used_at = now

"""Who is calling the JSON API: a browser session, or a bot/device with a bearer token.

- ``Authorization: Bearer <token>`` is checked by ``yakuba.directory.tokens``; a header
  that is present but wrong answers 401 at once (it never falls back to the session, so
  a script with a revoked token cannot borrow a browser's cookie).
- Otherwise Django's session, with the CSRF check on unsafe methods (POST, PUT, PATCH,
  DELETE), exactly as for a form.

Both give the ``User`` as ``request.auth``; ``caller(request)`` returns it typed.
A throttle caps requests per caller per minute (``YAKUBA_API_RATE_PER_MINUTE``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from ninja.errors import AuthenticationError
from ninja.security import APIKeyCookie, HttpBearer
from ninja.throttling import BaseThrottle

from yakuba.directory.models import User
from yakuba.directory.tokens import authenticate_token
from yakuba.lib import clock
from yakuba.lib.request_context import client_address

# The token scope a call needs: reading, or anything that may change something.
READ_SCOPE = "api:read"
WRITE_SCOPE = "api:write"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class BearerTokenAuth(HttpBearer):
    """``Authorization: Bearer …`` for bots and devices: ``api:read`` for safe methods,
    ``api:write`` for the others."""

    def authenticate(self, request: HttpRequest, token: str) -> User:
        scope = READ_SCOPE if request.method in SAFE_METHODS else WRITE_SCOPE
        found = authenticate_token(token, scope=scope)
        if found is None:
            raise AuthenticationError()
        user, _token = found
        return user


class SessionAuth(APIKeyCookie):
    """The browser's Django session; CSRF-checked on unsafe methods by ``APIKeyCookie``."""

    param_name = settings.SESSION_COOKIE_NAME

    def authenticate(self, request: HttpRequest, key: str | None) -> User | None:
        user = request.user
        if isinstance(user, User) and user.is_active:
            return user
        return None


def caller(request: HttpRequest) -> User:
    """The authenticated caller of an API operation (set by one of the auth classes)."""
    user = getattr(request, "auth", None)
    if not isinstance(user, User):
        raise AuthenticationError()
    return user


class CallerRateThrottle(BaseThrottle):
    """At most ``settings.API_RATE_PER_MINUTE`` requests per caller in each clock minute.

    Counted in Django's cache, so per process: with N workers a caller may reach N times
    the rate, which is fine for a guard against runaway scripts.  0 turns it off.
    """

    def allow_request(self, request: HttpRequest) -> bool:
        rate: int = getattr(settings, "API_RATE_PER_MINUTE", 600)
        if rate <= 0:
            return True
        user: Any = getattr(request, "auth", None)
        who = f"user:{user.pk}" if isinstance(user, User) else f"ip:{client_address(request)}"
        key = f"yakuba:api-rate:{who}:{int(clock.now().timestamp() // 60)}"
        cache.add(key, 0, timeout=90)
        try:
            count = cache.incr(key)
        except ValueError:  # evicted between add and incr
            cache.set(key, 1, timeout=90)
            count = 1
        return count <= rate

    def wait(self) -> float:
        return 60 - clock.now().timestamp() % 60

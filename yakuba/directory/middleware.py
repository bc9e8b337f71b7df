"""Session policy: idle and absolute timeouts, and the user's chosen language."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.utils import translation

from yakuba.lib import clock

SESSION_STARTED = "yakuba_started_at"
SESSION_SEEN = "yakuba_seen_at"


class SessionPolicyMiddleware:
    """Ends a session that has been idle too long or has lived past its absolute limit."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated and self._expired(request):
            from yakuba.directory.actions import auth as actions

            actions.do_expire_session(request)
        return self.get_response(request)

    def _expired(self, request: HttpRequest) -> bool:
        now = clock.now().timestamp()
        started = request.session.get(SESSION_STARTED)
        seen = request.session.get(SESSION_SEEN)
        if started is None or seen is None:
            # A session made outside our sign-in (e.g. Django's test client login).
            request.session[SESSION_STARTED] = request.session[SESSION_SEEN] = now
            return False
        idle = dt.timedelta(minutes=settings.SESSION_IDLE_TIMEOUT_MINUTES).total_seconds()
        absolute = dt.timedelta(hours=settings.SESSION_ABSOLUTE_TIMEOUT_HOURS).total_seconds()
        if now - seen > idle or now - started > absolute:
            return True
        # Write the session only about once a minute, not on every request.
        if now - seen > 60:
            request.session[SESSION_SEEN] = now
        return False


class UserLanguageMiddleware:
    """Shows the UI in the language the signed-in user chose (Japanese by default)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            language = getattr(request.user, "language", settings.LANGUAGE_CODE)
            translation.activate(language)
            request.LANGUAGE_CODE = language
        return self.get_response(request)


__all__ = ["SessionPolicyMiddleware", "UserLanguageMiddleware", "logout"]

"""Session policy (idle and absolute timeouts, refusing users who may no longer sign in)
and the user's chosen language."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.http import HttpRequest, HttpResponse
from django.utils import translation

from yakuba.lib import clock

if TYPE_CHECKING:
    from yakuba.directory.models import User

SESSION_STARTED = "yakuba_started_at"
SESSION_SEEN = "yakuba_seen_at"
# Set on the fresh anonymous session after the policy ended one, so that the sign-in
# page can say why the person was signed out.
SIGNED_OUT_REASON = "yakuba_signed_out_reason"
# ``last_seen_at`` (in the session and in ``UserSession``) is written at most this
# often, so an active session costs one write a minute, not one per request.
TOUCH_SECONDS = 60


def guest_expires_at(user: User) -> dt.datetime | None:
    """When a guest's invitation runs out; None for everyone who is not a guest.  A guest
    account without its profile has no valid invitation at all (it ran out long ago)."""
    from yakuba.directory.models import User

    if user.kind != User.Kind.GUEST:
        return None
    guest = getattr(user, "guest", None)
    return guest.expires_at if guest is not None else dt.datetime.min.replace(tzinfo=dt.UTC)


def guest_expired(user: User) -> bool:
    """Is ``user`` a guest whose invitation has run out (so may no longer sign in)?"""
    expires = guest_expires_at(user)
    return expires is not None and clock.now() >= expires


class SessionPolicyMiddleware:
    """Ends a session that has been idle too long, has lived past its absolute limit,
    belongs to a deactivated user or an expired guest, or was ended elsewhere.

    Runs after ``AuthenticationMiddleware``.  Costs no query on most requests; once a
    minute per session it updates ``UserSession.last_seen_at`` (one UPDATE).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            reason = self._end_reason(request)
            if reason is not None:
                from yakuba.directory.actions import auth as actions

                actions.do_expire_session(request, reason=reason)
                request.session[SIGNED_OUT_REASON] = reason
        elif SESSION_KEY in request.session:
            # The session names a user that no longer resolves: ModelBackend refuses
            # inactive users, so this is a deactivated (or deleted) account.
            request.session.flush()
        return self.get_response(request)

    def _end_reason(self, request: HttpRequest) -> str | None:
        from yakuba.directory.models import User

        user = request.user
        if not isinstance(user, User):
            return None
        if not user.is_active:
            return "inactive"
        if guest_expired(user):
            return "guest_expired"
        return self._timed_out(request, user)

    def _timed_out(self, request: HttpRequest, user: User) -> str | None:
        from yakuba.directory.models import UserSession

        now = clock.now()
        stamp = now.timestamp()
        deadlines = session_deadlines(request.session)
        if deadlines is None:
            # A session made outside our sign-in (Django's test client, the admin's
            # login): adopt it, so that it is tracked, listed and can be ended.
            from yakuba.directory.actions.auth import track_session

            request.session[SESSION_STARTED] = request.session[SESSION_SEEN] = stamp
            track_session(request, user, now)
            return None
        idle_until, absolute_until = deadlines
        if stamp > absolute_until:
            return "absolute"
        if stamp > idle_until:
            return "idle"
        if stamp - float(request.session[SESSION_SEEN]) > TOUCH_SECONDS:
            request.session[SESSION_SEEN] = stamp
            touched = UserSession.objects.filter(session_key=request.session.session_key).update(
                last_seen_at=now
            )
            if not touched:
                # Its UserSession row is gone: the session was ended elsewhere while
                # this request was on its way.
                return "ended"
        return None


def session_deadlines(session: Any) -> tuple[float, float] | None:
    """(idle, absolute) limits of a session as ``clock`` timestamps: it ends when the
    time passes either.  None for a session our sign-in did not stamp.  Reads only, so
    the real-time gateway checks its sockets' sessions with it too."""
    started = session.get(SESSION_STARTED)
    seen = session.get(SESSION_SEEN)
    if started is None or seen is None:
        return None
    idle = dt.timedelta(minutes=settings.SESSION_IDLE_TIMEOUT_MINUTES).total_seconds()
    absolute = dt.timedelta(hours=settings.SESSION_ABSOLUTE_TIMEOUT_HOURS).total_seconds()
    return float(seen) + idle, float(started) + absolute


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

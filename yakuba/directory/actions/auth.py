"""Every write to sign-in state goes through a ``do_*``/``check_*`` here: signing in and
out, lockout, sessions, the TOTP second factor, deactivation and API tokens.

Each ``do_*`` writes, audits in the same transaction and sends its real-time events
after commit.  ``check_*`` validates (and may audit a refusal) before a ``do_*``.

Session events: ending sessions sends ``{"type": "session", "op": "ended",
"session_keys": [...]}`` (or ``"all": True`` on deactivation) to the user's own stream,
so the real-time gateway closes the WebSockets of those sessions.  The keys are sent
only after their sessions were deleted, so they can no longer be used.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate, login, logout
from django.contrib.sessions.models import Session
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.http import HttpRequest

from yakuba.audit.models import AuditAction
from yakuba.audit.record import Actor, record
from yakuba.directory import tokens
from yakuba.directory import totp as totp_lib
from yakuba.directory.middleware import SESSION_SEEN, SESSION_STARTED, guest_expired
from yakuba.directory.models import ApiToken, Role, RoleGrant, User, UserSession
from yakuba.directory.signals import memberships_changed
from yakuba.lib import clock
from yakuba.lib.request_context import client_address
from yakuba.realtime.send import send_event_on_commit

# Sessions always resolve the user through ModelBackend, whichever backend checked the
# password: its ``get_user`` refuses inactive users, so a deactivated user's stray
# session signs nobody in.
SESSION_BACKEND = "django.contrib.auth.backends.ModelBackend"

ActingUser = User | Actor | None


def _actor(acting_user: ActingUser, fallback: str) -> Actor | User:
    return Actor.system(fallback) if acting_user is None else acting_user


# --- Password sign-in and lockout ----------------------------------------------------


class Refusal(enum.StrEnum):
    """Why a sign-in was refused (also the ``reason`` in the audit details)."""

    INVALID = "invalid_credentials"
    UNKNOWN_USER = "unknown_user"
    LOCKED = "locked"
    INACTIVE = "inactive"
    GUEST_EXPIRED = "guest_expired"
    TOTP_INVALID = "totp_invalid"
    TOTP_REPLAYED = "totp_replayed"


@dataclass(frozen=True)
class SignInCheck:
    """The outcome of checking credentials: a user who may continue, or a refusal."""

    user: User | None
    refusal: Refusal | None = None
    locked_until: dt.datetime | None = None


def is_locked(user: User, at: dt.datetime | None = None) -> bool:
    return user.locked_until is not None and user.locked_until > (at or clock.now())


def check_password_sign_in(request: HttpRequest, username: str, password: str) -> SignInCheck:
    """Check a username and password against every configured backend (local, LDAP).

    The attempt is counted before the password is tried (``claim_sign_in_attempt``), so
    a locked account, or one with ``LOCKOUT_THRESHOLD`` attempts already in flight, is
    refused without a password check: concurrent guesses cannot outrun the lock.  A right
    password gives its claim back.  Failures are audited; an unknown username is audited
    with the attempted name.  Once the account is locked, every refusal says "locked",
    whether or not the password was right, so a burst of guesses learns nothing.
    """
    existing = find_user(username)
    if existing is not None:
        refused = check_claim_attempt(existing, username=username)
        if refused is not None:
            return refused
    user = authenticate(request, username=username, password=password)
    if not isinstance(user, User):
        if existing is None:
            do_record_login_failure(username, None, reason=Refusal.UNKNOWN_USER)
            return SignInCheck(None, Refusal.INVALID)
        if not existing.is_active:
            # ModelBackend refuses inactive users whatever the password; say so in the
            # log only (the person is told what a wrong password would tell them).
            do_record_login_failure(username, existing, reason=Refusal.INACTIVE, counts=False)
            return SignInCheck(None, Refusal.INVALID)
        locked_until = do_record_login_failure(
            username, existing, reason=Refusal.INVALID, claimed=True
        )
        if locked_until is not None:
            return SignInCheck(None, Refusal.LOCKED, locked_until)
        return SignInCheck(None, Refusal.INVALID)
    if existing is not None:
        release_sign_in_attempt(existing)
    return check_user_may_sign_in(user, username=username)


def find_user(username: str) -> User | None:
    """The account a typed username names: the exact match, else the one that matches
    ignoring case.  LDAP matches case-insensitively (``ALICE`` signs ``alice`` in), so the
    failures of ``ALICE`` must count against ``alice`` too."""
    exact = User.objects.filter(username=username).first()
    if exact is not None:
        return exact
    return User.objects.filter(username__iexact=username).order_by("pk").first()


def claim_sign_in_attempt(user: User) -> bool:
    """Count one attempt at ``user``'s credentials before checking them; False (counting
    nothing) when the account is locked or already has ``LOCKOUT_THRESHOLD`` attempts.

    A conditional ``UPDATE … WHERE failed_logins < threshold``, so of any number of
    concurrent attempts at most the threshold get their credentials checked.  The claim
    stays as the failure's count; ``release_sign_in_attempt`` gives it back when the
    credential was right; ``do_login`` clears the count.
    """
    rows = User.objects.filter(pk=user.pk)
    # A lock that has run out starts a fresh count.
    rows.filter(locked_until__lte=clock.now()).update(failed_logins=0, locked_until=None)
    claimed = rows.filter(
        locked_until__isnull=True, failed_logins__lt=settings.LOCKOUT_THRESHOLD
    ).update(failed_logins=F("failed_logins") + 1)
    return bool(claimed)


def check_claim_attempt(user: User, *, username: str) -> SignInCheck | None:
    """``claim_sign_in_attempt``, auditing a refusal: None when the attempt may go on,
    else the "locked" refusal to show.

    A refusal also sets the lock if the count is at the threshold with none set yet
    (attempts still in flight, or one whose request died before its outcome), so the
    account never stays refused without a lock that runs out.
    """
    if claim_sign_in_attempt(user):
        return None
    locked_until = do_record_login_failure(username, user, reason=Refusal.LOCKED, claimed=True)
    return SignInCheck(None, Refusal.LOCKED, locked_until)


def release_sign_in_attempt(user: User) -> None:
    """Give back a claim whose credential was right (the next step, TOTP, claims anew)."""
    User.objects.filter(pk=user.pk, failed_logins__gt=0).update(
        failed_logins=F("failed_logins") - 1
    )


def check_user_may_sign_in(user: User, *, username: str) -> SignInCheck:
    """Refuse (and audit) an authenticated user who is locked, inactive or an expired guest.

    Shared by password, LDAP and OIDC sign-in, which establish who the person is in
    different ways but follow the same rules afterwards.
    """
    refusal: Refusal | None = None
    if not user.is_active:
        refusal = Refusal.INACTIVE
    elif is_locked(user):
        refusal = Refusal.LOCKED
    elif guest_expired(user):
        refusal = Refusal.GUEST_EXPIRED
    if refusal is None:
        return SignInCheck(user)
    do_record_login_failure(username, user, reason=refusal, counts=False)
    # An inactive account is told nothing more than a wrong password would be.
    shown = Refusal.INVALID if refusal is Refusal.INACTIVE else refusal
    return SignInCheck(None, shown, user.locked_until)


def do_record_login_failure(
    username: str,
    user: User | None,
    *,
    reason: Refusal,
    counts: bool = True,
    claimed: bool = False,
) -> dt.datetime | None:
    """Audit a failed sign-in and, when ``counts``, add it to the user's consecutive
    failures (``claimed``: ``claim_sign_in_attempt`` already added it); lock the account
    when they reach ``LOCKOUT_THRESHOLD``.

    Returns the end of the lock the account is under after this failure, whether this
    failure locked it or a concurrent one did (None when it is not locked).  The counter
    moves with conditional UPDATEs (``F() + 1``, then "lock if at threshold and not
    locked"), so concurrent failures each count and exactly one of them locks and
    audits the lock.
    """
    attempted = username[:150]
    with transaction.atomic():
        now = clock.now()
        locked_until: dt.datetime | None = None
        newly_locked = False
        if user is not None and counts:
            locked_until, newly_locked = _count_failure(user, now, add=not claimed)
        record(
            AuditAction.LOGIN_FAILED,
            actor=Actor.anonymous(attempted),
            target=user,
            details={"username": attempted, "reason": reason.value},
        )
        if user is not None and newly_locked and locked_until is not None:
            record(
                AuditAction.ACCOUNT_LOCKED,
                actor=Actor.system("サインイン制限"),
                target=user,
                details={
                    "until": locked_until.isoformat(),
                    "failures": settings.LOCKOUT_THRESHOLD,
                },
            )
    return locked_until


def _count_failure(user: User, now: dt.datetime, *, add: bool) -> tuple[dt.datetime | None, bool]:
    """(the lock's end or None, whether this call set the lock)."""
    rows = User.objects.filter(pk=user.pk)
    if add:
        # A lock that has run out starts a fresh count.
        rows.filter(locked_until__lte=now).update(failed_logins=0, locked_until=None)
        rows.update(failed_logins=F("failed_logins") + 1)
    until = now + dt.timedelta(minutes=settings.LOCKOUT_MINUTES)
    if rows.filter(failed_logins__gte=settings.LOCKOUT_THRESHOLD, locked_until__isnull=True).update(
        locked_until=until
    ):
        return until, True
    current = rows.filter(locked_until__gt=now).values_list("locked_until", flat=True).first()
    return current, False


def do_unlock_user(user: User, *, acting_user: ActingUser) -> None:
    """Lift a lockout before it runs out (an IT administrator's decision)."""
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(failed_logins=0, locked_until=None)
        user.failed_logins, user.locked_until = 0, None
        record(AuditAction.ACCOUNT_UNLOCKED, actor=_actor(acting_user, "管理"), target=user)


# --- Second factor (TOTP) --------------------------------------------------------------


def totp_required(user: User) -> bool:
    """Whether a role the user holds requires TOTP (``YAKUBA_TOTP_REQUIRED_ROLES``)."""
    roles = settings.TOTP_REQUIRED_ROLES
    return bool(roles) and RoleGrant.objects.filter(user=user, role__in=roles).exists()


class TotpResult(enum.Enum):
    OK = "ok"
    WRONG = "wrong"
    REPLAYED = "replayed"


def check_totp_code(user: User, code: str, *, secret: str | None = None) -> TotpResult:
    """Check ``code`` against the user's secret (or a ``secret`` being enrolled) and
    consume its time step.

    A step at or before ``User.totp_last_step`` is refused as a replay.  The step is
    claimed with a conditional UPDATE, so two requests racing with the same code cannot
    both succeed.
    """
    step = totp_lib.matching_step(secret or user.totp_secret, code)
    if step is None:
        return TotpResult.WRONG
    claimed = User.objects.filter(pk=user.pk, totp_last_step__lt=step).update(totp_last_step=step)
    if not claimed:
        return TotpResult.REPLAYED
    user.totp_last_step = step
    return TotpResult.OK


def do_enable_totp(user: User, *, secret: str, acting_user: ActingUser) -> None:
    """Save a TOTP secret whose code the user has just confirmed (``check_totp_code``)."""
    with transaction.atomic():
        user.totp_secret = secret
        user.save(update_fields=["totp_secret"])
        record(AuditAction.TOTP_ENABLED, actor=_actor(acting_user, "管理"), target=user)


def do_disable_totp(user: User, *, acting_user: ActingUser) -> None:
    """Remove the second factor (the user with a code, or an administrator for a lost
    phone).  ``totp_last_step`` is kept so that old codes stay refused if re-enrolled."""
    with transaction.atomic():
        user.totp_secret = ""
        user.save(update_fields=["totp_secret"])
        record(AuditAction.TOTP_DISABLED, actor=_actor(acting_user, "管理"), target=user)


# --- Sessions ----------------------------------------------------------------------------


def do_login(request: HttpRequest, user: User, *, method: str = "password") -> bool:
    """Sign ``user`` in: a new session id (Django's ``login`` cycles the key), tracked as a
    ``UserSession``, the failure count cleared, and the sign-in audited.

    Returns False, changing nothing, when the account was locked or deactivated since
    its credentials were checked (a concurrent request may have crossed the threshold).
    """
    with transaction.atomic():
        now = clock.now()
        cleared = User.objects.filter(
            Q(locked_until__isnull=True) | Q(locked_until__lte=now), pk=user.pk, is_active=True
        ).update(failed_logins=0, locked_until=None)
        if not cleared:
            return False
        user.failed_logins, user.locked_until = 0, None
        login(request, user, backend=SESSION_BACKEND)
        request.session[SESSION_STARTED] = request.session[SESSION_SEEN] = now.timestamp()
        request.session.save()
        track_session(request, user, now)
        record(AuditAction.LOGIN_SUCCEEDED, actor=user, target=user, details={"method": method})
    return True


def track_session(request: HttpRequest, user: User, now: dt.datetime) -> None:
    """Record the request's session as one of ``user``'s, so it can be listed and ended."""
    UserSession.objects.update_or_create(
        session_key=request.session.session_key or "",
        defaults={
            "user": user,
            "created_at": now,
            "last_seen_at": now,
            "ip_address": client_address(request),
            "user_agent": request.META.get("HTTP_USER_AGENT", "")[:300],
        },
    )


def _session_ended_event(keys: list[str]) -> dict[str, Any]:
    return {"type": "session", "op": "ended", "session_keys": keys}


def do_logout(request: HttpRequest) -> None:
    """Sign out this browser session (the user's other sessions stay)."""
    user = request.user if isinstance(request.user, User) else None
    key = request.session.session_key
    with transaction.atomic():
        if user is not None and key:
            UserSession.objects.filter(session_key=key).delete()
            record(AuditAction.LOGOUT, actor=user, target=user)
            send_event_on_commit(_session_ended_event([key]), [user.pk])
        logout(request)


def do_expire_session(request: HttpRequest, *, reason: str) -> None:
    """End this session because of the session policy (idle, absolute, inactive user)."""
    user = request.user if isinstance(request.user, User) else None
    key = request.session.session_key
    with transaction.atomic():
        if user is not None and key:
            UserSession.objects.filter(session_key=key).delete()
            record(AuditAction.SESSION_EXPIRED, actor=user, target=user, details={"reason": reason})
            send_event_on_commit(_session_ended_event([key]), [user.pk])
        logout(request)


def _end_sessions(user: User, keys: list[str] | None = None) -> list[str]:
    """Delete the user's Django sessions and their ``UserSession`` rows (all, or ``keys``).
    Must run inside the caller's transaction.  A request in flight on a deleted session
    cannot write it back: the database session store refuses to save a deleted row."""
    rows = UserSession.objects.filter(user=user)
    if keys is not None:
        rows = rows.filter(session_key__in=keys)
    ended = list(rows.values_list("session_key", flat=True))
    Session.objects.filter(session_key__in=ended).delete()
    rows.delete()
    return ended


def do_logout_everywhere(user: User, *, acting_user: User) -> list[str]:
    """The user signs out of every browser session, this one included.  The caller
    (a view) must also ``logout`` its own request so that no stale session is saved."""
    with transaction.atomic():
        ended = _end_sessions(user)
        record(
            AuditAction.LOGOUT_EVERYWHERE,
            actor=acting_user,
            target=user,
            details={"sessions_ended": len(ended)},
        )
        send_event_on_commit(_session_ended_event(ended), [user.pk])
    return ended


def do_end_sessions(user: User, *, acting_user: ActingUser) -> list[str]:
    """An administrator ends every session of ``user`` (who may sign in again)."""
    with transaction.atomic():
        ended = _end_sessions(user)
        record(
            AuditAction.SESSIONS_ENDED,
            actor=_actor(acting_user, "管理"),
            target=user,
            details={"sessions_ended": len(ended)},
        )
        send_event_on_commit(_session_ended_event(ended), [user.pk])
    return ended


def do_deactivate_user(user: User, *, acting_user: ActingUser, reason: str = "") -> bool:
    """Stop ``user`` from signing in and end their sessions at once, in one transaction.

    Also closes their WebSockets (event ``session``/``ended`` with ``all``) and, because
    ``authenticate_token`` refuses inactive owners, makes their API tokens useless.
    Returns False, changing nothing, when the user was already inactive (so two callers
    racing, e.g. two workers expiring guests, audit it once).
    """
    with transaction.atomic():
        if not User.objects.filter(pk=user.pk, is_active=True).update(is_active=False):
            user.is_active = False
            return False
        user.is_active = False
        ended = _end_sessions(user)
        details: dict[str, Any] = {"sessions_ended": len(ended)}
        if reason:
            details["reason"] = reason
        record(
            AuditAction.USER_DEACTIVATED,
            actor=_actor(acting_user, "管理"),
            target=user,
            details=details,
        )
        send_event_on_commit(
            {"type": "session", "op": "ended", "session_keys": ended, "all": True}, [user.pk]
        )
    return True


def do_reactivate_user(user: User, *, acting_user: ActingUser, reason: str = "") -> bool:
    """Let a deactivated user sign in again (with a fresh failure count).  Returns False,
    changing nothing, when the user was already active."""
    with transaction.atomic():
        changed = User.objects.filter(pk=user.pk, is_active=False).update(
            is_active=True, failed_logins=0, locked_until=None
        )
        user.is_active = True
        if not changed:
            return False
        user.failed_logins, user.locked_until = 0, None
        record(
            AuditAction.USER_REACTIVATED,
            actor=_actor(acting_user, "管理"),
            target=user,
            details={"reason": reason} if reason else {},
        )
        # Back in their 所属 chat channels at once, not at the next hourly check.
        memberships_changed.send(sender=User, user_ids=[user.pk])
    return True


def check_new_password(user: User, current: str, new: str) -> list[str]:
    """Problems with a password change, in Japanese (empty when it may go ahead).

    The current password is a guess like one at the sign-in page (the session may be a
    borrowed one): it is counted towards the lockout, and a wrong one is audited.
    """
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    if not user.has_usable_password():
        return ["このアカウントのパスワードは組織のディレクトリで管理されています。"]
    if check_claim_attempt(user, username=user.username) is not None:
        return [
            "失敗が続いたため、このアカウントは一時的にロックされています。"
            "しばらくしてからもう一度お試しください。"
        ]
    if not user.check_password(current):
        do_record_login_failure(user.username, user, reason=Refusal.INVALID, claimed=True)
        return ["現在のパスワードが違います。"]
    release_sign_in_attempt(user)
    try:
        validate_password(new, user)
    except ValidationError as exc:
        return list(exc.messages)
    return []


def do_change_password(
    user: User, new_password: str, *, acting_user: User, keep_session_key: str | None
) -> list[str]:
    """Set a new password and end the user's other sessions (whoever knew the old
    password is signed out everywhere but here).  Returns the ended session keys; the
    caller keeps its own session with ``update_session_auth_hash``."""
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        others = list(
            UserSession.objects.filter(user=user)
            .exclude(session_key=keep_session_key or "")
            .values_list("session_key", flat=True)
        )
        ended = _end_sessions(user, others)
        record(
            AuditAction.PASSWORD_CHANGED,
            actor=acting_user,
            target=user,
            details={"sessions_ended": len(ended)},
        )
        if ended:
            send_event_on_commit(_session_ended_event(ended), [user.pk])
    return ended


def do_set_language(user: User, language: str, *, acting_user: User) -> None:
    """Choose the UI language (``User.Language``); the UI follows it from the next page."""
    if language not in User.Language.values:
        raise ValueError(f"unknown language {language!r}")
    with transaction.atomic():
        previous = user.language
        user.language = language
        user.save(update_fields=["language"])
        record(
            AuditAction.LANGUAGE_CHANGED,
            actor=acting_user,
            target=user,
            details={"from": previous, "to": language},
        )


# --- API tokens ---------------------------------------------------------------------------


def do_create_token(
    user: User,
    *,
    name: str,
    scopes: list[str],
    expires_at: dt.datetime | None,
    acting_user: ActingUser,
) -> tuple[ApiToken, str]:
    """Issue a token for ``user``; returns the row and the raw token, which is shown once
    and never stored (only its SHA-256).  Raises ``tokens.UnknownScope``."""
    scopes = tokens.validate_scopes(scopes)
    prefix, raw = tokens.new_raw_token()
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user,
            name=name[:100],
            prefix=prefix,
            digest=tokens.token_digest(raw),
            scopes=scopes,
            created_at=clock.now(),
            expires_at=expires_at,
            created_by=acting_user if isinstance(acting_user, User) else None,
        )
        record(
            AuditAction.TOKEN_CREATED,
            actor=_actor(acting_user, "yakuba token"),
            target=token,
            details={
                "user": user.username,
                "prefix": prefix,
                "scopes": scopes,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
    return token, raw


def do_revoke_token(token: ApiToken, *, acting_user: ActingUser) -> bool:
    """Revoke a token (idempotent: False when it was already revoked).  Sends
    ``{"type": "token", "op": "revoked", "token_id": id}`` to its owner's stream so
    that sockets opened with it can be closed."""
    with transaction.atomic():
        now = clock.now()
        changed = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=now
        )
        if not changed:
            return False
        token.revoked_at = now
        record(
            AuditAction.TOKEN_REVOKED,
            actor=_actor(acting_user, "yakuba token"),
            target=token,
            details={"user_id": token.user_id, "prefix": token.prefix},
        )
        send_event_on_commit(
            {"type": "token", "op": "revoked", "token_id": token.pk}, [token.user_id]
        )
    return True


# --- Administrators ------------------------------------------------------------------------


def do_create_admin(username: str, password: str, *, display_name: str, email: str = "") -> User:
    """Create an IT administrator (情報政策) with access to the admin pages."""
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    taken = f"ユーザー名 {username} は既に使われています。"
    if User.objects.filter(username=username).exists():
        raise ValueError(taken)
    candidate = User(username=username, display_name=display_name, email=email)
    try:
        validate_password(password, candidate)
    except ValidationError as exc:
        raise ValueError(" ".join(exc.messages)) from exc
    try:
        return _create_admin(username, password, display_name=display_name, email=email)
    except IntegrityError as exc:  # created by someone else since the check above
        raise ValueError(taken) from exc


def _create_admin(username: str, password: str, *, display_name: str, email: str) -> User:
    with transaction.atomic():
        user = User.objects.create_user(
            username,
            password,
            display_name=display_name,
            email=email,
            is_staff=True,
            is_superuser=True,
        )
        RoleGrant.objects.create(user=user, role=Role.IT_ADMIN)
        # An account with every power: its creation is logged, not only its role.
        record(
            AuditAction.STAFF_CREATED,
            actor=Actor.system("createadmin"),
            target=user,
            details={"source": "createadmin", "superuser": True},
        )
        record(
            AuditAction.ROLE_GRANTED,
            actor=Actor.system("createadmin"),
            target=user,
            details={"role": Role.IT_ADMIN.value},
        )
    return user

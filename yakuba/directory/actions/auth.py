"""Every write to the directory and to sign-in state goes through a ``do_*`` here."""

from __future__ import annotations

from django.contrib.auth import login, logout
from django.db import transaction
from django.http import HttpRequest

from yakuba.audit.models import AuditAction
from yakuba.audit.record import record
from yakuba.directory.middleware import SESSION_SEEN, SESSION_STARTED
from yakuba.directory.models import User, UserSession
from yakuba.lib import clock


def do_login(request: HttpRequest, user: User) -> None:
    """Sign ``user`` in: a new session id (Django cycles the key), tracked per user."""
    with transaction.atomic():
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        now = clock.now()
        request.session[SESSION_STARTED] = request.session[SESSION_SEEN] = now.timestamp()
        request.session.save()
        UserSession.objects.create(
            user=user,
            session_key=request.session.session_key or "",
            created_at=now,
            last_seen_at=now,
            ip_address=request.META.get("REMOTE_ADDR"),
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:300],
        )
        user.failed_logins = 0
        user.locked_until = None
        user.save(update_fields=["failed_logins", "locked_until"])
        record(AuditAction.LOGIN_SUCCEEDED, actor=user, target=user)


def do_logout(request: HttpRequest) -> None:
    user = request.user if request.user.is_authenticated else None
    with transaction.atomic():
        if user is not None:
            UserSession.objects.filter(session_key=request.session.session_key).delete()
            record(AuditAction.LOGOUT, actor=user, target=user)
        logout(request)


def do_expire_session(request: HttpRequest) -> None:
    user = request.user if request.user.is_authenticated else None
    with transaction.atomic():
        if isinstance(user, User):
            UserSession.objects.filter(session_key=request.session.session_key).delete()
            record(AuditAction.SESSION_EXPIRED, actor=user, target=user)
        logout(request)


def do_create_admin(username: str, password: str, *, display_name: str, email: str = "") -> User:
    """Create an IT administrator (情報政策) with access to the admin pages."""
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    from yakuba.audit.record import Actor
    from yakuba.directory.models import Role, RoleGrant

    if User.objects.filter(username=username).exists():
        raise ValueError(f"ユーザー名 {username} は既に使われています。")
    candidate = User(username=username, display_name=display_name, email=email)
    try:
        validate_password(password, candidate)
    except ValidationError as exc:
        raise ValueError(" ".join(exc.messages)) from exc
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
        record(
            AuditAction.ROLE_GRANTED,
            actor=Actor.system("createadmin"),
            target=user,
            details={"role": Role.IT_ADMIN.value},
        )
    return user

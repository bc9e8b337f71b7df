"""Sign-in through an OpenID Connect provider (mozilla-django-oidc), configured by the
``YAKUBA_OIDC_*`` variables (see docs/authentication.md).

The provider proves who the person is; a claim (``preferred_username`` or ``email``,
``YAKUBA_OIDC_MATCH_CLAIM``) picks the existing Yakuba ``User``.  Unknown people are
refused (and audited) unless ``YAKUBA_OIDC_CREATE_USERS`` is on.  After the provider,
the same rules as a password sign-in apply: locked, inactive and expired accounts are
refused, and the TOTP step or enrolment follows where the user or their role needs it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpResponse
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView

from yakuba.audit.models import AuditAction
from yakuba.audit.record import Actor, record
from yakuba.directory.models import User


def claim_username(claims: dict[str, Any]) -> str:
    """The value of the matching claim, with ``YAKUBA_OIDC_USERNAME_DOMAIN`` removed
    (``taro@ward.example.lg.jp`` → ``taro``) when matching usernames."""
    claim = getattr(settings, "OIDC_MATCH_CLAIM", "preferred_username")
    value = str(claims.get(claim) or "").strip()
    domain = getattr(settings, "OIDC_USERNAME_DOMAIN", "")
    if claim == "preferred_username" and domain and value.lower().endswith("@" + domain.lower()):
        value = value[: -len(domain) - 1]
    return value


class YakubaOIDCBackend(OIDCAuthenticationBackend):  # type: ignore[misc]  # untyped library
    """Matches the provider's claims to an existing user; creates nobody by default."""

    def filter_users_by_claims(self, claims: dict[str, Any]) -> QuerySet[User]:
        # Kept for the audit entry of a refused sign-in (``get_or_create_user``).
        self.last_claims = claims
        value = claim_username(claims)
        if not value:
            return User.objects.none()
        if getattr(settings, "OIDC_MATCH_CLAIM", "preferred_username") == "email":
            # Bots and devices never sign in through a browser.
            return User.objects.filter(
                email__iexact=value, kind__in=(User.Kind.STAFF, User.Kind.GUEST)
            )
        return User.objects.filter(username__iexact=value)

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        return bool(claim_username(claims))

    def update_user(self, user: User, claims: dict[str, Any]) -> User:
        # Yakuba's directory (CSV import, personnel transfers) owns names and e-mail.
        return user

    def create_user(self, claims: dict[str, Any]) -> User | None:
        """Only with ``YAKUBA_OIDC_CREATE_USERS``: a staff user with an unusable password."""
        if not getattr(settings, "OIDC_CREATE_USER", False):
            return None
        value = claim_username(claims)
        username = (value.split("@")[0] if "@" in value else value)[:150]
        if User.objects.filter(username__iexact=username).exists():
            # Matched by e-mail, the name part may be someone else's username: never
            # hand over that account, and never fail on the unique constraint (a 500).
            # Refused and audited as an unknown person by ``get_or_create_user``.
            return None
        with transaction.atomic():
            user = User(
                username=username,
                kind=User.Kind.STAFF,
                display_name=str(claims.get("name") or username)[:150],
                email=str(claims.get("email") or ""),
            )
            user.set_unusable_password()
            user.save()
            record(
                AuditAction.STAFF_CREATED,
                actor=Actor.system("OIDC"),
                target=user,
                details={"source": "oidc", "sub": str(claims.get("sub", ""))},
            )
        return user

    def get_or_create_user(self, access_token: str, id_token: str, payload: Any) -> User | None:
        """The matched (or created) user; a refusal is audited here, because the callback
        view turns an unknown or inactive user into a bare failure redirect."""
        from yakuba.directory.actions.auth import Refusal, do_record_login_failure

        user: User | None = super().get_or_create_user(access_token, id_token, payload)
        claims = getattr(self, "last_claims", {})
        if user is None:
            do_record_login_failure(
                f"oidc:{claim_username(claims)}", None, reason=Refusal.UNKNOWN_USER
            )
        elif not user.is_active:
            do_record_login_failure(
                f"oidc:{claim_username(claims)}", user, reason=Refusal.INACTIVE, counts=False
            )
        return user


class YakubaOIDCCallbackView(OIDCAuthenticationCallbackView):  # type: ignore[misc]
    """Hands a user the provider vouched for to Yakuba's own sign-in steps."""

    def login_success(self) -> HttpResponse:
        from django.shortcuts import redirect

        from yakuba.directory.actions.auth import check_user_may_sign_in
        from yakuba.directory.views.auth import begin_sign_in

        user: User = self.user
        check = check_user_may_sign_in(user, username=user.username)
        if check.user is None:
            return redirect(self.failure_url)
        return begin_sign_in(self.request, user, method="oidc", next_url=self.success_url)

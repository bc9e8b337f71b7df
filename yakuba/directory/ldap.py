"""Sign-in against LDAP / Active Directory (django-auth-ldap), configured by the
``YAKUBA_LDAP_*`` variables read in ``yakuba/settings.py`` (see docs/authentication.md).

The directory checks the password; Yakuba's own directory stays the source of truth for
who the person is.  A directory account maps to the Yakuba ``User`` with the same
username (case-insensitive; for AD that is ``sAMAccountName``).  Accounts missing from
Yakuba are refused unless ``YAKUBA_LDAP_CREATE_USERS`` is on; then they are created as
staff users without a 職員 record (an IT administrator completes them), and audited.
Lockout, TOTP and the audit of each sign-in are handled by the sign-in view, the same
as for local passwords.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django_auth_ldap.backend import LDAPBackend

from yakuba.audit.models import AuditAction
from yakuba.audit.record import Actor, record
from yakuba.directory.models import User


def _first(attrs: Any, name: str) -> str:
    try:
        values = attrs[name]
    except (TypeError, LookupError):
        return ""
    return str(values[0]) if values else ""


class YakubaLDAPBackend(LDAPBackend):  # type: ignore[misc]  # django-auth-ldap is untyped
    """Checks passwords against the directory; never creates staff unless told to."""

    def ldap_to_django_username(self, username: str) -> str:
        # AD compares sAMAccountName case-insensitively; Yakuba stores lower case.
        return username.strip().lower()

    def get_or_build_user(self, username: str, ldap_user: Any) -> tuple[User, bool]:
        """The existing ``User`` for ``username``, or (creation allowed) a new one.

        Returns ``(user, True)`` for an unknown user when creation is off: with
        ``AUTH_LDAP_NO_NEW_USERS`` set, django-auth-ldap then refuses the sign-in.
        """
        existing = User.objects.filter(username__iexact=username).first()
        if existing is not None:
            return existing, False
        if not getattr(settings, "LDAP_CREATE_USERS", False):
            return User(username=username), True
        return self._create_from_directory(username, ldap_user), False

    def _create_from_directory(self, username: str, ldap_user: Any) -> User:
        attrs = getattr(ldap_user, "attrs", None)
        with transaction.atomic():
            user = User(
                username=username,
                kind=User.Kind.STAFF,
                display_name=_first(attrs, "displayName") or _first(attrs, "cn") or username,
                email=_first(attrs, "mail"),
            )
            # The directory holds the password; a local one must never work.
            user.set_unusable_password()
            user.save()
            record(
                AuditAction.STAFF_CREATED,
                actor=Actor.system("LDAP"),
                target=user,
                details={"source": "ldap", "dn": str(getattr(ldap_user, "dn", "") or "")},
            )
        return user

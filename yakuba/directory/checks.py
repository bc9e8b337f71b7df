"""System checks for the directory and sign-in configuration (ids ``yakuba.E0xx``/``W0xx``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from yakuba.directory.models import Role


@register("yakuba")
def check_sign_in_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    known = {role.value for role in Role}
    for role in settings.TOTP_REQUIRED_ROLES:
        if role not in known:
            messages.append(
                Error(
                    f"YAKUBA_TOTP_REQUIRED_ROLES names unknown role {role!r}.",
                    hint="Use any of: " + ", ".join(sorted(known)),
                    id="yakuba.E001",
                )
            )
    if settings.SESSION_IDLE_TIMEOUT_MINUTES > settings.SESSION_ABSOLUTE_TIMEOUT_HOURS * 60:
        messages.append(
            Warning(
                "YAKUBA_SESSION_IDLE_MINUTES is longer than YAKUBA_SESSION_MAX_HOURS; "
                "the idle timeout will never apply.",
                id="yakuba.W001",
            )
        )
    if (
        not settings.DEBUG
        and not settings.SESSION_COOKIE_SECURE
        and settings.ALLOWED_HOSTS not in (["127.0.0.1", "localhost", "[::1]"],)
    ):
        messages.append(
            Warning(
                "Session cookies are sent over plain HTTP (YAKUBA_SECURE_COOKIES=false) while "
                "serving other hosts than localhost.",
                hint="Serve Yakuba behind HTTPS and set YAKUBA_SECURE_COOKIES=true.",
                id="yakuba.W002",
            )
        )
    return messages

"""System checks for the audit log (ids ``yakuba.E1xx``/``W1xx``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from yakuba.audit import keys


def check_signing_key(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if settings.AUDIT_SIGNING_KEY:
        try:
            keys.parse_private_key(settings.AUDIT_SIGNING_KEY)
        except keys.SigningKeyError as exc:
            return [
                Error(
                    f"YAKUBA_AUDIT_SIGNING_KEY is not usable: {exc}.",
                    hint="Generate one with: openssl genpkey -algorithm ed25519",
                    id="yakuba.E101",
                )
            ]
        return []
    path = keys.generated_key_path()
    return [
        Warning(
            "YAKUBA_AUDIT_SIGNING_KEY is not set: audit checkpoints are signed with a key "
            f"generated on this machine and kept in {path}.",
            hint=(
                "Fine for a trial.  In production set YAKUBA_AUDIT_SIGNING_KEY_FILE to a key "
                "kept off the database server (openssl genpkey -algorithm ed25519), and give "
                "auditors its public key (`yakuba audit public-key`).  With several servers, "
                "each would otherwise generate its own key."
            ),
            id="yakuba.W101",
        )
    ]


def register_checks() -> None:
    register(check_signing_key, "yakuba")

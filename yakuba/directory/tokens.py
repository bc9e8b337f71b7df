"""API tokens for bots and devices: the secret is shown once, only its SHA-256 is kept."""

from __future__ import annotations

from yakuba.directory.models import ApiToken, User


def authenticate_token(raw: str, *, scope: str | None = None) -> tuple[User, ApiToken] | None:
    """The active user and token for a raw bearer token, or None.

    A token that is unknown, revoked, expired, lacks ``scope`` or belongs to an inactive
    user authenticates nobody.  (Filled in by the sign-in work.)
    """
    return None

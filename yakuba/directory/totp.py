"""TOTP (RFC 6238) second factor: secrets, the otpauth URI as an inline SVG QR code, and
code checking that reports which time step matched (so a used step can be refused).

The QR code is drawn on the server (``segno``): the closed network has no QR service and
the page must not fetch anything from outside.
"""

from __future__ import annotations

import hmac

import pyotp
import segno
from django.conf import settings

from yakuba.directory.models import User
from yakuba.lib import clock

INTERVAL_SECONDS = 30
# One step either side of now: phones whose clocks drift by up to 30 s still work.
VALID_WINDOW = 1


def new_secret() -> str:
    """A fresh base32 secret (160 bits, as RFC 4226 recommends)."""
    return pyotp.random_base32(32)


def provisioning_uri(user: User, secret: str) -> str:
    """The ``otpauth://totp/…`` URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret, interval=INTERVAL_SECONDS).provisioning_uri(
        name=user.username, issuer_name=settings.TOTP_ISSUER
    )


def qr_svg(uri: str) -> str:
    """The URI as an inline ``<svg>`` element (safe to mark safe: segno escapes nothing of
    ours into it but the QR path data), labelled for screen readers."""
    # A white background keeps the quiet zone readable on any page colour.
    svg = segno.make(uri, error="m").svg_inline(scale=4, title="QR", omitsize=False, light="#fff")
    return str(svg)


def current_step() -> int:
    return int(clock.now().timestamp()) // INTERVAL_SECONDS


def matching_step(secret: str, code: str) -> int | None:
    """The time step whose code equals ``code`` (now ± ``VALID_WINDOW``), or None.

    Codes are compared in constant time.  The caller must still refuse a step at or
    before ``User.totp_last_step`` (a replayed code).
    """
    code = "".join(code.split())
    if not secret or len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, interval=INTERVAL_SECONDS)
    now_step = current_step()
    found: int | None = None
    for step in range(now_step - VALID_WINDOW, now_step + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.at(step * INTERVAL_SECONDS), code):
            found = step
    return found


def code_for(secret: str, step: int | None = None) -> str:
    """The code for ``step`` (default: now).  Used by tests and the operator docs."""
    totp = pyotp.TOTP(secret, interval=INTERVAL_SECONDS)
    return str(totp.at((current_step() if step is None else step) * INTERVAL_SECONDS))

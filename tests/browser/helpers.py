"""What browser tests do again and again."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from tests.conftest import PASSWORD


def sign_in(page: Any, username: str) -> None:
    """Sign in through the form (Japanese labels) and wait for the portal."""
    page.goto("/login/")
    page.get_by_label("ユーザー名").fill(username)
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="サインイン").click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/")


def wait_for(page: Any, expression: str, *, timeout: float = 10.0) -> None:
    """Wait until the JavaScript ``expression`` is true on ``page``.

    Playwright's own ``wait_for_function`` polls with ``eval``, which the pages'
    Content-Security-Policy refuses; ``evaluate`` goes through the DevTools protocol,
    which the policy does not govern.
    """
    deadline = time.monotonic() + timeout
    while not page.evaluate(f"() => Boolean({expression})"):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {expression}")
        time.sleep(0.05)

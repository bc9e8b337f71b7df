"""Browser tests: a real server (uvicorn, ASGI) driven by Debian's Chromium through
Playwright's sync API.

- One Chromium per test session (launching costs about a second); each test gets a fresh
  context (cookies, storage) at 1366×768, the common office-terminal size.
- Chromium is ``/usr/bin/chromium`` from Debian; ``playwright install`` is never run.
  Without it the tests skip with a message, or fail under YAKUBA_TEST_SERVICES=required.
- Tests use ``transactional_db`` (through the ``live_url`` fixture) so that the personas
  they create are committed and visible to the server thread.
- Keep them sync.  Playwright runs in a thread of its own (tests/browser/remote.py), so
  its event loop never sits in the test's thread, where Django and pytest-asyncio work.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.remote import PlaywrightThread
from tests.browser.server import running_server
from tests.conftest import SERVICES_REQUIRED, service_missing

CHROMIUM = os.environ.get("YAKUBA_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1366, "height": 768}
FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
AXE_SCRIPT = FRONTEND / "node_modules" / "axe-core" / "axe.min.js"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "bypass_csp: the test's browser ignores the CSP")


@pytest.hookimpl(tryfirst=True)  # before ``-m "not browser"`` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder is a browser test (the PostgreSQL run deselects them),
    also one whose module forgets ``pytestmark = pytest.mark.browser``."""
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def _server_url(django_db_setup: None, django_db_blocker: Any) -> Iterator[str]:
    with django_db_blocker.unblock(), running_server() as url:
        yield url


@pytest.fixture
def live_url(_server_url: str, transactional_db: None) -> str:
    """The base URL of the running server, for a test whose data is committed."""
    return _server_url


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """The session's Chromium, as a ``Remote`` proxy (see tests/browser/remote.py)."""
    if not os.path.exists(CHROMIUM):
        service_missing(f"Chromium not found at {CHROMIUM} (Debian package chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        service_missing(f"Playwright is not installed: {exc}")
    worker = PlaywrightThread()
    playwright = worker.call(lambda: sync_playwright().start())
    try:
        # launch() makes a fresh temporary --user-data-dir for every browser and deletes
        # it on close (it refuses an explicit one, which only persistent contexts take).
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
    except Exception as exc:
        playwright.stop()
        worker.stop()
        if SERVICES_REQUIRED:
            raise
        pytest.skip(f"Chromium at {CHROMIUM} did not start: {exc}")
    try:
        yield browser
    finally:
        browser.close()
        playwright.stop()
        worker.stop()


@pytest.fixture
def page(chromium: Any, live_url: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser tab (own cookies) of a Japanese office terminal.

    A test marked ``@pytest.mark.bypass_csp`` may inject scripts (axe-core) that the
    Content-Security-Policy would refuse; every other test runs under the real policy.
    """
    context = chromium.new_context(
        viewport=VIEWPORT,
        locale="ja-JP",
        timezone_id="Asia/Tokyo",
        base_url=live_url,
        bypass_csp=request.node.get_closest_marker("bypass_csp") is not None,
    )
    context.set_default_timeout(10_000)
    tab = context.new_page()
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture(scope="session")
def axe_source() -> Path:
    if not AXE_SCRIPT.exists():
        message = f"axe-core not found at {AXE_SCRIPT}: run `make frontend`"
        if SERVICES_REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    return AXE_SCRIPT

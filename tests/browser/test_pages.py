"""Every page, checked in Chromium: accessibility (JIS X 8341-3:2016 AA, through
axe-core's WCAG 2.0 A and AA rules) and the closed-network rule (no request leaves the
server's own origin, and nothing the pages need is refused by the CSP)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.db import transaction

from tests.browser.pages import page_paths
from tests.browser.test_portal import sign_in
from tests.conftest import make_staff
from yakuba.directory.models import Department, Role, RoleGrant, User

pytestmark = pytest.mark.browser

AXE_RUN = """async () => {
  const result = await axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa"]}});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map(n => n.target.join(" ") + " :: " + n.failureSummary)
  }));
}"""


@pytest.fixture
def erin(ward: dict[str, Department], alice: User) -> User:
    """Erin holds every role, so that every page shows her all it has."""
    user = make_staff("erin", "江藤", "恵理", ward["somu_ka"], number="10100", title="課長")
    with transaction.atomic():
        user.is_staff = user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
        for role in Role:
            department = ward["somu_ka"] if role == Role.SECTION_HEAD else None
            RoleGrant.objects.create(user=user, role=role, department=department)
    return user


@pytest.fixture
def visits(erin: User, alice: User, charlie: User) -> list[tuple[str | None, str]]:
    """(who signs in, path) for every page: anonymous pages, every page as Erin, a page
    Charlie may not see (the 403 page) and an unknown address (the 404 page)."""
    samples = {
        "employee_number": "10001",
        "user_id": str(alice.pk),
        "code": "111",
    }
    token_id = _token_for(alice)
    if token_id is not None:
        samples["token_id"] = str(token_id)
    paths, _skipped = page_paths(samples)
    return [
        (None, "/login/"),
        (None, "/no-such-page/"),
        *(("erin", path) for path in paths),
        # Pages with results and with a form error, not only their empty state.
        ("erin", "/directory/?q=青木"),
        ("erin", "/audit/?person=alice"),
        ("erin", "/audit/?date_from=2025-04-02&date_to=2025-04-01"),
        ("charlie", "/directory/import/"),
        ("charlie", "/audit/"),
    ]


def _token_for(user: User) -> int | None:
    from yakuba.directory.actions import auth

    create = getattr(auth, "do_create_token", None)
    if create is None:
        return None
    token, _raw = create(user, name="端末", scopes=["api:read"], expires_at=None, acting_user=user)
    return int(token.pk)


def walk(
    page: Any,
    visits: list[tuple[str | None, str]],
    check: Callable[[str], None],
    *,
    wait_until: str = "load",
) -> int:
    """Visit every page as its user and call ``check(label)`` on each HTML page."""
    signed_in_as: str | None = None
    checked = 0
    for who, path in visits:
        if who != signed_in_as:
            page.context.clear_cookies()
            if who is not None:
                sign_in(page, who)
            signed_in_as = who
        # Ask first (with the tab's cookies): a POST-only action answers 405 with no body,
        # which Chromium shows as a network error, and downloads are not pages.
        probe = page.request.head(path)
        if probe.status == 405 or "text/html" not in probe.headers.get("content-type", ""):
            continue
        response = page.goto(path, wait_until=wait_until)
        status = response.status if response is not None else "?"
        check(f"{who or 'anonymous'} {path} → {page.url} ({status})")
        checked += 1
    return checked


def test_it_meets_wcag2_aa_on_every_page(
    page: Any, visits: list[tuple[str | None, str]], axe_source: Path
) -> None:
    failures: list[str] = []

    def audit(label: str) -> None:
        page.add_script_tag(path=str(axe_source))
        for violation in page.evaluate(AXE_RUN):
            failures.append(
                f"{label}: {violation['id']} ({violation['impact']}) {violation['help']}\n    "
                + "\n    ".join(violation["nodes"])
            )

    checked = walk(page, visits, audit)
    assert checked >= 8, f"only {checked} pages were checked"
    assert not failures, "accessibility violations:\n" + "\n".join(failures)


def test_it_never_requests_anything_from_another_host(
    page: Any, live_url: str, visits: list[tuple[str | None, str]]
) -> None:
    own = urlsplit(live_url).netloc
    foreign: list[str] = []
    seen: list[str] = []

    def record(request: Any) -> None:
        # Runs in Playwright's thread: only record.
        seen.append(request.url)

    def note_refusal(message: Any) -> None:
        if "Content Security Policy" in message.text:
            refused.append(message.text)

    refused: list[str] = []
    page.on("request", record)
    page.on("console", note_refusal)
    # networkidle: also what scripts fetch after the page has loaded.
    checked = walk(page, visits, lambda label: None, wait_until="networkidle")
    for url in list(seen):
        parts = urlsplit(url)
        if parts.scheme in {"data", "blob", "about"}:
            continue
        if parts.netloc != own:
            foreign.append(url)
    assert checked >= 8
    assert any(url.endswith("/static/yakuba/yakuba.css") for url in seen)
    assert any(url.endswith("/static/yakuba/vendor/htmx.min.js") for url in seen)
    assert not foreign, f"requests to other hosts: {foreign}"
    # Nothing a page needs is refused by the Content-Security-Policy either.
    assert not refused, f"refused by the Content-Security-Policy: {refused}"

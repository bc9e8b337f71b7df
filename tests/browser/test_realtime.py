"""The life of one write, end to end: an event sent after commit reaches the page's
socket, and a tab that was away resumes from the last id it saw, without a gap or a
repeat."""

from typing import Any

import pytest
from django.db import transaction

from tests.browser.helpers import sign_in, wait_for
from yakuba.directory.models import User
from yakuba.realtime.send import send_event_on_commit, send_live_on_commit

pytestmark = pytest.mark.browser

COLLECT = """
window.received = [];
document.addEventListener("yakuba:event", (e) => window.received.push(e.detail));
"""


def notify(user: User, n: int) -> None:
    with transaction.atomic():
        send_event_on_commit({"type": "test", "op": "note", "n": n}, [user.pk])


def received(page: Any) -> list[int]:
    return [int(item["event"]["n"]) for item in page.evaluate("window.received")]


def test_it_delivers_events_to_the_page_and_resumes_after_it_was_away(
    page: Any, alice: User
) -> None:
    page.add_init_script(COLLECT)
    sign_in(page, "alice")
    page.wait_for_selector("body[data-realtime-state=ready]")
    notify(alice, 1)
    wait_for(page, "window.received.length === 1")
    assert received(page) == [1]

    # The tab goes elsewhere (its socket closes); two events arrive meanwhile.
    page.goto("/static/yakuba/favicon.svg")
    notify(alice, 2)
    notify(alice, 3)
    page.goto("/")
    wait_for(page, "window.received.length >= 2")
    page.wait_for_selector("body[data-realtime-state=ready]")
    notify(alice, 4)
    wait_for(page, "window.received.length >= 3")
    assert received(page) == [2, 3, 4]


def test_it_shows_the_sign_in_page_on_every_terminal_after_signing_out_everywhere(
    page: Any, chromium: Any, live_url: str, alice: User
) -> None:
    sign_in(page, "alice")
    page.wait_for_selector("body[data-realtime-state=ready]")
    other = chromium.new_context(
        viewport={"width": 1366, "height": 768}, locale="ja-JP", base_url=live_url
    )
    try:
        second = other.new_page()
        sign_in(second, "alice")
        second.goto("/account/")
        second.get_by_role("button", name="すべての端末からサインアウト").click()
        second.wait_for_url("**/login/**")
    finally:
        other.close()
    # The first terminal's socket is closed with 4401 and the page reloads to sign-in.
    page.wait_for_url("**/login/**")
    assert page.get_by_role("button", name="サインイン").is_visible()


PAGE_EVENTS = """
window.pageEvents = [];
for (const name of ["yakuba:ready", "yakuba:live", "yakuba:live-gap", "yakuba:frame"]) {
  document.addEventListener(name, (e) => window.pageEvents.push({name, detail: e.detail}));
}
"""

SEND = """(frame) => {
  const detail = {frame};
  document.dispatchEvent(new CustomEvent("yakuba:send", {detail}));
  return detail.sent;
}"""


def test_it_hands_live_frames_to_the_page_and_sends_the_pages_frames_once_ready(
    page: Any, alice: User
) -> None:
    page.add_init_script(PAGE_EVENTS)
    sign_in(page, "alice")
    page.wait_for_selector("body[data-realtime-state=ready]")
    wait_for(page, "window.pageEvents.some((e) => e.name === 'yakuba:ready')")

    with transaction.atomic():
        send_live_on_commit({"type": "test", "op": "live-note", "n": 7}, [alice.pk])
    wait_for(page, "window.pageEvents.some((e) => e.name === 'yakuba:live')")
    live = [e for e in page.evaluate("window.pageEvents") if e["name"] == "yakuba:live"]
    expected = {"type": "test", "op": "live-note", "n": 7}
    assert live == [{"name": "yakuba:live", "detail": {"event": expected}}]

    # A page's frame goes out on the one socket; the server's answer to an op it does
    # not know comes back to the page as a frame.
    assert page.evaluate(SEND, {"op": "test.unknown"}) is True
    wait_for(page, "window.pageEvents.some((e) => e.name === 'yakuba:frame')")
    frame = next(e for e in page.evaluate("window.pageEvents") if e["name"] == "yakuba:frame")
    assert frame["detail"]["frame"]["op"] == "error"
    assert page.evaluate(SEND, "not a frame") is False

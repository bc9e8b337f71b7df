"""Sign in through the form and use the portal with a real browser."""

from typing import Any
from urllib.parse import urlsplit

import pytest
from django.utils import translation

from tests.browser.helpers import sign_in, wait_for
from tests.conftest import PASSWORD
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.lib.wareki import seireki, wareki

pytestmark = pytest.mark.browser


def test_it_signs_in_and_shows_the_portal_in_japanese(page: Any, alice: User) -> None:
    sign_in(page, "alice")
    assert page.locator("html").get_attribute("lang") == "ja"
    facts = page.locator(".facts").inner_text()
    assert "青木 愛" in facts
    assert "総務部 総務課 文書係" in facts
    today = clock.today()
    assert wareki(today, weekday=True) in facts
    assert seireki(today) in facts
    nav = page.get_by_role("navigation", name="メインメニュー")
    assert nav.get_by_role("link", name="ポータル").get_attribute("aria-current") == "page"
    assert nav.get_by_role("link", name="アカウント設定").is_visible()
    # The scripts ran under the page's Content-Security-Policy: htmx, and the real-time
    # client compiled from frontend/src, which reports its socket ready.
    assert page.evaluate("typeof window.htmx") == "object"
    page.wait_for_selector("body[data-realtime-state=ready]")


def test_it_switches_to_english_for_a_visitor_and_for_a_signed_in_person(
    page: Any, alice: User
) -> None:
    page.goto("/login/")
    page.get_by_label("表示言語").select_option("en")
    page.locator(".language-switch button").click()
    wait_for(page, "document.documentElement.lang === 'en'")

    sign_in_label = _english("サインイン")
    page.get_by_role("button", name=sign_in_label).wait_for()
    # Alice's own setting (Japanese) wins once she has signed in ...
    page.locator("#id_username").fill("alice")
    page.locator("#id_password").fill(PASSWORD)
    page.get_by_role("button", name=sign_in_label).click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/")
    assert page.locator("html").get_attribute("lang") == "ja"
    # ... until she chooses English on her account page.
    page.goto("/account/")
    page.locator("#id_language").select_option("en")
    with page.expect_navigation():
        page.locator("#id_language").evaluate("select => select.form.requestSubmit()")
    page.goto("/")
    assert page.locator("html").get_attribute("lang") == "en"
    nav = page.get_by_role("navigation", name=_english("メインメニュー"))
    assert nav.get_by_role("link", name=_english("ポータル")).is_visible()


def _english(msgid: str) -> str:
    """The English catalogue's text for ``msgid`` (the msgid itself while untranslated)."""
    with translation.override("en"):
        return translation.gettext(msgid)


def test_it_reaches_the_main_menu_by_keyboard_through_the_skip_link(page: Any, alice: User) -> None:
    sign_in(page, "alice")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.className")
    assert focused == "skip-link"
    assert page.locator(".skip-link").is_visible()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # From the top again: Tab walks the header and reaches every menu entry.
    page.goto("/")
    reached = []
    for _ in range(30):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.textContent.trim()"))
        if reached[-1] == "アカウント設定":
            break
    assert "ポータル" in reached
    assert reached[-1] == "アカウント設定"

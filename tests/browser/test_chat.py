"""The chat client in Chromium: two people talking live with 既読 changing as the other
reads, Japanese IME composition never sending, a retried send making one message, the
keyboard alone reaching every part, and the layout at the office terminals' sizes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, include, path
from pytest_django.fixtures import Settings as SettingsWrapper

from tests.browser.helpers import sign_in, wait_for
from yakuba import urls as site_urls
from yakuba.chat import membership
from yakuba.chat.models import Conversation, Message
from yakuba.directory.models import Department, User

pytestmark = pytest.mark.browser

# The site's URLs with the chat pages, until yakuba/urls.py includes them itself.
urlpatterns: list[URLPattern | URLResolver] = list(site_urls.urlpatterns)
if not any(getattr(p, "namespace", None) == "chat" for p in urlpatterns):
    urlpatterns.append(path("chat/", include("yakuba.chat.urls")))

BOX = "#chat-box"
SENT = "[data-messages] [data-message]"


@pytest.fixture(autouse=True)
def _chat_urls(settings: SettingsWrapper) -> None:
    settings.ROOT_URLCONF = __name__


@pytest.fixture
def bunsho_channel(live_url: str, ward: dict[str, Department], alice: User, bob: User) -> Any:
    """文書係's channel, with Alice and Bob in it (synced from the directory)."""
    membership.ensure_department_channels()
    membership.sync_all()
    return Conversation.objects.get(department=ward["bunsho"])


@pytest.fixture
def bob_tab(chromium: Any, live_url: str) -> Iterator[Any]:
    context = chromium.new_context(
        viewport={"width": 1366, "height": 768},
        locale="ja-JP",
        timezone_id="Asia/Tokyo",
        base_url=live_url,
    )
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def open_chat(tab: Any, username: str, conversation: Conversation) -> None:
    sign_in(tab, username)
    tab.goto(f"/chat/?c={conversation.pk}")
    tab.wait_for_selector("#chat[data-socket=ready]")
    tab.wait_for_selector("[data-messages] .chat-empty, [data-messages] [data-message]")


def messages_with(conversation: Conversation, text: str) -> int:
    return Message.objects.filter(conversation=conversation, text=text).count()


def test_it_shows_messages_live_and_the_senders_kidoku_rises_when_the_other_reads(
    page: Any, bob_tab: Any, bunsho_channel: Conversation
) -> None:
    open_chat(page, "alice", bunsho_channel)
    open_chat(bob_tab, "bob", bunsho_channel)

    page.fill(BOX, "本日の文書審査は15時からです")
    page.press(BOX, "Enter")

    # Bob's open view shows it without a reload; Alice's shows 既読 1 once he has seen it.
    bob_tab.get_by_text("本日の文書審査は15時からです").wait_for()
    read = page.locator(f"{SENT} [data-action=readers]").last
    read.filter(has_text="既読 1").wait_for()
    assert page.input_value(BOX) == ""

    # Bob answers; Alice's view shows it live too, under a date separator (和暦).
    bob_tab.fill(BOX, "承知しました")
    bob_tab.press(BOX, "Enter")
    page.get_by_text("承知しました").wait_for()
    assert page.locator(".chat-day").first.inner_text().startswith("令和")

    # The readers list names Bob; Escape closes it and gives focus back.
    read.click()
    dialog = page.locator("#chat-readers")
    dialog.get_by_text("坂東 歩").wait_for()
    page.keyboard.press("Escape")
    wait_for(page, "!document.querySelector('#chat-readers').open")
    assert page.evaluate("document.activeElement.dataset.action") == "readers"


IME_ENTER = """(box) => {
  box.focus();
  box.dispatchEvent(new CompositionEvent("compositionstart", {data: ""}));
  box.dispatchEvent(new KeyboardEvent("keydown", {key: "Enter", isComposing: true, bubbles: true, cancelable: true}));
  const legacy = new KeyboardEvent("keydown", {key: "Enter", bubbles: true, cancelable: true});
  Object.defineProperty(legacy, "keyCode", {get: () => 229});
  box.dispatchEvent(legacy);
  box.dispatchEvent(new CompositionEvent("compositionend", {data: "会議室"}));
}"""


def test_it_never_sends_on_the_enter_that_ends_an_ime_composition(
    page: Any, bunsho_channel: Conversation
) -> None:
    open_chat(page, "alice", bunsho_channel)
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)

    page.fill(BOX, "会議室")
    page.locator(BOX).evaluate(IME_ENTER)
    page.wait_for_timeout(300)

    assert [url for url in posts if url.endswith("/messages")] == []
    assert page.input_value(BOX) == "会議室"
    assert messages_with(bunsho_channel, "会議室") == 0

    # Shift+Enter is a new line; a plain Enter after the composition sends.
    page.press(BOX, "Shift+Enter")
    page.keyboard.type("を予約しました")
    page.press(BOX, "Enter")
    page.get_by_text("を予約しました").wait_for()
    assert messages_with(bunsho_channel, "会議室\nを予約しました") == 1


def test_it_makes_one_message_when_a_send_whose_answer_was_lost_is_retried(
    page: Any, bunsho_channel: Conversation
) -> None:
    open_chat(page, "alice", bunsho_channel)
    failed: list[int] = []

    def lose_first_answer(route: Any) -> None:
        if route.request.method != "POST" or failed:
            route.continue_()
            return
        answer = route.fetch()  # the server accepts the message...
        failed.append(answer.status)
        route.abort("connectionreset")  # ...but the answer never reaches the page

    page.route("**/api/chat/conversations/*/messages", lose_first_answer)
    page.fill(BOX, "議事録の確認をお願いします")
    page.press(BOX, "Enter")

    page.locator("[data-composer] [data-error]").filter(has_text="もう一度").wait_for()
    assert failed == [201]
    assert page.input_value(BOX) == "議事録の確認をお願いします"  # nothing typed is lost
    assert messages_with(bunsho_channel, "議事録の確認をお願いします") == 1

    page.press(BOX, "Enter")  # the same client key: the server returns the first message

    wait_for(page, f"document.querySelector('{BOX}').value === ''")
    page.get_by_text("議事録の確認をお願いします").wait_for()
    assert page.locator(SENT).filter(has_text="議事録の確認をお願いします").count() == 1
    assert messages_with(bunsho_channel, "議事録の確認をお願いします") == 1


def test_it_reaches_the_composer_and_sends_by_keyboard_alone(
    page: Any, bunsho_channel: Conversation
) -> None:
    open_chat(page, "alice", bunsho_channel)
    page.locator("body").focus()

    for _ in range(80):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "chat-box":
            break
    else:
        pytest.fail("Tab never reached the message box")
    # The focus is visible where it is.
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none")

    page.keyboard.type("キーボードだけで送信します")
    page.keyboard.press("Enter")
    page.get_by_text("キーボードだけで送信します").wait_for()
    assert messages_with(bunsho_channel, "キーボードだけで送信します") == 1

    # Shift+Tab goes back into the message's own buttons; Enter on 返信 opens the thread
    # with the focus in its box, and Escape closes it.
    for _ in range(12):
        page.keyboard.press("Shift+Tab")
        if page.evaluate("document.activeElement.dataset.action") == "thread":
            break
    else:
        pytest.fail("Shift+Tab never reached the message's 返信 button")
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-thread]:not([hidden])")
    wait_for(page, "document.activeElement.id === 'chat-thread-box'")
    page.keyboard.type("スレッドで返信します")
    page.keyboard.press("Enter")
    page.locator("[data-thread-messages]").get_by_text("スレッドで返信します").wait_for()
    page.keyboard.press("Escape")
    page.wait_for_selector("[data-thread]", state="hidden")


@pytest.mark.parametrize("size", [(1366, 768), (1920, 1080)])
def test_it_fits_the_office_screens_without_sideways_scrolling(
    page: Any, bunsho_channel: Conversation, alice: User, size: tuple[int, int]
) -> None:
    width, height = size
    page.set_viewport_size({"width": width, "height": height})
    open_chat(page, "alice", bunsho_channel)
    page.fill(BOX, "長い行" + "あ" * 400 + " https://example.invalid/" + "x" * 300)
    page.press(BOX, "Enter")
    page.locator(SENT).first.wait_for()

    overflow = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    assert page.evaluate(overflow) <= 0
    # With the thread pane open too.
    page.locator(f"{SENT} [data-action=thread]").first.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-thread]:not([hidden])")
    assert page.evaluate(overflow) <= 0
    # The composer stays on screen.
    box = page.locator(BOX).bounding_box()
    assert box is not None and box["y"] + box["height"] <= height

"""The chat client in Chromium: two people talking live with 既読 changing as the other
reads, Japanese IME composition never sending, a retried send making one message, the
keyboard alone reaching every part, and the layout at the office terminals' sizes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, include, path
from pytest_django.fixtures import Settings as SettingsWrapper

from tests.browser.helpers import sign_in, wait_for
from tests.browser.test_pages import AXE_RUN
from tests.conftest import make_staff
from yakuba import urls as site_urls
from yakuba.chat import access, membership
from yakuba.chat.actions.conversations import do_get_or_create_direct
from yakuba.chat.actions.messages import check_send_message
from yakuba.chat.models import Conversation, Message
from yakuba.directory.models import Department, User

pytestmark = pytest.mark.browser

# The site's URLs with the chat pages, until yakuba/urls.py includes them itself.
urlpatterns: list[URLPattern | URLResolver] = [
    p for p in site_urls.urlpatterns if isinstance(p, URLPattern | URLResolver)
]
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
    mine = page.locator(SENT).filter(has_text="本日の文書審査は15時からです")
    read = mine.locator("[data-action=readers]")
    read.filter(has_text="既読 1").wait_for()
    assert page.input_value(BOX) == ""

    # Bob answers; Alice's view shows it live too, under a date separator (和暦).
    bob_tab.locator(BOX).press_sequentially("承知")
    page.locator("[data-typing]").filter(has_text="坂東 歩さんが入力中…").wait_for()
    bob_tab.locator(BOX).press_sequentially("しました")
    bob_tab.press(BOX, "Enter")
    page.get_by_text("承知しました").wait_for()
    assert page.locator("[data-typing]").inner_text() == ""  # his message ends it
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
  box.dispatchEvent(new KeyboardEvent("keydown",
    {key: "Enter", isComposing: true, bubbles: true, cancelable: true}));
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
    assert box is not None
    assert box["y"] + box["height"] <= height


@pytest.mark.bypass_csp  # axe-core is injected as an inline script
def test_it_meets_wcag2_aa_with_messages_and_a_thread_open(
    page: Any, bunsho_channel: Conversation, axe_source: Path
) -> None:
    open_chat(page, "alice", bunsho_channel)
    page.fill(BOX, "アクセシビリティの確認です")
    page.press(BOX, "Enter")
    page.locator(f"{SENT} [data-action=thread]").first.click()
    page.wait_for_selector("[data-thread]:not([hidden])")
    page.locator("[data-thread-messages]").get_by_text("アクセシビリティの確認です").wait_for()
    page.add_script_tag(path=str(axe_source))
    violations = page.evaluate(AXE_RUN)
    assert violations == [], violations

    # The search page with a result and with a form error.
    for query in ("?q=アクセシビリティ", "?q=確認&date_from=2026-05-02&date_to=2026-05-01"):
        page.goto(f"/chat/search/{query}")
        page.add_script_tag(path=str(axe_source))
        violations = page.evaluate(AXE_RUN)
        assert violations == [], (query, violations)
    page.goto("/chat/search/?q=アクセシビリティ")
    page.get_by_role("link", name="総務部 総務課 文書係").click()
    page.locator(".chat-focus").get_by_text("アクセシビリティの確認です").wait_for()


def test_it_loads_nothing_the_csp_refuses(page: Any, bunsho_channel: Conversation) -> None:
    refused: list[str] = []
    page.on(
        "console",
        lambda message: (
            refused.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    open_chat(page, "alice", bunsho_channel)
    page.fill(BOX, "CSPの確認")
    page.press(BOX, "Enter")
    page.get_by_text("CSPの確認").wait_for()
    assert refused == []


def send_as(user: User, conversation: Conversation, text: str) -> Message:
    """``user`` posts through the real send action (setting up history)."""
    membership_row = access.access_conversation_for_post(user, conversation.pk)
    message, _created = check_send_message(
        membership_row, text=text, client_key=str(uuid.uuid4()), acting_user=user
    )
    return message


DROP_FILE = """(box) => {
  const data = new DataTransfer();
  data.items.add(new File(["本庁舎の地図"], "地図.txt", {type: "text/plain"}));
  const init = {dataTransfer: data, bubbles: true, cancelable: true};
  box.dispatchEvent(new DragEvent("dragover", init));
  box.dispatchEvent(new DragEvent("drop", init));
}"""


def test_it_attaches_edits_reacts_pins_and_deletes_own_messages(
    page: Any, bunsho_channel: Conversation, settings: SettingsWrapper, tmp_path: Path
) -> None:
    settings.CHAT_MEDIA_DIR = tmp_path
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    open_chat(page, "alice", bunsho_channel)

    # A file through the button (the file input behind it), then the message with it.
    page.set_input_files(
        "#chat-file",
        files=[
            {"name": "予定表.txt", "mimeType": "text/plain", "buffer": "10時 文書審査".encode()}
        ],
    )
    page.locator("[data-composer] [data-files]").get_by_text("予定表.txt").wait_for()
    # A second one dropped on the box.
    page.locator(BOX).evaluate(DROP_FILE)
    page.locator("[data-composer] [data-files]").get_by_text("地図.txt").wait_for()
    page.fill(BOX, "予定表を添付します")
    page.press(BOX, "Enter")
    found = page.locator(SENT).filter(has_text="予定表を添付します")
    found.get_by_role("link", name="予定表.txt").wait_for()
    found.get_by_role("link", name="地図.txt").wait_for()
    assert page.locator("[data-composer] [data-files] li").count() == 0
    message = page.locator(f'{SENT}[data-message="{found.get_attribute("data-message")}"]')

    message.hover()
    message.get_by_role("button", name="編集").click()
    box = message.get_by_role("textbox", name="メッセージを編集")
    box.fill("予定表を添付します（差し替え）")
    box.press("Enter")
    message.locator("form.chat-edit").wait_for(state="detached")
    assert "編集済み" in message.inner_text()
    assert "（差し替え）" in message.inner_text()

    message.hover()
    message.get_by_role("button", name="リアクション").click()
    page.get_by_role("button", name="👍 でリアクション").click()
    message.get_by_role("button", name="👍 1人").wait_for()
    assert message.get_by_role("button", name="👍 1人").get_attribute("aria-pressed") == "true"

    message.hover()
    message.get_by_role("button", name="ピン留め", exact=True).click()
    message.locator(".chat-pin-mark").wait_for()
    assert Message.objects.get(conversation=bunsho_channel, kind="text").pinned_at is not None
    page.get_by_role("button", name="ピン留め一覧").click()
    pins = page.locator("#chat-pins")
    pins.get_by_text("（差し替え）").wait_for()
    pins.get_by_role("button", name="青木 愛").click()
    wait_for(page, "!document.querySelector('#chat-pins').open")
    message.and_(page.locator(".chat-focus")).wait_for()

    message.hover()
    message.get_by_role("button", name="削除").click()
    page.locator("#chat-confirm").get_by_role("button", name="削除").click()
    page.locator(SENT).get_by_text("このメッセージは削除されました。").wait_for()

    saved = Message.objects.get(conversation=bunsho_channel, kind="text")
    assert saved.deleted_at is not None
    assert saved.edited_at is not None
    assert errors == []


def test_it_scrolls_back_through_history_and_marks_the_first_unread(
    page: Any, alice: User, bob: User, bunsho_channel: Conversation
) -> None:
    send_as(alice, bunsho_channel, "最初のメッセージ")
    for n in range(1, 70):
        send_as(alice, bunsho_channel, f"連絡 {n}")
    send_as(bob, bunsho_channel, "ここから読んでいません")
    send_as(bob, bunsho_channel, "まだ読んでいません")

    open_chat(page, "alice", bunsho_channel)
    # Alice's own messages were read as she sent them: the marker is above Bob's.
    marker = page.locator("[data-unread-marker]")
    marker.wait_for()
    assert marker.inner_text() == "ここから未読"
    following = "document.querySelector('[data-unread-marker]').nextElementSibling.textContent"
    assert "ここから読んでいません" in page.evaluate(following)
    assert page.locator(SENT).filter(has_text="最初のメッセージ").count() == 0

    for _ in range(10):
        page.locator("[data-messages]").evaluate("(list) => { list.scrollTop = 0; }")
        page.wait_for_timeout(200)
        if page.locator(SENT).filter(has_text="最初のメッセージ").count() == 1:
            break
    else:
        pytest.fail("scrolling to the top never loaded the oldest message")
    assert page.locator(SENT).count() == 72


def test_it_shows_a_changed_status_on_the_other_persons_presence_dot(
    page: Any, bob_tab: Any, alice: User, bob: User, bunsho_channel: Conversation
) -> None:
    do_get_or_create_direct(alice, bob, acting_user=alice)
    open_chat(bob_tab, "bob", bunsho_channel)
    dot = bob_tab.locator(f"[data-presence='{alice.pk}']")
    dot.wait_for()

    open_chat(page, "alice", bunsho_channel)
    page.get_by_text("在席状況").click()
    page.get_by_label("状態").select_option("meeting")
    page.get_by_label("ひとこと", exact=True).fill("15時まで")
    page.get_by_role("button", name="変更").click()
    page.locator("[data-my-status]").filter(has_text="会議中").wait_for()

    wait_for(
        bob_tab,
        f"document.querySelector(\"[data-presence='{alice.pk}']\")"
        ".classList.contains('chat-dot-meeting')",
    )
    assert dot.get_attribute("aria-label") == "会議中（15時まで）"


def test_it_asks_before_a_mention_that_would_notify_many_people(
    page: Any, bunsho_channel: Conversation, ward: dict[str, Department], settings: SettingsWrapper
) -> None:
    settings.CHAT_MENTION_CONFIRM_OVER = 1
    membership.sync_users([make_staff("dora", "土田", "乃", ward["bunsho"], number="10010").pk])
    open_chat(page, "alice", bunsho_channel)
    dialog = page.locator("#chat-confirm")

    page.fill(BOX, "@全員 明日は停電です")
    page.press(BOX, "Enter")
    dialog.get_by_text("このメンションは2人に通知されます。").wait_for()
    page.keyboard.press("Escape")  # not now: nothing is sent, the text stays
    wait_for(page, "!document.querySelector('#chat-confirm').open")
    assert page.input_value(BOX) == "@全員 明日は停電です"
    assert messages_with(bunsho_channel, "@全員 明日は停電です") == 0

    page.press(BOX, "Enter")
    dialog.get_by_role("button", name="通知して送信").click()
    page.locator(SENT).get_by_text("明日は停電です").wait_for()
    assert messages_with(bunsho_channel, "@全員 明日は停電です") == 1


RECORD_NOTIFICATIONS = """
window.shown = [];
window.Notification = class {
  static permission = "granted";
  static requestPermission() { return Promise.resolve("granted"); }
  constructor(title, options) { window.shown.push({title, body: options.body}); }
  addEventListener() {}
};
"""


def test_it_badges_and_notifies_a_mention_in_another_conversation(
    page: Any,
    bob_tab: Any,
    alice: User,
    bob: User,
    bunsho_channel: Conversation,
    ward: dict[str, Department],
) -> None:
    somu_ka = Conversation.objects.get(department=ward["somu_ka"])
    bob_tab.add_init_script(RECORD_NOTIFICATIONS)
    open_chat(bob_tab, "bob", somu_ka)
    open_chat(page, "alice", bunsho_channel)

    page.fill(BOX, "@bob 決裁をお願いします")
    page.press(BOX, "Enter")

    link = bob_tab.locator(f"[data-conversation='{bunsho_channel.pk}']")
    link.locator(".chat-badge-mention").filter(has_text="@1").wait_for()
    unread = link.locator(".chat-badge:not(.chat-badge-mention)")
    assert unread.locator("[aria-hidden=true]").inner_text() == "1"
    assert unread.locator(".visually-hidden").inner_text() == "未読 1件"
    wait_for(bob_tab, "window.shown.length === 1")
    shown = bob_tab.evaluate("window.shown[0]")
    assert "青木 愛" in shown["title"]
    assert shown["body"] == "@bob 決裁をお願いします"

    # Opening the conversation shows the message, reads it and clears the badges.
    link.click()
    bob_tab.locator(SENT).get_by_text("決裁をお願いします").wait_for()
    link.locator(".chat-badge").first.wait_for(state="detached")


def test_it_forwards_a_message_to_another_conversation(
    page: Any, alice: User, bunsho_channel: Conversation, ward: dict[str, Department]
) -> None:
    original = send_as(alice, bunsho_channel, "庁舎の停電は10時からです")
    somu_ka = Conversation.objects.get(department=ward["somu_ka"])
    open_chat(page, "alice", bunsho_channel)

    message = page.locator(f'{SENT}[data-message="{original.pk}"]')
    message.hover()
    message.get_by_role("button", name="転送").click()
    dialog = page.locator("#chat-forward")
    dialog.get_by_label("転送先").select_option(str(somu_ka.pk))
    dialog.get_by_role("button", name="転送").click()
    page.locator("[data-announce]").filter(has_text="転送しました。").wait_for()

    forwarded = Message.objects.get(conversation=somu_ka)
    assert forwarded.forwarded_from_id == original.pk
    page.locator(f"[data-conversation='{somu_ka.pk}']").click()
    page.locator(SENT).get_by_text("転送").first.wait_for()


# --- one socket, starting conversations, settings, threads, お知らせ (H9) -------------------


DROPPED_EARLY = """
document.addEventListener("DOMContentLoaded", () => window.setTimeout(() => {
  // realtime.ts has started (its socket is connecting), the server has not said ready.
  const detail = {frame: {op: "chat.activity", idle: false}};
  document.dispatchEvent(new CustomEvent("yakuba:send", {detail}));
  window.sentEarly = detail.sent;
}, 0));
"""


def test_it_holds_exactly_one_websocket_on_the_chat_page(
    page: Any, bob_tab: Any, bunsho_channel: Conversation
) -> None:
    page.add_init_script(DROPPED_EARLY)
    sign_in(page, "alice")  # the portal has a socket of its own: counted from here
    page.wait_for_selector("body[data-realtime-state=ready]")
    sockets: list[str] = []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    page.goto(f"/chat/?c={bunsho_channel.pk}")
    page.wait_for_selector("#chat[data-socket=ready]")
    open_chat(bob_tab, "bob", bunsho_channel)

    # Typing goes out through realtime.ts's socket (yakuba:send), live messages come in
    # through it (yakuba:live), and presence is watched through it.
    page.locator(BOX).press_sequentially("ひとつのソケット")
    bob_tab.locator("[data-typing]").filter(has_text="青木 愛さんが入力中…").wait_for()
    bob_tab.fill(BOX, "届いています")
    bob_tab.press(BOX, "Enter")
    page.get_by_text("届いています").wait_for()
    assert len(sockets) == 1, sockets
    # A page's frame goes out while the socket is ready (and was dropped, saying so,
    # before: see DROPPED_EARLY).
    sent = page.evaluate(
        """() => { const detail = {frame: {op: "chat.activity", idle: false}};
        document.dispatchEvent(new CustomEvent("yakuba:send", {detail}));
        return detail.sent; }"""
    )
    assert sent is True
    assert page.evaluate("window.sentEarly") is False
    assert len(sockets) == 1, sockets


OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"


def pick_person(tab: Any, dialog: Any, query: str, name: str) -> None:
    box = dialog.locator("[data-people-query]")
    box.fill(query)
    dialog.locator("[data-people-results] button").filter(has_text=name).click()


def test_it_starts_a_direct_message_from_the_dialog_that_reaches_the_other_person_live(
    page: Any,
    bob_tab: Any,
    bunsho_channel: Conversation,
    charlie: User,
    ward: dict[str, Department],
) -> None:
    membership.sync_all()
    koseki = Conversation.objects.get(department=ward["koseki"])
    open_chat(page, "alice", bunsho_channel)
    open_chat(bob_tab, "charlie", koseki)

    # Keyboard: the button opens the dialog, Escape closes it and the focus returns.
    opener = page.get_by_role("button", name="新しい会話")
    opener.focus()
    page.keyboard.press("Enter")
    dialog = page.locator("#chat-new")
    dialog.wait_for()
    page.keyboard.press("Escape")
    wait_for(page, "!document.querySelector('#chat-new').open")
    wait_for(page, "document.activeElement.dataset.new === ''")

    opener.click()
    # Nobody chosen: the dialog says what to do and sends nothing.
    dialog.get_by_role("button", name="作成").click()
    dialog.get_by_text("相手を1人選んでください。").wait_for()
    pick_person(page, dialog, "ちば", "千葉 茶太郎")
    dialog.locator("[data-chosen=charlie]").wait_for()
    dialog.get_by_role("button", name="作成").click()
    wait_for(page, "!document.querySelector('#chat-new').open")
    direct = Conversation.objects.get(kind=Conversation.Kind.DIRECT)
    page.wait_for_selector(f"#chat[data-current='{direct.pk}']")
    wait_for(page, "document.activeElement.id === 'chat-box'")  # once it has loaded
    page.fill(BOX, "戸籍の件でご相談があります")
    page.press(BOX, "Enter")

    # Charlie's list gains the conversation live (the persisted event), with 未読 1.
    link = bob_tab.locator(f"[data-conversation='{direct.pk}']")
    link.locator(".chat-badge").filter(has_text="1").wait_for()
    assert "青木 愛" in link.inner_text()
    link.click()
    bob_tab.locator(SENT).get_by_text("戸籍の件でご相談があります").wait_for()


@pytest.mark.bypass_csp  # axe-core is injected as an inline script
def test_it_creates_a_project_channel_the_other_member_sees_appear_and_renamed_live(
    page: Any, bob_tab: Any, bunsho_channel: Conversation, axe_source: Path
) -> None:
    open_chat(page, "alice", bunsho_channel)
    open_chat(bob_tab, "bob", bunsho_channel)

    page.get_by_role("button", name="新しい会話").click()
    dialog = page.locator("#chat-new")
    dialog.get_by_label("プロジェクトチャンネル").check()
    # No name: refused in the dialog.
    pick_person(page, dialog, "坂東", "坂東 歩")
    dialog.get_by_role("button", name="作成").click()
    dialog.get_by_text("チャンネルの名前を入力してください。").wait_for()
    dialog.locator("[data-people-query]").fill("さか")  # results shown too
    dialog.locator("[data-people-results] li").first.wait_for()
    page.add_script_tag(path=str(axe_source))
    violations = page.evaluate(AXE_RUN)
    assert violations == [], violations
    assert page.evaluate(OVERFLOW) <= 0
    dialog.get_by_label("名前", exact=True).fill("庁舎移転プロジェクト")
    dialog.get_by_label("説明").fill("新庁舎への移転準備")
    dialog.get_by_role("button", name="作成").click()
    wait_for(page, "!document.querySelector('#chat-new').open")
    channel = Conversation.objects.get(kind=Conversation.Kind.PROJECT)
    assert channel.name == "庁舎移転プロジェクト"
    assert not channel.is_private
    assert set(channel.memberships.values_list("user__username", flat=True)) == {"alice", "bob"}

    link = bob_tab.locator(f"[data-conversation='{channel.pk}']")
    link.filter(has_text="庁舎移転プロジェクト").wait_for()

    # Alice (the owner) renames it in the settings; Bob's list follows.
    page.get_by_role("button", name="会話の設定").click()
    settings_box = page.locator("#chat-settings")
    settings_box.locator("[data-member=bob]").wait_for()
    assert page.evaluate(OVERFLOW) <= 0
    violations = page.evaluate(AXE_RUN)
    assert violations == [], violations
    settings_box.get_by_label("名前", exact=True).fill("新庁舎プロジェクト")
    settings_box.get_by_role("button", name="保存", exact=True).click()
    settings_box.locator("[data-dialog-status]").filter(has_text="保存しました。").wait_for()
    link.filter(has_text="新庁舎プロジェクト").wait_for()
    page.keyboard.press("Escape")
    wait_for(page, "!document.querySelector('#chat-settings').open")
    wait_for(page, "document.activeElement.dataset.settings === ''")
    page.locator("[data-title]").filter(has_text="新庁舎プロジェクト").wait_for()

    # Bob is no owner: his settings have no name form, and the API refuses an archive.
    bob_tab.locator(f"[data-conversation='{channel.pk}']").click()
    bob_tab.get_by_role("button", name="会話の設定").click()
    bob_settings = bob_tab.locator("#chat-settings")
    bob_settings.locator("[data-member=alice]").wait_for()
    assert bob_settings.locator("[data-info-form]").is_hidden()
    assert bob_settings.locator("[data-archive]").is_hidden()


def test_it_changes_the_persons_own_notification_level_and_mute(
    page: Any, bunsho_channel: Conversation, alice: User
) -> None:
    open_chat(page, "alice", bunsho_channel)
    page.get_by_role("button", name="会話の設定").click()
    box = page.locator("#chat-settings")
    wait_for(page, "document.querySelector('#chat-settings input[value=all]').checked")
    # 所属 channels: no leaving, no renaming for a member.
    assert box.locator("[data-leave]").is_hidden()
    box.get_by_label("メンションのみ").check()
    box.get_by_label("ミュート（未読を目立たせない）").check()
    box.get_by_role("button", name="通知の設定を保存").click()
    box.locator("[data-dialog-status]").filter(has_text="保存しました。").wait_for()
    row = bunsho_channel.memberships.get(user=alice)
    assert (row.notify, row.muted) == ("mentions", True)

    box.get_by_label("通知しない").check()
    box.get_by_label("ミュート（未読を目立たせない）").uncheck()
    box.get_by_role("button", name="通知の設定を保存").click()
    box.locator("[data-dialog-status]").filter(has_text="保存しました。").wait_for()
    row.refresh_from_db()
    assert (row.notify, row.muted) == ("none", False)


def test_it_finds_and_joins_a_public_project_channel(
    page: Any, alice: User, bob: User, bunsho_channel: Conversation
) -> None:
    from yakuba.chat.actions.conversations import do_create_project_channel

    channel = do_create_project_channel(
        name="防災訓練", description="10月の訓練の準備", acting_user=alice
    )
    do_create_project_channel(name="秘密の企画", is_private=True, acting_user=alice)
    open_chat(page, "bob", bunsho_channel)
    page.get_by_role("button", name="チャンネルを探す").click()
    box = page.locator("#chat-browse")
    box.get_by_text("10月の訓練の準備").wait_for()
    assert box.get_by_text("秘密の企画").count() == 0
    box.get_by_role("button", name="防災訓練 参加する").click()
    page.wait_for_selector(f"#chat[data-current='{channel.pk}']")
    assert channel.memberships.filter(user=bob).exists()
    page.locator(f"[data-conversation='{channel.pk}']").wait_for()


def test_it_shows_unread_replies_on_a_thread_root(
    page: Any, alice: User, bob: User, bunsho_channel: Conversation
) -> None:
    root = send_as(bob, bunsho_channel, "予算の確認をお願いします")
    for text in ("一件目の補足", "二件目の補足"):
        row = access.access_conversation_for_post(bob, bunsho_channel.pk)
        check_send_message(
            row, text=text, client_key=str(uuid.uuid4()), thread_root_id=root.pk, acting_user=bob
        )
    open_chat(page, "alice", bunsho_channel)
    node = page.locator(f'{SENT}[data-message="{root.pk}"]')
    node.locator("[data-thread-unread]").filter(has_text="未読の返信 2件").wait_for()

    # Opening the thread reads it; the marker goes.
    node.get_by_role("button", name="返信 2件").click()
    page.locator("[data-thread-messages]").get_by_text("二件目の補足").wait_for()
    node.locator("[data-thread-unread]").wait_for(state="detached")
    page.get_by_role("button", name="閉じる").first.click()

    # A reply arriving live while the thread is closed marks it again.
    row = access.access_conversation_for_post(bob, bunsho_channel.pk)
    check_send_message(
        row,
        text="三件目の補足",
        client_key=str(uuid.uuid4()),
        thread_root_id=root.pk,
        acting_user=bob,
    )
    node.locator("[data-thread-unread]").filter(has_text="未読の返信 1件").wait_for()


def test_it_lists_notices_first_and_takes_no_reply_there(
    page: Any, alice: User, bunsho_channel: Conversation
) -> None:
    from yakuba.chat.notices import notify_person

    notify_person(alice, "会議室Aの予約が解放されました")
    notices = Conversation.objects.get(kind=Conversation.Kind.NOTICES)
    open_chat(page, "alice", bunsho_channel)
    group = page.locator("[data-group=notices]")
    group.locator(f"[data-conversation='{notices.pk}']").wait_for()
    first_heading = page.locator(".chat-sidebar h2").first.inner_text()
    assert first_heading == "お知らせ"

    group.locator(f"[data-conversation='{notices.pk}']").click()
    page.locator(SENT).get_by_text("会議室Aの予約が解放されました").wait_for()
    page.get_by_text("このお知らせには返信できません").wait_for()
    assert page.locator("[data-composer]").is_hidden()
    # Back in a channel, the composer is there again.
    page.locator(f"[data-conversation='{bunsho_channel.pk}']").click()
    page.locator("[data-composer]").wait_for()
    assert page.locator("[data-readonly]").is_hidden()


def test_it_leaves_and_archives_a_project_channel_from_its_settings(
    page: Any, bob_tab: Any, alice: User, bob: User, bunsho_channel: Conversation
) -> None:
    from yakuba.chat.actions.conversations import do_create_project_channel

    channel = do_create_project_channel(name="広報誌の編集", members=[bob], acting_user=alice)
    open_chat(page, "alice", channel)
    open_chat(bob_tab, "bob", channel)

    bob_tab.get_by_role("button", name="会話の設定").click()
    bob_settings = bob_tab.locator("#chat-settings")
    bob_settings.get_by_role("button", name="この会話から退出する").click()
    bob_tab.locator("#chat-confirm").get_by_role("button", name="退出する").click()
    bob_tab.locator(f"[data-conversation='{channel.pk}']").wait_for(state="detached")
    assert not channel.memberships.filter(user=bob).exists()

    page.get_by_role("button", name="会話の設定").click()
    settings_box = page.locator("#chat-settings")
    settings_box.get_by_role("button", name="アーカイブする").click()
    page.locator("#chat-confirm").get_by_role("button", name="アーカイブする").click()
    settings_box.get_by_role("button", name="アーカイブを解除する").wait_for()
    channel.refresh_from_db()
    assert channel.archived_at is not None
    page.keyboard.press("Escape")
    wait_for(page, "document.querySelector('#chat-box').disabled")

from typing import Any
import uuid
from tests.browser.test_chat import *  # noqa
from tests.browser.test_chat import open_chat, BOX, SENT
from yakuba.chat import access
from yakuba.chat.actions.messages import check_send_message, do_toggle_reaction, do_edit_message
from yakuba.chat.actions.reads import do_mark_read

def send(user, conv, text, root=None):
    m = access.access_conversation_for_post(user, conv.pk)
    return check_send_message(m, text=text, client_key=str(uuid.uuid4()), acting_user=user, thread_root_id=root)[0]

def test_shot(page: Any, bob_tab: Any, bunsho_channel, alice, bob) -> None:
    a = send(alice, bunsho_channel, "おはようございます。本日の予定です。\n- 10時 文書審査\n- 15時 **決裁**")
    b = send(bob, bunsho_channel, "了解です。`code` と > 引用")
    send(bob, bunsho_channel, "返信です", root=a.pk)
    do_toggle_reaction(a, emoji="👍", add=True, acting_user=bob)
    do_edit_message(b, text="了解です（編集）", acting_user=bob)
    for i in range(5):
        send(bob, bunsho_channel, f"未読メッセージ {i}")
    open_chat(page, "alice", bunsho_channel)
    page.wait_for_timeout(1500)
    page.screenshot(path="/tmp/h7_1366.png")
    page.locator(f"{SENT} [data-action=thread]").first.click()
    page.wait_for_timeout(800)
    page.screenshot(path="/tmp/h7_thread.png")
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.wait_for_timeout(300)
    page.screenshot(path="/tmp/h7_1920.png")

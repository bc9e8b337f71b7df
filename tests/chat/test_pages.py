"""The chat pages: the web client's shell (/chat/) and the search page (/chat/search/).

The shell carries the person's conversations in its json_script block; what it lists and
what the search page finds must follow the same permissions as the API."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, include, path
from pytest_django.fixtures import Settings as SettingsWrapper

from yakuba import urls as site_urls
from yakuba.chat import access
from yakuba.chat.actions.conversations import do_add_members, do_create_project_channel
from yakuba.chat.actions.messages import check_send_message
from yakuba.chat.models import Conversation, Message
from yakuba.directory.models import User

pytestmark = pytest.mark.django_db

# The site's URLs with the chat pages, until yakuba/urls.py includes them itself.
urlpatterns: list[URLPattern | URLResolver] = [
    p for p in site_urls.urlpatterns if isinstance(p, URLPattern | URLResolver)
]
if not any(getattr(p, "namespace", None) == "chat" for p in urlpatterns):
    urlpatterns.append(path("chat/", include("yakuba.chat.urls")))


@pytest.fixture(autouse=True)
def _chat_urls(settings: SettingsWrapper) -> None:
    settings.ROOT_URLCONF = __name__


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def send(
    user: User, conversation: Conversation, text: str, *, thread_root: Message | None = None
) -> Message:
    membership = access.access_conversation_for_post(user, conversation.pk)
    message, _created = check_send_message(
        membership,
        text=text,
        client_key=str(uuid.uuid4()),
        thread_root_id=thread_root.pk if thread_root else None,
        acting_user=user,
    )
    return message


def boot_data(html: str) -> dict[str, Any]:
    """The json_script block the client starts from."""
    start = html.index('<script id="chat-boot" type="application/json">')
    start = html.index(">", start) + 1
    end = html.index("</script>", start)
    data: dict[str, Any] = json.loads(html[start:end])
    return data


# --- the client's shell ------------------------------------------------------------------


def test_it_shows_the_chat_page_to_staff_with_their_conversations(
    alice: User, bunsho_channel: Conversation, project: Conversation
) -> None:
    response = client_for(alice).get("/chat/")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'src="/static/yakuba/chat.js"' in html
    assert "<script>" not in html  # nothing inline: the CSP refuses it
    boot = boot_data(html)
    assert boot["user"] == alice.pk
    names = {c["name"]: c["kind"] for c in boot["conversations"]}
    assert names["総務部 総務課 文書係"] == "department"
    assert names["新庁舎移転プロジェクト"] == "project"
    assert boot["strings"]["unread_from_here"] == "ここから未読"


def test_it_counts_unread_messages_in_the_first_list(
    alice: User, bob: User, bunsho_channel: Conversation
) -> None:
    send(alice, bunsho_channel, "朝会の時間を教えてください")  # her own: not unread
    send(bob, bunsho_channel, "朝会は9時からです")
    send(bob, bunsho_channel, "資料は共有フォルダにあります")

    boot = boot_data(client_for(alice).get("/chat/").content.decode())

    row = next(c for c in boot["conversations"] if c["id"] == bunsho_channel.pk)
    assert row["unread"] == 2
    assert row["read_receipts"] is True


def test_it_names_the_other_person_of_a_direct_message(alice: User, bob: User) -> None:
    from yakuba.chat.actions.conversations import do_get_or_create_direct

    direct, _created = do_get_or_create_direct(alice, bob, acting_user=alice)

    boot = boot_data(client_for(alice).get("/chat/").content.decode())

    row = next(c for c in boot["conversations"] if c["id"] == direct.pk)
    assert row["kind"] == "direct"
    assert row["other_user"] == bob.pk
    assert row["name"] == bob.display_name


def test_it_sends_signed_out_visitors_to_sign_in(db: None) -> None:
    for url in ("/chat/", "/chat/search/?q=予約"):
        response = Client().get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")


def test_it_lists_only_the_channels_a_guest_was_invited_to(
    alice: User, guest: User, bunsho_channel: Conversation, project: Conversation
) -> None:
    invited = do_create_project_channel(
        name="バス協定の調整",
        description="災害時の避難者輸送",
        is_private=True,
        owners=[alice],
        members=[],
        acting_user=alice,
    )
    do_add_members(invited, [guest], acting_user=alice)

    response = client_for(guest).get("/chat/")

    assert response.status_code == 200
    boot = boot_data(response.content.decode())
    assert [c["id"] for c in boot["conversations"]] == [invited.pk]


# --- search ------------------------------------------------------------------------------


def test_it_finds_messages_of_conversations_the_searcher_may_read(
    alice: User,
    bob: User,
    charlie: User,
    bunsho_channel: Conversation,
    channels: dict[str, Conversation],
) -> None:
    found = send(bob, bunsho_channel, "明日の会議室の予約をお願いします")
    send(charlie, channels["koseki"], "窓口の予約は停止中です")

    response = client_for(alice).get("/chat/search/", {"q": "予約"})

    assert response.status_code == 200
    html = response.content.decode()
    assert f'data-result="{found.pk}"' in html
    assert "<mark>予約</mark>" in html
    assert "窓口の予約" not in html  # 戸籍住民課 is not Alice's
    assert f"/chat/?c={bunsho_channel.pk}&amp;m={found.pk}" in html

    response = client_for(charlie).get("/chat/search/", {"q": "予約"})
    html = response.content.decode()
    assert "窓口の" in html
    assert f'data-result="{found.pk}"' not in html


def test_it_filters_search_results_by_conversation_and_person(
    alice: User,
    bob: User,
    bunsho_channel: Conversation,
    project: Conversation,
) -> None:
    by_bob = send(bob, bunsho_channel, "書庫の整理を始めます")
    by_alice = send(alice, project, "書庫の整理は来週です")
    client = client_for(alice)

    in_project = {"q": "書庫", "conversation": str(project.pk)}
    html = client.get("/chat/search/", in_project).content.decode()
    assert f'data-result="{by_alice.pk}"' in html
    assert f'data-result="{by_bob.pk}"' not in html

    html = client.get("/chat/search/", {"q": "書庫", "person": "bob"}).content.decode()
    assert f'data-result="{by_bob.pk}"' in html
    assert f'data-result="{by_alice.pk}"' not in html


def test_it_says_what_is_wrong_with_a_search(alice: User, bunsho_channel: Conversation) -> None:
    client = client_for(alice)

    response = client.get(
        "/chat/search/",
        {"q": "予約", "date_from": "2026-05-02", "date_to": "2026-05-01"},
    )
    assert response.status_code == 200
    assert "期間の「から」は「まで」より前の日にしてください。" in response.content.decode()

    response = client.get("/chat/search/", {"q": "予約", "person": "だれでもない人"})
    assert "その名前の人は見つかりません。" in response.content.decode()


def test_it_offers_only_the_searchers_conversations_to_filter_by(
    alice: User, charlie: User, channels: dict[str, Conversation]
) -> None:
    html = client_for(alice).get("/chat/search/").content.decode()

    assert f'<option value="{channels["bunsho"].pk}">総務部 総務課 文書係</option>' in html
    assert f'value="{channels["koseki"].pk}"' not in html


def test_it_links_a_reply_found_by_search_to_its_thread(
    alice: User, bob: User, bunsho_channel: Conversation
) -> None:
    root = send(alice, bunsho_channel, "来週の当番表です")
    reply = send(bob, bunsho_channel, "当番を交代してください", thread_root=root)

    html = client_for(alice).get("/chat/search/", {"q": "交代"}).content.decode()

    assert f'data-result="{reply.pk}"' in html
    assert f"/chat/?c={bunsho_channel.pk}&amp;m={root.pk}&amp;thread=1" in html


# --- the pickers' look-ups (?people= / ?channels=1) ----------------------------------------


def test_it_finds_staff_by_name_or_kana_for_the_pickers_with_their_user_names(
    alice: User, bob: User, charlie: User
) -> None:
    client = client_for(alice)

    by_name = client.get("/chat/", {"people": "千葉"}, HTTP_ACCEPT="application/json").json()
    by_kana = client.get("/chat/", {"people": "ばんどう"}).json()
    herself = client.get("/chat/", {"people": "青木"}).json()

    assert [(p["username"], p["name"], p["detail"]) for p in by_name["items"]] == [
        ("charlie", "千葉 茶太郎", "戸籍住民課")
    ]
    assert [p["username"] for p in by_kana["items"]] == ["bob"]
    assert herself["items"] == []  # nobody picks themselves
    assert client.get("/chat/", {"people": "  "}).json()["items"] == []


def test_it_offers_guests_only_when_asked_for_a_project_channel_and_never_to_guests(
    alice: User, guest: User, project: Conversation
) -> None:
    client = client_for(alice)

    plain = client.get("/chat/", {"people": "ジーナ"}).json()["items"]
    with_guests = client.get("/chat/", {"people": "ジーナ", "guests": "1"}).json()["items"]
    do_add_members(project, [guest], acting_user=alice)
    as_guest = client_for(guest).get("/chat/", {"people": "青木", "guests": "1"}).json()

    assert plain == []
    assert [(p["username"], p["kind"]) for p in with_guests] == [("gina", "guest")]
    assert as_guest["items"] == []  # the directory is for staff only


def test_it_lists_public_channels_to_join_but_not_private_joined_or_archived_ones(
    alice: User, bob: User, charlie: User, project: Conversation
) -> None:
    from yakuba.chat.actions.conversations import do_archive

    secret = do_create_project_channel(name="人事異動の準備", is_private=True, acting_user=alice)
    old = do_create_project_channel(name="旧庁舎の解体", acting_user=alice)
    do_archive(old, acting_user=alice)

    for_charlie = client_for(charlie).get("/chat/", {"channels": "1"}).json()["items"]
    for_bob = client_for(bob).get("/chat/", {"channels": "1"}).json()["items"]

    assert [(c["id"], c["name"], c["members"]) for c in for_charlie] == [
        (project.pk, "新庁舎移転プロジェクト", 2)
    ]
    assert for_bob == []  # a member already
    assert secret.pk not in [c["id"] for c in for_charlie]


def test_it_gives_the_client_the_texts_of_the_new_dialogs(alice: User) -> None:
    html = client_for(alice).get("/chat/").content.decode()
    boot = boot_data(html)

    assert boot["page_url"] == "/chat/"
    assert boot["strings"]["notices_readonly"] == "このお知らせには返信できません"
    for dialog in ('id="chat-new"', 'id="chat-browse"', 'id="chat-settings"'):
        assert dialog in html
    assert 'data-group="notices"' in html

"""Bots: made by IT administrators (API and ``yakuba chatbot``), reading and posting only
where they are members through the same API as people, rate limited; their outgoing
webhook is called on a mention, signed, and its answer posted in the thread."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from yakuba.audit.models import AuditEntry
from yakuba.audit.record import Actor
from yakuba.chat.actions import ChatError
from yakuba.chat.models import Conversation, Membership, Message, OutgoingWebhook
from yakuba.chat.webhooks import (
    NewBot,
    check_bot_rate,
    do_add_bot_to_conversations,
    do_create_bot,
    on_message_sent,
    signature,
)
from yakuba.directory.actions.auth import do_create_token
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.tasks.models import Job
from yakuba.tasks.worker import run_once

CaptureCallbacks = Callable[..., Any]


@pytest.fixture(autouse=True)
def _fresh_rate_counters() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


def body(response: Any) -> Any:
    return json.loads(response.content)


def bearer(raw: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}")


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def send_url(conversation: Conversation) -> str:
    return f"/api/chat/conversations/{conversation.pk}/messages"


def say(client: Client, conversation: Conversation, text: str, key: str, **extra: Any) -> Any:
    return client.post(
        send_url(conversation),
        {"text": text, "client_key": key, **extra},
        content_type="application/json",
    )


class Receiver:
    """A tiny HTTP server on 127.0.0.1 standing in for the bot's own service."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[tuple[int, str, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                receiver.calls.append((dict(self.headers.items()), self.rfile.read(length)))
                status, content_type, answer = (
                    receiver.answers.pop(0) if receiver.answers else (204, "text/plain", b"")
                )
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/yakuba"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer_json(self, data: Any, status: int = 200) -> None:
        self.answers.append((status, "application/json", json.dumps(data).encode()))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


@pytest.fixture
def helper(project: Conversation, ida: User) -> NewBot:
    """「庁内ヘルプ」: a bot in the project channel, made by Ida (IT administrator)."""
    return do_create_bot(
        username="helper-bot",
        display_name="庁内ヘルプ",
        conversations=[project],
        acting_user=ida,
    )


def test_it_lets_an_it_admin_create_a_bot_that_posts_and_reads_in_its_channel(
    project: Conversation, bunsho_channel: Conversation, ida: User, alice: User
) -> None:
    response = signed_in(ida).post(
        "/api/chat/bots",
        {"username": "alert-bot", "display_name": "防災通知", "conversations": [project.pk]},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    created = body(response)
    assert created["conversations"] == [project.pk]
    bot = User.objects.get(username="alert-bot")
    assert (bot.kind, bot.display_name, bot.has_usable_password()) == (
        User.Kind.BOT,
        "防災通知",
        False,
    )
    client = bearer(created["token"])

    sent = say(client, project, "本日15時に避難訓練を行います。", "drill-1")
    assert sent.status_code == 201, sent.content
    assert body(sent)["sender"] == bot.pk
    again = say(client, project, "本日15時に避難訓練を行います。", "drill-1")
    assert again.status_code == 200
    listed = client.get(send_url(project))
    assert listed.status_code == 200
    assert [m["text"] for m in body(listed)["items"]] == ["本日15時に避難訓練を行います。"]

    # Not a member of 文書係's channel: neither post nor read.
    assert say(client, bunsho_channel, "x", "x-1").status_code == 403
    assert client.get(send_url(bunsho_channel)).status_code == 403
    assert Message.objects.filter(sender=bot).count() == 1

    changes = AuditEntry.objects.filter(target_type="directory.user", target_id=str(bot.pk))
    assert {e.action for e in changes} >= {"chat.bot_changed"}
    assert AuditEntry.objects.filter(action="auth.token_created", actor_id=ida.pk).exists()
    assert created["token"] not in json.dumps(list(AuditEntry.objects.values_list("details")))

    # People other than IT administrators may not make bots.
    refused = signed_in(alice).post(
        "/api/chat/bots",
        {"username": "my-bot", "conversations": [project.pk]},
        content_type="application/json",
    )
    assert refused.status_code == 403
    assert body(refused)["error"]["code"] == "forbidden"
    assert not User.objects.filter(username="my-bot").exists()
    listing = body(signed_in(ida).get("/api/chat/bots"))["items"]
    assert [(b["username"], b["conversations"]) for b in listing] == [("alert-bot", [project.pk])]


def test_it_refuses_a_token_without_the_chat_scope(
    project: Conversation, helper: NewBot, ida: User
) -> None:
    _token, raw = do_create_token(
        helper.user, name="読み取り専用", scopes=["api:read"], expires_at=None, acting_user=ida
    )
    response = say(bearer(raw), project, "x", "scope-1")
    assert response.status_code == 403
    assert body(response)["error"]["code"] == "forbidden"
    assert bearer(raw).get(send_url(project)).status_code == 403
    assert not Message.objects.filter(sender=helper.user).exists()
    assert AuditEntry.objects.filter(
        action="auth.denied", actor_id=helper.user.pk, details__what="chat.api_token_scope"
    ).exists()


def test_it_rate_limits_a_bot_through_the_api_throttle(
    project: Conversation, helper: NewBot, settings: SettingsWrapper
) -> None:
    settings.API_RATE_PER_MINUTE = 3
    client = bearer(helper.raw_token)
    statuses = [say(client, project, f"{n}", f"rate-{n}").status_code for n in range(4)]
    assert statuses == [201, 201, 201, 429]
    assert Message.objects.filter(sender=helper.user).count() == 3


def test_it_joins_bots_to_project_channels_only(bunsho_channel: Conversation, ida: User) -> None:
    with pytest.raises(ChatError) as refused:
        do_create_bot(
            username="dept-bot", display_name="", conversations=[bunsho_channel], acting_user=ida
        )
    assert "プロジェクトチャンネル" in refused.value.message
    assert not User.objects.filter(username="dept-bot").exists()


def test_it_creates_lists_and_revokes_bots_from_the_command_line(
    project: Conversation,
) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "chatbot",
        "create",
        "roster-bot",
        "--conversation",
        str(project.pk),
        "--display-name",
        "名簿同期",
        stdout=out,
        stderr=err,
    )
    raw = out.getvalue().strip()
    assert raw.startswith("ykb_")
    assert "今だけ表示" in err.getvalue()
    bot = User.objects.get(username="roster-bot")
    assert Membership.objects.filter(conversation=project, user=bot).exists()
    assert say(bearer(raw), project, "同期しました", "sync-1").status_code == 201

    listing = io.StringIO()
    call_command("chatbot", "list", stdout=listing)
    assert f"{bot.pk}\troster-bot\t名簿同期\t{project.pk}\t-\tactive" in listing.getvalue()
    assert raw not in listing.getvalue()

    with pytest.raises(CommandError, match="見つかりません"):
        call_command("chatbot", "create", "x-bot", "--conversation", "999999")
    with pytest.raises(CommandError, match="使われています"):
        call_command("chatbot", "create", "roster-bot", "--conversation", str(project.pk))

    revoked = io.StringIO()
    call_command("chatbot", "revoke", "roster-bot", stdout=revoked)
    assert "停止しました" in revoked.getvalue()
    assert say(bearer(raw), project, "まだ使える？", "sync-2").status_code == 401
    bot.refresh_from_db()
    assert bot.is_active is False


def test_it_calls_the_outgoing_webhook_on_a_mention_and_posts_its_answer_in_the_thread(
    project: Conversation,
    alice: User,
    ida: User,
    receiver: Receiver,
    django_capture_on_commit_callbacks: CaptureCallbacks,
) -> None:
    bot = do_create_bot(
        username="helper-bot",
        display_name="庁内ヘルプ",
        conversations=[project],
        outgoing_url=receiver.url,
        acting_user=ida,
    )
    assert bot.outgoing_secret
    receiver.answer_json({"text": "第3会議室が14時から空いています。"})
    with django_capture_on_commit_callbacks(execute=True):
        sent = say(signed_in(alice), project, "@helper-bot 今日の午後に空いている会議室は？", "q1")
        plain = say(signed_in(alice), project, "ありがとう", "q2")
    assert (sent.status_code, plain.status_code) == (201, 201)
    question = Message.objects.get(pk=body(sent)["id"])
    assert question.mentions == [bot.user.pk]
    assert Job.objects.filter(name="chat.outgoing_webhook").count() == 1

    run_once("test-worker")

    [(headers, raw)] = receiver.calls
    expected = "sha256=" + hmac.new(bot.outgoing_secret.encode(), raw, hashlib.sha256).hexdigest()
    assert headers["X-Yakuba-Signature"] == expected == signature(bot.outgoing_secret, raw)
    assert headers["Content-Type"].startswith("application/json")
    call = json.loads(raw)
    assert call["conversation"]["id"] == project.pk
    assert call["message"]["id"] == question.pk
    assert call["message"]["text"] == "@helper-bot 今日の午後に空いている会議室は？"
    assert call["bot"] == {"id": bot.user.pk, "username": "helper-bot", "name": "庁内ヘルプ"}

    [reply] = Message.objects.filter(sender=bot.user)
    assert reply.text == "第3会議室が14時から空いています。"
    assert reply.thread_root_id == question.pk
    question.refresh_from_db()
    assert question.reply_count == 1

    # The job run again (a lost answer, a second worker) posts no second reply.
    receiver.answer_json({"text": "第3会議室が14時から空いています。"})
    on_message_sent(question)
    run_once("test-worker")
    assert Message.objects.filter(sender=bot.user).count() == 1


def test_it_retries_an_outgoing_webhook_that_fails_with_backoff(
    project: Conversation,
    alice: User,
    ida: User,
    receiver: Receiver,
    django_capture_on_commit_callbacks: CaptureCallbacks,
) -> None:
    bot = do_create_bot(
        username="helper-bot",
        display_name="庁内ヘルプ",
        conversations=[project],
        outgoing_url=receiver.url,
        acting_user=ida,
    )
    receiver.answers.append((503, "text/plain", b"busy"))
    receiver.answer_json({"text": "復旧しました"})
    with django_capture_on_commit_callbacks(execute=True):
        say(signed_in(alice), project, "@helper-bot 状況は？", "q1")
    run_once("test-worker")
    job = Job.objects.get(name="chat.outgoing_webhook")
    assert job.status == Job.Status.QUEUED
    assert "HTTP 503" in job.last_error
    assert job.run_after > clock.now()
    assert not Message.objects.filter(sender=bot.user).exists()

    clock.advance(job.run_after - clock.now())
    run_once("test-worker")
    job.refresh_from_db()
    assert job.status == Job.Status.DONE
    assert len(receiver.calls) == 2
    assert Message.objects.get(sender=bot.user).text == "復旧しました"


def test_it_calls_no_webhook_for_a_bot_that_is_not_a_member_nor_for_a_bots_message(
    project: Conversation,
    alice: User,
    bob: User,
    ida: User,
    receiver: Receiver,
    django_capture_on_commit_callbacks: CaptureCallbacks,
) -> None:
    from yakuba.chat.actions.conversations import do_remove_member

    bot = do_create_bot(
        username="helper-bot",
        display_name="庁内ヘルプ",
        conversations=[project],
        outgoing_url=receiver.url,
        acting_user=ida,
    )
    hook = OutgoingWebhook.objects.get(bot=bot.user)
    with django_capture_on_commit_callbacks(execute=True):
        say(signed_in(alice), project, "@helper-bot 1", "q1")
    # Removed before the job ran: the message is not sent out.
    do_remove_member(project, bot.user, acting_user=alice)
    run_once("test-worker")
    assert receiver.calls == []
    with django_capture_on_commit_callbacks(execute=True):
        say(signed_in(bob), project, "@helper-bot 2", "q2")
    assert Job.objects.filter(name="chat.outgoing_webhook").count() == 1
    hook.refresh_from_db()
    assert hook.is_active

    # A bot's message never calls a webhook: two bots could answer each other for ever.
    do_add_bot_to_conversations(bot.user, [project], acting_user=ida)
    relay = do_create_bot(
        username="relay-bot",
        display_name="転送",
        conversations=[project],
        outgoing_url=receiver.url,
        acting_user=ida,
    )
    calls = Job.objects.filter(name="chat.outgoing_webhook").count()
    with django_capture_on_commit_callbacks(execute=True):
        response = say(bearer(relay.raw_token), project, "@helper-bot よろしく", "r1")
    assert response.status_code == 201
    assert Message.objects.get(pk=body(response)["id"]).mentions == [bot.user.pk]
    assert Job.objects.filter(name="chat.outgoing_webhook").count() == calls
    # While a person's mention of it does.
    with django_capture_on_commit_callbacks(execute=True):
        response = say(signed_in(alice), project, "@relay-bot 了解", "r2")
    assert Job.objects.filter(name="chat.outgoing_webhook").count() == calls + 1


def test_it_lets_only_an_it_admin_register_an_outgoing_url(
    project: Conversation, ida: User
) -> None:
    with pytest.raises(ChatError) as refused:
        do_create_bot(
            username="bad-bot",
            display_name="",
            conversations=[project],
            outgoing_url="ftp://127.0.0.1/x",
            acting_user=ida,
        )
    assert refused.value.field == "outgoing_url"
    response = signed_in(ida).post(
        "/api/chat/bots",
        {"username": "bad bot", "conversations": [project.pk]},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "username" in body(response)["error"]["fields"]
    operator = Actor.system("test")
    made = do_create_bot(username="ok-bot", display_name="", conversations=[], acting_user=operator)
    assert made.user.display_name == "ok-bot"


def test_it_offers_a_per_bot_limit_for_the_send_route(
    helper: NewBot, alice: User, settings: SettingsWrapper
) -> None:
    settings.CHAT_WEBHOOK_RATE_PER_MINUTE = 2
    with clock.frozen_at(dt.datetime(2026, 4, 1, 0, 0, 30, tzinfo=dt.UTC)):
        check_bot_rate(helper.user)
        check_bot_rate(helper.user)
        with pytest.raises(ChatError) as limited:
            check_bot_rate(helper.user)
        assert (limited.value.status, limited.value.details) == (429, {"retry_after": 30})
        # People are limited by the API's throttle only.
        for _ in range(3):
            check_bot_rate(alice)
        clock.advance(dt.timedelta(seconds=30))
        check_bot_rate(helper.user)


def test_it_lists_bots_in_a_fixed_number_of_queries(
    project: Conversation, ida: User, receiver: Receiver
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = signed_in(ida)

    def listed() -> tuple[int, list[Any]]:
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/api/chat/bots")
        assert response.status_code == 200
        return len(queries), body(response)["items"]

    do_create_bot(username="a-bot", display_name="", conversations=[project], acting_user=ida)
    listed()  # the first request warms per-process caches
    one, _items = listed()
    for name in ("b-bot", "c-bot"):
        do_create_bot(
            username=name,
            display_name="",
            conversations=[project],
            outgoing_url=receiver.url,
            acting_user=ida,
        )
    three, items = listed()
    # Session and user, the admin check, the bots, their memberships, their webhooks.
    assert three == one
    assert [(b["username"], b["conversations"], b["outgoing_url"]) for b in items] == [
        ("a-bot", [project.pk], None),
        ("b-bot", [project.pk], receiver.url),
        ("c-bot", [project.pk], receiver.url),
    ]

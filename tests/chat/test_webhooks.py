"""Incoming webhooks: the secret URL posts a message; every bad request gets a 4xx in the
one error format and posts nothing; managers create, list and revoke them (audited)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from yakuba.audit.models import AuditEntry
from yakuba.chat.models import Conversation, IncomingWebhook, Message
from yakuba.chat.webhooks import do_create_incoming_webhook, do_revoke_incoming_webhook
from yakuba.directory.models import User
from yakuba.lib import clock

from ..conftest import service_missing


@pytest.fixture(autouse=True)
def _fresh_rate_counters() -> Iterator[None]:
    # The counters live in the cache, which outlives each test's database.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def hook(project: Conversation, alice: User) -> tuple[IncomingWebhook, str]:
    return do_create_incoming_webhook(project, name="防災情報システム", acting_user=alice)


def body(response: Any) -> Any:
    return json.loads(response.content)


def post(secret: str, data: Any, *, raw: bytes | None = None, **extra: Any) -> Any:
    content_type = extra.pop("content_type", "application/json")
    payload = raw if raw is not None else json.dumps(data, ensure_ascii=False).encode()
    return Client().post(
        f"/api/chat/hooks/{secret}", data=payload, content_type=content_type, **extra
    )


def messages(conversation: Conversation) -> list[Message]:
    return list(Message.objects.filter(conversation=conversation).order_by("seq"))


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    error = body(response)["error"]
    assert error["code"] == code
    assert error["message"]
    assert error["message_en"]
    assert "fields" in error
    return dict(error)


def test_it_posts_a_message_with_the_webhooks_name(
    hook: tuple[IncomingWebhook, str], project: Conversation, alice: User
) -> None:
    webhook, secret = hook
    assert webhook.digest == hashlib.sha256(secret.encode()).hexdigest()
    response = post(secret, {"text": "【避難指示】中野区全域に避難指示が出ました。"})
    assert response.status_code == 201, response.content
    [message] = messages(project)
    assert body(response) == {
        "message": message.pk,
        "conversation": project.pk,
        "seq": message.seq,
    }
    assert message.kind == Message.Kind.WEBHOOK
    assert message.sender_id is None
    assert message.sender_label == "防災情報システム"
    assert message.text == "【避難指示】中野区全域に避難指示が出ました。"
    webhook.refresh_from_db()
    assert webhook.last_used_at is not None


def test_it_shows_the_payloads_username_as_the_label(
    hook: tuple[IncomingWebhook, str], project: Conversation
) -> None:
    _webhook, secret = hook
    # Slack's shape: the same fields.
    response = post(secret, {"text": "サーバー停止", "username": "  監視  システム "})
    assert response.status_code == 201, response.content
    [message] = messages(project)
    assert message.sender_label == "監視 システム"


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "code", "says"),
    [
        (b'{"text": "a"}', "text/plain", 415, "unsupported_media_type", "application/json"),
        (b"text=a", "application/x-www-form-urlencoded", 415, "unsupported_media_type", "JSON"),
        (b'{"text": "a",}', "application/json", 400, "bad_json", "1行14文字目"),
        (b"\xff\xfe", "application/json", 400, "bad_json", "UTF-8"),
        (b'["a"]', "application/json", 400, "invalid", "オブジェクト"),
        (b'{"text": 5}', "application/json", 400, "invalid", "文字列"),
        (b"{}", "application/json", 400, "invalid", "text"),
        (b'{"text": "  \\n "}', "application/json", 400, "invalid", "空"),
        (b'{"text": "a", "username": 3}', "application/json", 400, "invalid", "username"),
        (
            b'{"text": "a", "username": "' + b"x" * 51 + b'"}',
            "application/json",
            400,
            "invalid",
            "50",
        ),
    ],
)
def test_it_refuses_a_bad_payload_with_a_clear_4xx_and_posts_nothing(
    hook: tuple[IncomingWebhook, str],
    project: Conversation,
    raw: bytes,
    content_type: str,
    status: int,
    code: str,
    says: str,
) -> None:
    _webhook, secret = hook
    response = post(secret, None, raw=raw, content_type=content_type)
    error = assert_error(response, status, code)
    assert says in error["message"] + json.dumps(error["fields"], ensure_ascii=False)
    assert messages(project) == []


def test_it_refuses_a_body_over_the_limit_by_its_length_and_by_what_was_read(
    hook: tuple[IncomingWebhook, str], project: Conversation, settings: SettingsWrapper
) -> None:
    settings.CHAT_WEBHOOK_MAX_BYTES = 1024
    _webhook, secret = hook
    big = {"text": "あ" * 400}  # 1,200 bytes of UTF-8
    assert_error(post(secret, big), 413, "payload_too_large")
    # A client that understates Content-Length: nothing past it is read, so the body is
    # cut short and answered as malformed, never read whole into memory.
    raw = json.dumps(big, ensure_ascii=False).encode()
    assert_error(post(secret, None, raw=raw, CONTENT_LENGTH="10"), 400, "bad_json")
    assert messages(project) == []
    assert post(secret, {"text": "あ" * 300}).status_code == 201


def test_it_answers_404_for_an_unknown_or_revoked_secret(
    hook: tuple[IncomingWebhook, str], project: Conversation, alice: User
) -> None:
    webhook, secret = hook
    assert_error(post(secret[:-2] + "xx", {"text": "a"}), 404, "not_found")
    assert_error(post("not-a-secret", {"text": "a"}), 404, "not_found")
    assert do_revoke_incoming_webhook(webhook, acting_user=alice) is True
    assert do_revoke_incoming_webhook(webhook, acting_user=alice) is False
    assert_error(post(secret, {"text": "a"}), 404, "not_found")
    assert messages(project) == []
    actions = list(
        AuditEntry.objects.filter(
            target_type="chat.incomingwebhook", target_id=str(webhook.pk)
        ).values_list("action", flat=True)
    )
    assert actions == ["chat.webhook_created", "chat.webhook_revoked"]


def test_it_answers_409_for_an_archived_conversation(
    hook: tuple[IncomingWebhook, str], project: Conversation, alice: User
) -> None:
    from yakuba.chat.actions.conversations import do_archive

    _webhook, secret = hook
    do_archive(project, acting_user=alice)
    assert_error(post(secret, {"text": "a"}), 409, "archived")
    assert messages(project) == []


def test_it_limits_the_rate_per_webhook_and_lets_it_post_again_the_next_minute(
    hook: tuple[IncomingWebhook, str],
    project: Conversation,
    alice: User,
    settings: SettingsWrapper,
) -> None:
    settings.CHAT_WEBHOOK_RATE_PER_MINUTE = 3
    _webhook, secret = hook
    _other, other_secret = do_create_incoming_webhook(project, name="別システム", acting_user=alice)
    with clock.frozen_at(dt.datetime(2026, 4, 1, 0, 0, 10, tzinfo=dt.UTC)):
        for n in range(3):
            assert post(secret, {"text": f"{n}"}).status_code == 201
        response = post(secret, {"text": "4"})
        assert_error(response, 429, "rate_limited")
        assert response["Retry-After"] == "50"
        # Another webhook has its own count.
        assert post(other_secret, {"text": "other"}).status_code == 201
        clock.advance(dt.timedelta(seconds=50))
        assert post(secret, {"text": "5"}).status_code == 201
    assert [m.text for m in messages(project)] == ["0", "1", "2", "other", "5"]


def test_it_shares_the_rate_count_between_processes_through_redis(
    hook: tuple[IncomingWebhook, str],
    project: Conversation,
    settings: SettingsWrapper,
    redis_url: str,
) -> None:
    import redis

    from yakuba.chat import webhooks

    settings.REDIS_URL = redis_url
    settings.REDIS_PREFIX = f"yakuba-test-{project.pk}-{clock.now().timestamp()}"
    settings.CHAT_WEBHOOK_RATE_PER_MINUTE = 2
    webhooks._redis_client.cache_clear()
    webhook, secret = hook
    try:
        with clock.frozen_at(dt.datetime(2026, 4, 1, 0, 0, 10, tzinfo=dt.UTC)):
            assert post(secret, {"text": "1"}).status_code == 201
            # Another worker counted one more in Redis: this process sees it.
            window = int(clock.now().timestamp() // 60)
            key = f"{settings.REDIS_PREFIX}:chat-rate:hook:{webhook.pk}:{window}"
            client = redis.Redis.from_url(redis_url)
            assert client.get(key) == b"1"
            client.incr(key)
            assert_error(post(secret, {"text": "3"}), 429, "rate_limited")
    except redis.RedisError as exc:  # pragma: no cover - a server that went away
        service_missing(f"Redis failed: {exc}")
    finally:
        webhooks._redis_client.cache_clear()
    assert [m.text for m in messages(project)] == ["1"]


def test_it_posts_once_for_a_repeated_idempotency_key(
    hook: tuple[IncomingWebhook, str], project: Conversation, alice: User
) -> None:
    _webhook, secret = hook
    first = post(secret, {"text": "地震速報"}, HTTP_IDEMPOTENCY_KEY="alert-2026-001")
    again = post(secret, {"text": "地震速報"}, HTTP_IDEMPOTENCY_KEY="alert-2026-001")
    assert (first.status_code, again.status_code) == (201, 200)
    assert body(first) == body(again)
    # The same key from another webhook is another message.
    _other, other_secret = do_create_incoming_webhook(project, name="別", acting_user=alice)
    assert (
        post(other_secret, {"text": "x"}, HTTP_IDEMPOTENCY_KEY="alert-2026-001").status_code == 201
    )
    assert post(secret, {"text": "続報"}, HTTP_IDEMPOTENCY_KEY="alert-2026-002").status_code == 201
    assert [m.text for m in messages(project)] == ["地震速報", "x", "続報"]
    assert_error(post(secret, {"text": "a"}, HTTP_IDEMPOTENCY_KEY="é" * 3), 400, "invalid")


def test_it_lets_managers_create_list_and_revoke_webhooks(
    project: Conversation, alice: User, bob: User, charlie: User
) -> None:
    owner = Client()
    owner.force_login(alice)
    url = f"/api/chat/conversations/{project.pk}/webhooks"
    response = owner.post(url, {"name": "防災情報"}, content_type="application/json")
    assert response.status_code == 201, response.content
    created = body(response)
    assert created["url"].endswith(f"/api/chat/hooks/{created['secret']}")
    webhook = IncomingWebhook.objects.get(pk=created["id"])
    assert created["secret"] not in webhook.digest
    assert webhook.prefix in created["secret"]
    listing = body(owner.get(url))["items"]
    assert [(w["id"], w["name"], w["revoked"]) for w in listing] == [
        (webhook.pk, "防災情報", False)
    ]
    assert "secret" not in listing[0]
    assert post(created["secret"], {"text": "試験"}).status_code == 201

    # Bob is a member, not an owner; Charlie is an outsider: both refused and logged.
    for person in (bob, charlie):
        client = Client()
        client.force_login(person)
        assert_error(client.get(url), 403, "forbidden")
        assert_error(
            client.post(url, {"name": "x"}, content_type="application/json"), 403, "forbidden"
        )
        assert_error(client.delete(f"/api/chat/webhooks/{webhook.pk}"), 403, "forbidden")
    assert AuditEntry.objects.filter(action="auth.denied", actor_id=charlie.pk).exists()

    assert_error(owner.post(url, {"name": "  "}, content_type="application/json"), 400, "invalid")
    assert owner.delete(f"/api/chat/webhooks/{webhook.pk}").status_code == 204
    assert_error(post(created["secret"], {"text": "試験"}), 404, "not_found")
    assert body(owner.get(url))["items"][0]["revoked"] is True
    assert_error(owner.delete("/api/chat/webhooks/999999"), 404, "not_found")
    entry = AuditEntry.objects.get(action="chat.webhook_created")
    assert entry.actor_id == alice.pk
    assert created["secret"] not in json.dumps(entry.details)


def test_it_needs_no_session_or_csrf_token_for_the_secret_url(
    hook: tuple[IncomingWebhook, str], project: Conversation
) -> None:
    _webhook, secret = hook
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        f"/api/chat/hooks/{secret}", data={"text": "a"}, content_type="application/json"
    )
    assert response.status_code == 201, response.content
    assert len(messages(project)) == 1


def test_it_posts_once_when_the_same_key_arrives_twice_at_the_same_moment(
    transactional_db: None, project: Conversation, alice: User
) -> None:
    from django.db import connection

    _webhook, secret = do_create_incoming_webhook(project, name="防災", acting_user=alice)
    barrier = threading.Barrier(4)
    statuses: list[int] = []

    def send() -> None:
        try:
            barrier.wait(timeout=10)
            response = post(secret, {"text": "震度5弱"}, HTTP_IDEMPOTENCY_KEY="quake-1")
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [200, 200, 200, 201]
    assert [m.text for m in messages(project)] == ["震度5弱"]


def test_it_answers_400_for_json_nested_too_deeply(
    hook: tuple[IncomingWebhook, str], project: Conversation
) -> None:
    # 60,000 nested arrays fit under the 64 KiB limit and exhaust Python's recursion.
    _webhook, secret = hook
    error = assert_error(post(secret, None, raw=b"[" * 60000), 400, "bad_json")
    assert "JSON" in error["message"]
    assert messages(project) == []


def test_it_never_writes_the_secret_to_the_log(
    hook: tuple[IncomingWebhook, str], project: Conversation, caplog: pytest.LogCaptureFixture
) -> None:
    # Django logs every 4xx with its path ("Not Found: /api/chat/hooks/…"); the path of
    # a hook is its secret, which must not end up in log files.
    _webhook, secret = hook
    with caplog.at_level("DEBUG"):
        assert post(secret, None, raw=b"{").status_code == 400
        assert post(secret, {"text": " "}).status_code == 400
        assert post(secret, {"text": "a"}, content_type="text/plain").status_code == 415
        assert post(secret[:-2] + "xx", {"text": "a"}).status_code == 404
        assert post(secret, {"text": "a"}).status_code == 201
    logged = caplog.text + " ".join(str(r.args) for r in caplog.records)
    assert secret not in logged
    assert secret[:-2] + "xx" not in logged
    random_part = secret[len("ykh_") + 9 :]  # after "ykh_<8 hex>_"
    assert random_part[:12] not in logged


def test_it_refuses_control_characters_in_the_username(
    hook: tuple[IncomingWebhook, str], project: Conversation
) -> None:
    # PostgreSQL cannot store NUL in text: this was a 500 there.
    _webhook, secret = hook
    error = assert_error(post(secret, {"text": "a", "username": "防災\u0000"}), 400, "invalid")
    assert "username" in error["fields"]
    assert messages(project) == []


def test_it_makes_no_webhook_into_a_direct_message(alice: User, bob: User, ida: User) -> None:
    # Only IT "manages" a direct message; a system posting into two people's
    # conversation would pass for part of it.
    from yakuba.chat.actions.conversations import do_get_or_create_direct

    direct, _created = do_get_or_create_direct(alice, bob, acting_user=alice)
    it = Client()
    it.force_login(ida)
    response = it.post(
        f"/api/chat/conversations/{direct.pk}/webhooks",
        {"name": "監視"},
        content_type="application/json",
    )
    assert_error(response, 403, "forbidden")
    assert not IncomingWebhook.objects.exists()

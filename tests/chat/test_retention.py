"""Retention (保存期間) and legal hold (訴訟ホールド): which days apply, the daily purge
with the clock moved (rows, files, search rows, audit), holds, threads, and who may
change the settings over the API."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.db import connections as db_connections
from pytest_django.fixtures import Settings as SettingsWrapper

from yakuba.audit.models import AuditAction, AuditEntry
from yakuba.audit.record import Actor
from yakuba.chat import retention
from yakuba.chat.actions import ChatError
from yakuba.chat.actions.messages import do_delete_message, do_edit_message, do_toggle_reaction
from yakuba.chat.models import Attachment, Conversation, Message, MessageRevision, Reaction
from yakuba.chat.retention import (
    check_set_legal_hold,
    check_set_retention,
    effective_retention_days,
    run_retention,
)
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.tasks.registry import PERIODIC

from .test_search import as_user, found, send, upload

pytestmark = pytest.mark.django_db

DAY = dt.timedelta(days=1)


@pytest.fixture(autouse=True)
def media(settings: SettingsWrapper, tmp_path: Path) -> Path:
    folder = tmp_path / "chat-media"
    settings.CHAT_MEDIA_DIR = folder
    settings.CHAT_SCAN_COMMAND = ""
    settings.CHAT_RETENTION_DAYS = 0
    return folder


def stored_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def purge_entries() -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=AuditAction.CHAT_MESSAGES_PURGED).order_by("pk"))


def test_it_runs_daily() -> None:
    job = PERIODIC["chat.retention"]

    assert job.every == DAY
    assert job.function is retention.purge_expired_messages


def test_it_takes_the_conversations_days_else_the_global_setting(
    settings: SettingsWrapper, ida: User, bunsho_channel: Conversation, project: Conversation
) -> None:
    assert effective_retention_days(bunsho_channel) is None  # both unset: for ever
    settings.CHAT_RETENTION_DAYS = 365
    assert effective_retention_days(bunsho_channel) == 365

    check_set_retention(bunsho_channel, days=30, acting_user=ida)
    check_set_retention(project, days=0, acting_user=ida)
    bunsho_channel.refresh_from_db()
    project.refresh_from_db()

    assert effective_retention_days(bunsho_channel) == 30
    assert effective_retention_days(project) is None  # 0 here: for ever, whatever the global


def test_it_deletes_expired_messages_with_everything_that_hangs_from_them(
    alice: User,
    bob: User,
    ida: User,
    bunsho_channel: Conversation,
    media: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    check_set_retention(bunsho_channel, days=30, acting_user=ida)
    old = send(
        alice,
        bunsho_channel,
        "古い会議室の予約",
        attachment_ids=[upload(alice, bunsho_channel, "古い予約表.pdf")],
    )
    do_edit_message(old, text="古い会議室の予約（変更）", acting_user=alice)
    do_toggle_reaction(old, emoji="👍", add=True, acting_user=bob)
    gone = send(bob, bunsho_channel, "取り消した予約")
    do_delete_message(gone, acting_user=bob)
    assert len(stored_files(media)) == 1

    clock.advance(20 * DAY)
    recent = send(alice, bunsho_channel, "新しい会議室の予約")
    clock.advance(11 * DAY)

    # Files go after the batch commits.
    with django_capture_on_commit_callbacks(execute=True):
        results = run_retention()

    assert list(Message.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not MessageRevision.objects.exists()
    assert not Reaction.objects.exists()
    assert not Attachment.objects.exists()
    assert stored_files(media) == []
    assert found(alice, "会議室の予約") == [recent.pk]
    assert found(alice, "予約表") == []
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("SELECT rowid FROM chat_search")
            assert [row[0] for row in cursor.fetchall()] == [recent.pk]
    counts = results[bunsho_channel.pk]
    assert counts.messages == 2
    (entry,) = purge_entries()
    assert entry.target_id == str(bunsho_channel.pk)
    assert entry.actor_kind == "system"
    assert entry.details["retention_days"] == 30
    assert entry.details["counts"]["chat.message"] == 2
    assert entry.details["counts"]["chat.messagerevision"] == 2
    assert entry.details["counts"]["chat.reaction"] == 1
    assert entry.details["counts"]["chat.attachment"] == 1
    assert "予約" not in json.dumps(entry.details, ensure_ascii=False)


def test_it_follows_the_global_setting_and_keeps_what_is_set_to_forever(
    settings: SettingsWrapper,
    alice: User,
    ida: User,
    bunsho_channel: Conversation,
    project: Conversation,
) -> None:
    settings.CHAT_RETENTION_DAYS = 10
    check_set_retention(project, days=0, acting_user=ida)
    in_bunsho = send(alice, bunsho_channel, "総務の連絡")
    in_project = send(alice, project, "移転の連絡")

    clock.advance(9 * DAY)
    assert run_retention() == {}
    clock.advance(2 * DAY)
    run_retention()

    assert not Message.objects.filter(pk=in_bunsho.pk).exists()
    assert Message.objects.filter(pk=in_project.pk).exists()
    assert [e.target_id for e in purge_entries()] == [str(bunsho_channel.pk)]


def test_it_keeps_everything_under_legal_hold_until_the_hold_is_lifted(
    alice: User, erin: User, ida: User, bunsho_channel: Conversation
) -> None:
    check_set_retention(bunsho_channel, days=7, acting_user=ida)
    message = send(alice, bunsho_channel, "調査対象のやりとり")
    check_set_legal_hold(bunsho_channel, on=True, reason="令和8年(行ウ)第12号", acting_user=erin)

    clock.advance(100 * DAY)
    run_retention()
    assert Message.objects.filter(pk=message.pk).exists()
    assert purge_entries() == []

    check_set_legal_hold(bunsho_channel, on=False, reason="判決確定", acting_user=erin)
    run_retention()
    assert not Message.objects.filter(pk=message.pk).exists()
    assert len(purge_entries()) == 1


def test_it_stops_purging_at_the_next_batch_once_a_hold_is_set(
    alice: User,
    erin: User,
    ida: User,
    bunsho_channel: Conversation,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    check_set_retention(bunsho_channel, days=1, acting_user=ida)
    sent = [send(alice, bunsho_channel, f"連絡 {n}") for n in range(5)]
    clock.advance(2 * DAY)
    monkeypatch.setattr(retention, "PURGE_BATCH", 2)
    original = retention._files_of
    batches: list[list[int]] = []

    def hold_after_first_batch(ids: list[int]) -> list[tuple[str, str]]:
        batches.append(ids)
        if len(batches) == 1:
            # Set while the first batch is being deleted (its transaction has the lock).
            check_set_legal_hold(bunsho_channel, on=True, reason="調査", acting_user=erin)
        return original(ids)

    monkeypatch.setattr(retention, "_files_of", hold_after_first_batch)
    run_retention()

    assert batches == [[sent[0].pk, sent[1].pk]]
    assert list(Message.objects.order_by("pk").values_list("pk", flat=True)) == [
        m.pk for m in sent[2:]
    ]
    # What went before the hold is on record.
    (entry,) = purge_entries()
    assert entry.details["counts"]["chat.message"] == 2
    assert entry.details["stopped"] == "legal_hold"


def test_it_purges_in_batches_and_audits_once_per_conversation(
    alice: User, ida: User, bunsho_channel: Conversation, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "PURGE_BATCH", 2)
    check_set_retention(bunsho_channel, days=1, acting_user=ida)
    for n in range(5):
        send(alice, bunsho_channel, f"連絡 {n}")
    clock.advance(2 * DAY)

    run_retention()

    assert not Message.objects.exists()
    (entry,) = purge_entries()
    assert entry.details["counts"]["chat.message"] == 5


def test_it_keeps_a_thread_while_a_reply_is_within_the_period(
    alice: User, bob: User, ida: User, bunsho_channel: Conversation
) -> None:
    check_set_retention(bunsho_channel, days=30, acting_user=ida)
    root = send(alice, bunsho_channel, "新庁舎の書庫について")
    old_reply = send(bob, bunsho_channel, "了解です", thread_root_id=root.pk)
    clock.advance(20 * DAY)
    new_reply = send(bob, bunsho_channel, "追加の質問です", thread_root_id=root.pk)
    clock.advance(15 * DAY)

    run_retention()
    assert set(Message.objects.values_list("pk", flat=True)) == {root.pk, new_reply.pk}
    assert old_reply.pk not in set(Message.objects.values_list("pk", flat=True))

    clock.advance(20 * DAY)
    run_retention()
    assert not Message.objects.exists()


def test_it_audits_changes_of_retention_and_hold(
    erin: User, ida: User, bunsho_channel: Conversation
) -> None:
    check_set_retention(bunsho_channel, days=365, acting_user=ida)
    check_set_retention(bunsho_channel, days=365, acting_user=ida)  # no change, no entry
    check_set_retention(bunsho_channel, days=None, acting_user=ida)
    check_set_legal_hold(
        bunsho_channel, on=True, reason="  情報公開審査会の調査  ", acting_user=erin
    )

    changes = list(
        AuditEntry.objects.filter(action=AuditAction.CHAT_RETENTION_CHANGED).order_by("pk")
    )
    assert [(e.details["before"], e.details["after"]) for e in changes] == [
        (None, 365),
        (365, None),
    ]
    assert {e.actor_id for e in changes} == {ida.pk}
    hold = AuditEntry.objects.get(action=AuditAction.CHAT_LEGAL_HOLD_CHANGED)
    assert hold.actor_id == erin.pk
    assert hold.details == {"on": True, "reason": "情報公開審査会の調査"}
    bunsho_channel.refresh_from_db()
    assert bunsho_channel.legal_hold


def test_it_refuses_bad_values(ida: User, bunsho_channel: Conversation) -> None:
    for days in (-1, retention.MAX_RETENTION_DAYS + 1):
        with pytest.raises(ChatError) as refused:
            check_set_retention(bunsho_channel, days=days, acting_user=ida)
        assert refused.value.code == "bad_retention"
    with pytest.raises(ChatError) as refused:
        check_set_legal_hold(bunsho_channel, on=True, reason=" ", acting_user=ida)
    assert refused.value.code == "reason_required"
    bunsho_channel.refresh_from_db()
    assert bunsho_channel.retention_days is None
    assert not bunsho_channel.legal_hold


def test_it_removes_only_files_inside_the_media_folder(
    alice: User,
    ida: User,
    bunsho_channel: Conversation,
    tmp_path: Path,
    media: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    check_set_retention(bunsho_channel, days=1, acting_user=ida)
    message = send(
        alice,
        bunsho_channel,
        "添付",
        attachment_ids=[upload(alice, bunsho_channel, "a.txt")],
    )
    Attachment.objects.filter(message=message).update(path="../precious.txt")
    clock.advance(2 * DAY)

    with django_capture_on_commit_callbacks(execute=True):
        run_retention()

    assert not Message.objects.exists()
    assert outside.read_text() == "keep me"
    # The upload's own file stays too: the row no longer named it.
    assert len(stored_files(media)) == 1


# --- over the API ----------------------------------------------------------------------------


def test_it_lets_an_it_administrator_set_retention_over_the_api(
    ida: User, bunsho_channel: Conversation
) -> None:
    client = as_user(ida)
    url = f"/api/chat/conversations/{bunsho_channel.pk}/retention"

    response = client.put(url, json.dumps({"days": 90}), content_type="application/json")
    assert response.status_code == 200, response.content
    assert json.loads(response.content) == {
        "conversation": bunsho_channel.pk,
        "retention_days": 90,
        "global_retention_days": None,
        "effective_retention_days": 90,
        "legal_hold": False,
    }
    assert json.loads(client.get(url).content)["retention_days"] == 90

    response = client.put(url, json.dumps({"days": None}), content_type="application/json")
    assert json.loads(response.content)["retention_days"] is None

    response = client.put(url, json.dumps({"days": -3}), content_type="application/json")
    assert response.status_code == 400
    error = json.loads(response.content)["error"]
    assert error["code"] == "bad_retention"
    assert error["fields"]["days"]


def test_it_lets_an_auditor_set_a_legal_hold_over_the_api(
    erin: User, bunsho_channel: Conversation
) -> None:
    client = as_user(erin)
    url = f"/api/chat/conversations/{bunsho_channel.pk}/legal-hold"

    response = client.put(
        url, json.dumps({"on": True, "reason": "監査"}), content_type="application/json"
    )
    assert response.status_code == 200, response.content
    assert json.loads(response.content)["legal_hold"] is True

    response = client.put(url, json.dumps({"on": False}), content_type="application/json")
    assert response.status_code == 400
    assert json.loads(response.content)["error"]["code"] == "reason_required"
    bunsho_channel.refresh_from_db()
    assert bunsho_channel.legal_hold


def test_it_answers_400_to_a_hold_reason_with_control_characters(
    erin: User, bunsho_channel: Conversation
) -> None:
    # PostgreSQL refuses NUL in text and in jsonb: without the check, a 500.
    response = as_user(erin).put(
        f"/api/chat/conversations/{bunsho_channel.pk}/legal-hold",
        json.dumps({"on": True, "reason": "事件\u0000番号"}),
        content_type="application/json",
    )

    assert response.status_code == 400, response.content
    assert json.loads(response.content)["error"]["code"] == "bad_reason"
    bunsho_channel.refresh_from_db()
    assert not bunsho_channel.legal_hold


def test_it_refuses_retention_and_hold_to_everyone_else(
    alice: User, bob: User, dora: User, bunsho_channel: Conversation
) -> None:
    base = f"/api/chat/conversations/{bunsho_channel.pk}"
    for user in (alice, bob, dora):  # members, and even the 所属長
        client = as_user(user)
        for response in (
            client.put(
                f"{base}/retention", json.dumps({"days": 1}), content_type="application/json"
            ),
            client.put(
                f"{base}/legal-hold",
                json.dumps({"on": True, "reason": "x"}),
                content_type="application/json",
            ),
            client.get(f"{base}/retention"),
        ):
            assert response.status_code == 403, (user, response.content)
    denials = AuditEntry.objects.filter(action=AuditAction.PERMISSION_DENIED)
    assert denials.count() == 9
    assert {e.details["what"] for e in denials} == {"chat.disclosure"}
    bunsho_channel.refresh_from_db()
    assert bunsho_channel.retention_days is None
    assert not bunsho_channel.legal_hold


def test_it_answers_404_for_a_conversation_that_does_not_exist(ida: User) -> None:
    response = as_user(ida).put(
        "/api/chat/conversations/999999/retention",
        json.dumps({"days": 1}),
        content_type="application/json",
    )

    assert response.status_code == 404


def test_it_records_the_system_as_the_purger(
    alice: User, ida: User, bunsho_channel: Conversation
) -> None:
    check_set_retention(bunsho_channel, days=1, acting_user=ida)
    send(alice, bunsho_channel, "連絡")
    clock.advance(2 * DAY)

    retention.purge_expired_messages()

    (entry,) = purge_entries()
    assert entry.actor_label == Actor.system("保存期間").label


@pytest.mark.django_db(transaction=True)
def test_it_purges_nothing_more_once_a_concurrent_hold_commits(
    alice: User,
    erin: User,
    ida: User,
    bunsho_channel: Conversation,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row locks between connections: PostgreSQL")
    # Live events would be published for real at commit here; not what this test is about.
    monkeypatch.setattr("yakuba.chat.events.send_live_on_commit", lambda *args: None)
    check_set_retention(bunsho_channel, days=1, acting_user=ida)
    for n in range(12):
        send(alice, bunsho_channel, f"連絡 {n}")
    clock.advance(2 * DAY)
    monkeypatch.setattr(retention, "PURGE_BATCH", 2)
    first_batch = threading.Event()
    hold_committed = threading.Event()
    late_batches: list[list[int]] = []
    original = retention._files_of

    def slow_batch(ids: list[int]) -> list[tuple[str, str]]:
        # Runs inside a batch's transaction, after it locked the conversation and read
        # the hold: none may run once the hold has committed.
        if hold_committed.is_set():
            late_batches.append(ids)
        first_batch.set()
        time.sleep(0.2)
        return original(ids)

    def hold() -> None:
        try:
            first_batch.wait(10)
            check_set_legal_hold(bunsho_channel, on=True, reason="調査", acting_user=erin)
            hold_committed.set()
        finally:
            db_connections.close_all()

    monkeypatch.setattr(retention, "_files_of", slow_batch)
    holder = threading.Thread(target=hold)
    holder.start()
    run_retention()
    holder.join(10)

    assert hold_committed.is_set()
    assert late_batches == []
    remaining = Message.objects.filter(conversation=bunsho_channel).count()
    assert 0 < remaining < 12
    (entry,) = purge_entries()
    assert entry.details["counts"]["chat.message"] == 12 - remaining

"""``send_event_on_commit``: ids, locking, fan-out cost and validation."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from yakuba.directory.models import User
from yakuba.realtime.models import EventStream, UserEvent
from yakuba.realtime.send import send_event_on_commit


def send(event: dict[str, Any], *users: User) -> None:
    with transaction.atomic():
        send_event_on_commit(event, [u.pk for u in users])


def event_ids(user: User) -> list[int]:
    return list(
        UserEvent.objects.filter(user=user).order_by("event_id").values_list("event_id", flat=True)
    )


def test_it_numbers_each_users_stream_separately(alice: User, bob: User) -> None:
    send({"type": "test", "op": "a"}, alice)
    send({"type": "test", "op": "b"}, alice, bob, alice)  # a repeated recipient gets it once
    assert event_ids(alice) == [1, 2]
    assert event_ids(bob) == [1]
    assert EventStream.objects.get(user=bob).last_event_id == 1
    assert UserEvent.objects.get(user=bob).payload == {"type": "test", "op": "b"}


def test_it_fans_out_to_many_users_in_a_handful_of_queries(db: None) -> None:
    users = User.objects.bulk_create(
        [User(username=f"user{i}", display_name=f"山田 {i}") for i in range(1200)]
    )
    for first_time in (True, False):
        with CaptureQueriesContext(connection) as queries:
            send({"type": "test", "op": "all"}, *users)
        statements = [q["sql"].split()[0].upper() for q in queries.captured_queries]
        # One UPSERT of the stream heads per 500 recipients (3), and the INSERTs of the
        # events in batches (500 rows on PostgreSQL; SQLite's bound-variable limit of 999
        # makes them 249 there: 5), plus transaction statements.
        data = [s for s in statements if s in {"INSERT", "SELECT", "UPDATE", "DELETE"}]
        assert data.count("SELECT") == 0
        assert data.count("UPDATE") == 0
        assert data.count("INSERT") <= 8, (first_time, data)
    assert UserEvent.objects.filter(event_id=2).count() == 1200


def test_it_refuses_an_event_without_type_and_op_or_not_json(alice: User) -> None:
    with pytest.raises(ValueError, match="'type' and 'op'"):
        send({"type": "test"}, alice)
    with pytest.raises(ValueError, match="JSON"):
        send({"type": "test", "op": "x", "when": object()}, alice)
    assert not UserEvent.objects.exists()


def test_it_sends_to_nobody_without_touching_the_database(db: None) -> None:
    with CaptureQueriesContext(connection) as queries:
        send_event_on_commit({"type": "test", "op": "x"}, [])
    assert queries.captured_queries == []


def test_it_keeps_ids_in_commit_order_under_concurrent_senders(
    transactional_db: None, alice: User, bob: User, charlie: User
) -> None:
    """Four threads send to the same three users, each in a different order: no
    deadlock, and every stream holds ids 1..40 without a gap or a duplicate."""
    users = [alice, bob, charlie]
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            for n in range(10):
                ordered = users[index % 3 :] + users[: index % 3]
                send({"type": "test", "op": "race", "thread": index, "n": n}, *ordered)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    for user in users:
        assert event_ids(user) == list(range(1, 41))
        assert EventStream.objects.get(user=user).last_event_id == 40

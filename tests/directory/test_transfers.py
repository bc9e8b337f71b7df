"""Personnel transfers (人事異動): a dated batch applied once, on its date, by the worker."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.core.management import CommandError
from django.db import connection

from tests.conftest import make_staff
from tests.directory.conftest import run_command, write_csv
from yakuba.audit.models import AuditEntry
from yakuba.audit.record import Actor
from yakuba.directory.access import members_of_departments
from yakuba.directory.actions.staff import do_apply_transfer_batch
from yakuba.directory.models import ConcurrentPost, StaffProfile, TransferBatch, User
from yakuba.lib import clock
from yakuba.realtime.models import UserEvent
from yakuba.tasks.worker import run_once

HEADER = "職員番号,異動後所属コード,異動後役職,兼務所属コード,退職"
EVE_OF_APRIL = dt.datetime(2025, 3, 31, 23, 50, tzinfo=clock.TOKYO)
APRIL_FIRST = dt.datetime(2025, 4, 1, 0, 5, tzinfo=clock.TOKYO)


def schedule(tmp_path, rows: str, effective_on: str = "2025-04-01") -> str:
    path = write_csv(tmp_path, HEADER + "\n" + rows.strip("\n"))
    return run_command("apply_transfers", "--schedule", str(path), "--effective-on", effective_on)


def post_of(user: User) -> tuple[str, str, list[str]]:
    staff = StaffProfile.objects.get(user=user)
    concurrent = sorted(
        ConcurrentPost.objects.filter(staff=staff).values_list("department__code", flat=True)
    )
    return staff.department.code, staff.title, concurrent


def transfer_events() -> list[tuple[int, dict[str, object]]]:
    return [
        (event.user_id, event.payload)
        for event in UserEvent.objects.order_by("user_id")
        if event.payload.get("type") == "directory"
    ]


def test_it_applies_a_batch_on_its_date_and_not_before(alice, bob, charlie, tmp_path):
    rows = """
10001,210,係長,110;111,
10002,,,,退職
"""
    with clock.frozen_at(EVE_OF_APRIL - dt.timedelta(days=10)):
        out = schedule(tmp_path, rows)
    assert "令和7年4月1日に発令されます" in out
    batch = TransferBatch.objects.get()

    with clock.frozen_at(EVE_OF_APRIL):
        run_once()
    batch.refresh_from_db()
    assert batch.status == "scheduled"
    assert post_of(alice) == ("111", "", [])
    assert not transfer_events()

    with clock.frozen_at(APRIL_FIRST):
        run_once()

    batch.refresh_from_db()
    assert batch.status == "applied"
    assert post_of(alice) == ("210", "係長", ["110", "111"])
    bob.refresh_from_db()
    assert not bob.is_active
    assert bob.staff.status == "retired"
    assert bob.staff.retired_on == dt.date(2025, 3, 31)  # the day before the 発令日
    assert post_of(charlie) == ("210", "", [])  # not in the batch
    entry = AuditEntry.objects.get(action="directory.transfer_applied")
    assert entry.target_id == str(batch.pk)
    assert entry.details["transfers"] == [
        {
            "employee_number": "10001",
            "before": {"department": "111", "title": "", "concurrent": []},
            "after": {"department": "210", "title": "係長", "concurrent": ["110", "111"]},
        },
        {
            "employee_number": "10002",
            "before": {"department": "111", "title": "", "concurrent": []},
            "retired": True,
        },
    ]
    assert AuditEntry.objects.filter(
        action="directory.user_deactivated", target_id=str(bob.pk)
    ).exists()
    event = {"type": "directory", "op": "transfers_applied", "batch_id": batch.pk}
    assert transfer_events() == [(alice.pk, event), (bob.pk, event)]
    # Department channels follow primary posts and 兼務 (retired people leave them).
    assert set(members_of_departments(["210"])) == {alice, charlie}
    assert set(members_of_departments(["111"])) == {alice}


def test_it_applies_a_batch_only_once(alice, tmp_path):
    with clock.frozen_at(EVE_OF_APRIL):
        schedule(tmp_path, "10001,210,,,")
    with clock.frozen_at(APRIL_FIRST):
        run_once()
        run_once()
        batch = TransferBatch.objects.get()
        assert not do_apply_transfer_batch(batch.pk, acting_user=Actor.system("test"))
        assert "未発令の人事異動はありません" in run_command("apply_transfers")

    assert AuditEntry.objects.filter(action="directory.transfer_applied").count() == 1
    assert len(transfer_events()) == 1


def test_a_batch_whose_date_passed_while_down_is_applied_at_the_next_run(alice, tmp_path):
    with clock.frozen_at(EVE_OF_APRIL - dt.timedelta(days=30)):
        schedule(tmp_path, "10001,,主任,210,")
    # The server was down on 1 April; it comes back on the 3rd.
    with clock.frozen_at(APRIL_FIRST + dt.timedelta(days=2)):
        out = run_command("apply_transfers")

    assert "発令しました" in out
    assert post_of(alice) == ("111", "主任", ["210"])


def test_a_cancelled_batch_is_never_applied(alice, ida, client, tmp_path):
    with clock.frozen_at(EVE_OF_APRIL):
        schedule(tmp_path, "10001,210,,,")
    batch = TransferBatch.objects.get()
    client.force_login(ida)
    response = client.post(
        "/admin/directory/transferbatch/",
        {"action": "cancel_batches", "_selected_action": [batch.pk]},
    )
    assert response.status_code == 302
    with clock.frozen_at(APRIL_FIRST):
        run_once()

    batch.refresh_from_db()
    assert batch.status == "cancelled"
    assert post_of(alice) == ("111", "", [])
    assert AuditEntry.objects.filter(action="directory.transfer_cancelled").count() == 1


def test_it_refuses_a_transfers_file_with_any_bad_row(alice, bob, tmp_path):
    rows = """
10001,999,,,
10002,210,,,退職
99999,210,,,
10001,,,,
"""
    with pytest.raises(CommandError) as caught:
        schedule(tmp_path, rows)

    assert str(caught.value).splitlines()[:-1] == [
        "2行目: 異動後所属コード 999 は存在しません",
        "3行目: 退職する職員には異動後所属コードを指定できません",
        "4行目: 職員番号 99999 の職員は存在しません",
        "5行目: 職員番号 10001 が2行目と重複しています",
    ]
    assert not TransferBatch.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_apply_the_batch_once(ward, tmp_path):
    alice = make_staff("alice", "青木", "愛", ward["bunsho"], number="10001")
    with clock.frozen_at(EVE_OF_APRIL):
        schedule(tmp_path, "10001,210,,110,")
    batch = TransferBatch.objects.get()
    barrier = threading.Barrier(2)
    results: list[bool] = []

    def worker() -> None:
        try:
            barrier.wait()
            with clock.frozen_at(APRIL_FIRST):
                results.append(do_apply_transfer_batch(batch.pk, acting_user=None))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == [False, True]
    assert AuditEntry.objects.filter(action="directory.transfer_applied").count() == 1
    assert post_of(alice) == ("210", "", ["110"])
    assert ConcurrentPost.objects.count() == 1


def test_the_list_shows_every_batch_in_one_query(alice, bob, tmp_path, django_assert_num_queries):
    with clock.frozen_at(EVE_OF_APRIL):
        schedule(tmp_path, "10001,210,,,\n10002,210,,,")
        schedule(tmp_path, "10001,110,,,", effective_on="2025-10-01")

    with django_assert_num_queries(1):  # the batches with their sizes
        out = run_command("apply_transfers", "--list")

    lines = out.splitlines()
    assert [line.split("\t")[1:] for line in lines] == [
        ["2025-10-01", "予定", "人事異動 令和7年10月1日", "1名"],
        ["2025-04-01", "予定", "人事異動 令和7年4月1日", "2名"],
    ]

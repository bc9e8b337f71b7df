"""所属 channels follow the directory: one per active department, its members the people
posted there or below (primary post or 兼務), kept in step in the directory's own
transaction (transfers on their date, 兼務, retirement, CSV import) and hourly."""

from __future__ import annotations

import datetime as dt
import random
import threading

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from pytest_django.fixtures import Settings as SettingsWrapper

from tests.conftest import make_department, make_staff
from yakuba.audit.record import Actor
from yakuba.chat import membership
from yakuba.chat.access import access_conversation
from yakuba.chat.models import Conversation, Membership
from yakuba.directory.actions.auth import do_deactivate_user, do_reactivate_user
from yakuba.directory.actions.staff import (
    check_import_staff,
    do_apply_due_transfers,
    do_change_department,
    do_change_staff,
    do_create_staff,
    do_schedule_transfers,
    do_set_concurrent_posts,
)
from yakuba.directory.csv_io import TransferRecord
from yakuba.directory.models import Department, StaffProfile, User
from yakuba.lib import clock
from yakuba.tasks.registry import PERIODIC

from .conftest import Sent

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("test")
STAFF_HEADER = (
    "職員番号,姓,名,姓かな,名かな,所属コード,役職,内線,メールアドレス,兼務所属コード,在職状況"
)


def channel_ids(user: User) -> set[int]:
    """The 所属 channels ``user`` is a member of, by department code."""
    return set(
        Membership.objects.filter(
            user=user, conversation__kind=Conversation.Kind.DEPARTMENT
        ).values_list("conversation_id", flat=True)
    )


def codes(user: User) -> set[str]:
    return set(
        Membership.objects.filter(
            user=user, conversation__kind=Conversation.Kind.DEPARTMENT
        ).values_list("conversation__department__code", flat=True)
    )


def membership_events(sent: Sent) -> list[tuple[str, int, list[int]]]:
    return sorted(
        (payload["change"], payload["conversation"], ids)
        for payload, ids in sent
        if payload.get("op") == "conversation" and payload["change"] in ("added", "removed")
    )


# --- Channels -----------------------------------------------------------------------------


def test_it_makes_one_channel_per_active_department_named_by_its_full_name(
    ward: dict[str, Department],
) -> None:
    closed = make_department("300", "旧事業部", "bu")
    closed.is_active = False
    closed.save(update_fields=["is_active"])

    first = membership.ensure_department_channels()
    second = membership.ensure_department_channels()

    channels = {c.department_id: c for c in Conversation.objects.filter(kind="department")}
    assert set(channels) == {d.pk for d in ward.values()}
    assert channels[ward["bunsho"].pk].name == "総務部 総務課 文書係"
    assert channels[ward["koseki"].pk].name == "区民部 戸籍住民課"
    assert len(first.created) == 5
    assert second.created == []


def test_it_renames_and_archives_channels_as_departments_change(
    channels: dict[str, Conversation], ward: dict[str, Department], charlie: User, sent: Sent
) -> None:
    do_change_department(ward["bunsho"], name="文書法制係", acting_user=SYSTEM)
    do_change_department(ward["koseki"], is_active=False, acting_user=SYSTEM)

    membership.sync_all()

    bunsho, koseki = channels["bunsho"], channels["koseki"]
    bunsho.refresh_from_db()
    koseki.refresh_from_db()
    assert bunsho.name == "総務部 総務課 文書法制係"
    assert koseki.archived_at is not None
    # Archived, not emptied: Charlie still reads 戸籍住民課's history, and cannot post.
    assert codes(charlie) == {"200", "210"}
    changes = [p["change"] for p, _ in sent if p.get("conversation") == bunsho.pk]
    assert changes == ["changed"]


def test_it_lists_the_people_of_a_department_and_those_below_it(
    ward: dict[str, Department], alice: User, bob: User, charlie: User
) -> None:
    retired = make_staff("ren", "蓮", "実", ward["bunsho"], number="10099")
    StaffProfile.objects.filter(user=retired).update(status=StaffProfile.Status.RETIRED)
    guest_like = User.objects.create_user("kiosk", None, display_name="受付端末", kind="bot")

    somu = set(membership.department_members(ward["somu_bu"]))
    koseki = set(membership.department_members(ward["koseki"]))

    assert somu == {alice, bob}
    assert koseki == {charlie}
    assert guest_like not in somu


def test_it_switches_read_receipts_off_in_a_big_department_channel(
    settings: SettingsWrapper, channels: dict[str, Conversation], ward: dict[str, Department]
) -> None:
    settings.CHAT_READ_RECEIPTS_MAX_MEMBERS = 2
    newcomer = do_create_staff(
        employee_number="10050",
        family_name="新井",
        given_name="新",
        family_kana="あらい",
        given_kana="しん",
        department=ward["bunsho"],
        acting_user=SYSTEM,
    )

    bunsho, koseki = channels["bunsho"], channels["koseki"]
    bunsho.refresh_from_db()
    koseki.refresh_from_db()
    assert newcomer.user_id in {m.user_id for m in bunsho.memberships.all()}
    assert bunsho.read_receipts is False
    assert koseki.read_receipts is True


# --- Following the directory ---------------------------------------------------------------


def test_it_moves_a_transferred_person_on_the_effective_date(
    channels: dict[str, Conversation],
    ward: dict[str, Department],
    alice: User,
    bob: User,
    sent: Sent,
) -> None:
    effective = clock.today() + dt.timedelta(days=7)
    do_schedule_transfers(
        [TransferRecord(bob.staff.employee_number, "210", "主任", (), False)],
        name="4月1日付人事異動",
        effective_on=effective,
        acting_user=SYSTEM,
    )

    assert do_apply_due_transfers() == []
    assert codes(bob) == {"100", "110", "111"}
    assert access_conversation(bob, channels["bunsho"].pk) == channels["bunsho"]

    clock.advance(dt.timedelta(days=7))
    sent.clear()
    assert len(do_apply_due_transfers()) == 1

    assert codes(bob) == {"200", "210"}
    assert codes(alice) == {"100", "110", "111"}
    with pytest.raises(PermissionDenied):
        access_conversation(bob, channels["bunsho"].pk)
    assert access_conversation(bob, channels["koseki"].pk) == channels["koseki"]
    assert membership_events(sent) == sorted(
        [
            ("added", channels["kumin_bu"].pk, [bob.pk]),
            ("added", channels["koseki"].pk, [bob.pk]),
            ("removed", channels["somu_bu"].pk, [bob.pk]),
            ("removed", channels["somu_ka"].pk, [bob.pk]),
            ("removed", channels["bunsho"].pk, [bob.pk]),
        ]
    )


def test_it_adds_a_concurrent_post_and_takes_it_away(
    channels: dict[str, Conversation], ward: dict[str, Department], charlie: User
) -> None:
    do_set_concurrent_posts(charlie.staff, [ward["bunsho"]], acting_user=SYSTEM)
    assert codes(charlie) == {"100", "110", "111", "200", "210"}

    do_set_concurrent_posts(charlie.staff, [], acting_user=SYSTEM)
    assert codes(charlie) == {"200", "210"}


def test_it_removes_a_retired_person_from_every_channel(
    channels: dict[str, Conversation], bob: User, alice: User, project: Conversation
) -> None:
    do_schedule_transfers(
        [TransferRecord(bob.staff.employee_number, "", "", (), True)],
        name="退職",
        effective_on=clock.today(),
        acting_user=SYSTEM,
    )

    do_apply_due_transfers()
    bob.refresh_from_db()

    assert channel_ids(bob) == set()
    assert codes(alice) == {"100", "110", "111"}
    # Project channels are not the directory's: the membership stays for the record,
    # and the ended account reads nothing.
    assert Membership.objects.filter(conversation=project, user=bob).exists()
    with pytest.raises(PermissionDenied):
        access_conversation(bob, project.pk)


def test_it_follows_a_department_change_and_a_new_department(
    channels: dict[str, Conversation], ward: dict[str, Department], bob: User
) -> None:
    kokuho = make_department("220", "国保年金課", "ka", ward["kumin_bu"])

    do_change_staff(bob.staff, department=kokuho, acting_user=SYSTEM)

    assert codes(bob) == {"200", "220"}
    assert Conversation.objects.get(department=kokuho).name == "区民部 国保年金課"


def test_it_follows_a_staff_csv_import(
    channels: dict[str, Conversation], ward: dict[str, Department], alice: User, bob: User
) -> None:
    rows = [
        STAFF_HEADER,
        "10001,青木,愛,あおき,あい,210,,,,,在職",
        "10002,坂東,歩,ばんどう,あゆむ,111,,,,,退職",
        "50001,山田,太郎,やまだ,たろう,111,主事,,,210,在職",
    ]

    check_import_staff("\n".join(rows).encode(), acting_user=SYSTEM)

    newcomer = User.objects.get(staff__employee_number="50001")
    assert codes(alice) == {"200", "210"}
    assert codes(bob) == set()
    assert codes(newcomer) == {"100", "110", "111", "200", "210"}


def test_it_changes_nothing_when_the_directory_rolls_back(
    channels: dict[str, Conversation], ward: dict[str, Department], bob: User
) -> None:
    seen_inside: set[str] = set()

    def move_then_fail() -> None:
        with transaction.atomic():
            do_change_staff(bob.staff, department=ward["koseki"], acting_user=SYSTEM)
            seen_inside.update(codes(bob))
            raise RuntimeError("the import failed later")

    with pytest.raises(RuntimeError):
        move_then_fail()

    assert seen_inside == {"200", "210"}
    assert codes(bob) == {"100", "110", "111"}


def test_it_repairs_drift_in_the_hourly_sync(
    channels: dict[str, Conversation], alice: User, charlie: User
) -> None:
    Membership.objects.filter(user=alice, conversation=channels["bunsho"]).delete()
    Membership.objects.create(user=charlie, conversation=channels["bunsho"])
    charlie.is_active = False
    charlie.save(update_fields=["is_active"])

    PERIODIC["chat.sync_memberships"].function()

    assert codes(alice) == {"100", "110", "111"}
    assert channel_ids(charlie) == set()
    assert PERIODIC["chat.sync_memberships"].every == dt.timedelta(hours=1)


def test_it_syncs_many_people_in_as_many_queries_as_one(
    channels: dict[str, Conversation], ward: dict[str, Department], alice: User
) -> None:
    people = [
        make_staff(
            f"p{i}", "村田", f"{i}", ward["bunsho" if i % 2 else "koseki"], number=f"7{i:03d}"
        )
        for i in range(30)
    ]

    with CaptureQueriesContext(connection) as two:
        membership.sync_users([p.pk for p in people[:2]])
    with CaptureQueriesContext(connection) as many:
        membership.sync_users([p.pk for p in people[2:]])

    # The same channels gain members (文書係 and 戸籍住民課, and the ones above them).
    assert len(many.captured_queries) == len(two.captured_queries)
    assert all(channel_ids(p) for p in people)


@pytest.mark.django_db(transaction=True)
def test_it_syncs_the_same_people_from_six_threads_at_once(
    channels: dict[str, Conversation], ward: dict[str, Department]
) -> None:
    people = [
        make_staff(f"q{i}", "森", str(i), ward[key], number=f"8{i:03d}")
        for i, key in enumerate(["bunsho", "koseki", "somu_ka"] * 6)
    ]
    ids = [p.pk for p in people]
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def body(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            membership.sync_users(random.Random(n).sample(ids, len(ids)))
        except BaseException as exc:  # every failure is the test's
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=body, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    expected = {
        "bunsho": {"100", "110", "111"},
        "koseki": {"200", "210"},
        "somu_ka": {"100", "110"},
    }
    for i, person in enumerate(people):
        assert codes(person) == expected[["bunsho", "koseki", "somu_ka"][i % 3]]


@pytest.mark.django_db(transaction=True)
def test_it_never_puts_a_moved_person_back_when_the_hourly_sync_read_the_old_post(
    channels: dict[str, Conversation],
    ward: dict[str, Department],
    bob: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The hourly sync reads Bob's post (文書係), then a transfer to 戸籍住民課 commits
    # and moves his memberships, then the sync reads his memberships (戸籍住民課) and
    # "repairs" them back to 文書係: he would read the old channel for up to an hour.
    if connection.vendor != "postgresql":
        pytest.skip("row versions between connections: PostgreSQL (SQLite has one writer)")
    monkeypatch.setattr("yakuba.chat.events.send_live_on_commit", lambda *args: None)
    read_posts = threading.Event()
    go_on = threading.Event()
    original = membership._wanted_channels
    sync_thread: threading.Thread | None = None

    def pausing(*args: object, **kwargs: object) -> dict[int, set[int]]:
        wanted = original(*args, **kwargs)  # type: ignore[arg-type]  # passed through
        if threading.current_thread() is sync_thread:
            read_posts.set()
            go_on.wait(timeout=30)
        return wanted

    monkeypatch.setattr(membership, "_wanted_channels", pausing)
    errors: list[BaseException] = []

    def hourly() -> None:
        try:
            membership.sync_users([bob.pk], ensure=False)
        except BaseException as exc:  # every failure is the test's
            errors.append(exc)
        finally:
            connection.close()

    def transfer() -> None:
        try:
            staff = StaffProfile.objects.get(user=bob)
            do_change_staff(staff, department=ward["koseki"], acting_user=SYSTEM)
        except BaseException as exc:  # every failure is the test's
            errors.append(exc)
        finally:
            connection.close()

    sync_thread = threading.Thread(target=hourly)
    sync_thread.start()
    assert read_posts.wait(timeout=30)
    mover = threading.Thread(target=transfer)
    mover.start()
    # Without a lock the transfer commits here, while the sync waits.
    mover.join(timeout=2)
    go_on.set()
    sync_thread.join(timeout=60)
    mover.join(timeout=60)

    assert errors == []
    assert codes(bob) == {"200", "210"}


def test_it_moves_eleven_hundred_people_in_one_import(
    channels: dict[str, Conversation], ward: dict[str, Department]
) -> None:
    def import_all(code: str) -> None:
        rows = [STAFF_HEADER] + [
            f"6{i:04d},山本,{i},やまもと,かず,{code},,,,,在職" for i in range(1100)
        ]
        check_import_staff("\n".join(rows).encode(), acting_user=SYSTEM)

    import_all("111")
    assert channels["bunsho"].memberships.count() == 1100 + 2

    import_all("210")

    assert channels["bunsho"].memberships.count() == 2
    assert channels["somu_bu"].memberships.count() == 2
    assert channels["koseki"].memberships.count() == 1100 + 1


def test_it_puts_a_reactivated_person_back_into_their_channels_at_once(
    channels: dict[str, Conversation], alice: User
) -> None:
    do_deactivate_user(alice, acting_user=Actor.system("test"), reason="休職")
    membership.sync_all()  # the hourly check takes her out
    assert not Membership.objects.filter(conversation=channels["bunsho"], user=alice).exists()

    do_reactivate_user(alice, acting_user=Actor.system("test"), reason="復職")

    assert Membership.objects.filter(conversation=channels["bunsho"], user=alice).exists()

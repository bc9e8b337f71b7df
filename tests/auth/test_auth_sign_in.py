"""Password sign-in: success, failure, lockout and its end, audit rows, session ids."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client, override_settings

from tests.auth.conftest import audit_actions, session_key, sign_in
from tests.conftest import PASSWORD
from yakuba.audit.models import AuditEntry
from yakuba.audit.record import Actor
from yakuba.directory.actions import auth as actions
from yakuba.directory.actions.staff import do_invite_guest
from yakuba.directory.models import User, UserSession
from yakuba.lib import clock

MONDAY_9AM = dt.datetime(2025, 4, 7, 9, 0, tzinfo=clock.TOKYO)


def test_it_signs_in_with_the_right_password_and_audits_it(client: Client, alice: User) -> None:
    response = sign_in(client, "alice")
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200
    entry = AuditEntry.objects.get(action="auth.login")
    assert (entry.actor_id, entry.target_id, entry.details) == (
        alice.pk,
        str(alice.pk),
        {"method": "password"},
    )
    session = UserSession.objects.get(user=alice)
    assert session.session_key == session_key(client)
    assert session.ip_address == "127.0.0.1"


def test_it_hashes_passwords_with_argon2(alice: User) -> None:
    from yakuba import settings as configured

    assert configured.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"
    assert alice.password.startswith("argon2$")


def test_it_keeps_the_typed_username_on_failure(client: Client, alice: User) -> None:
    response = sign_in(client, "alice", "wrong-password")
    page = response.content.decode()
    assert response.status_code == 401
    assert "ユーザー名またはパスワードが違います。" in page
    assert 'value="alice"' in page
    assert 'role="alert"' in page
    assert client.get("/").status_code == 302


def test_it_audits_a_failure_for_an_unknown_username(client: Client, db: None) -> None:
    response = sign_in(client, "nobody", "whatever-1")
    assert response.status_code == 401
    entry = AuditEntry.objects.get(action="auth.login_failed")
    assert entry.actor_kind == "anonymous"
    assert entry.details == {"username": "nobody", "reason": "unknown_user"}


def test_it_follows_a_safe_next_and_ignores_another_host(client: Client, alice: User) -> None:
    response = sign_in(client, "alice", next="/account/")
    assert response["Location"] == "/account/"
    other = Client()
    response = sign_in(other, "alice", next="https://evil.example/")
    assert response["Location"] == "/"


def test_it_ignores_a_next_that_is_not_a_path(client: Client, alice: User) -> None:
    """``redirect`` reads a bare word as a URL name; an unknown one used to be a 500."""
    for odd in ("no-such-page", "account_admin_user", "javascript:alert(1)", "//evil.example/"):
        response = sign_in(Client(), "alice", next=odd)
        assert (response.status_code, response["Location"]) == (302, "/")
    assert client.get("/login/?next=no-such-page").status_code == 200


def test_it_gives_a_new_session_id_at_sign_in(client: Client, alice: User) -> None:
    client.get("/login/?next=/account/")
    # Plant an anonymous session first (as an attacker fixing the id would).
    session = client.session
    session["planted"] = "x"
    session.save()
    before = session_key(client)
    sign_in(client, "alice")
    after = session_key(client)
    assert after != before
    assert not Session.objects.filter(session_key=before).exists()
    assert Session.objects.filter(session_key=after).exists()


@override_settings(LOCKOUT_THRESHOLD=3, LOCKOUT_MINUTES=15)
def test_it_locks_after_repeated_failures_and_unlocks_later(client: Client, alice: User) -> None:
    with clock.frozen_at(MONDAY_9AM):
        for _ in range(2):
            assert sign_in(client, "alice", "wrong-password").status_code == 401
        response = sign_in(client, "alice", "wrong-password")
        assert response.status_code == 403
        assert "一時的にロックされています" in response.content.decode()
        assert "09:15 以降" in response.content.decode()
        # Locked: even the right password is refused, with the same clear message.
        response = sign_in(client, "alice")
        assert response.status_code == 403
        assert "一時的にロックされています" in response.content.decode()
        assert client.get("/").status_code == 302
        clock.advance(dt.timedelta(minutes=15, seconds=1))
        assert sign_in(client, "alice").status_code == 302
        assert client.get("/").status_code == 200
    alice.refresh_from_db()
    assert (alice.failed_logins, alice.locked_until) == (0, None)
    assert audit_actions(target_id=str(alice.pk)) == [
        "auth.login_failed",
        "auth.login_failed",
        "auth.login_failed",
        "auth.locked",
        "auth.login_failed",
        "auth.login",
    ]
    locked_refusal = AuditEntry.objects.filter(action="auth.login_failed").last()
    assert locked_refusal is not None
    assert locked_refusal.details["reason"] == "locked"


@override_settings(LOCKOUT_THRESHOLD=3)
def test_it_counts_only_consecutive_failures(client: Client, alice: User) -> None:
    sign_in(client, "alice", "wrong-password")
    sign_in(client, "alice", "wrong-password")
    assert sign_in(client, "alice").status_code == 302
    client.post("/logout/")
    sign_in(client, "alice", "wrong-password")
    alice.refresh_from_db()
    assert alice.failed_logins == 1
    assert alice.locked_until is None


@pytest.mark.django_db(transaction=True)
@override_settings(LOCKOUT_THRESHOLD=5)
def test_it_counts_concurrent_failures_exactly_and_locks_once(alice: User) -> None:
    """Eight failures at once: each is counted, exactly one of them locks."""
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def fail() -> None:
        try:
            barrier.wait()
            actions.do_record_login_failure("alice", alice, reason=actions.Refusal.INVALID)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=fail) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    alice.refresh_from_db()
    assert alice.failed_logins == 8
    assert alice.locked_until is not None
    assert AuditEntry.objects.filter(action="auth.locked").count() == 1
    assert AuditEntry.objects.filter(action="auth.login_failed").count() == 8


def test_it_refuses_an_inactive_user_without_saying_so(client: Client, alice: User) -> None:
    actions.do_deactivate_user(alice, acting_user=None)
    response = sign_in(client, "alice")
    assert response.status_code == 401
    assert "ユーザー名またはパスワードが違います。" in response.content.decode()
    assert client.get("/").status_code == 302
    refusal = AuditEntry.objects.get(action="auth.login_failed")
    assert refusal.details == {"username": "alice", "reason": "inactive"}


def test_it_refuses_a_guest_whose_invitation_expired(client: Client, alice: User) -> None:
    with clock.frozen_at(MONDAY_9AM):
        do_invite_guest(
            name="山田 花子",
            organisation="○○交通株式会社",
            email="hanako@example.jp",
            expires_at=MONDAY_9AM + dt.timedelta(days=1),
            username="hanako",
            password=PASSWORD,
            acting_user=alice,
        )
        assert sign_in(client, "hanako").status_code == 302
        client.post("/logout/")
        clock.advance(dt.timedelta(days=2))
        response = sign_in(client, "hanako")
    assert response.status_code == 401
    assert "有効期限が切れています" in response.content.decode()
    last = AuditEntry.objects.filter(action="auth.login_failed").last()
    assert last is not None
    assert last.details == {"username": "hanako", "reason": "guest_expired"}


def test_it_signs_out_and_audits_it(client: Client, alice: User) -> None:
    sign_in(client, "alice")
    key = session_key(client)
    response = client.post("/logout/")
    assert response["Location"] == "/login/"
    assert not Session.objects.filter(session_key=key).exists()
    assert not UserSession.objects.filter(user=alice).exists()
    assert audit_actions(actor_id=alice.pk) == ["auth.login", "auth.logout"]


def test_it_sends_the_django_admin_login_through_our_sign_in(client: Client, db: None) -> None:
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=%2Fadmin%2F"


def test_it_audits_the_system_actor_for_a_lock(client: Client, alice: User) -> None:
    with override_settings(LOCKOUT_THRESHOLD=1):
        sign_in(client, "alice", "wrong-password")
    lock = AuditEntry.objects.get(action="auth.locked")
    assert lock.actor_kind == Actor.system().kind


@override_settings(LOCKOUT_THRESHOLD=1)
def test_it_lets_an_it_administrator_lift_a_lock(client: Client, alice: User, dana: User) -> None:
    sign_in(Client(), "alice", "wrong-password")
    assert sign_in(Client(), "alice").status_code == 403
    sign_in(client, "dana")
    assert "ロック中" in client.get(f"/account/admin/users/{alice.pk}/").content.decode()
    client.post(f"/account/admin/users/{alice.pk}/unlock/")
    assert sign_in(Client(), "alice")["Location"] == "/"
    entry = AuditEntry.objects.get(action="auth.unlocked")
    assert (entry.actor_id, entry.target_id) == (dana.pk, str(alice.pk))


@pytest.mark.django_db(transaction=True)
@override_settings(LOCKOUT_THRESHOLD=3)
def test_it_checks_no_more_passwords_than_the_threshold_however_many_arrive_at_once(
    alice: User,
) -> None:
    """Eight guesses at once: only three get their password checked, the rest are
    refused as locked, so a burst of requests cannot outrun the lockout."""
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def guess(n: int) -> None:
        try:
            barrier.wait()
            statuses.append(sign_in(Client(), "alice", f"wrong-password-{n}").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reasons = sorted(
        AuditEntry.objects.filter(action="auth.login_failed").values_list(
            "details__reason", flat=True
        )
    )
    assert reasons == ["invalid_credentials"] * 3 + ["locked"] * 5
    assert AuditEntry.objects.filter(action="auth.locked").count() == 1
    assert sorted(statuses).count(403) >= 5
    # The right password is refused too, until the lock runs out.
    assert sign_in(Client(), "alice").status_code == 403


@override_settings(LOCKOUT_THRESHOLD=2)
def test_it_counts_failures_of_the_username_typed_in_another_case(
    client: Client, alice: User
) -> None:
    """LDAP signs ``ALICE`` in as ``alice``, so guesses at ``ALICE`` must lock ``alice``."""
    assert sign_in(client, "ALICE", "wrong-password").status_code == 401
    assert sign_in(client, "Alice", "wrong-password").status_code == 403
    alice.refresh_from_db()
    assert actions.is_locked(alice)
    assert sign_in(client, "alice").status_code == 403


@override_settings(LOCKOUT_THRESHOLD=2)
def test_it_says_locked_to_a_failure_that_finishes_after_another_locked(alice: User) -> None:
    """A wrong guess still in flight when a concurrent one locked the account is told
    "locked" like a right one would be: the two answers must not differ."""
    sign_in(Client(), "alice", "wrong-password")
    sign_in(Client(), "alice", "wrong-password")
    alice.refresh_from_db()
    assert alice.locked_until is not None
    late = actions.do_record_login_failure(
        "alice", alice, reason=actions.Refusal.INVALID, claimed=True
    )
    assert late == alice.locked_until
    assert AuditEntry.objects.filter(action="auth.locked").count() == 1


@override_settings(LOCKOUT_THRESHOLD=2)
def test_it_gives_back_the_attempt_of_a_right_password(client: Client, alice: User) -> None:
    sign_in(Client(), "alice", "wrong-password")
    assert sign_in(client, "alice").status_code == 302
    alice.refresh_from_db()
    assert (alice.failed_logins, alice.locked_until) == (0, None)


@override_settings(LOCKOUT_THRESHOLD=2, LOCKOUT_MINUTES=15)
def test_it_never_refuses_forever_when_an_attempt_died_before_its_outcome(
    client: Client, alice: User
) -> None:
    """Two attempts counted, neither finished (their requests died): the next one sets
    a lock that runs out, rather than refusing the account for good."""
    with clock.frozen_at(MONDAY_9AM):
        assert actions.claim_sign_in_attempt(alice)
        assert actions.claim_sign_in_attempt(alice)
        response = sign_in(client, "alice")
        assert response.status_code == 403
        assert "09:15 以降" in response.content.decode()
        clock.advance(dt.timedelta(minutes=15, seconds=1))
        assert sign_in(client, "alice")["Location"] == "/"
    assert AuditEntry.objects.filter(action="auth.locked").count() == 1

"""TOTP second factor: enrolment on the account page, the code step after the
password, replay and wrong codes refused, role-required enrolment, disabling."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client, override_settings

from tests.auth.conftest import audit_actions, enrol_secret, session_key, sign_in
from yakuba.audit.models import AuditEntry
from yakuba.audit.record import Actor
from yakuba.directory import totp
from yakuba.directory.actions import auth as actions
from yakuba.directory.actions.staff import do_grant_role
from yakuba.directory.models import Role, User
from yakuba.lib import clock

MONDAY_9AM = dt.datetime(2025, 4, 7, 9, 0, 5, tzinfo=clock.TOKYO)


def enrol(client: Client) -> str:
    """Enrol the signed-in user through the account page; returns the secret."""
    page = client.get("/account/totp/").content.decode()
    secret = enrol_secret(page)
    response = client.post("/account/totp/", {"code": totp.code_for(secret)})
    assert response.status_code == 302
    return secret


def test_it_enrols_with_a_server_drawn_qr_code_after_a_confirming_code(
    client: Client, alice: User
) -> None:
    with clock.frozen_at(MONDAY_9AM):
        sign_in(client, "alice")
        page = client.get("/account/totp/").content.decode()
        assert "<svg" in page
        assert "otpauth" not in page.split("<svg")[0]  # no URI handed to any outside service
        secret = enrol_secret(page)
        # A wrong code saves nothing, and the same secret is offered again.
        response = client.post("/account/totp/", {"code": "000000"})
        assert response.status_code == 400
        assert enrol_secret(response.content.decode()) == secret
        alice.refresh_from_db()
        assert not alice.totp_enabled
        response = client.post("/account/totp/", {"code": totp.code_for(secret)})
        assert response.status_code == 302
        assert "設定済み" in client.get("/account/").content.decode()
    alice.refresh_from_db()
    assert alice.totp_secret == secret
    assert "auth.totp_enabled" in audit_actions(target_id=str(alice.pk))


def test_it_asks_for_the_code_after_the_password_before_signing_in(
    client: Client, alice: User
) -> None:
    with clock.frozen_at(MONDAY_9AM):
        sign_in(client, "alice")
        secret = enrol(client)
        client.post("/logout/")
        clock.advance(dt.timedelta(seconds=30))
        response = sign_in(client, "alice")
        assert response["Location"] == "/login/totp/"
        # Half signed in: nothing but the code step opens.
        assert client.get("/").status_code == 302
        assert client.get("/account/").status_code == 302
        response = client.post("/login/totp/", {"code": totp.code_for(secret)})
        assert response["Location"] == "/"
        assert client.get("/").status_code == 200
    assert AuditEntry.objects.filter(action="auth.login", actor_id=alice.pk).count() == 2


def test_it_refuses_a_replayed_code_and_a_wrong_code(client: Client, alice: User) -> None:
    with clock.frozen_at(MONDAY_9AM):
        sign_in(client, "alice")
        secret = enrol(client)
        client.post("/logout/")
        clock.advance(dt.timedelta(seconds=30))
        code = totp.code_for(secret)
        sign_in(client, "alice")
        assert client.post("/login/totp/", {"code": code})["Location"] == "/"
        client.post("/logout/")
        # The same code again, still within its 30 seconds: refused as a replay.
        sign_in(client, "alice")
        response = client.post("/login/totp/", {"code": code})
        assert response.status_code == 401
        assert "既に使われています" in response.content.decode()
        wrong = f"{(int(code) + 1) % 1000000:06d}"
        response = client.post("/login/totp/", {"code": wrong})
        assert response.status_code == 401
        assert "確認コードが正しくありません。" in response.content.decode()
        assert client.get("/").status_code == 302
        # The next time step's code works.
        clock.advance(dt.timedelta(seconds=30))
        assert client.post("/login/totp/", {"code": totp.code_for(secret)})["Location"] == "/"
    reasons = [
        entry.details["reason"]
        for entry in AuditEntry.objects.filter(action="auth.login_failed").order_by("pk")
    ]
    assert reasons == ["totp_replayed", "totp_invalid"]


@override_settings(LOCKOUT_THRESHOLD=2)
def test_it_counts_wrong_codes_towards_the_lockout(client: Client, alice: User) -> None:
    with clock.frozen_at(MONDAY_9AM):
        sign_in(client, "alice")
        enrol(client)
        client.post("/logout/")
        sign_in(client, "alice")
        client.post("/login/totp/", {"code": "000000"})
        response = client.post("/login/totp/", {"code": "111111"})
    assert response.status_code == 403
    assert "一時的にロックされています" in response.content.decode()
    assert AuditEntry.objects.filter(action="auth.locked", target_id=str(alice.pk)).exists()


def test_it_forgets_a_pending_sign_in_after_five_minutes(client: Client, alice: User) -> None:
    with clock.frozen_at(MONDAY_9AM):
        sign_in(client, "alice")
        secret = enrol(client)
        client.post("/logout/")
        sign_in(client, "alice")
        clock.advance(dt.timedelta(minutes=6))
        response = client.post("/login/totp/", {"code": totp.code_for(secret)})
    assert response["Location"] == "/login/"
    assert client.get("/").status_code == 302


@override_settings(TOTP_REQUIRED_ROLES=["it_admin"])
def test_it_makes_a_role_enrol_before_anything_else(client: Client, alice: User, bob: User) -> None:
    do_grant_role(alice, Role.IT_ADMIN, acting_user=Actor.system("test"))
    with clock.frozen_at(MONDAY_9AM):
        response = sign_in(client, "alice")
        assert response["Location"] == "/login/totp/enrol/"
        assert client.get("/").status_code == 302
        assert client.get("/account/").status_code == 302
        page = client.get("/login/totp/enrol/").content.decode()
        assert "必須" in page
        secret = enrol_secret(page)
        response = client.post("/login/totp/enrol/", {"code": totp.code_for(secret)})
        assert response["Location"] == "/"
        assert client.get("/").status_code == 200
    alice.refresh_from_db()
    assert alice.totp_enabled
    assert audit_actions(target_id=str(alice.pk))[-2:] == ["auth.totp_enabled", "auth.login"]
    # Bob holds no such role and signs in with his password alone.
    assert sign_in(Client(), "bob")["Location"] == "/"


@override_settings(TOTP_REQUIRED_ROLES=["it_admin"])
def test_it_refuses_to_disable_a_role_required_second_factor(client: Client, alice: User) -> None:
    with clock.frozen_at(MONDAY_9AM):
        sign_in(client, "alice")
        secret = enrol(client)
        do_grant_role(alice, Role.IT_ADMIN, acting_user=Actor.system("test"))
        clock.advance(dt.timedelta(seconds=30))
        client.post("/account/totp/disable/", {"code": totp.code_for(secret)})
    alice.refresh_from_db()
    assert alice.totp_enabled


def test_it_disables_the_second_factor_only_with_a_valid_code(client: Client, alice: User) -> None:
    with clock.frozen_at(MONDAY_9AM):
        sign_in(client, "alice")
        secret = enrol(client)
        clock.advance(dt.timedelta(seconds=30))
        client.post("/account/totp/disable/", {"code": "000000"})
        alice.refresh_from_db()
        assert alice.totp_enabled
        client.post("/account/totp/disable/", {"code": totp.code_for(secret)})
    assert not User.objects.get(pk=alice.pk).totp_enabled
    assert audit_actions(target_id=str(alice.pk))[-1] == "auth.totp_disabled"


@pytest.mark.django_db(transaction=True)
def test_it_accepts_a_code_raced_from_two_requests_only_once(alice: User) -> None:
    secret = totp.new_secret()
    actions.do_enable_totp(alice, secret=secret, acting_user=alice)
    code = totp.code_for(secret)
    barrier = threading.Barrier(4)
    results: list[actions.TotpResult] = []

    def use_code() -> None:
        try:
            barrier.wait()
            results.append(actions.check_totp_code(User.objects.get(pk=alice.pk), code))
        finally:
            connection.close()

    threads = [threading.Thread(target=use_code) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(result.value for result in results) == ["ok", "replayed", "replayed", "replayed"]


def test_it_lets_an_it_administrator_remove_a_lost_second_factor(
    client: Client, alice: User, dana: User
) -> None:
    with clock.frozen_at(MONDAY_9AM):
        alices = Client()
        sign_in(alices, "alice")
        enrol(alices)
        sign_in(client, "dana")
        response = client.post(f"/account/admin/users/{alice.pk}/reset-totp/")
        assert response["Location"] == f"/account/admin/users/{alice.pk}/"
        assert sign_in(Client(), "alice")["Location"] == "/"
    entry = AuditEntry.objects.filter(action="auth.totp_disabled").get()
    assert entry.actor_id == dana.pk


def test_it_will_not_swap_an_enrolled_second_factor_without_disabling_it(
    client: Client, alice: User
) -> None:
    with clock.frozen_at(MONDAY_9AM):
        sign_in(client, "alice")
        secret = enrol(client)
        response = client.get("/account/totp/")
        assert response["Location"] == "/account/"
        assert client.post("/account/totp/", {"code": "123456"})["Location"] == "/account/"
    assert User.objects.get(pk=alice.pk).totp_secret == secret


@override_settings(LOCKOUT_THRESHOLD=2)
def test_it_counts_wrong_codes_for_disabling_towards_the_lockout(
    client: Client, alice: User
) -> None:
    """Someone on a borrowed session guessing codes to remove the second factor is
    stopped, and logged, as a guesser at the sign-in page would be."""
    with clock.frozen_at(MONDAY_9AM):
        sign_in(client, "alice")
        secret = enrol(client)
        clock.advance(dt.timedelta(seconds=30))
        client.post("/account/totp/disable/", {"code": "000000"})
        client.post("/account/totp/disable/", {"code": "111111"})
        response = client.post(
            "/account/totp/disable/", {"code": totp.code_for(secret)}, follow=True
        )
        assert "一時的にロックされています" in response.content.decode()
        alice.refresh_from_db()
        assert actions.is_locked(alice)
    assert alice.totp_enabled
    reasons = list(
        AuditEntry.objects.filter(action="auth.login_failed")
        .order_by("pk")
        .values_list("details__reason", flat=True)
    )
    assert reasons == ["totp_invalid", "totp_invalid", "locked"]


def test_it_gives_the_half_signed_in_session_a_new_id(client: Client, alice: User) -> None:
    with clock.frozen_at(MONDAY_9AM):
        sign_in(client, "alice")
        enrol(client)
        browser = Client()
        # Plant an anonymous session first (as an attacker fixing the id would).
        planted = browser.session
        planted["planted"] = "x"
        planted.save()
        before = session_key(browser)
        assert before
        assert sign_in(browser, "alice")["Location"] == "/login/totp/"
    assert session_key(browser) not in ("", before)
    assert not Session.objects.filter(session_key=before).exists()

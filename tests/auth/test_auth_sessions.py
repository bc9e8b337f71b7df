"""Sessions: idle and absolute timeouts, sign out everywhere, an administrator ending a
user's sessions, deactivation ending them at once, and the account page."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from tests.auth.conftest import audit_actions, session_key, sign_in
from tests.conftest import PASSWORD
from yakuba.audit.models import AuditEntry
from yakuba.directory.models import User, UserSession
from yakuba.lib import clock
from yakuba.realtime.models import UserEvent

MONDAY_9AM = dt.datetime(2025, 4, 7, 9, 0, tzinfo=clock.TOKYO)


def session_events(user: User) -> list[dict[str, Any]]:
    return [
        event.payload
        for event in UserEvent.objects.filter(user=user).order_by("event_id")
        if event.payload.get("type") == "session"
    ]


def test_it_ends_a_session_left_idle(client: Client, alice: User) -> None:
    with clock.frozen_at(MONDAY_9AM):
        sign_in(client, "alice")
        key = session_key(client)
        clock.advance(dt.timedelta(minutes=29))
        assert client.get("/").status_code == 200
        clock.advance(dt.timedelta(minutes=29))
        assert client.get("/").status_code == 200
        clock.advance(dt.timedelta(minutes=31))
        response = client.get("/")
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")
        page = client.get(response["Location"]).content.decode()
    assert "一定時間操作がなかったため" in page
    assert not Session.objects.filter(session_key=key).exists()
    expired = AuditEntry.objects.get(action="auth.session_expired")
    assert expired.details == {"reason": "idle"}
    assert session_events(alice)[-1] == {"type": "session", "op": "ended", "session_keys": [key]}


def test_it_ends_a_busy_session_at_the_absolute_limit(client: Client, alice: User) -> None:
    with clock.frozen_at(MONDAY_9AM):
        sign_in(client, "alice")
        for _ in range(29):  # 9 h 40 min of steady use
            clock.advance(dt.timedelta(minutes=20))
            assert client.get("/").status_code == 200
        clock.advance(dt.timedelta(minutes=21))
        response = client.get("/")
    assert response.status_code == 302
    expired = AuditEntry.objects.get(action="auth.session_expired")
    assert expired.details == {"reason": "absolute"}


def test_it_keeps_last_seen_roughly_current_without_a_write_per_request(
    client: Client, alice: User
) -> None:
    with clock.frozen_at(MONDAY_9AM):
        sign_in(client, "alice")
        clock.advance(dt.timedelta(seconds=30))
        client.get("/")
        assert UserSession.objects.get(user=alice).last_seen_at == MONDAY_9AM
        clock.advance(dt.timedelta(seconds=45))
        client.get("/")
        assert UserSession.objects.get(user=alice).last_seen_at == clock.now()


def test_it_signs_out_everywhere(client: Client, alice: User, bob: User) -> None:
    other = Client()
    sign_in(client, "alice")
    sign_in(other, "alice")
    bobs = Client()
    sign_in(bobs, "bob")
    keys = {session_key(client), session_key(other)}
    response = client.post("/account/sessions/end-all/")
    assert response["Location"] == "/login/"
    assert "すべての端末からサインアウトしました。" in client.get("/login/").content.decode()
    assert other.get("/").status_code == 302
    assert client.get("/").status_code == 302
    assert bobs.get("/").status_code == 200
    assert not Session.objects.filter(session_key__in=keys).exists()
    event = session_events(alice)[-1]
    assert set(event["session_keys"]) == keys
    entry = AuditEntry.objects.get(action="auth.logout_everywhere")
    assert (entry.actor_id, entry.details) == (alice.pk, {"sessions_ended": 2})


def test_it_lets_an_it_administrator_end_a_users_sessions(
    client: Client, alice: User, dana: User
) -> None:
    alices = Client()
    sign_in(alices, "alice")
    sign_in(client, "dana")
    page = client.get(f"/account/admin/users/{alice.pk}/").content.decode()
    assert "127.0.0.1" in page
    response = client.post(f"/account/admin/users/{alice.pk}/end-sessions/")
    assert response.status_code == 302
    assert alices.get("/").status_code == 302
    assert client.get("/").status_code == 200
    entry = AuditEntry.objects.get(action="auth.sessions_ended")
    assert (entry.actor_id, entry.target_id) == (dana.pk, str(alice.pk))
    assert session_events(alice)[-1]["op"] == "ended"
    # Alice may sign in again.
    assert sign_in(alices, "alice")["Location"] == "/"


def test_it_refuses_the_admin_pages_to_others(client: Client, alice: User, charlie: User) -> None:
    alices = Client()
    sign_in(alices, "alice")
    sign_in(client, "charlie")
    assert client.post(f"/account/admin/users/{alice.pk}/end-sessions/").status_code == 403
    assert client.get(f"/account/admin/users/{alice.pk}/").status_code == 403
    assert client.get("/account/admin/tokens/").status_code == 403
    assert alices.get("/").status_code == 200
    denials = AuditEntry.objects.filter(action="auth.denied", actor_id=charlie.pk)
    assert denials.count() == 3
    assert not AuditEntry.objects.filter(action="auth.sessions_ended").exists()


def test_it_ends_sessions_at_once_when_a_user_is_deactivated(
    client: Client, alice: User, dana: User
) -> None:
    first, second = Client(), Client()
    sign_in(first, "alice")
    sign_in(second, "alice")
    keys = {session_key(first), session_key(second)}
    sign_in(client, "dana")
    client.post(f"/account/admin/users/{alice.pk}/deactivate/")
    # Gone from the database at once, before either client comes back.
    assert not Session.objects.filter(session_key__in=keys).exists()
    assert not UserSession.objects.filter(user=alice).exists()
    for other in (first, second):
        response = other.get("/")
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")
    event = session_events(alice)[-1]
    assert event["all"] is True
    assert set(event["session_keys"]) == keys
    entry = AuditEntry.objects.get(action="directory.user_deactivated")
    assert (entry.actor_id, entry.details) == (dana.pk, {"sessions_ended": 2})
    assert sign_in(first, "alice").status_code == 401
    client.post(f"/account/admin/users/{alice.pk}/reactivate/")
    assert sign_in(first, "alice")["Location"] == "/"
    assert "directory.user_reactivated" in audit_actions(target_id=str(alice.pk))


def test_it_refuses_a_stray_session_of_an_inactive_user(client: Client, alice: User) -> None:
    sign_in(client, "alice")
    # Deactivated by a path that did not end the sessions.
    User.objects.filter(pk=alice.pk).update(is_active=False)
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
    assert client.get("/account/").status_code == 302


def test_it_shows_the_account_page(client: Client, alice: User) -> None:
    sign_in(client, "alice", HTTP_USER_AGENT="Mozilla/5.0 (Windows NT 10.0) Firefox/128.0")
    page = client.get("/account/").content.decode()
    assert "青木 愛" in page
    assert "Firefox（Windows）" in page
    assert "127.0.0.1" in page
    assert "この端末" in page
    assert "二要素認証を設定する" in page
    assert "すべての端末からサインアウト" in page


def test_it_switches_the_language_of_the_ui(client: Client, alice: User) -> None:
    sign_in(client, "alice")
    assert '<html lang="ja">' in client.get("/account/").content.decode()
    response = client.post("/account/language/", {"language": "en"})
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.language == "en"
    assert '<html lang="en">' in client.get("/account/").content.decode()
    entry = AuditEntry.objects.get(action="auth.language_changed")
    assert entry.details == {"from": "ja", "to": "en"}


def test_it_writes_last_seen_once_a_minute_at_most(client: Client, alice: User) -> None:
    """The session policy adds no query to a request within the minute, one UPDATE after."""
    with clock.frozen_at(MONDAY_9AM):
        sign_in(client, "alice")

        def session_writes() -> list[str]:
            with CaptureQueriesContext(connection) as queries:
                assert client.get("/account/").status_code == 200
            return [
                query["sql"]
                for query in queries.captured_queries
                if query["sql"].startswith("UPDATE") and "usersession" in query["sql"]
            ]

        clock.advance(dt.timedelta(seconds=20))
        assert session_writes() == []
        clock.advance(dt.timedelta(seconds=50))
        assert len(session_writes()) == 1
        assert session_writes() == []


def test_it_changes_the_password_and_ends_the_other_sessions(client: Client, alice: User) -> None:
    other = Client()
    sign_in(other, "alice")
    sign_in(client, "alice")
    response = client.post(
        "/account/password/",
        {
            "current_password": PASSWORD,
            "new_password": "a-new-long-passphrase-7",
            "new_password_again": "a-new-long-passphrase-7",
        },
    )
    assert response["Location"] == "/account/"
    assert client.get("/account/").status_code == 200
    assert other.get("/").status_code == 302
    assert sign_in(Client(), "alice", "a-new-long-passphrase-7")["Location"] == "/"
    entry = AuditEntry.objects.get(action="auth.password_changed")
    assert entry.details == {"sessions_ended": 1}


def test_it_refuses_a_password_change_with_the_wrong_current_one(
    client: Client, alice: User
) -> None:
    sign_in(client, "alice")
    response = client.post(
        "/account/password/",
        {
            "current_password": "not-it",
            "new_password": "a-new-long-passphrase-7",
            "new_password_again": "a-new-long-passphrase-7",
        },
    )
    assert response.status_code == 400
    assert "現在のパスワードが違います。" in response.content.decode()
    assert sign_in(Client(), "alice")["Location"] == "/"


@override_settings(LOCKOUT_THRESHOLD=2)
def test_it_counts_wrong_current_passwords_towards_the_lockout(client: Client, alice: User) -> None:
    """The password page must not let a borrowed session guess the password forever."""
    sign_in(client, "alice")
    fields = {
        "new_password": "a-new-long-passphrase-7",
        "new_password_again": "a-new-long-passphrase-7",
    }
    for guess in ("guess-1", "guess-2"):
        response = client.post("/account/password/", {"current_password": guess, **fields})
        assert "現在のパスワードが違います。" in response.content.decode()
    response = client.post("/account/password/", {"current_password": PASSWORD, **fields})
    assert response.status_code == 400
    assert "一時的にロックされています" in response.content.decode()
    assert sign_in(Client(), "alice", "a-new-long-passphrase-7").status_code == 403
    reasons = list(
        AuditEntry.objects.filter(action="auth.login_failed")
        .order_by("pk")
        .values_list("details__reason", flat=True)
    )
    assert reasons == ["invalid_credentials", "invalid_credentials", "locked", "locked"]
    assert not AuditEntry.objects.filter(action="auth.password_changed").exists()


def test_it_audits_the_creation_of_an_administrator(db: None, tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("a-long-admin-passphrase-9\n", encoding="utf-8")
    out = io.StringIO()
    call_command(
        "createadmin", "joho", "--name", "情報 太郎", "--password-file", str(secret), stdout=out
    )
    admin = User.objects.get(username="joho")
    assert admin.is_superuser
    assert audit_actions(target_id=str(admin.pk)) == [
        "directory.staff_created",
        "directory.role_granted",
    ]
    assert sign_in(Client(), "joho", "a-long-admin-passphrase-9")["Location"] == "/"

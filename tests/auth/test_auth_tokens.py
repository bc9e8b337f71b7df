"""API tokens for bots and devices: shown once, stored hashed, scoped, expiring,
revocable, refused for an inactive owner; the admin page and ``yakuba token``."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from tests.auth.conftest import sign_in
from yakuba.audit.models import AuditEntry
from yakuba.directory.actions import auth as actions
from yakuba.directory.actions.staff import do_invite_guest
from yakuba.directory.models import ApiToken, User
from yakuba.directory.tokens import TOKEN_SCOPES, UnknownScope, authenticate_token
from yakuba.lib import clock
from yakuba.realtime.models import UserEvent

MONDAY_9AM = dt.datetime(2025, 4, 7, 9, 0, tzinfo=clock.TOKYO)


@pytest.fixture
def kiosk(db: None) -> User:
    """The 1st-floor counter's ticket kiosk, a device that calls the API."""
    return User.objects.create_user(
        "kiosk-1f", None, display_name="1階発券機", kind=User.Kind.DEVICE
    )


def create_on_admin_page(client: Client, owner: User, **fields: object) -> str:
    data: dict[str, Any] = {
        "user": str(owner.pk),
        "name": "発券",
        "scopes": ["api:read"],
        "days": "30",
    }
    data.update(fields)
    response = client.post("/account/admin/tokens/", data)
    assert response.status_code == 200, response.content.decode()
    match = re.search(r'id="raw-token" value="([^"]+)"', response.content.decode())
    assert match, "the new token is shown"
    return match.group(1)


def test_it_shows_a_new_token_once_and_keeps_only_its_hash(
    client: Client, dana: User, kiosk: User
) -> None:
    sign_in(client, "dana")
    raw = create_on_admin_page(client, kiosk, scopes=["api:read", "realtime"])
    assert raw.startswith("ykb_")
    token = ApiToken.objects.get(user=kiosk)
    assert token.digest == hashlib.sha256(raw.encode()).hexdigest()
    assert raw.startswith(f"ykb_{token.prefix}_")
    assert token.scopes == ["api:read", "realtime"]
    assert token.created_by == dana
    # Never shown again, never in the audit log.
    page = client.get("/account/admin/tokens/").content.decode()
    assert raw not in page
    assert token.prefix in page
    entry = AuditEntry.objects.get(action="auth.token_created")
    assert entry.actor_id == dana.pk
    assert raw not in str(entry.details)
    assert entry.details["scopes"] == ["api:read", "realtime"]


def test_it_keeps_the_form_when_it_is_incomplete(client: Client, dana: User, kiosk: User) -> None:
    sign_in(client, "dana")
    response = client.post(
        "/account/admin/tokens/", {"user": str(kiosk.pk), "name": "発券機用", "days": "30"}
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "スコープを1つ以上選んでください。" in page
    assert 'value="発券機用"' in page
    assert not ApiToken.objects.exists()


def test_it_answers_odd_digits_in_the_form_with_a_message(
    client: Client, dana: User, kiosk: User
) -> None:
    """ "²" passes str.isdigit() but not int(): a 400 with the form kept, not a 500."""
    sign_in(client, "dana")
    fields = {"name": "発券", "scopes": ["api:read"]}
    response = client.post("/account/admin/tokens/", {**fields, "user": str(kiosk.pk), "days": "²"})
    assert response.status_code == 400
    assert "有効日数は1から3650までの数字" in response.content.decode()
    response = client.post("/account/admin/tokens/", {**fields, "user": "²", "days": "30"})
    assert response.status_code == 400
    assert "ボットまたは端末の利用者を選んでください。" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_it_enforces_the_scope(kiosk: User) -> None:
    token, raw = actions.do_create_token(
        kiosk, name="発券", scopes=["api:read"], expires_at=None, acting_user=None
    )
    assert authenticate_token(raw) == (kiosk, token)
    assert authenticate_token(raw, scope="api:read") == (kiosk, token)
    assert authenticate_token(raw, scope="api:write") is None
    assert authenticate_token(raw + "x", scope="api:read") is None
    assert authenticate_token("ykb_00000000_guess") is None
    assert authenticate_token("") is None
    with pytest.raises(UnknownScope):
        authenticate_token(raw, scope="admin")
    with pytest.raises(UnknownScope):
        actions.do_create_token(
            kiosk, name="x", scopes=["everything"], expires_at=None, acting_user=None
        )
    assert set(TOKEN_SCOPES) >= {"api:read", "api:write", "realtime", "chat:send"}


def test_it_refuses_the_token_of_a_guest_whose_invitation_ran_out(alice: User) -> None:
    """Guests are deactivated by a job every few minutes; until then their tokens must
    not work past the invitation either."""
    with clock.frozen_at(MONDAY_9AM):
        guest = do_invite_guest(
            name="山田 花子",
            organisation="○○交通株式会社",
            email="hanako@example.jp",
            expires_at=MONDAY_9AM + dt.timedelta(days=1),
            acting_user=alice,
        )
        _, raw = actions.do_create_token(
            guest, name="連絡用", scopes=["api:read"], expires_at=None, acting_user=alice
        )
        assert authenticate_token(raw) is not None
        clock.advance(dt.timedelta(days=1))
        assert authenticate_token(raw) is None


def test_it_refuses_an_expired_token(kiosk: User) -> None:
    with clock.frozen_at(MONDAY_9AM):
        _, raw = actions.do_create_token(
            kiosk,
            name="発券",
            scopes=["api:read"],
            expires_at=MONDAY_9AM + dt.timedelta(days=1),
            acting_user=None,
        )
        assert authenticate_token(raw) is not None
        clock.advance(dt.timedelta(days=1))
        assert authenticate_token(raw) is None


def test_it_refuses_a_token_of_an_inactive_owner(kiosk: User) -> None:
    _, raw = actions.do_create_token(
        kiosk, name="発券", scopes=["api:read"], expires_at=None, acting_user=None
    )
    actions.do_deactivate_user(kiosk, acting_user=None)
    assert authenticate_token(raw) is None


def test_it_revokes_a_token_from_the_admin_page(client: Client, dana: User, kiosk: User) -> None:
    sign_in(client, "dana")
    raw = create_on_admin_page(client, kiosk)
    token = ApiToken.objects.get(user=kiosk)
    response = client.post(f"/account/tokens/{token.pk}/revoke/", {"back": "admin"})
    assert response["Location"] == "/account/admin/tokens/"
    assert authenticate_token(raw) is None
    entry = AuditEntry.objects.get(action="auth.token_revoked")
    assert entry.actor_id == dana.pk
    event = UserEvent.objects.get(user=kiosk)
    assert event.payload == {"type": "token", "op": "revoked", "token_id": token.pk}


def test_it_lets_people_see_and_revoke_only_their_own_tokens(
    client: Client, alice: User, charlie: User
) -> None:
    token, raw = actions.do_create_token(
        alice, name="予定表の連携", scopes=["api:read"], expires_at=None, acting_user=None
    )
    sign_in(client, "charlie")
    assert "予定表の連携" not in client.get("/account/").content.decode()
    assert client.post(f"/account/tokens/{token.pk}/revoke/").status_code == 403
    assert authenticate_token(raw) is not None
    assert AuditEntry.objects.filter(action="auth.denied", actor_id=charlie.pk).exists()
    alices = Client()
    sign_in(alices, "alice")
    assert "予定表の連携" in alices.get("/account/").content.decode()
    assert alices.post(f"/account/tokens/{token.pk}/revoke/")["Location"] == "/account/"
    assert authenticate_token(raw) is None


def test_it_records_last_use_at_most_once_a_minute(kiosk: User) -> None:
    with clock.frozen_at(MONDAY_9AM):
        token, raw = actions.do_create_token(
            kiosk, name="発券", scopes=["api:read"], expires_at=None, acting_user=None
        )
        authenticate_token(raw)
        token.refresh_from_db()
        assert token.last_used_at == MONDAY_9AM
        clock.advance(dt.timedelta(seconds=50))
        authenticate_token(raw)
        token.refresh_from_db()
        assert token.last_used_at == MONDAY_9AM
        clock.advance(dt.timedelta(seconds=20))
        authenticate_token(raw)
        token.refresh_from_db()
        assert token.last_used_at == clock.now()


def test_it_manages_tokens_from_the_command_line(kiosk: User) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "token",
        "create",
        "kiosk-1f",
        "--name",
        "発券",
        "--scope",
        "api:read",
        "--scope",
        "realtime",
        "--days",
        "7",
        stdout=out,
        stderr=err,
    )
    raw = out.getvalue().strip()
    found = authenticate_token(raw, scope="realtime")
    assert found is not None
    token = found[1]
    assert token.expires_at is not None
    assert dt.timedelta(days=6, hours=23) < token.expires_at - clock.now() <= dt.timedelta(days=7)
    entry = AuditEntry.objects.get(action="auth.token_created")
    assert (entry.actor_kind, entry.actor_label) == ("system", "yakuba token")
    listing = io.StringIO()
    call_command("token", "list", "kiosk-1f", stdout=listing)
    assert token.prefix in listing.getvalue()
    assert raw not in listing.getvalue()
    call_command("token", "revoke", str(token.pk), stdout=io.StringIO())
    assert authenticate_token(raw) is None

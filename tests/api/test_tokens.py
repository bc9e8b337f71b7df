import json

from django.test import Client

from yakuba.audit.models import AuditEntry
from yakuba.directory.actions.auth import do_create_token, do_revoke_token
from yakuba.directory.models import User


def issue(user: User, scopes: list[str], *, by: User) -> str:
    _token, raw = do_create_token(
        user, name="名簿同期", scopes=scopes, expires_at=None, acting_user=by
    )
    return str(raw)


def test_it_lets_a_script_read_the_staff_list_with_a_bearer_token(
    client: Client, alice: User
) -> None:
    raw = issue(alice, ["api:read"], by=alice)
    response = client.get("/api/staff", headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 200, response.content
    assert [item["employee_number"] for item in json.loads(response.content)["items"]] == ["10001"]


def test_it_tells_a_bot_who_it_is_but_keeps_the_directory_from_it(
    client: Client, roster_bot: User, alice: User
) -> None:
    headers = {"Authorization": f"Bearer {issue(roster_bot, ['api:read'], by=alice)}"}
    me = json.loads(client.get("/api/me", headers=headers).content)
    assert (me["kind"], me["department"]) == ("bot", None)
    response = client.get("/api/staff", headers=headers)
    assert response.status_code == 403
    assert json.loads(response.content)["error"]["code"] == "forbidden"
    assert AuditEntry.objects.filter(action="auth.denied", actor_id=roster_bot.pk).exists()


def test_it_refuses_a_token_without_the_read_scope(
    client: Client, roster_bot: User, alice: User
) -> None:
    raw = issue(roster_bot, ["realtime"], by=alice)
    response = client.get("/api/me", headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 401
    assert json.loads(response.content)["error"]["code"] == "unauthorized"


def test_it_never_falls_back_to_the_session_when_the_token_is_bad(alice: User) -> None:
    client = Client()
    client.force_login(alice)
    assert client.get("/api/me").status_code == 200
    response = client.get("/api/me", headers={"Authorization": "Bearer ykb_00000000_forged"})
    assert response.status_code == 401
    assert json.loads(response.content)["error"]["code"] == "unauthorized"


def test_it_stops_a_revoked_token(client: Client, roster_bot: User, alice: User) -> None:
    raw = issue(roster_bot, ["api:read"], by=alice)
    headers = {"Authorization": f"Bearer {raw}"}
    assert client.get("/api/me", headers=headers).status_code == 200
    token = roster_bot.api_tokens.get()
    do_revoke_token(token, acting_user=alice)
    assert client.get("/api/me", headers=headers).status_code == 401

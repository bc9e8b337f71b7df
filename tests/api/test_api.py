import json
from typing import Any

import pytest
from django.db import transaction
from django.test import Client, override_settings

from tests.conftest import make_staff
from yakuba.audit.models import AuditEntry
from yakuba.directory.actions.staff import do_grant_role, do_set_concurrent_posts
from yakuba.directory.models import Department, Role, User


def body(response: Any) -> dict[str, Any]:
    assert response["Content-Type"].startswith("application/json")
    decoded: dict[str, Any] = json.loads(response.content)
    return decoded


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """Every error has the one shape: code, Japanese and English message, fields."""
    assert response.status_code == status, response.content
    error: dict[str, Any] = body(response)["error"]
    assert set(error) == {"code", "message", "message_en", "fields"}
    assert error["code"] == code
    assert any("\u3040" <= char <= "\u9fff" for char in error["message"]), error["message"]
    assert error["message_en"].isascii()
    assert isinstance(error["fields"], dict)
    return error


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_it_describes_itself_in_openapi_without_an_external_docs_page(client: Client) -> None:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    paths = body(response)["paths"]
    assert {"/api/me", "/api/departments", "/api/staff", "/api/staff/{employee_number}"} <= set(
        paths
    )
    # ninja's Swagger page pulls its scripts from a CDN: it must not exist.
    assert_error(client.get("/api/docs"), 404, "not_found")


def test_it_answers_401_in_the_one_format_to_an_anonymous_caller(client: Client, db: None) -> None:
    response = client.get("/api/me")
    assert_error(response, 401, "unauthorized")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_it_tells_alice_who_she_is(alice: User, ward: dict[str, Department]) -> None:
    do_grant_role(alice, Role.SECTION_HEAD, department=ward["bunsho"], acting_user=None)
    do_set_concurrent_posts(alice.staff, [ward["koseki"]], acting_user=None)
    me = body(signed_in(alice).get("/api/me"))
    assert me["name"] == "青木 愛"
    assert me["kind"] == "staff"
    assert me["employee_number"] == "10001"
    assert me["department"] == {
        "code": "111",
        "name": "文書係",
        "full_name": "総務部 総務課 文書係",
    }
    assert me["concurrent_departments"] == [
        {"code": "210", "name": "戸籍住民課", "full_name": "区民部 戸籍住民課"}
    ]
    assert me["roles"] == [{"role": "section_head", "label": "所属長", "department": "111"}]


def test_it_reports_each_bad_field(alice: User) -> None:
    client = signed_in(alice)
    error = assert_error(client.get("/api/staff?limit=0"), 422, "validation_error")
    assert list(error["fields"]) == ["limit"]
    assert "1 以上" in error["fields"]["limit"][0]
    error = assert_error(client.get("/api/staff?cursor=not-a-cursor"), 422, "validation_error")
    assert list(error["fields"]) == ["cursor"]


def test_it_answers_404_in_the_one_format(alice: User) -> None:
    client = signed_in(alice)
    error = assert_error(client.get("/api/staff/99999"), 404, "not_found")
    assert "99999" in error["message"]
    assert_error(client.get("/api/no-such-thing"), 404, "not_found")


def test_it_refuses_the_staff_list_to_a_guest_and_logs_it(dave: User) -> None:
    client = signed_in(dave)
    assert client.get("/api/me").status_code == 200
    assert_error(client.get("/api/staff"), 403, "forbidden")
    assert_error(client.get("/api/staff/10001"), 403, "forbidden")
    assert_error(client.get("/api/departments"), 403, "forbidden")
    denials = AuditEntry.objects.filter(action="auth.denied", actor_id=dave.pk)
    assert [entry.details["what"] for entry in denials] == ["directory.view"] * 3


def test_it_finds_staff_by_name_without_spaces_kana_and_department(
    alice: User, bob: User, charlie: User
) -> None:
    client = signed_in(alice)

    def numbers(query: str) -> list[str]:
        return [
            item["employee_number"] for item in body(client.get(f"/api/staff?{query}"))["items"]
        ]

    assert numbers("q=青木愛") == ["10001"]
    assert numbers("q=ちばちゃ") == ["20001"]
    assert numbers("q=20001") == ["20001"]
    assert numbers("department=100") == ["10001", "10002"]
    assert numbers("department=210") == ["20001"]
    assert numbers("department=999") == []
    detail = body(client.get("/api/staff/10002"))
    assert detail["name"] == "坂東 歩"
    assert detail["department"]["full_name"] == "総務部 総務課 文書係"
    assert detail["concurrent_departments"] == []


def test_it_pages_without_losing_or_repeating_when_rows_arrive_between_pages(
    alice: User, ward: dict[str, Department]
) -> None:
    for number in range(10010, 10070, 10):
        make_staff(f"s{number}", "佐藤", f"{number}", ward["koseki"], number=str(number))
    client = signed_in(alice)
    seen: list[str] = []
    page = body(client.get("/api/staff?limit=3"))
    seen += [item["employee_number"] for item in page["items"]]
    # One newcomer sorts before the cursor (already passed), one after it.
    make_staff("early", "早川", "一", ward["koseki"], number="10000")
    make_staff("late", "遅野", "二", ward["koseki"], number="10065")
    while page["next_cursor"]:
        assert len(page["items"]) == 3
        page = body(client.get(f"/api/staff?limit=3&cursor={page['next_cursor']}"))
        seen += [item["employee_number"] for item in page["items"]]
    assert len(seen) == len(set(seen))
    assert seen == sorted(seen)
    expected = {"10001", "10065"} | {str(n) for n in range(10010, 10070, 10)}
    assert set(seen) == expected


def test_it_caps_the_page_size(alice: User, ward: dict[str, Department]) -> None:
    with transaction.atomic():
        for index in range(205):
            Department.objects.create(code=f"9{index:03d}", name=f"臨時{index}", level="kakari")
    page = body(signed_in(alice).get("/api/departments?limit=1000"))
    assert len(page["items"]) == 200
    assert page["next_cursor"]


def test_it_lists_departments_as_a_tree(alice: User, ward: dict[str, Department]) -> None:
    client = signed_in(alice)
    first = body(client.get("/api/departments?limit=2"))
    rest = body(client.get(f"/api/departments?limit=10&cursor={first['next_cursor']}"))
    assert rest["next_cursor"] is None
    rows = {item["code"]: item for item in first["items"] + rest["items"]}
    assert list(rows) == ["100", "110", "111", "200", "210"]
    assert rows["111"]["parent"] == "110"
    assert rows["111"]["depth"] == 2
    assert rows["111"]["full_name"] == "総務部 総務課 文書係"
    assert rows["100"]["parent"] is None


@override_settings(API_RATE_PER_MINUTE=2)
def test_it_answers_429_in_the_one_format_past_the_rate(alice: User) -> None:
    client = signed_in(alice)
    assert client.get("/api/me").status_code == 200
    assert client.get("/api/me").status_code == 200
    response = client.get("/api/me")
    assert_error(response, 429, "rate_limited")
    assert 0 < int(response["Retry-After"]) <= 60


def test_it_answers_an_unexpected_failure_in_the_one_format(
    alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> None:
        raise RuntimeError("secret detail that must not leak")

    monkeypatch.setattr("yakuba.api.search_staff", broken)
    response = signed_in(alice).get("/api/staff")
    error = assert_error(response, 500, "server_error")
    assert "secret detail" not in response.content.decode()
    assert error["fields"] == {}


@pytest.mark.urls("tests.api.unsafe_urls")
def test_it_requires_the_csrf_token_for_a_session_write(alice: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert_error(client.post("/api/echo", {}), 403, "csrf_failed")
    client.get("/api/echo")  # sets the CSRF cookie, as a page would
    token = client.cookies["csrftoken"].value
    response = client.post("/api/echo", {}, headers={"X-CSRFToken": token})
    assert response.status_code == 200
    assert body(response) == {"caller": "alice"}


def test_it_answers_a_wrong_method_in_the_one_format(alice: User) -> None:
    response = signed_in(alice).delete("/api/me")
    assert_error(response, 405, "method_not_allowed")
    assert response["Allow"] == "GET"


def test_it_lists_a_page_of_staff_in_three_queries_however_many(
    alice: User, ward: dict[str, Department], django_assert_num_queries: Any
) -> None:
    for number in range(30001, 30013):
        make_staff(f"u{number}", "佐藤", str(number), ward["koseki"], number=str(number))
    client = signed_in(alice)
    client.get("/api/me")  # the session's first request may refresh it
    # 1. the session  2. the signed-in user  3. the page of staff with their 所属 chain
    with django_assert_num_queries(3):
        page = body(client.get("/api/staff?limit=10"))
    assert len(page["items"]) == 10
    # The same three for the department tree.
    with django_assert_num_queries(3):
        body(client.get("/api/departments"))


def test_it_pages_on_when_the_last_item_seen_is_deleted(
    alice: User, ward: dict[str, Department]
) -> None:
    from yakuba.directory.actions.staff import do_change_department, do_create_department

    for index in range(1, 6):
        do_create_department(
            code=f"5{index:02d}", name=f"臨時{index}", level="bu", parent=None, acting_user=None
        )
    client = signed_in(alice)
    first = body(client.get("/api/departments?limit=6"))
    last_seen = first["items"][-1]["code"]
    # The department the cursor points at is closed (deactivated) before the next page.
    closed = Department.objects.get(code=last_seen)
    do_change_department(closed, is_active=False, acting_user=None)
    rest = body(client.get(f"/api/departments?limit=6&cursor={first['next_cursor']}"))
    codes = [item["code"] for item in first["items"] + rest["items"]]
    assert len(codes) == len(set(codes)) == 10
    assert rest["next_cursor"] is None

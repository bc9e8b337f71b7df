"""Labels that come from models (choices, audit actions) follow the reader's language,
while what is exported for re-import stays in Japanese."""

from __future__ import annotations

from django.test import Client

from tests.conftest import PASSWORD
from yakuba.directory.models import User


def signed_in(username: str, language: str) -> Client:
    client = Client()
    assert client.post("/login/", {"username": username, "password": PASSWORD}).status_code == 302
    assert client.post("/account/language/", {"language": language}).status_code == 302
    return client


def test_it_names_department_levels_in_the_readers_language(alice: User, bob: User) -> None:
    english = signed_in("alice", "en").get("/directory/departments/").content.decode()
    japanese = signed_in("bob", "ja").get("/directory/departments/").content.decode()

    for label in ("Division", "Section", "Unit"):
        assert f"<td>{label}</td>" in english
        assert f"<td>{label}</td>" not in japanese
    for label in ("部", "課", "係"):
        assert f"<td>{label}</td>" in japanese
        assert f"<td>{label}</td>" not in english


def test_it_shows_audit_actions_and_actor_kinds_in_english(ida: User) -> None:
    page = signed_in("ida", "en").get("/audit/").content.decode()

    # The language change just made is in the log, with its action and actor kind.
    assert "Language changed" in page
    assert "表示言語の変更" not in page
    assert "<small>Staff</small>" in page
    # The stored action code is shown unchanged beside the label.
    assert "<code>auth.language_changed</code>" in page


def test_it_exports_the_staff_status_in_japanese_to_an_english_reader(
    ida: User, alice: User
) -> None:
    response = signed_in("ida", "en").get("/directory/export/staff.csv")

    assert response.status_code == 200
    rows = response.content.decode("utf-8-sig").splitlines()
    alice_row = next(row for row in rows if ",青木,愛," in row)
    # The status column is what the import reads: 在職/退職, never the English label.
    assert ",在職," in alice_row
    assert "Active" not in alice_row

"""A NUL character anywhere in a request is refused with 400, before any view or query
(PostgreSQL refuses NUL in text, which would otherwise be a 500)."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.conftest import PASSWORD
from yakuba.directory.models import User


@pytest.mark.parametrize(
    "path", ["/rooms/checkin/%00abc/", "/directory/?q=%E9%9D%92%00", "/login/?next=%00"]
)
def test_it_refuses_a_nul_in_the_path_or_query(alice: User, path: str) -> None:
    client = Client()
    client.login(username="alice", password=PASSWORD)
    response = client.get(path)
    assert response.status_code == 400
    assert "NUL" in response.content.decode()


def test_it_refuses_a_nul_in_a_posted_form(alice: User) -> None:
    response = Client().post("/login/", {"username": "alice\x00", "password": PASSWORD})
    assert response.status_code == 400
    assert "_auth_user_id" not in Client().session


def test_it_lets_ordinary_requests_through(alice: User) -> None:
    client = Client()
    client.login(username="alice", password=PASSWORD)
    assert client.get("/directory/?q=青木").status_code == 200

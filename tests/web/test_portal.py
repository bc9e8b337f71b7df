import datetime as dt

from django.test import Client

from tests.conftest import PASSWORD
from yakuba.audit.models import AuditEntry
from yakuba.directory.models import User
from yakuba.lib import clock


def test_it_shows_the_portal_in_japanese_after_sign_in(client: Client, alice: User) -> None:
    with clock.frozen_at(dt.datetime(2025, 4, 1, 9, 0, tzinfo=clock.TOKYO)):
        response = client.post("/login/", {"username": "alice", "password": PASSWORD})
        assert response.status_code == 302
        page = client.get("/").content.decode()
    assert "青木 愛" in page
    assert "総務部 総務課 文書係" in page
    assert "令和7年4月1日(火)" in page
    assert "2025年4月1日" in page
    assert AuditEntry.objects.filter(action="auth.login", actor_id=alice.pk).count() == 1


def test_it_refuses_a_wrong_password_with_a_japanese_message(client: Client, alice: User) -> None:
    response = client.post("/login/", {"username": "alice", "password": "wrong"})
    assert response.status_code == 401
    assert "ユーザー名またはパスワードが違います" in response.content.decode()
    assert client.get("/").status_code == 302


def test_it_sends_an_anonymous_visitor_to_sign_in(client: Client, db: None) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_it_renders_the_portal_in_five_queries(
    client: Client, alice: User, django_assert_num_queries
) -> None:
    client.force_login(alice)
    client.get("/")  # the first request adopts the session (tracked once)
    # 1 session, 2 user, 3 roles for the navigation, 4 the viewer's profile with its
    # whole 所属 path (部 課 係) joined, 5 兼務: not one query per department level.
    with django_assert_num_queries(5):
        response = client.get("/")
    assert "総務部 総務課 文書係" in response.content.decode()

import datetime as dt

import pytest
from django.http import HttpRequest, HttpResponse
from django.template import Context, Template
from django.test import Client, override_settings
from django.urls import path

from yakuba import urls as project_urls
from yakuba.directory.actions.auth import do_set_language
from yakuba.directory.models import User
from yakuba.lib import clock


def render(source: str, **context: object) -> str:
    return Template("{% load yakuba_dates %}" + source).render(Context(context))


def test_it_formats_dates_in_templates_through_the_one_formatter() -> None:
    day = dt.date(2025, 4, 1)
    assert render("{{ d|wareki }}", d=day) == "令和7年4月1日"
    assert render("{{ d|wareki:True }}", d=day) == "令和7年4月1日(火)"
    assert render("{{ d|seireki }}", d=day) == "2025年4月1日"
    assert render("{{ d|wareki }}", d=dt.date(2019, 5, 1)) == "令和元年5月1日"
    assert render("[{{ d|wareki }}{{ d|wareki_datetime }}]", d=None) == "[]"


def test_it_shows_times_in_tokyo_whatever_the_stored_zone() -> None:
    # 2019-04-30 15:30 UTC is 令和元年5月1日 00:30 in Tokyo: the era changes with the day.
    moment = dt.datetime(2019, 4, 30, 15, 30, tzinfo=dt.UTC)
    assert render("{{ m|wareki_datetime }}", m=moment) == "令和元年5月1日(水) 00:30"
    assert render("{{ m|seireki_datetime }}", m=moment) == "2019年5月1日(水) 00:30"
    assert render("{{ m|iso_local }}", m=moment) == "2019-05-01T00:30+09:00"
    morning = dt.datetime(2025, 4, 1, 0, 0, tzinfo=dt.UTC)
    assert render("{{ m|wareki_datetime }}", m=morning) == "令和7年4月1日(火) 09:00"


def test_it_shows_the_portal_with_name_department_and_both_dates(alice: User) -> None:
    client = Client()
    client.force_login(alice)
    with clock.frozen_at(dt.datetime(2019, 4, 30, 23, 0, tzinfo=clock.TOKYO)):
        page = client.get("/").content.decode()
    assert '<html lang="ja">' in page
    assert "青木 愛" in page
    assert "総務部 総務課 文書係" in page
    assert "平成31年4月30日(火)" in page
    assert "2019年4月30日" in page
    assert 'aria-label="メインメニュー"' in page
    assert 'href="#main"' in page


def test_it_lets_an_anonymous_visitor_choose_english_on_the_sign_in_page(db: None) -> None:
    client = Client()
    page = client.get("/login/").content.decode()
    assert '<html lang="ja">' in page
    assert 'action="/i18n/setlang/"' in page
    assert '<option value="en" lang="en">English</option>' in page
    response = client.post("/i18n/setlang/", {"language": "en", "next": "/login/"})
    assert response.status_code == 302
    assert response["Location"] == "/login/"
    assert '<html lang="en">' in client.get("/login/").content.decode()


def test_it_shows_a_signed_in_person_their_own_language(alice: User) -> None:
    do_set_language(alice, "en", acting_user=alice)
    client = Client()
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert '<html lang="en">' in page
    # An anonymous choice of Japanese does not override the person's own setting.
    client.cookies["django_language"] = "ja"
    assert '<html lang="en">' in client.get("/").content.decode()


def test_it_answers_an_unknown_page_with_a_japanese_404(client: Client, db: None) -> None:
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "ページが見つかりません" in page
    assert "お探しのページは存在しない" in page


def refuse(request: HttpRequest) -> HttpResponse:
    from django.core.exceptions import PermissionDenied

    raise PermissionDenied("文書係の秘密の文書 #42")


def explode(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("internal detail")


urlpatterns = [path("refuse/", refuse), path("explode/", explode), *project_urls.urlpatterns]
handler403 = "yakuba.web.errors.forbidden"
handler404 = "yakuba.web.errors.not_found"
handler500 = "yakuba.web.errors.server_error"


@pytest.mark.urls("tests.web.test_shell")
def test_it_answers_403_without_saying_what_was_refused(alice: User) -> None:
    client = Client()
    client.force_login(alice)
    response = client.get("/refuse/")
    assert response.status_code == 403
    page = response.content.decode()
    assert "権限がありません" in page
    assert "秘密" not in page
    assert "#42" not in page


@pytest.mark.urls("tests.web.test_shell")
@override_settings(DEBUG=False)
def test_it_answers_500_with_a_japanese_page_that_keeps_details_back(db: None) -> None:
    client = Client(raise_request_exception=False)
    response = client.get("/explode/")
    assert response.status_code == 500
    page = response.content.decode()
    assert "システムエラーが発生しました" in page
    assert "internal detail" not in page


def test_it_keeps_every_asset_local_and_the_shell_light(alice: User) -> None:
    """Low-spec terminals and remote desktop: the CSS and JS of a page stay under 100 kB
    in all, and every one of them is served by Yakuba itself."""
    import re

    client = Client()
    client.force_login(alice)
    page = client.get("/").content.decode()
    assets = re.findall(r'<(?:script[^>]* src|link[^>]* href)="([^"]+)"', page)
    assert any(asset.endswith("yakuba.css") for asset in assets)
    assert any(asset.endswith("htmx.min.js") for asset in assets)
    total = 0
    for asset in assets:
        assert asset.startswith("/static/"), asset
        response = client.get(asset)
        assert response.status_code == 200, f"{asset} is missing: run `make frontend`"
        total += len(b"".join(response) if response.streaming else response.content)
    assert total < 100_000


def test_it_explains_a_refused_form_in_japanese(alice: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post("/logout/")  # a form posted without its CSRF token
    assert response.status_code == 403
    page = response.content.decode()
    assert "送信を受け付けられませんでした" in page
    assert "再読み込み" in page
    assert "CSRF verification failed" not in page


def test_it_tells_the_browser_to_load_nothing_from_elsewhere(client: Client, db: None) -> None:
    policy = client.get("/login/")["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"


def test_it_greets_a_visitor_in_japanese_whatever_the_browser_prefers(client: Client) -> None:
    """Japanese first: an English-language browser still gets Japanese until the visitor
    chooses English."""
    page = client.get("/login/", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9").content.decode()
    assert '<html lang="ja">' in page
    assert "サインイン" in page
    client.post("/i18n/setlang/", {"language": "en", "next": "/login/"})
    page = client.get("/login/", HTTP_ACCEPT_LANGUAGE="ja").content.decode()
    assert '<html lang="en">' in page
    assert "Sign in" in page

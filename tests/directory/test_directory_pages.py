"""The directory pages: staff search, the department tree, staff details, CSV upload."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile

from yakuba.audit.models import AuditEntry
from yakuba.audit.record import Actor
from yakuba.directory.actions.staff import do_set_concurrent_posts
from yakuba.directory.models import StaffProfile


def names_in(response) -> list[str]:
    """The personas listed in the search results (the header names the signed-in user)."""
    page = response.content.decode()
    results = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in page else ""
    return [name for name in ("青木 愛", "坂東 歩", "千葉 茶太郎") if name in results]


def test_staff_find_colleagues_by_name_without_spaces_or_by_kana(client, alice, bob, charlie):
    client.force_login(alice)

    assert names_in(client.get("/directory/", {"q": "坂東歩"})) == ["坂東 歩"]
    assert names_in(client.get("/directory/", {"q": "ばんどう あゆむ"})) == ["坂東 歩"]
    assert names_in(client.get("/directory/", {"q": "チバ"})) == ["千葉 茶太郎"]
    assert names_in(client.get("/directory/", {"q": "存在しない人"})) == []


def test_a_department_search_includes_the_sections_below_and_concurrent_posts(
    client, alice, bob, charlie, ward
):
    do_set_concurrent_posts(charlie.staff, [ward["somu_ka"]], acting_user=Actor.system("test"))
    client.force_login(alice)

    response = client.get("/directory/", {"department": "100"})

    assert response.status_code == 200
    assert names_in(response) == ["青木 愛", "坂東 歩", "千葉 茶太郎"]
    assert names_in(client.get("/directory/", {"department": "210"})) == ["千葉 茶太郎"]


def test_it_finds_staff_by_extension(client, alice, bob):
    staff = StaffProfile.objects.get(user=bob)
    staff.extension = "2111"
    staff.save(update_fields=["extension"])
    client.force_login(alice)

    assert names_in(client.get("/directory/", {"q": "2111"})) == ["坂東 歩"]


def test_the_staff_page_shows_the_department_path_and_concurrent_posts(client, alice, bob, ward):
    do_set_concurrent_posts(bob.staff, [ward["koseki"]], acting_user=Actor.system("test"))
    client.force_login(alice)

    page = client.get("/directory/staff/10002/").content.decode()

    assert "坂東 歩" in page
    assert "ばんどう あゆむ" in page
    assert "総務部</a> › <a" in page
    assert "文書係</a>" in page
    assert "区民部 戸籍住民課" in page
    assert client.get("/directory/staff/99999/").status_code == 404


def test_the_department_tree_lists_every_level(client, alice, ward):
    client.force_login(alice)

    page = client.get("/directory/departments/").content.decode()

    assert page.index("総務部") < page.index("総務課") < page.index("文書係") < page.index("区民部")


def test_a_guest_is_refused_the_directory_and_the_refusal_is_logged(client, gina, alice):
    client.force_login(gina)

    for url in ("/directory/", "/directory/departments/", "/directory/staff/10001/"):
        assert client.get(url).status_code == 403

    denials = AuditEntry.objects.filter(action="auth.denied", actor_id=gina.pk)
    assert [entry.details["what"] for entry in denials] == ["directory.view"] * 3


def test_an_anonymous_visitor_is_sent_to_sign_in(client, db):
    response = client.get("/directory/")

    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_only_it_administrators_may_upload_csv(client, alice):
    client.force_login(alice)

    assert client.get("/directory/import/").status_code == 403
    assert client.get("/directory/export/staff.csv").status_code == 403
    assert AuditEntry.objects.filter(action="auth.denied", actor_id=alice.pk).count() == 2


def test_the_upload_page_lists_every_bad_row_and_imports_nothing(client, ida):
    client.force_login(ida)
    data = (
        "職員番号,姓,名,姓かな,名かな,所属コード\r\n"
        "60001,山田,太郎,やまだ,たろう,111\r\n"
        "60002,山田,花子,やまだ,はなこ,999\r\n"
        "60001,山田,次郎,やまだ,じろう,111\r\n"
    ).encode("cp932")

    response = client.post(
        "/directory/import/",
        {"kind": "staff", "encoding": "auto", "file": SimpleUploadedFile("s.csv", data)},
    )

    page = response.content.decode()
    assert response.status_code == 400
    assert "2件のエラーがあるため、1件も取り込みませんでした" in page
    assert "3行目: 所属コード 999 は存在しません" in page
    assert "4行目: 職員番号 60001 が2行目と重複しています" in page
    assert not StaffProfile.objects.filter(employee_number__startswith="6").exists()


def test_the_upload_page_imports_a_good_file(client, ida):
    client.force_login(ida)
    data = "職員番号,姓,名,姓かな,名かな,所属コード\n60001,山田,太郎,やまだ,たろう,111\n"

    response = client.post(
        "/directory/import/",
        {"kind": "staff", "file": SimpleUploadedFile("s.csv", data.encode())},
        follow=True,
    )

    assert "取り込みました: 新規 1 件" in response.content.decode()
    entry = AuditEntry.objects.get(action="directory.csv_imported")
    assert entry.actor_id == ida.pk
    assert entry.details["file"] == "s.csv"


def test_an_it_administrator_downloads_the_staff_csv_in_shift_jis(client, ida, alice):
    client.force_login(ida)

    response = client.get("/directory/export/staff.csv", {"encoding": "cp932"})

    assert response.status_code == 200
    assert "青木,愛,あおき,あい,111" in response.content.decode("cp932")
    assert AuditEntry.objects.filter(action="directory.csv_exported", actor_id=ida.pk).exists()


def test_the_search_page_queries_do_not_grow_with_the_results(client, alice, bob, charlie, ward):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.conftest import make_staff

    client.force_login(alice)
    client.get("/directory/")  # the session's first request writes it; not counted below

    def queries_for_search() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/directory/", {"department": "100"}).status_code == 200
        return len(captured)

    few = queries_for_search()
    for n in range(5):
        make_staff(f"extra{n}", "追加", f"{n}郎", ward["bunsho"], number=f"1009{n}")
    many = queries_for_search()

    # One query per kind (session, user, count, page, tree…), however many are listed.
    assert many == few


def test_the_upload_page_answers_odd_files_with_400_not_500(client, ida):
    client.force_login(ida)
    odd_files = [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00",
        "職員番号,姓\r\n".encode("utf-16"),
        '職員番号,姓,名,姓かな,名かな,所属コード\r\n60001,"山\x00田'.encode(),
    ]

    for data in odd_files:
        response = client.post(
            "/directory/import/",
            {"kind": "staff", "encoding": "auto", "file": SimpleUploadedFile("s.csv", data)},
        )
        assert response.status_code == 400, data
        assert "1件も取り込みませんでした" in response.content.decode()
    response = client.post(
        "/directory/import/",
        {"kind": "staff", "encoding": "utf-32", "file": SimpleUploadedFile("s.csv", b"a")},
    )
    assert response.status_code == 400
    assert not StaffProfile.objects.filter(employee_number__startswith="6").exists()


def test_a_trial_upload_of_transfers_registers_no_batch(client, ida, alice):
    from yakuba.directory.models import TransferBatch

    client.force_login(ida)
    data = "職員番号,異動後所属コード\r\n10001,210\r\n".encode("cp932")

    response = client.post(
        "/directory/import/",
        {
            "kind": "transfers",
            "effective_on": "2030-04-01",
            "dry_run": "1",
            "file": SimpleUploadedFile("idou.csv", data),
        },
        follow=True,
    )

    assert (
        "試行のみ（登録していません）: 1名の異動に誤りはありません。" in response.content.decode()
    )
    assert not TransferBatch.objects.exists()
    assert not AuditEntry.objects.filter(action="directory.transfer_scheduled").exists()

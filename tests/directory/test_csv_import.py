"""CSV import of staff and departments: all rows or none, every bad row named by line."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tests.directory.conftest import import_file, write_csv
from yakuba.audit.models import AuditEntry
from yakuba.directory.models import ConcurrentPost, Department, Role, StaffProfile, User

HEADER = "職員番号,姓,名,姓かな,名かな,所属コード,役職,内線,メールアドレス,兼務所属コード,在職状況"
GOOD_ROWS = """
50001,山田,太郎,やまだ,たろう,111,主事,2111,yamada@example.jp,,在職
50002,川口,花子,カワグチ,ハナコ,210,係長,2210,,111;110,在職
50003,森,一,もり,はじめ,110,課長,,,,在職
"""


def staff_csv(rows: str) -> str:
    return HEADER + "\n" + rows.strip("\n")


def rejected(path: Path, *args: str) -> list[str]:
    """The error lines of a refused import (the last line is the summary)."""
    with pytest.raises(CommandError) as caught:
        import_file("import_staff", path, *args)
    lines = str(caught.value).splitlines()
    assert lines[-1].endswith("1件も取り込みませんでした。")
    return lines[:-1]


def assert_nothing_imported() -> None:
    assert not StaffProfile.objects.filter(employee_number__startswith="5").exists()
    assert not User.objects.filter(username__startswith="5").exists()
    assert not AuditEntry.objects.filter(action="directory.csv_imported").exists()


def test_it_imports_utf8_staff_with_users_roles_and_concurrent_posts(ward, tmp_path):
    out = import_file("import_staff", write_csv(tmp_path, staff_csv(GOOD_ROWS)))

    assert "新規 3 件" in out
    hanako = StaffProfile.objects.select_related("user").get(employee_number="50002")
    assert (hanako.family_kana, hanako.given_kana) == ("かわぐち", "はなこ")  # stored as hiragana
    assert hanako.department == ward["koseki"]
    assert sorted(
        ConcurrentPost.objects.filter(staff=hanako).values_list("department__code", flat=True)
    ) == ["110", "111"]
    assert hanako.user.username == "50002"
    assert hanako.user.display_name == "川口 花子"
    assert not hanako.user.has_usable_password()
    assert hanako.user.role_grants.filter(role=Role.STAFF).exists()
    entry = AuditEntry.objects.get(action="directory.csv_imported")
    assert entry.details["created"] == ["50001", "50002", "50003"]


@pytest.mark.parametrize(
    ("encoding", "option"),
    [("cp932", []), ("cp932", ["--encoding", "shift_jis"]), ("utf-8-sig", [])],
)
def test_it_imports_shift_jis_and_utf8_with_bom(ward, tmp_path, encoding, option):
    # 髙 (はしご高) exists only in CP932's extensions, not in plain Shift_JIS.
    rows = GOOD_ROWS + "50004,髙橋,①子,たかはし,いちこ,111,,,,,在職\n"
    path = write_csv(tmp_path, staff_csv(rows), encoding=encoding)

    out = import_file("import_staff", path, *option)

    assert "新規 4 件" in out
    assert StaffProfile.objects.get(employee_number="50004").family_name == "髙橋"
    assert StaffProfile.objects.get(employee_number="50002").family_name == "川口"


def test_it_imports_nothing_from_a_file_with_unreadable_bytes(ward, tmp_path):
    good = staff_csv(GOOD_ROWS).replace("\n", "\r\n").encode("utf-8")
    path = tmp_path / "broken.csv"
    # Line 3 has bytes that are neither UTF-8 nor CP932.
    lines = good.split(b"\r\n")
    lines[2] = lines[2].replace("川口".encode(), b"\xff\xfe")
    path.write_bytes(b"\r\n".join(lines))

    errors = rejected(path)

    assert errors == ["3行目: 文字コードが正しくありません（UTF-8 として読めない文字があります）"]
    assert_nothing_imported()


def test_it_reports_an_unreadable_line_in_a_shift_jis_file(ward, tmp_path):
    data = staff_csv(GOOD_ROWS).replace("\n", "\r\n").encode("cp932")
    lines = data.split(b"\r\n")
    lines[3] += b"\x81"  # a lead byte with nothing after it
    path = tmp_path / "sjis.csv"
    path.write_bytes(b"\r\n".join(lines))

    errors = rejected(path, "--encoding", "cp932")

    assert errors == [
        "4行目: 文字コードが正しくありません（Shift_JIS（CP932）として読めない文字があります）"
    ]
    assert_nothing_imported()


def test_it_imports_nothing_when_a_staff_number_is_duplicated(ward, tmp_path):
    rows = GOOD_ROWS + "50001,山田,次郎,やまだ,じろう,111,,,,,在職\n"

    errors = rejected(write_csv(tmp_path, staff_csv(rows)))

    assert errors == ["5行目: 職員番号 50001 が2行目と重複しています"]
    assert_nothing_imported()


def test_it_imports_nothing_when_a_department_is_unknown(ward, tmp_path):
    rows = GOOD_ROWS.replace("50003,森,一,もり,はじめ,110", "50003,森,一,もり,はじめ,999")

    errors = rejected(write_csv(tmp_path, staff_csv(rows)))

    assert errors == ["4行目: 所属コード 999 は存在しません"]
    assert_nothing_imported()


def test_it_imports_nothing_when_a_required_field_is_missing(ward, tmp_path):
    rows = GOOD_ROWS.replace("50001,山田,太郎", "50001,,太郎")

    errors = rejected(write_csv(tmp_path, staff_csv(rows)))

    assert errors == ["2行目: 姓が入力されていません"]
    assert_nothing_imported()


def test_it_reports_every_bad_row_with_its_line_number(ward, tmp_path):
    rows = """
50001,山田,太郎,やまだ,たろう,111,主事,2111,not-an-address,,在職
50002,川口,花子,かわぐち,はなこ,210,,,,888,在職
50003,森,一,もり,はじめ,110,,,,,退職
50004,林,二郎,Hayashi,じろう,110,,,,,在職
50001,山田,三郎,やまだ,さぶろう,110,,,,,休職
50006,岡,六子,おか,むつこ
"""
    path = write_csv(tmp_path, staff_csv(rows) + "\n50007,池,七,いけ,なな,110,,,,,退職")

    errors = rejected(path)

    assert errors == [
        "2行目: メールアドレス「not-an-address」の形式が正しくありません",
        "3行目: 兼務所属コード 888 は存在しません",
        "5行目: 姓かな「Hayashi」はひらがなかカタカナで入力してください",
        "6行目: 職員番号 50001 が2行目と重複しています",
        "6行目: 在職状況「休職」は 在職 か 退職 で入力してください",
        "7行目: 列の数が見出し行と合いません（見出し 11 列、この行 5 列）",
    ]
    assert_nothing_imported()


def test_it_reports_a_bad_retirement_date(ward, tmp_path):
    text = HEADER + ",退職日\n50001,山田,太郎,やまだ,たろう,111,,,,,退職,2025/13/40"

    errors = rejected(write_csv(tmp_path, text))

    assert errors == ["2行目: 退職日「2025/13/40」は 2025-03-31 の形式で入力してください"]
    assert_nothing_imported()


def test_it_names_a_missing_column_in_the_header(ward, tmp_path):
    text = "職員番号,姓,名,名かな,所属コード\n50001,山田,太郎,たろう,111"

    errors = rejected(write_csv(tmp_path, text))

    assert errors == ["1行目: 必須の列「姓かな」が見出し行にありません"]
    assert_nothing_imported()


def test_it_updates_existing_staff_by_number_and_keeps_the_rest(alice, tmp_path):
    text = staff_csv("10001,青木,愛,あおき,あい,210,主任,2210,alice@example.jp,,在職")

    out = import_file("import_staff", write_csv(tmp_path, text))

    assert "更新 1 件" in out
    alice.refresh_from_db()
    assert alice.staff.department.code == "210"
    assert alice.staff.title == "主任"
    assert alice.email == "alice@example.jp"
    assert alice.username == "alice"  # no ユーザー名 column: the username is kept
    entry = AuditEntry.objects.get(action="directory.csv_imported")
    assert set(entry.details["changed"]["10001"]) >= {"department", "title", "email"}


def test_it_retires_and_deactivates_someone_marked_retired(alice, tmp_path):
    text = HEADER + ",退職日\n10001,青木,愛,あおき,あい,111,,,,,退職,2025-03-31"

    import_file("import_staff", write_csv(tmp_path, text))

    alice.refresh_from_db()
    assert alice.staff.status == "retired"
    assert str(alice.staff.retired_on) == "2025-03-31"
    assert not alice.is_active
    assert AuditEntry.objects.filter(action="directory.user_deactivated", target_id=str(alice.pk))


def test_a_dry_run_reports_but_imports_nothing(ward, tmp_path):
    out = import_file("import_staff", write_csv(tmp_path, staff_csv(GOOD_ROWS)), "--dry-run")

    assert "試行のみ" in out
    assert "新規 3 件" in out
    assert_nothing_imported()


DEPARTMENTS = """
所属コード,所属名,所属名かな,階層,上位所属コード,表示順
300,環境部,かんきょうぶ,部,,300
310,ごみゼロ推進課,ごみぜろすいしんか,課,300,310
311,清掃事業係,せいそうじぎょうがかり,係,310,311
"""


def test_it_imports_departments_parents_before_children(ward, tmp_path):
    # Children first in the file: the import still creates the parents first.
    lines = DEPARTMENTS.strip().splitlines()
    text = "\n".join([lines[0], lines[3], lines[2], lines[1]])

    out = import_file("import_departments", write_csv(tmp_path, text, encoding="cp932"))

    assert "新規 3 件" in out
    team = Department.objects.get(code="311")
    assert team.full_name() == "環境部 ごみゼロ推進課 清掃事業係"
    assert team.level == "kakari"


def test_it_imports_no_department_when_one_row_is_bad(ward, tmp_path):
    text = (
        DEPARTMENTS.strip() + "\n320,環境課,,課,399,320\n330,公園課,,課,311,330\n300,重複部,,部,,1"
    )

    with pytest.raises(CommandError) as caught:
        import_file("import_departments", write_csv(tmp_path, text))

    assert str(caught.value).splitlines()[:-1] == [
        "5行目: 上位所属コード 399 は存在しません",
        "6行目: 上位所属 311 は係のため、課の上位にできません",
        "7行目: 所属コード 300 が2行目と重複しています",
    ]
    assert not Department.objects.filter(code__startswith="3").exists()


def test_export_then_import_round_trips(alice, bob, charlie, tmp_path):
    import_file("import_staff", write_csv(tmp_path, staff_csv(GOOD_ROWS)))
    for encoding in ("utf-8-sig", "cp932"):
        staff_file = tmp_path / f"staff-{encoding}.csv"
        departments_file = tmp_path / f"departments-{encoding}.csv"
        call_command("export_staff", str(staff_file), "--encoding", encoding)
        call_command("export_departments", str(departments_file), "--encoding", encoding)

        assert "新規 0 件、更新 0 件、変更なし 5 件" in import_file(
            "import_departments", departments_file
        )
        assert "新規 0 件、更新 0 件、変更なし 6 件" in import_file("import_staff", staff_file)

    data = (tmp_path / "staff-utf-8-sig.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf" + "職員番号,姓,名".encode())
    assert "50002,川口,花子,かわぐち,はなこ,210,係長,2210,,110;111,在職,,50002" in data.decode(
        "utf-8-sig"
    )
    # One change in the exported file comes back as exactly that change.
    edited = data.decode("utf-8-sig").replace(",係長,2210,", ",課長,2210,")
    (tmp_path / "edited.csv").write_text(edited, encoding="utf-8-sig")
    out = import_file("import_staff", tmp_path / "edited.csv")
    assert "新規 0 件、更新 1 件、変更なし 5 件" in out
    assert "更新 50002: title" in out
    assert AuditEntry.objects.filter(action="directory.csv_exported").count() == 4


def test_it_refuses_usernames_that_would_collide(ward, gina, tmp_path):
    text = HEADER + ",ユーザー名\n"
    text += "50001,山田,太郎,やまだ,たろう,111,,,,,在職,gina\n"  # a guest's username
    text += "50002,山田,花子,やまだ,はなこ,111,,,,,在職,50003\n"
    text += "50003,山田,次郎,やまだ,じろう,111,,,,,在職,\n"  # would become 50003 too

    errors = rejected(write_csv(tmp_path, text))

    assert errors == [
        "2行目: ユーザー名 gina は他の利用者が使っています",
        "4行目: ユーザー名 50003 が3行目と重複しています",
    ]
    assert_nothing_imported()


def test_people_whose_department_changed_are_told_in_real_time(alice, bob, tmp_path):
    from yakuba.realtime.models import UserEvent

    text = staff_csv(
        "10001,青木,愛,あおき,あい,210,,,,,在職\n10002,坂東,歩,ばんどう,あゆむ,111,主任,,,,在職"
    )

    import_file("import_staff", write_csv(tmp_path, text))

    events = [(e.user_id, e.payload) for e in UserEvent.objects.all()]
    directory = [(user, payload) for user, payload in events if payload["type"] == "directory"]
    assert directory == [(alice.pk, {"type": "directory", "op": "memberships_changed"})]
    # Only Alice moved: only her chat channels changed.
    assert {user for user, payload in events if payload["type"] == "chat"} == {alice.pk}


# The command closes the database connections when it ends, as from a shell: only a
# test whose data is committed survives that.
@pytest.mark.django_db(transaction=True)
def test_the_yakuba_command_takes_dashed_names(ward, tmp_path, capsys):
    from yakuba.cli import main

    path = write_csv(tmp_path, staff_csv(GOOD_ROWS), encoding="cp932")

    main(["import-staff", str(path), "--encoding", "cp932"])
    main(["export-staff"])

    out = capsys.readouterr().out
    assert "新規 3 件" in out
    assert "50002,川口,花子,かわぐち,はなこ,210,係長,2210,,110;111,在職,,50002" in out


def test_exports_neutralise_formulas_and_read_them_back_unchanged(alice, ward, tmp_path):
    from yakuba.audit.record import Actor
    from yakuba.directory.actions.staff import do_change_department, do_change_staff

    system = Actor.system("test")
    do_change_staff(alice.staff, title='=HYPERLINK("http://x")', acting_user=system)
    do_change_department(ward["koseki"], name="@SUM(1+1)", acting_user=system)
    staff_file, departments_file = tmp_path / "staff.csv", tmp_path / "departments.csv"
    call_command("export_staff", str(staff_file))
    call_command("export_departments", str(departments_file))

    # Excel shows a cell that starts with an apostrophe as text, never as a formula.
    staff_text = staff_file.read_text(encoding="utf-8-sig")
    assert ',"\'=HYPERLINK(""http://x"")",' in staff_text
    assert ",'@SUM(1+1),," in departments_file.read_text(encoding="utf-8-sig")
    assert "更新 0 件、変更なし 5 件" in import_file("import_departments", departments_file)
    assert "更新 0 件、変更なし 1 件" in import_file("import_staff", staff_file)
    alice.staff.refresh_from_db()
    assert alice.staff.title == '=HYPERLINK("http://x")'
    assert Department.objects.get(code="210").name == "@SUM(1+1)"


def test_it_refuses_control_characters_and_counts_lines_inside_quoted_cells(ward, tmp_path):
    text = (
        HEADER
        + '\n50001,"山\n田",太郎,やまだ,たろう,111,,,,,在職'  # lines 2-3: a quoted line break
        + "\n50002,川口,花\x00子,かわぐち,はなこ,111,,,,,在職"  # line 4: NUL
        + "\n50003,森,一,もり,はじめ,999,,,,,在職"  # line 5
    )

    errors = rejected(write_csv(tmp_path, text))

    assert errors == [
        "2行目: 姓に改行・タブなどの制御文字が含まれています",
        "4行目: 名に改行・タブなどの制御文字が含まれています",
        "5行目: 所属コード 999 は存在しません",
    ]
    assert_nothing_imported()


def test_it_points_at_a_quote_left_open(ward, tmp_path):
    text = HEADER + '\n50001,"山田,太郎,やまだ,たろう,111,,,,,在職\n' + GOOD_ROWS.split("\n")[2]

    errors = rejected(write_csv(tmp_path, text))

    assert errors == [
        "2行目: 列の数が見出し行と合いません（見出し 11 列、この行 2 列）。"
        '「"」が閉じられていない可能性があります'
    ]


def test_it_reads_the_header_spellings_of_the_admin_pages_and_of_excel(ward, tmp_path):
    # The admin labels 姓（ふりがな）; hand-made files have full-width letters and spaces.
    text = (
        " 職員番号 ,姓,名,姓（ふりがな）,名(ふりがな),所属コード,メールアドレス\n"
        "50001,山田,太郎,やまだ,たろう,111,yamada@example.jp"
    )

    out = import_file("import_staff", write_csv(tmp_path, text, encoding="cp932"))

    assert "新規 1 件" in out
    staff = StaffProfile.objects.get(employee_number="50001")
    assert (staff.family_kana, staff.email) == ("やまだ", "yamada@example.jp")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            (HEADER + "\r\n").encode("utf-16"),
            "1行目: UTF-16 のファイルは読めません。Excel では「CSV UTF-8（コンマ区切り）」か"
            "「CSV（コンマ区切り）」で保存してください",
        ),
        (b"\xef\xbb\xbf\r\n", "1行目: ファイルが空です（見出し行がありません）"),
        (b"", "1行目: ファイルが空です（見出し行がありません）"),
    ],
)
def test_it_explains_files_it_cannot_read(ward, tmp_path, data, message):
    path = tmp_path / "odd.csv"
    path.write_bytes(data)

    assert rejected(path) == [message]
    assert_nothing_imported()


def test_it_refuses_to_lower_a_department_above_its_existing_children(ward, tmp_path):
    # 総務課 (110) has the 係 111 below it, which the file does not move.
    text = "\n".join(
        [
            "所属コード,所属名,階層,上位所属コード,表示順",
            "110,総務係,係,100,1",
            "120,広報課,課,100,1234567890",
        ]
    )

    with pytest.raises(CommandError) as caught:
        import_file("import_departments", write_csv(tmp_path, text))

    assert str(caught.value).splitlines()[:-1] == [
        "2行目: 下位所属 111（係）があるため、係にできません",
        "3行目: 表示順「1234567890」は9桁までの0以上の整数で入力してください",
    ]
    assert Department.objects.get(code="110").level == "ka"
    assert not Department.objects.filter(code="120").exists()


def test_a_move_into_a_concurrent_post_ends_that_post_without_a_column_for_it(
    alice, ward, tmp_path
):
    from yakuba.audit.record import Actor
    from yakuba.directory.actions.staff import do_set_concurrent_posts

    do_set_concurrent_posts(
        alice.staff, [ward["koseki"], ward["somu_ka"]], acting_user=Actor.system("test")
    )
    # No 兼務所属コード column: 兼務 are kept, but 210 is now the primary 所属.
    text = "職員番号,姓,名,姓かな,名かな,所属コード\n10001,青木,愛,あおき,あい,210"

    import_file("import_staff", write_csv(tmp_path, text))

    alice.staff.refresh_from_db()
    assert alice.staff.department == ward["koseki"]
    assert list(
        ConcurrentPost.objects.filter(staff=alice.staff).values_list("department__code", flat=True)
    ) == ["110"]


def test_it_reads_half_width_kana_and_full_width_digits(ward, tmp_path):
    text = staff_csv("５０００１,山田,太郎,ﾔﾏﾀﾞ,ﾀﾛｳ,１１１,主事,２１１１,,,在職")

    import_file("import_staff", write_csv(tmp_path, text, encoding="cp932"))

    staff = StaffProfile.objects.get(employee_number="50001")
    assert (staff.family_kana, staff.given_kana) == ("やまだ", "たろう")
    assert (staff.department.code, staff.extension) == ("111", "2111")

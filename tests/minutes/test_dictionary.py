"""The ward dictionary: everyone on staff reads it, managers change it (audited), the
CSV imports all or nothing, and the pipeline's hotwords() and correct()."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from yakuba.audit.models import AuditEntry
from yakuba.directory.models import User
from yakuba.minutes import wardwords
from yakuba.minutes.actions.dictionary import (
    CsvRejected,
    DictionaryError,
    EntryValues,
    do_create_entry,
    do_set_entry_active,
    export_dictionary,
    parse_dictionary,
)
from yakuba.minutes.models import DictionaryEntry

HEADER = "表記,読み,種別,誤認識されやすい表記,有効\n"


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def entry(term: str, kind: str = "place", variants: tuple[str, ...] = (), **kw: Any) -> EntryValues:
    return EntryValues(term=term, kind=kind, variants=variants, **kw)


def upload(text: str, encoding: str = "utf-8") -> SimpleUploadedFile:
    return SimpleUploadedFile("dictionary.csv", text.encode(encoding), content_type="text/csv")


# --- Pages and permissions ---------------------------------------------------------------------


def test_a_manager_adds_edits_deactivates_and_deletes_entries(dora: User) -> None:
    client = signed_in(dora)
    added = client.post(
        "/minutes/dictionary/",
        {
            "term": "中野区",
            "reading": "なかのく",
            "kind": "place",
            "variants": "なかの区\n中の区",
            "active": "1",
        },
    )
    assert added.status_code == 302
    found = DictionaryEntry.objects.get(term="中野区")
    assert found.variant_list() == ["なかの区", "中の区"]
    assert found.active
    edited = client.post(
        f"/minutes/dictionary/{found.pk}/",
        {
            "term": "中野区",
            "reading": "なかのく",
            "kind": "place",
            "variants": "なかの区",
            "active": "1",
        },
    )
    assert edited.status_code == 302
    found.refresh_from_db()
    assert found.variant_list() == ["なかの区"]
    assert client.post(f"/minutes/dictionary/{found.pk}/active", {"active": "0"}).status_code == 302
    assert not DictionaryEntry.objects.get(pk=found.pk).active
    page = client.get("/minutes/dictionary/").content.decode()
    assert "中野区" in page
    assert "無効" in page
    assert client.post(f"/minutes/dictionary/{found.pk}/delete").status_code == 302
    assert not DictionaryEntry.objects.exists()
    ops = [
        e.details["op"]
        for e in AuditEntry.objects.filter(action="minutes.dictionary_changed").order_by("pk")
    ]
    assert ops == ["create", "change", "deactivate", "delete"]
    change = AuditEntry.objects.filter(action="minutes.dictionary_changed").order_by("pk")[1]
    assert change.details["before"]["variants"] == ["なかの区", "中の区"]
    assert change.actor_id == dora.pk


def test_staff_read_the_dictionary_but_only_managers_change_it(
    alice: User, charlie: User, dora: User
) -> None:
    do_create_entry(entry("江古田", reading="えごた", variants=("えこだ",)), user=dora)
    for reader in (alice, charlie):
        page = signed_in(reader).get("/minutes/dictionary/")
        assert page.status_code == 200
        html = page.content.decode()
        assert "江古田" in html
        assert "語を追加" not in html
    target = DictionaryEntry.objects.get()
    client = signed_in(alice)
    assert client.post("/minutes/dictionary/", {"term": "x", "kind": "place"}).status_code == 403
    assert client.post(f"/minutes/dictionary/{target.pk}/delete").status_code == 403
    assert client.get(f"/minutes/dictionary/{target.pk}/").status_code == 403
    assert client.get("/minutes/dictionary/import/").status_code == 403
    assert client.get("/minutes/dictionary/export.csv").status_code == 403
    assert DictionaryEntry.objects.count() == 1
    assert "語を追加" in signed_in(dora).get("/minutes/dictionary/").content.decode()


def test_the_dictionary_page_searches_by_term_reading_and_kind(dora: User) -> None:
    do_create_entry(entry("江古田", reading="えごた"), user=dora)
    do_create_entry(entry("戸籍住民課", kind="department", reading="こせきじゅうみんか"), user=dora)
    client = signed_in(dora)
    html = client.get("/minutes/dictionary/?q=えごた").content.decode()
    assert "江古田" in html
    assert "戸籍住民課" not in html
    html = client.get("/minutes/dictionary/?kind=department").content.decode()
    assert "戸籍住民課" in html
    assert "江古田" not in html


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"term": "", "kind": "place"}, "表記を入力"),
        ({"term": "中野", "kind": "planet"}, "種別は"),
        ({"term": "中野", "kind": "place", "variants": "中野"}, "表記そのもの"),
        ({"term": "あ" * 101, "kind": "place"}, "100文字以内"),
    ],
)
def test_a_bad_entry_is_a_400_in_japanese(dora: User, form: dict[str, str], message: str) -> None:
    response = signed_in(dora).post("/minutes/dictionary/", form)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not DictionaryEntry.objects.exists()


def test_the_same_term_and_kind_twice_is_refused(dora: User) -> None:
    do_create_entry(entry("中野"), user=dora)
    with pytest.raises(DictionaryError, match="すでに辞書にあります"):
        do_create_entry(entry("中野"), user=dora)
    do_create_entry(entry("中野", kind="person"), user=dora)  # 中野さん is someone else
    assert DictionaryEntry.objects.count() == 2


# --- CSV ------------------------------------------------------------------------------------------


def test_it_imports_a_utf8_csv_and_updates_known_terms(dora: User) -> None:
    do_create_entry(entry("中野区", variants=("なかの区",)), user=dora)
    text = (
        "\ufeff" + HEADER + "中野区,なかのく,地名,なかの区;中の区,1\n"
        "戸籍住民課,こせきじゅうみんか,所属名,戸籍十民課,\n"
        "電子決裁,でんしけっさい,用語,,0\n"
    )
    response = signed_in(dora).post("/minutes/dictionary/import/", {"file": upload(text)})
    assert response.status_code == 302
    nakano = DictionaryEntry.objects.get(term="中野区")
    assert nakano.variant_list() == ["なかの区", "中の区"]
    assert nakano.reading == "なかのく"
    assert DictionaryEntry.objects.get(term="戸籍住民課").kind == "department"
    assert not DictionaryEntry.objects.get(term="電子決裁").active
    entry_ = AuditEntry.objects.filter(action="minutes.dictionary_changed").order_by("pk").last()
    assert entry_ is not None
    assert entry_.details["op"] == "import"
    assert entry_.details["created"] == ["戸籍住民課", "電子決裁"]
    assert entry_.details["changed"] == ["中野区"]


def test_it_imports_a_shift_jis_csv(dora: User) -> None:
    text = HEADER + "髙田馬場,たかだのばば,地名,高田のばば,1\n"
    response = signed_in(dora).post(
        "/minutes/dictionary/import/", {"file": upload(text, "cp932"), "encoding": "auto"}
    )
    assert response.status_code == 302
    assert DictionaryEntry.objects.get().term == "髙田馬場"


def test_an_invalid_row_imports_nothing_and_names_its_line(dora: User) -> None:
    text = (
        HEADER + "中野区,なかのく,地名,,1\n"
        "本町,ほんちょう,惑星,,1\n"
        ",なし,地名,,1\n"
        "中野区,なかのく,地名,,1\n"
        "新井,あらい,人名,,たぶん\n"
    )
    response = signed_in(dora).post("/minutes/dictionary/import/", {"file": upload(text)})
    assert response.status_code == 400
    html = response.content.decode()
    assert "1件も取り込みませんでした" in html
    assert "3行目: 種別「惑星」" in html
    assert "4行目: 表記が入力されていません" in html
    assert "5行目: 「中野区」が2行目と重複しています" in html
    assert "6行目: 有効は" in html
    assert not DictionaryEntry.objects.exists()
    assert not AuditEntry.objects.filter(action="minutes.dictionary_changed").exists()


def test_a_csv_without_the_required_columns_is_refused() -> None:
    with pytest.raises(CsvRejected) as refused:
        parse_dictionary("語,読み\n中野,なかの\n".encode())
    assert "必須の列「表記」" in str(refused.value)


def test_the_export_imports_again(dora: User) -> None:
    do_create_entry(entry("中野区", reading="なかのく", variants=("なかの区", "中の区")), user=dora)
    do_create_entry(entry("=SUM(A1)", kind="term"), user=dora)
    data = export_dictionary("utf-8-sig")
    assert data.startswith(b"\xef\xbb\xbf")
    assert "'=SUM(A1)" in data.decode("utf-8-sig")  # Excel does not run it
    records = parse_dictionary(data)
    assert {(r.term, r.variants) for r in records} == {
        ("中野区", ("なかの区", "中の区")),
        ("=SUM(A1)", ()),
    }
    response = signed_in(dora).get("/minutes/dictionary/export.csv?encoding=cp932")
    assert response.status_code == 200
    assert "中野区" in response.content.decode("cp932")


# --- hotwords() and correct() ---------------------------------------------------------------------


def test_hotwords_are_the_active_terms_longest_first_and_capped(dora: User) -> None:
    do_create_entry(entry("中野"), user=dora)
    do_create_entry(entry("中野区役所", kind="department"), user=dora)
    do_create_entry(entry("江古田"), user=dora)
    retired = do_create_entry(entry("旧庁舎"), user=dora)
    do_set_entry_active(retired, user=dora, active=False)
    assert wardwords.hotwords() == ["中野区役所", "江古田", "中野"]
    assert wardwords.hotwords(limit=2) == ["中野区役所", "江古田"]


def test_correct_replaces_variants_longest_first(dora: User) -> None:
    do_create_entry(entry("中野区", variants=("なかの区",)), user=dora)
    do_create_entry(entry("中野", kind="person", variants=("なかの",)), user=dora)
    # 「なかの区」 is one variant: the shorter 「なかの」 must not take its first part.
    assert wardwords.correct("なかの区の、なかのさん") == "中野区の、中野さん"


def test_a_short_variant_never_breaks_a_longer_term(dora: User) -> None:
    do_create_entry(entry("中野区"), user=dora)
    do_create_entry(entry("区長", kind="term", variants=("野区",)), user=dora)
    # 「野区」 inside the term 「中野区」 stays; on its own it is corrected.
    assert wardwords.correct("中野区の野区です") == "中野区の区長です"


def test_ascii_variants_match_whole_words_in_any_case(dora: User) -> None:
    do_create_entry(entry("Yakuba", kind="term", variants=("yak uba", "yakoo")), user=dora)
    fix = wardwords.corrector()
    assert fix("Welcome to YAK UBA and yakoo") == "Welcome to Yakuba and Yakuba"
    assert fix("yakoos are not touched") == "yakoos are not touched"


def test_correct_sees_a_change_at_once_and_ignores_inactive_entries(dora: User) -> None:
    assert wardwords.correct("えこだ駅") == "えこだ駅"
    egota = do_create_entry(entry("江古田", variants=("えこだ",)), user=dora)
    assert wardwords.correct("えこだ駅") == "江古田駅"
    do_set_entry_active(egota, user=dora, active=False)
    assert wardwords.correct("えこだ駅") == "えこだ駅"


def test_the_corrector_is_the_identity_without_variants(dora: User) -> None:
    do_create_entry(entry("中野"), user=dora)
    fix = wardwords.corrector()
    assert fix("なかの") == "なかの"
    assert fix("") == ""

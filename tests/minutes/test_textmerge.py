"""Three-way merge of a segment's text: both people's changes survive when they touch
different characters; the same stretch changed differently is a conflict."""

from __future__ import annotations

import pytest

from yakuba.minutes.textmerge import merge3


def test_it_keeps_changes_to_different_places() -> None:
    base = "本日の会議を始めます。議題は二つです。"
    mine = "本日の定例会議を始めます。議題は二つです。"
    theirs = "本日の会議を始めます。議題は三つです。"
    result = merge3(base, mine, theirs)
    assert result.ok
    assert result.text == "本日の定例会議を始めます。議題は三つです。"


def test_it_keeps_an_insertion_and_a_deletion_apart() -> None:
    base = "えー、文書保存年限の見直しについて、あのー、説明します。"
    mine = "文書保存年限の見直しについて、あのー、説明します。"
    theirs = "えー、文書保存年限の見直しについて、説明いたします。"
    result = merge3(base, mine, theirs)
    assert result.text == "文書保存年限の見直しについて、説明いたします。"


def test_two_different_insertions_at_the_same_place_are_a_conflict() -> None:
    base = "会議室を予約した。"
    result = merge3(base, "第一会議室を予約した。", "大会議室を予約した。")
    assert not result.ok
    assert result.text is None
    [conflict] = result.conflicts
    assert (conflict.base, conflict.mine, conflict.theirs) == ("", "第一", "大")


def test_the_same_insertion_by_both_is_made_once() -> None:
    base = "予算を確認する"
    assert merge3(base, "予算案を確認する", "予算案を確認する").text == "予算案を確認する"


def test_identical_changes_in_a_longer_text_apply_once_beside_other_changes() -> None:
    base = "あいうえおかきくけこ"
    mine = "あいXうえおかきくけこZ"
    theirs = "YあいXうえおかきくけこ"
    assert merge3(base, mine, theirs).text == "YあいXうえおかきくけこZ"


def test_overlapping_different_replacements_are_a_conflict() -> None:
    base = "電子決裁の導入は来年度からとする。"
    mine = "電子決裁の導入は令和8年度からとする。"
    theirs = "電子決裁の導入は再来年度からとする。"
    result = merge3(base, mine, theirs)
    assert not result.ok
    assert result.conflicts[0].mine != result.conflicts[0].theirs


def test_a_deletion_overlapping_an_edit_is_a_conflict() -> None:
    base = "一、二、三、四"
    mine = "一、四"
    theirs = "一、二、3、四"
    assert not merge3(base, mine, theirs).ok


def test_an_insertion_right_before_a_changed_stretch_is_a_conflict() -> None:
    base = "導入は来年度から"
    # 「再」 before 「来」 and 「来」 → 「令和8」 would make 「再令和8年度」.
    result = merge3(base, "導入は令和8年度から", "導入は再来年度から")
    assert not result.ok


def test_changes_one_character_apart_both_apply() -> None:
    base = "0123456789"
    mine = "01AB456789"  # 2,3 replaced
    theirs = "01234CD789"  # 5,6 replaced
    assert merge3(base, mine, theirs).text == "01AB4CD789"


def test_changes_that_touch_are_a_conflict() -> None:
    base = "0123456789"
    assert not merge3(base, "01AB456789", "0123CD6789").ok


@pytest.mark.parametrize(
    ("base", "mine", "theirs", "expected"),
    [
        ("同じ", "同じ", "同じ", "同じ"),
        ("元", "新", "元", "新"),
        ("元", "元", "新", "新"),
        ("元", "新", "新", "新"),
        ("", "追加", "", "追加"),
        ("消す", "", "消す", ""),
    ],
)
def test_trivial_cases(base: str, mine: str, theirs: str, expected: str) -> None:
    assert merge3(base, mine, theirs).text == expected


def test_it_works_on_long_japanese_text_with_frequent_kana() -> None:
    # Over 200 characters: difflib's autojunk would call 「の」 junk and misalign.
    sentence = "区の文書の保存の期間の見直しの件について、"
    base = sentence * 12
    mine = "【修正】" + base
    theirs = base + "以上です。"
    assert merge3(base, mine, theirs).text == "【修正】" + base + "以上です。"

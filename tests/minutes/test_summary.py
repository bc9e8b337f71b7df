"""The extractive summary (要点筆記, offline): sentence splitting, decision sentences,
assignment of sentences to agenda items, and meetings without an agenda."""

from __future__ import annotations

from yakuba.minutes.summary import bigrams, split_sentences, summarise

AGENDA = ["文書保存年限の見直し", "電子決裁の導入"]

MEETING = [
    ("それでは会議を始めます。本日の議題は二つです。", 0, "青木"),
    (
        "まず文書保存年限の見直しについてです。現在の保存年限は三十年ですが、"
        "長すぎるという意見があります。",
        1000,
        "青木",
    ),
    ("保存年限を十年に短縮すると書庫の容量に余裕ができます。", 2000, "坂東"),
    ("文書保存年限は原則十年とすることに決定しました。", 3000, "青木"),
    ("次に電子決裁の導入について議論します。", 4000, "青木"),
    ("電子決裁システムは来年度から試行する予定です。", 5000, "坂東"),
    ("紙の決裁との併用期間が必要だと思います。", 6000, "坂東"),
    ("試行部署の選定は7月31日を期限として総務課が行います。", 7000, "青木"),
    ("以上で終わります。", 8000, "青木"),
]


def test_it_splits_sentences_at_japanese_and_english_ends_and_segments() -> None:
    sentences = split_sentences(
        [
            ("本日は晴れです。議題は二つ！質問はありますか？", 0, "A"),
            ("The budget is 3.5 million yen. We agree. Done", 1000, "B"),
            ("区切りなしの発言", 2000, "C"),
        ]
    )

    assert [s.text for s in sentences] == [
        "本日は晴れです。",
        "議題は二つ！",
        "質問はありますか？",
        "The budget is 3.5 million yen.",
        "We agree.",
        "Done",
        "区切りなしの発言",
    ]
    assert [s.order for s in sentences] == list(range(7))
    assert sentences[3].speaker == "B"
    assert sentences[3].start_ms == 1000


def test_bigrams_ignore_spaces_punctuation_and_width() -> None:
    assert bigrams("予約、する") == bigrams("予約する")
    assert bigrams("ＡＢ") == bigrams("ab")
    assert set(bigrams("会議室の予約")) == {"会議", "議室", "室の", "の予", "予約"}


def test_it_assigns_sentences_to_the_agenda_items_they_resemble() -> None:
    summary = summarise(MEETING, AGENDA)

    [retention, e_approval] = summary.topics
    assert retention.title == "文書保存年限の見直し"
    assert e_approval.title == "電子決裁の導入"
    assert "文書保存年限は原則十年とすることに決定しました。" in retention.points
    assert "電子決裁システムは来年度から試行する予定です。" in e_approval.points
    # A sentence resembling no title stays with the item being discussed.
    assert "試行部署の選定は7月31日を期限として総務課が行います。" in e_approval.points
    assert not set(retention.points) & set(e_approval.points)
    # Each topic keeps a few sentences, in time order.
    for topic in summary.topics:
        assert 1 <= len(topic.points) <= 5
        positions = [next(i for i, s in enumerate(_all()) if s == p) for p in topic.points]
        assert positions == sorted(positions)


def _all() -> list[str]:
    return [s.text for s in split_sentences(MEETING)]


def test_it_prefers_and_proposes_decision_sentences() -> None:
    summary = summarise(MEETING, AGENDA)

    assert summary.decisions == [
        "文書保存年限は原則十年とすることに決定しました。",
        "電子決裁システムは来年度から試行する予定です。",
        "試行部署の選定は7月31日を期限として総務課が行います。",
    ]
    kept = [point for topic in summary.topics for point in topic.points]
    assert set(summary.decisions) <= set(kept)
    assert "以上で終わります。" not in kept


def test_its_text_is_the_format_the_minutes_keep() -> None:
    text = summarise(MEETING, AGENDA).text()

    lines = text.splitlines()
    assert lines[0] == "■文書保存年限の見直し"
    assert lines[1].startswith("・")
    assert "■電子決裁の導入" in lines


def test_without_an_agenda_everything_is_one_topic() -> None:
    summary = summarise(MEETING, [])

    [topic] = summary.topics
    assert topic.title == "議事の概要"
    assert 2 <= len(topic.points) <= 5
    assert "文書保存年限は原則十年とすることに決定しました。" in topic.points


def test_an_empty_transcript_gives_empty_topics() -> None:
    summary = summarise([("", 0, "A"), ("はい", 10, "B")], AGENDA)

    assert [t.points for t in summary.topics] == [[], []]
    assert summary.decisions == []
    assert summary.text() == ""

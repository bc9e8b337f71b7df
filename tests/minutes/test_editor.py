"""The transcript editor: reading and editing segments, merging and splitting them,
speakers; who may; and two people editing the same segment at once (both edits kept,
or a 409 that keeps both texts)."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from yakuba.audit.models import AuditEntry
from yakuba.directory.models import User
from yakuba.minutes.actions.editor import (
    EditorError,
    do_add_speaker,
    do_edit_segment,
    do_merge_segments,
    do_split_segment,
)
from yakuba.minutes.models import Meeting, Minutes, Recording, Segment, Speaker
from yakuba.realtime import topics

BASE = "本日の会議を始めます。議題は二つです。"


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def post_json(client: Client, url: str, data: Any) -> Any:
    return client.post(
        url, json.dumps(data), content_type="application/json", HTTP_ACCEPT="application/json"
    )


def make_recording(meeting: Meeting, user: User, *, offset_ms: int = 0) -> Recording:
    return Recording.objects.create(
        meeting=meeting,
        original_name="会議.wav",
        file_path="orig/1.wav",
        audio_path="",
        format="wav",
        size_bytes=1000,
        duration_ms=60_000,
        sha256="0" * 64,
        uploaded_by=user,
        offset_ms=offset_ms,
    )


@pytest.fixture
def speakers(meeting: Meeting, alice: User) -> dict[str, Speaker]:
    return {
        "chair": Speaker.objects.create(meeting=meeting, label="議長", user=alice, sort_order=1),
        "clerk": Speaker.objects.create(meeting=meeting, label="話者2", sort_order=2),
    }


@pytest.fixture
def segments(meeting: Meeting, alice: User, speakers: dict[str, Speaker]) -> list[Segment]:
    recording = make_recording(meeting, alice)
    rows = [
        (5_000, 9_000, speakers["chair"], BASE),
        (9_500, 14_000, speakers["clerk"], "文書保存年限の見直しについて説明します。"),
        (75_000, 80_000, None, "以上です。"),
    ]
    return [
        Segment.objects.create(
            meeting=meeting,
            recording=recording,
            speaker=speaker,
            start_ms=start,
            end_ms=end,
            text=text,
            engine_text=text,
            engine="pocketsphinx",
            recognised=True,
        )
        for start, end, speaker, text in rows
    ]


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(topics, "_publish", lambda topic, event: sent.append((topic, event)))
    return sent


def edit_url(meeting: Meeting, segment: Segment, action: str = "text") -> str:
    return f"/minutes/{meeting.pk}/transcript/segments/{segment.pk}/{action}"


# --- The page and the JSON -----------------------------------------------------------------


def test_it_shows_the_transcript_by_speaker_and_time(
    meeting: Meeting, bob: User, segments: list[Segment]
) -> None:
    response = signed_in(bob).get(f"/minutes/{meeting.pk}/transcript/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "議長" in html
    assert "話者2" in html
    assert "00:05" in html
    assert "01:15" in html
    assert BASE in html
    assert f'id="text-{segments[0].pk}"' in html  # Bob attended: he edits
    assert f'data-realtime-topics="minutes.meeting.{meeting.pk}"' in html
    assert "yakuba/editor.js" in html
    assert "<script>" not in html  # the CSP refuses inline scripts


def test_an_auditor_reads_the_transcript_but_cannot_edit_it(
    meeting: Meeting, erin: User, segments: list[Segment]
) -> None:
    client = signed_in(erin)
    page = client.get(f"/minutes/{meeting.pk}/transcript/")
    assert page.status_code == 200
    html = page.content.decode()
    assert BASE in html
    assert "<textarea" not in html
    state = client.get(f"/minutes/{meeting.pk}/transcript/segments/").json()
    assert state["may_edit"] is False
    response = post_json(
        client, edit_url(meeting, segments[0]), {"text": "改ざん", "base_revision": 1}
    )
    assert response.status_code == 403
    assert "編集できる" in response.json()["error"]
    assert Segment.objects.get(pk=segments[0].pk).text == BASE


def test_an_outsider_is_refused_everything(
    meeting: Meeting, charlie: User, segments: list[Segment]
) -> None:
    client = signed_in(charlie)
    assert client.get(f"/minutes/{meeting.pk}/transcript/").status_code == 403
    refused = client.get(
        f"/minutes/{meeting.pk}/transcript/segments/", HTTP_ACCEPT="application/json"
    )
    assert refused.status_code == 403
    assert "閲覧" in refused.json()["error"]
    response = post_json(client, edit_url(meeting, segments[0]), {"text": "x", "base_revision": 1})
    assert response.status_code == 403
    assert AuditEntry.objects.filter(action="minutes.transcript_edited").count() == 0


def test_the_segments_json_holds_segments_speakers_and_recordings(
    meeting: Meeting, alice: User, segments: list[Segment], speakers: dict[str, Speaker]
) -> None:
    state = signed_in(alice).get(f"/minutes/{meeting.pk}/transcript/segments/").json()
    assert [s["id"] for s in state["segments"]] == [s.pk for s in segments]
    assert state["segments"][0]["text"] == BASE
    assert state["segments"][0]["revision"] == 1
    assert {s["label"] for s in state["speakers"]} == {"議長", "話者2"}
    assert str(segments[0].recording_id) in state["recordings"]
    assert state["may_edit"] is True


# --- Editing text -------------------------------------------------------------------------------


def test_it_saves_an_edit_audits_it_and_tells_the_watchers_after_commit(
    meeting: Meeting,
    bob: User,
    segments: list[Segment],
    published: list[tuple[str, dict[str, Any]]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    new = "本日の定例会議を始めます。議題は二つです。"
    with django_capture_on_commit_callbacks(execute=True):
        response = post_json(
            signed_in(bob),
            edit_url(meeting, segments[0]),
            {"text": new, "base_revision": 1, "base_text": BASE},
        )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "saved"
    assert body["segment"]["text"] == new
    assert body["segment"]["revision"] == 2
    segment = Segment.objects.get(pk=segments[0].pk)
    assert (segment.text, segment.revision, segment.edited_by) == (new, 2, bob)
    assert segment.engine_text == BASE  # what the engine heard stays
    entry = AuditEntry.objects.get(action="minutes.transcript_edited")
    assert entry.details["op"] == "edit"
    assert entry.details["segment_ids"] == [segment.pk]
    assert (entry.details["before"], entry.details["after"]) == (BASE, new)
    assert entry.actor_id == bob.pk
    [(topic, event)] = published
    assert topic == f"minutes.meeting.{meeting.pk}"
    assert event["type"] == "minutes"
    assert event["op"] == "segments"
    assert event["segments"][0]["text"] == new
    assert event["by"] == bob.pk


def test_nothing_is_sent_when_the_transaction_rolls_back(
    meeting: Meeting,
    alice: User,
    segments: list[Segment],
    published: list[tuple[str, dict[str, Any]]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    from django.db import transaction

    def edit_then_fail() -> None:
        with transaction.atomic():
            do_edit_segment(segments[0], user=alice, text="取り消される", base_revision=1)
            raise RuntimeError("rollback")

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
    ):
        edit_then_fail()
    assert callbacks == []
    assert published == []
    assert Segment.objects.get(pk=segments[0].pk).text == BASE


def test_two_edits_of_different_parts_from_the_same_base_are_both_kept(
    meeting: Meeting, alice: User, bob: User, segments: list[Segment]
) -> None:
    url = edit_url(meeting, segments[0])
    first = post_json(
        signed_in(alice),
        url,
        {
            "text": "本日の定例会議を始めます。議題は二つです。",
            "base_revision": 1,
            "base_text": BASE,
        },
    )
    second = post_json(
        signed_in(bob),
        url,
        {"text": "本日の会議を始めます。議題は三つです。", "base_revision": 1, "base_text": BASE},
    )
    assert first.status_code == 200
    assert first.json()["status"] == "saved"
    assert second.status_code == 200
    assert second.json()["status"] == "merged"
    merged = "本日の定例会議を始めます。議題は三つです。"
    assert second.json()["segment"]["text"] == merged
    segment = Segment.objects.get(pk=segments[0].pk)
    assert (segment.text, segment.revision) == (merged, 3)
    last = AuditEntry.objects.filter(action="minutes.transcript_edited").order_by("pk").last()
    assert last is not None
    assert last.details["merged"] is True


def test_a_conflicting_edit_is_refused_with_409_and_both_texts(
    meeting: Meeting, alice: User, bob: User, segments: list[Segment]
) -> None:
    url = edit_url(meeting, segments[0])
    alices = "本日の会議を始めます。議題は三つです。"
    bobs = "本日の会議を始めます。議題は四つです。"
    assert (
        post_json(
            signed_in(alice), url, {"text": alices, "base_revision": 1, "base_text": BASE}
        ).json()["status"]
        == "saved"
    )
    response = post_json(signed_in(bob), url, {"text": bobs, "base_revision": 1, "base_text": BASE})
    assert response.status_code == 409
    body = response.json()
    assert body["status"] == "conflict"
    assert body["segment"]["text"] == alices  # the current text, to show beside Bob's
    assert body["segment"]["revision"] == 2
    assert body["conflicts"][0]["mine"] == "四"
    assert body["conflicts"][0]["theirs"] == "三"
    assert "入力欄に残して" in body["error"]
    assert Segment.objects.get(pk=segments[0].pk).text == alices
    # Bob resolves: his text, based on what he was shown, now saves as it is.
    resolved = post_json(
        signed_in(bob), url, {"text": bobs, "base_revision": 2, "base_text": alices}
    )
    assert resolved.status_code == 200
    assert Segment.objects.get(pk=segments[0].pk).text == bobs


def test_an_edit_without_its_base_text_on_a_changed_segment_is_a_conflict(
    meeting: Meeting, alice: User, bob: User, segments: list[Segment]
) -> None:
    do_edit_segment(segments[0], user=alice, text="変更後", base_revision=1)
    result = do_edit_segment(segments[0], user=bob, text="ボブの文章", base_revision=1)
    assert not result.ok
    assert result.segment.text == "変更後"


def test_an_unchanged_text_is_not_a_new_revision(
    meeting: Meeting, alice: User, segments: list[Segment]
) -> None:
    result = do_edit_segment(segments[0], user=alice, text=BASE, base_revision=1)
    assert result.status == "unchanged"
    assert Segment.objects.get(pk=segments[0].pk).revision == 1
    assert not AuditEntry.objects.filter(action="minutes.transcript_edited").exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_edits_of_different_words_all_survive(
    meeting: Meeting, alice: User, bob: User, segments: list[Segment]
) -> None:
    """Real threads on the real database, each with its own connection."""
    words = ["一", "二", "三", "四", "五", "六"]
    base = "、".join(words)
    Segment.objects.filter(pk=segments[0].pk).update(text=base)
    start = threading.Barrier(len(words))
    results: list[str] = []
    errors: list[BaseException] = []

    def edit(index: int) -> None:
        try:
            mine = "、".join(f"【{w}】" if i == index else w for i, w in enumerate(words))
            start.wait()
            segment = Segment.objects.get(pk=segments[0].pk)
            user = alice if index % 2 else bob
            result = do_edit_segment(segment, user=user, text=mine, base_revision=1, base_text=base)
            results.append(result.status)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=edit, args=(i,)) for i in range(len(words))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results).count("conflict") == 0
    final = Segment.objects.get(pk=segments[0].pk)
    assert final.text == "、".join(f"【{w}】" for w in words)
    assert final.revision == 1 + len(words)


def test_bad_input_is_a_400_in_japanese_and_saves_nothing(
    meeting: Meeting, alice: User, segments: list[Segment]
) -> None:
    client = signed_in(alice)
    url = edit_url(meeting, segments[0])
    not_json = client.post(
        url, "{not json", content_type="application/json", HTTP_ACCEPT="application/json"
    )
    assert not_json.status_code == 400
    assert "読み取れません" in not_json.json()["error"]
    no_text = post_json(client, url, {"base_revision": 1})
    assert no_text.status_code == 400
    bad_revision = post_json(client, url, {"text": "x", "base_revision": "abc"})
    assert bad_revision.status_code == 400
    control = post_json(client, url, {"text": "a\x07b", "base_revision": 1})
    assert control.status_code == 400
    assert "制御文字" in control.json()["error"]
    too_long = post_json(client, url, {"text": "あ" * 20_001, "base_revision": 1})
    assert too_long.status_code == 400
    missing = post_json(
        client, f"/minutes/{meeting.pk}/transcript/segments/999999/text", {"text": "x"}
    )
    assert missing.status_code == 404
    assert Segment.objects.get(pk=segments[0].pk).revision == 1


def test_a_segment_still_being_recognised_cannot_be_edited(
    meeting: Meeting, alice: User, segments: list[Segment]
) -> None:
    Segment.objects.filter(pk=segments[2].pk).update(recognised=False, text="")
    response = post_json(
        signed_in(alice), edit_url(meeting, segments[2]), {"text": "先に書く", "base_revision": 1}
    )
    assert response.status_code == 400
    assert "文字起こし中" in response.json()["error"]


def test_nothing_can_be_edited_once_the_minutes_are_approved(
    meeting: Meeting, alice: User, segments: list[Segment]
) -> None:
    Minutes.objects.create(meeting=meeting, status=Minutes.Status.APPROVED)
    client = signed_in(alice)
    response = post_json(client, edit_url(meeting, segments[0]), {"text": "x", "base_revision": 1})
    assert response.status_code == 403
    assert "承認済" in response.json()["error"]
    html = client.get(f"/minutes/{meeting.pk}/transcript/").content.decode()
    assert "<textarea" not in html
    # The action refuses too (the minutes may be approved after the view's check).
    with pytest.raises(EditorError):
        do_edit_segment(segments[0], user=alice, text="x", base_revision=1)
    with pytest.raises(EditorError):
        do_add_speaker(meeting, user=alice, label="新しい話者")


def test_a_form_post_without_javascript_saves_and_redirects(
    meeting: Meeting, alice: User, segments: list[Segment]
) -> None:
    response = signed_in(alice).post(
        edit_url(meeting, segments[1]),
        {"text": "説明します。", "base_revision": "1", "base_text": segments[1].text},
    )
    assert response.status_code == 302
    assert response["Location"].endswith(f"/transcript/#segment-{segments[1].pk}")
    assert Segment.objects.get(pk=segments[1].pk).text == "説明します。"


# --- Merge and split -------------------------------------------------------------------------


def test_it_merges_a_segment_with_the_next_one(
    meeting: Meeting,
    alice: User,
    segments: list[Segment],
    speakers: dict[str, Speaker],
    published: list[tuple[str, dict[str, Any]]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    first, second = segments[0], segments[1]
    with django_capture_on_commit_callbacks(execute=True):
        response = post_json(
            signed_in(alice), edit_url(meeting, first, "merge"), {"with": second.pk}
        )
    assert response.status_code == 200
    assert response.json()["removed"] == [second.pk]
    merged = Segment.objects.get(pk=first.pk)
    assert merged.text == BASE + "文書保存年限の見直しについて説明します。"
    assert (merged.start_ms, merged.end_ms) == (5_000, 14_000)
    assert merged.speaker == speakers["chair"]
    assert merged.revision == 2
    assert not Segment.objects.filter(pk=second.pk).exists()
    entry = AuditEntry.objects.get(action="minutes.transcript_edited")
    assert entry.details["op"] == "merge"
    assert entry.details["segment_ids"] == [first.pk, second.pk]
    [(_topic, event)] = published
    assert event["removed"] == [second.pk]
    assert event["segments"][0]["id"] == first.pk


def test_merging_joins_english_words_with_a_space_and_finds_the_next_segment(
    meeting: Meeting, alice: User, segments: list[Segment]
) -> None:
    Segment.objects.filter(pk=segments[1].pk).update(text="hello world")
    Segment.objects.filter(pk=segments[2].pk).update(text="good morning")
    response = post_json(signed_in(alice), edit_url(meeting, segments[1], "merge"), {})
    assert response.status_code == 200
    assert Segment.objects.get(pk=segments[1].pk).text == "hello world good morning"
    last = post_json(signed_in(alice), edit_url(meeting, segments[1], "merge"), {})
    assert last.status_code == 400
    assert "結合できる発言がありません" in last.json()["error"]


def test_merging_segments_of_another_meeting_is_refused(
    meeting: Meeting, alice: User, segments: list[Segment]
) -> None:
    other = Meeting.objects.create(
        title="別の会議",
        starts_at=meeting.starts_at,
        ends_at=meeting.ends_at,
        organiser=alice,
        department=meeting.department,
        created_by=alice,
    )
    stranger = Segment.objects.create(
        meeting=other, start_ms=0, end_ms=1000, text="別", recognised=True
    )
    response = post_json(
        signed_in(alice), edit_url(meeting, segments[0], "merge"), {"with": stranger.pk}
    )
    assert response.status_code == 404
    with pytest.raises(EditorError):
        do_merge_segments(segments[0], stranger, user=alice)
    assert Segment.objects.filter(pk=stranger.pk).exists()


def test_it_splits_a_segment_at_the_caret_in_proportion_of_time(
    meeting: Meeting, alice: User, segments: list[Segment], speakers: dict[str, Speaker]
) -> None:
    at = BASE.index("議題")  # 11 of 19 characters; 4 s long from 5 s
    response = post_json(
        signed_in(alice),
        edit_url(meeting, segments[0], "split"),
        {"at_char": at, "base_revision": 1},
    )
    assert response.status_code == 200
    first_data, second_data = response.json()["segments"]
    first = Segment.objects.get(pk=segments[0].pk)
    second = Segment.objects.get(pk=second_data["id"])
    assert (first.text, second.text) == ("本日の会議を始めます。", "議題は二つです。")
    expected_ms = 5_000 + round(4_000 * at / len(BASE))
    assert first.end_ms == second.start_ms == expected_ms
    assert second.end_ms == 9_000
    assert second.speaker == speakers["chair"]
    assert second.recording_id == first.recording_id
    assert first.revision == 2
    assert first_data["text"] == first.text
    entry = AuditEntry.objects.get(action="minutes.transcript_edited")
    assert entry.details["op"] == "split"
    assert entry.details["segment_ids"] == [first.pk, second.pk]


def test_it_splits_at_an_explicit_time(
    meeting: Meeting, alice: User, segments: list[Segment]
) -> None:
    first, second = do_split_segment(segments[0], user=alice, at_char=3, at_ms=8_500)
    assert (first.end_ms, second.start_ms) == (8_500, 8_500)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"at_char": 0}, "途中"),
        ({"at_char": 99}, "途中"),
        ({"at_char": 5, "at_ms": 20_000}, "開始と終了の間"),
        ({"at_char": 5, "base_revision": 7}, "他の人"),
        ({"at_char": "五"}, "整数"),
    ],
)
def test_a_bad_split_is_a_400_and_changes_nothing(
    meeting: Meeting, alice: User, segments: list[Segment], data: dict[str, Any], message: str
) -> None:
    response = post_json(signed_in(alice), edit_url(meeting, segments[0], "split"), data)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert Segment.objects.filter(meeting=meeting).count() == 3
    assert Segment.objects.get(pk=segments[0].pk).text == BASE


# --- Speakers -----------------------------------------------------------------------------------


def test_it_sets_a_segments_speaker(
    meeting: Meeting,
    alice: User,
    segments: list[Segment],
    speakers: dict[str, Speaker],
) -> None:
    client = signed_in(alice)
    url = edit_url(meeting, segments[2], "speaker")
    response = post_json(client, url, {"speaker_id": speakers["clerk"].pk})
    assert response.status_code == 200
    assert response.json()["segment"]["speaker_id"] == speakers["clerk"].pk
    assert Segment.objects.get(pk=segments[2].pk).speaker == speakers["clerk"]
    entry = AuditEntry.objects.get(action="minutes.speaker_changed")
    assert entry.details["after"] == {"id": speakers["clerk"].pk, "label": "話者2"}
    cleared = post_json(client, url, {"speaker_id": None})
    assert cleared.status_code == 200
    assert Segment.objects.get(pk=segments[2].pk).speaker is None


def test_a_speaker_of_another_meeting_is_refused(
    meeting: Meeting, alice: User, segments: list[Segment]
) -> None:
    other = Meeting.objects.create(
        title="別の会議",
        starts_at=meeting.starts_at,
        ends_at=meeting.ends_at,
        organiser=alice,
        department=meeting.department,
        created_by=alice,
    )
    foreign = Speaker.objects.create(meeting=other, label="よそ")
    response = post_json(
        signed_in(alice), edit_url(meeting, segments[0], "speaker"), {"speaker_id": foreign.pk}
    )
    assert response.status_code == 400
    assert "この会議の話者" in response.json()["error"]


def test_it_adds_renames_and_links_speakers(
    meeting: Meeting,
    alice: User,
    bob: User,
    charlie: User,
    speakers: dict[str, Speaker],
    published: list[tuple[str, dict[str, Any]]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    client = signed_in(alice)
    url = f"/minutes/{meeting.pk}/transcript/speakers/"
    with django_capture_on_commit_callbacks(execute=True):
        added = post_json(client, url, {"label": "", "user_id": bob.pk})
    assert added.status_code == 201
    speaker = Speaker.objects.get(pk=added.json()["speaker"]["id"])
    assert (speaker.label, speaker.user, speaker.meeting) == ("坂東 歩", bob, meeting)
    assert speaker.sort_order == 3
    [(_topic, event)] = published
    assert event["op"] == "speakers"
    assert [s["label"] for s in event["speakers"]] == ["議長", "話者2", "坂東 歩"]

    renamed = post_json(
        client, f"{url}{speakers['clerk'].pk}/", {"label": "書記", "user_id": charlie.pk}
    )
    assert renamed.status_code == 200
    clerk = Speaker.objects.get(pk=speakers["clerk"].pk)
    assert (clerk.label, clerk.user) == ("書記", charlie)
    entry = AuditEntry.objects.filter(action="minutes.speaker_changed").order_by("pk").last()
    assert entry is not None
    assert entry.details["op"] == "rename"
    assert entry.details["before"] == {"label": "話者2", "user_id": None}

    taken = post_json(client, url, {"label": "議長"})
    assert taken.status_code == 400
    assert "すでに使われています" in taken.json()["error"]
    empty = post_json(client, f"{url}{speakers['clerk'].pk}/", {"label": "  ", "user_id": None})
    assert empty.status_code == 400
    assert Speaker.objects.get(pk=speakers["clerk"].pk).label == "書記"
    assert client.get(url).json()["speakers"][1]["label"] == "書記"


def test_a_reader_cannot_change_speakers(
    meeting: Meeting, erin: User, speakers: dict[str, Speaker]
) -> None:
    response = post_json(
        signed_in(erin), f"/minutes/{meeting.pk}/transcript/speakers/", {"label": "監査"}
    )
    assert response.status_code == 403
    assert Speaker.objects.filter(meeting=meeting).count() == 2


def test_a_two_hour_meeting_costs_no_query_per_segment_and_stays_small(
    meeting: Meeting,
    alice: User,
    segments: list[Segment],
    django_assert_max_num_queries: Any,
) -> None:
    """A 2-hour meeting has ~1,500 segments: the page and the JSON read segments,
    speakers and recordings once each, and each row of the page stays lean."""
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    client = signed_in(alice)

    def cost() -> tuple[int, int, int]:
        with CaptureQueriesContext(db) as page:
            answer = client.get(f"/minutes/{meeting.pk}/transcript/")
            assert answer.status_code == 200
        with CaptureQueriesContext(db) as state:
            assert client.get(f"/minutes/{meeting.pk}/transcript/segments/").status_code == 200
        return len(page.captured_queries), len(state.captured_queries), len(answer.content)

    cost()  # the first request of a session does more (session, profile)
    few_page, few_state, few_bytes = cost()
    text = "本日は文書管理の見直しについてご議論いただきたいと思います。"
    many = 1500
    Segment.objects.bulk_create(
        Segment(
            meeting=meeting,
            recording=segments[0].recording,
            speaker=segments[n % 2].speaker,
            start_ms=100_000 + n * 4800,
            end_ms=104_500 + n * 4800,
            text=text,
            recognised=True,
        )
        for n in range(many)
    )
    page, state, size = cost()
    assert (page, state) == (few_page, few_state)
    # The text is on each row twice (the box and the no-JS merge base); the rest is
    # markup, ~1,860 bytes a row (before the rows were trimmed: ~2,400, 3.6 MB a meeting).
    markup = (size - few_bytes) / many - 2 * len(text.encode())
    assert markup < 2_000, markup
    with django_assert_max_num_queries(15):
        client.get(f"/minutes/{meeting.pk}/transcript/segments/")

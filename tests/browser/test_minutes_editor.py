"""The transcript editor in Chromium: two people (two browser contexts) edit the same
transcript; each sees the other's saves live, edits of different parts of one segment
made at the same time are both kept, Ctrl+Enter saves, an Enter that confirms an IME
conversion does not, and a segment plays its stretch of the recording."""

from __future__ import annotations

import datetime as dt
import math
import struct
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse
from pytest_django.fixtures import Settings as SettingsWrapper

from tests.browser.helpers import sign_in, wait_for
from tests.browser.test_pages import AXE_RUN
from yakuba.directory.models import Department, User
from yakuba.lib import clock
from yakuba.minutes.models import Meeting, Recording, Segment, Speaker

pytestmark = pytest.mark.browser

START = dt.datetime(2025, 6, 11, 10, 0, tzinfo=clock.TOKYO)
TEXTS = [
    "本日の会議を始めます。",
    "文書保存年限の見直しについて説明します。",
    "電子決裁の導入は来年度からです。",
]


def write_tone(path: Path, seconds: float, rate: int = 16_000) -> None:
    """A 16 kHz mono 16-bit WAV of a quiet 440 Hz tone (what the pipeline stores)."""
    frames = b"".join(
        struct.pack("<h", int(3000 * math.sin(2 * math.pi * 440 * n / rate)))
        for n in range(int(seconds * rate))
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)


@pytest.fixture
def transcript(
    live_url: str,
    settings: SettingsWrapper,
    tmp_path: Path,
    ward: dict[str, Department],
    alice: User,
    bob: User,
) -> tuple[Meeting, list[Segment]]:
    media = tmp_path / "minutes-media"
    (media / "audio").mkdir(parents=True)
    settings.MINUTES_MEDIA_DIR = media
    write_tone(media / "audio" / "1.wav", 10)
    meeting = Meeting.objects.create(
        title="文書管理検討会議",
        starts_at=START,
        ends_at=START + dt.timedelta(hours=1),
        organiser=alice,
        department=ward["bunsho"],
        created_by=alice,
    )
    meeting.attendees.add(alice, bob)
    chair = Speaker.objects.create(meeting=meeting, label="議長", user=alice, sort_order=1)
    recording = Recording.objects.create(
        meeting=meeting,
        original_name="会議.wav",
        file_path="audio/1.wav",
        audio_path="audio/1.wav",
        format="wav",
        size_bytes=(media / "audio" / "1.wav").stat().st_size,
        duration_ms=10_000,
        sha256="0" * 64,
        uploaded_by=alice,
        offset_ms=2_000,  # the file starts 2 s into the meeting
    )
    segments = [
        Segment.objects.create(
            meeting=meeting,
            recording=recording,
            speaker=chair,
            start_ms=start,
            end_ms=start + 2_500,
            text=text,
            engine_text=text,
            engine="pocketsphinx",
            recognised=True,
        )
        for start, text in zip((3_000, 6_000, 9_000), TEXTS, strict=True)
    ]
    return meeting, segments


def open_editor(tab: Any, username: str, meeting: Meeting) -> None:
    sign_in(tab, username)
    tab.goto(f"/minutes/{meeting.pk}/transcript/")
    tab.wait_for_selector("body[data-realtime-state=ready]")
    # The "watching" answer makes the editor refetch: from then on events arrive.
    wait_for(tab, "document.querySelector('[data-transcript]').dataset.refetchedAt")


def box(segment: Segment) -> str:
    return f"#text-{segment.pk}"


def state_is(tab: Any, segment: Segment, state: str) -> None:
    wait_for(tab, f"document.getElementById('segment-{segment.pk}').dataset.state === '{state}'")


def value_is(tab: Any, segment: Segment, text: str, *, timeout: float = 5) -> None:
    wait_for(tab, f"document.querySelector('{box(segment)}').value === {text!r}", timeout=timeout)


@pytest.fixture
def second_tab(chromium: Any, live_url: str) -> Iterator[Any]:
    context = chromium.new_context(
        viewport={"width": 1366, "height": 768},
        locale="ja-JP",
        timezone_id="Asia/Tokyo",
        base_url=live_url,
    )
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def test_two_people_see_each_others_edits_live_and_both_edits_survive(
    page: Any, second_tab: Any, transcript: tuple[Meeting, list[Segment]]
) -> None:
    meeting, segments = transcript
    first, second, _third = segments
    open_editor(page, "alice", meeting)
    open_editor(second_tab, "bob", meeting)

    # Alice edits the first segment and saves with Ctrl+Enter; Bob sees it live.
    page.fill(box(first), "本日の定例会議を始めます。")
    page.focus(box(first))
    page.keyboard.press("Control+Enter")
    state_is(page, first, "saved")
    value_is(second_tab, first, "本日の定例会議を始めます。")
    assert Segment.objects.get(pk=first.pk).text == "本日の定例会議を始めます。"

    # Both edit different parts of the second segment at once.
    alices = "【議題1】文書保存年限の見直しについて説明します。"
    bobs = "文書保存年限の見直しについて説明いたします。"
    page.fill(box(second), alices)
    second_tab.fill(box(second), bobs)
    page.focus(box(second))
    page.keyboard.press("Control+Enter")
    state_is(page, second, "saved")
    # Bob is typing: his text stays, and he is told the segment changed under him.
    wait_for(
        second_tab,
        f"!document.querySelector('#segment-{second.pk} [data-remote]').hidden",
    )
    assert second_tab.input_value(box(second)) == bobs
    second_tab.focus(box(second))
    second_tab.keyboard.press("Control+Enter")
    state_is(second_tab, second, "merged")
    both = "【議題1】文書保存年限の見直しについて説明いたします。"
    value_is(second_tab, second, both)
    value_is(page, second, both)
    assert Segment.objects.get(pk=second.pk).text == both


def test_an_ime_enter_does_not_save_and_a_plain_enter_does(
    page: Any, transcript: tuple[Meeting, list[Segment]]
) -> None:
    meeting, segments = transcript
    third = segments[2]
    open_editor(page, "alice", meeting)
    page.fill(box(third), "電子決裁の導入は再来年度からです。")
    page.focus(box(third))
    # What Chromium sends while a Japanese conversion is open: composition events and a
    # keydown Enter marked isComposing (keyCode 229) that confirms the conversion.
    page.evaluate(
        """(selector) => {
            const box = document.querySelector(selector);
            box.dispatchEvent(new CompositionEvent('compositionstart', {bubbles: true, data: ''}));
            box.dispatchEvent(new KeyboardEvent('keydown', {
                key: 'Enter', code: 'Enter', keyCode: 229, isComposing: true,
                bubbles: true, cancelable: true}));
            box.dispatchEvent(
                new CompositionEvent('compositionend', {bubbles: true, data: '再来'}));
        }""",
        box(third),
    )
    page.wait_for_timeout(500)
    assert page.evaluate(f"document.getElementById('segment-{third.pk}').dataset.state") is None
    assert Segment.objects.get(pk=third.pk).revision == 1
    page.keyboard.press("Enter")
    state_is(page, third, "saved")
    saved = Segment.objects.get(pk=third.pk)
    assert (saved.text, saved.revision) == ("電子決裁の導入は再来年度からです。", 2)
    # Shift+Enter starts a new line instead of saving.
    page.keyboard.press("Shift+Enter")
    assert page.input_value(box(third)).endswith("\n")


def test_a_segment_plays_its_stretch_of_the_recording(
    page: Any, live_url: str, transcript: tuple[Meeting, list[Segment]]
) -> None:
    meeting, segments = transcript
    first = segments[0]  # 3.0–5.5 s of the meeting: 1.0–3.5 s into the file
    open_editor(page, "alice", meeting)
    page.click(f"#segment-{first.pk} [data-play]")
    wait_for(page, f"document.querySelector('[data-transcript]').dataset.playing === '{first.pk}'")
    wait_for(page, "document.querySelector('#transcript-audio').currentTime >= 1.0")
    # It stops by itself at the segment's end.
    wait_for(page, "document.querySelector('#transcript-audio').paused", timeout=8)
    position = page.evaluate("document.querySelector('#transcript-audio').currentTime")
    assert 3.3 <= position <= 4.2
    source = page.evaluate("document.querySelector('#transcript-audio').src")
    assert source == live_url + reverse(
        "minutes:recording_audio", args=(meeting.pk, first.recording_id)
    )


@pytest.mark.bypass_csp  # axe-core is injected as an inline script
def test_the_editor_and_dictionary_pages_meet_wcag2_aa(
    page: Any, transcript: tuple[Meeting, list[Segment]], axe_source: Path
) -> None:
    meeting, _segments = transcript
    sign_in(page, "alice")
    failures: list[str] = []
    for path in (f"/minutes/{meeting.pk}/transcript/", "/minutes/dictionary/"):
        page.goto(path)
        page.add_script_tag(path=str(axe_source))
        for violation in page.evaluate(AXE_RUN):
            failures.append(f"{path}: {violation['id']} {violation['help']} {violation['nodes']}")
    assert not failures, "\n".join(failures)


def test_split_merge_and_speakers_show_up_live_on_the_other_screen(
    page: Any, second_tab: Any, transcript: tuple[Meeting, list[Segment]]
) -> None:
    meeting, segments = transcript
    first, second, _third = segments
    open_editor(page, "alice", meeting)
    open_editor(second_tab, "bob", meeting)
    count = "document.querySelectorAll('li[data-segment-id]').length"

    # Split the second segment after 「見直しについて」 (caret placed in the box).
    at = TEXTS[1].index("説明")
    page.focus(box(second))
    page.evaluate(
        "([selector, at]) => document.querySelector(selector).setSelectionRange(at, at)",
        [box(second), at],
    )
    page.click(f"#segment-{second.pk} [data-split]")
    state_is(page, second, "saved")
    wait_for(page, f"{count} === 4")
    wait_for(second_tab, f"{count} === 4")
    new = Segment.objects.exclude(pk__in=[s.pk for s in segments]).get()
    assert new.text == "説明します。"
    # In time order, right after the first part, on both screens.
    order = "[...document.querySelectorAll('li[data-segment-id]')].map(e => +e.dataset.segmentId)"
    expected = [first.pk, second.pk, new.pk, segments[2].pk]
    assert page.evaluate(order) == expected
    assert second_tab.evaluate(order) == expected
    value_is(second_tab, second, "文書保存年限の見直しについて")

    # Merge them again.
    page.click(f"#segment-{second.pk} [data-merge]")
    wait_for(page, f"{count} === 3")
    wait_for(second_tab, f"{count} === 3")
    value_is(second_tab, second, TEXTS[1])

    # A new speaker, given to the third segment: Bob's screen names it.
    page.fill("#new-speaker-label", "書記")
    page.click("[data-speaker-add] button[type=submit]")
    added = "#speakers li[data-speaker-id]:last-child input[name=label]"
    wait_for(page, f"document.querySelector('{added}').value === '書記'")
    third = segments[2]
    page.select_option(f"#speaker-of-{third.pk}", label="書記")
    state_is(page, third, "saved")
    label = f"document.querySelector('#segment-{third.pk} [data-speaker-label]').textContent"
    wait_for(second_tab, f"{label} === '書記'")
    assert Segment.objects.filter(pk=third.pk, speaker__label="書記").exists()


def test_a_conflict_keeps_both_texts_until_the_person_chooses(
    page: Any, second_tab: Any, transcript: tuple[Meeting, list[Segment]]
) -> None:
    meeting, segments = transcript
    third = segments[2]
    open_editor(page, "alice", meeting)
    open_editor(second_tab, "bob", meeting)
    alices = "電子決裁の導入は再来年度からです。"
    bobs = "電子決裁の導入は令和8年度からです。"
    page.fill(box(third), alices)
    second_tab.fill(box(third), bobs)
    page.focus(box(third))
    page.keyboard.press("Control+Enter")
    state_is(page, third, "saved")
    second_tab.focus(box(third))
    second_tab.keyboard.press("Control+Enter")
    state_is(second_tab, third, "conflict")
    # Bob's text stays in his box; Alice's is shown beside it; nothing was overwritten.
    assert second_tab.input_value(box(third)) == bobs
    theirs = second_tab.inner_text(f"#segment-{third.pk} [data-theirs]")
    assert theirs == alices
    assert second_tab.is_visible(f"#segment-{third.pk} [data-conflict]")
    assert Segment.objects.get(pk=third.pk).text == alices
    # Leaving the box does not save over Alice's text behind Bob's back.
    second_tab.focus(box(segments[0]))
    second_tab.wait_for_timeout(300)
    assert Segment.objects.get(pk=third.pk).text == alices
    # Bob decides: his text.
    second_tab.click(f"#segment-{third.pk} [data-keep-mine]")
    state_is(second_tab, third, "saved")
    assert not second_tab.is_visible(f"#segment-{third.pk} [data-conflict]")
    value_is(page, third, bobs)
    assert Segment.objects.get(pk=third.pk).text == bobs

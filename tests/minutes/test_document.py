"""The minutes document: its structure in both styles, the page and its edits (with a
stale save refused), the extractive summary button, the approval flow with its
permission refusals, comments, audit entries and notices, and the search of approved
minutes."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from yakuba.audit.models import AuditEntry
from yakuba.directory.models import Department, User
from yakuba.minutes import events
from yakuba.minutes.actions.document import (
    StaleMinutes,
    do_approve_minutes,
    do_request_review,
    do_save_minutes,
    minutes_for,
)
from yakuba.minutes.export import build_document, document_text
from yakuba.minutes.models import ActionItem, Meeting, Minutes, MinutesComment, Segment, Speaker
from yakuba.realtime import bus
from yakuba.realtime.models import UserEvent

from .conftest import MEETING_START

pytestmark = pytest.mark.django_db

TRANSCRIPT = [
    # (speaker, start seconds, text): out of time order on purpose.
    ("坂東", 20, "保存年限を十年に短縮すると書庫の容量に余裕ができます。"),
    ("青木", 0, "それでは会議を始めます。"),
    ("青木", 5, "まず文書保存年限の見直しについてです。"),
    ("青木", 30, "文書保存年限は原則十年とすることに決定しました。"),
    ("青木", 40, "次に電子決裁の導入について議論します。"),
    ("坂東", 50, "電子決裁システムは来年度から試行する予定です。"),
    ("坂東", 55, "会議室の予約とも連携させたいと考えます。"),
]


def add_transcript(meeting: Meeting, lines: list[tuple[str, int, str]] = TRANSCRIPT) -> None:
    speakers: dict[str, Speaker] = {}
    for label, start, text in lines:
        speaker = speakers.get(label) or Speaker.objects.create(meeting=meeting, label=label)
        speakers[label] = speaker
        Segment.objects.create(
            meeting=meeting,
            speaker=speaker,
            start_ms=start * 1000,
            end_ms=start * 1000 + 4000,
            text=text,
            recognised=True,
        )


def audit(action: str, **filters: Any) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action, **filters))


def stream(user: User) -> list[dict[str, Any]]:
    return [e.payload for e in UserEvent.objects.filter(user=user).order_by("event_id")]


class Watcher:
    """A local socket watching the meeting's topic (what an open page receives)."""

    def __init__(self) -> None:
        self.user_id = 0
        self.last_sent = 0
        self.events: list[dict[str, Any]] = []

    def deliver(self, event_id: int, event: dict[str, Any]) -> None:
        pass

    def catch_up(self) -> None:
        pass

    def deliver_topic(self, topic: str, event: dict[str, Any]) -> None:
        self.events.append(event)

    def deliver_live(self, frame: str) -> None:
        pass


@pytest.fixture
def watcher(meeting: Meeting) -> Iterator[Watcher]:
    socket = Watcher()
    topic = events.meeting_topic(meeting.pk)
    bus.local_sockets.watch(socket, topic)
    yield socket
    bus.local_sockets.unwatch(socket, topic)


def edit_form(revision: int, **fields: str) -> dict[str, str]:
    data = {
        "revision": str(revision),
        "style": "summary",
        "summary": "■文書保存年限の見直し\n・保存年限を十年とする。",
        "decisions": "文書保存年限は原則十年とする。",
        "items-TOTAL_FORMS": "2",
        "items-INITIAL_FORMS": "0",
        "items-MIN_NUM_FORMS": "0",
        "items-MAX_NUM_FORMS": "50",
        "items-0-task": "試行部署の選定",
        "items-0-assignee": "総務課",
        "items-0-assignee_user": "",
        "items-0-due_date": "2025-07-31",
        "items-1-task": "",
        "items-1-assignee": "",
        "items-1-assignee_user": "",
        "items-1-due_date": "",
    }
    data.update(fields)
    return data


def url(meeting: Meeting, step: str = "") -> str:
    return f"/minutes/{meeting.pk}/minutes/{step + '/' if step else ''}"


# --- the document ---------------------------------------------------------------------------


def test_it_builds_the_verbatim_document_in_the_municipal_format(
    meeting: Meeting, alice: User, bob: User, charlie: User, ward: dict[str, Department]
) -> None:
    meeting.absentees.add(charlie)
    meeting.other_attendees = "山田 太郎（株式会社中野バス）"
    meeting.save()
    add_transcript(meeting)

    doc = build_document(meeting)

    assert doc.heading == "文書管理検討会議 会議録"
    rows = dict(doc.header_rows())
    assert list(rows) == ["会議名", "日時", "場所", "出席者", "欠席者", "議題"]
    assert rows["日時"] == "令和7年6月11日（水）午前10時00分～午前11時00分"
    assert rows["場所"] == "本庁舎3階 会議室301"
    assert rows["出席者"] == "青木 愛（文書係）、坂東 歩（文書係）、山田 太郎（株式会社中野バス）"
    assert rows["欠席者"] == "千葉 茶太郎（戸籍住民課）"
    assert rows["議題"] == "1. 文書保存年限の見直し\n2. 電子決裁の導入"
    # Time order, one speaker's consecutive segments joined.
    assert [u.line() for u in doc.utterances] == [
        "青木：それでは会議を始めます。まず文書保存年限の見直しについてです。",
        "坂東：保存年限を十年に短縮すると書庫の容量に余裕ができます。",
        "青木：文書保存年限は原則十年とすることに決定しました。次に電子決裁の導入について議論します。",
        "坂東：電子決裁システムは来年度から試行する予定です。会議室の予約とも連携させたいと考えます。",
    ]
    assert doc.topics == ()


def test_english_segments_of_one_speaker_join_with_a_space(meeting: Meeting) -> None:
    add_transcript(meeting, [("Bob", 0, "hello world"), ("Bob", 3, "we agree"), ("", 9, "")])
    Segment.objects.create(meeting=meeting, start_ms=8000, end_ms=9000, text="who", recognised=True)

    assert [u.line() for u in build_document(meeting).utterances] == [
        "Bob：hello world we agree",
        "発言者不明：who",
    ]


def test_it_builds_the_summary_document_with_decisions_and_plans(
    meeting: Meeting, alice: User
) -> None:
    meeting.ends_at = MEETING_START + dt.timedelta(hours=3, minutes=5)  # past noon: 午後1時05分
    meeting.save()
    add_transcript(meeting)
    minutes = minutes_for(meeting)
    minutes.style = Minutes.Style.SUMMARY
    minutes.summary = (
        "■文書保存年限の見直し\n・十年に短縮する。\n■電子決裁の導入\n- 来年度に試行する。"
    )
    minutes.decisions = "保存年限は十年とする。\n\n電子決裁を試行する。"
    minutes.save()
    ActionItem.objects.create(
        minutes=minutes, task="試行部署の選定", assignee_user=alice, due_date=dt.date(2025, 7, 31)
    )

    doc = build_document(meeting)
    text = document_text(doc)

    assert doc.date_text == "令和7年6月11日（水）午前10時00分～午後1時05分"
    assert [(t.title, t.points) for t in doc.topics] == [
        ("文書保存年限の見直し", ("十年に短縮する。",)),
        ("電子決裁の導入", ("来年度に試行する。",)),
    ]
    assert doc.utterances == ()
    assert doc.decisions == ("保存年限は十年とする。", "電子決裁を試行する。")
    assert [(p.task, p.assignee, p.due) for p in doc.plans] == [
        ("試行部署の選定", "青木 愛（文書係）", "令和7年7月31日")
    ]
    assert "議事（要点筆記）\n■文書保存年限の見直し\n・十年に短縮する。" in text
    assert "決定事項\n1. 保存年限は十年とする。\n2. 電子決裁を試行する。" in text
    assert "・試行部署の選定（担当：青木 愛（文書係）、期限：令和7年7月31日）" in text


# --- the page -------------------------------------------------------------------------------


def test_readers_see_the_minutes_and_outsiders_are_refused(
    client: Client, meeting: Meeting, bob: User, charlie: User, erin: User
) -> None:
    add_transcript(meeting)

    client.force_login(bob)
    page = client.get(url(meeting))
    assert page.status_code == 200
    html = page.content.decode()
    assert "令和7年6月11日（水）午前10時00分～午前11時00分" in html
    assert "書庫の容量に余裕ができます" in html
    assert 'name="summary"' in html  # bob attends: he edits
    assert f'data-realtime-topics="minutes.meeting.{meeting.pk}"' in html
    # minutespage.js shows 「他の人が議事録を更新しました。」 on another person's change.
    assert "yakuba/minutespage.js" in html
    assert 'data-changed-text="他の人が議事録を更新しました。"' in html
    assert not Minutes.objects.exists()  # a visit writes nothing

    client.force_login(erin)  # the auditor reads, but edits nothing
    html = client.get(url(meeting)).content.decode()
    assert "書庫の容量に余裕ができます" in html
    assert 'name="summary"' not in html

    client.force_login(charlie)
    assert client.get(url(meeting)).status_code == 403
    assert client.post(url(meeting), edit_form(1)).status_code == 403
    assert not Minutes.objects.exists()


def test_it_saves_an_edit_with_its_plans_and_audits_it(
    client: Client,
    meeting: Meeting,
    alice: User,
    bob: User,
    watcher: Watcher,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    client.force_login(bob)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            url(meeting),
            edit_form(
                1, **{"items-1-task": "規程の改正案", "items-1-assignee_user": str(alice.pk)}
            ),
        )

    assert response.status_code == 302
    minutes = Minutes.objects.get(meeting=meeting)
    assert minutes.revision == 2
    assert minutes.style == Minutes.Style.SUMMARY
    assert minutes.summary_method == Minutes.SummaryMethod.MANUAL
    assert minutes.decision_list() == ["文書保存年限は原則十年とする。"]
    items = list(minutes.action_items.values_list("task", "assignee", "assignee_user", "due_date"))
    assert items == [
        ("試行部署の選定", "総務課", None, dt.date(2025, 7, 31)),
        ("規程の改正案", "", alice.pk, None),
    ]
    [entry] = audit("minutes.minutes_changed")
    assert entry.actor_id == bob.pk
    assert entry.details["revision"] == 2
    assert watcher.events == [
        {"type": "minutes", "op": "minutes", "status": "draft", "revision": 2, "by": bob.pk}
    ]
    html = client.get(url(meeting)).content.decode()
    assert "令和7年7月31日" in html
    assert "保存年限を十年とする。" in html


def test_a_stale_save_is_refused_and_nothing_is_lost(
    client: Client, meeting: Meeting, alice: User, bob: User
) -> None:
    client.force_login(alice)
    assert client.post(url(meeting), edit_form(1, decisions="青木の決定")).status_code == 302

    client.force_login(bob)  # Bob's form was opened at revision 1, before Alice saved
    response = client.post(url(meeting), edit_form(1, decisions="坂東の決定"))

    assert response.status_code == 409
    html = response.content.decode()
    assert "ほかの人が先に議事録を保存しました" in html
    assert "坂東の決定" in html  # what Bob typed is still in his form
    assert "ほかの人が保存した最新の内容" in html
    assert "青木の決定" in html
    assert 'name="revision" value="2"' in html  # saving again is made against hers
    minutes = Minutes.objects.get(meeting=meeting)
    assert minutes.decisions == "青木の決定"
    assert minutes.revision == 2
    assert len(audit("minutes.minutes_changed")) == 1

    assert client.post(url(meeting), edit_form(2, decisions="坂東の決定")).status_code == 302
    assert Minutes.objects.get(meeting=meeting).decisions == "坂東の決定"


def test_bad_input_is_refused_with_a_message_and_nothing_saved(
    client: Client, meeting: Meeting, bob: User
) -> None:
    client.force_login(bob)

    bad_style = client.post(url(meeting), edit_form(1, style="poem"))
    no_task = client.post(url(meeting), edit_form(1, **{"items-0-task": ""}))
    bad_date = client.post(url(meeting), edit_form(1, **{"items-0-due_date": "9999-99-99"}))
    bad_method = client.post(url(meeting, "summarise"), {"method": "guess", "revision": "1"})

    assert bad_style.status_code == no_task.status_code == bad_date.status_code == 400
    assert "入力内容を確かめてください。" in bad_style.content.decode()
    assert "内容を入力してください。" in no_task.content.decode()
    assert bad_method.status_code == 400
    assert "要約の方法が正しくありません。" in bad_method.content.decode()
    assert not Minutes.objects.exists()
    assert not audit("minutes.minutes_changed")


def test_the_extractive_summary_fills_the_summary_and_proposes_decisions(
    client: Client, meeting: Meeting, bob: User
) -> None:
    add_transcript(meeting)
    client.force_login(bob)

    response = client.post(url(meeting, "summarise"), {"method": "extractive", "revision": "1"})

    assert response.status_code == 302
    minutes = Minutes.objects.get(meeting=meeting)
    assert minutes.style == Minutes.Style.SUMMARY
    assert minutes.summary_method == Minutes.SummaryMethod.EXTRACTIVE
    assert minutes.summary.startswith("■文書保存年限の見直し\n")
    assert "\n■電子決裁の導入\n" in minutes.summary
    assert "文書保存年限は原則十年とすることに決定しました。" in minutes.decision_list()
    [entry] = audit("minutes.summarised")
    assert entry.details["method"] == "extractive"
    # Decisions people wrote are never overwritten by candidates.
    minutes.decisions = "人が書いた決定"
    minutes.save()
    client.post(url(meeting, "summarise"), {"method": "extractive", "revision": "2"})
    assert Minutes.objects.get(meeting=meeting).decisions == "人が書いた決定"


def test_without_a_transcript_the_summary_is_refused(
    client: Client, meeting: Meeting, bob: User
) -> None:
    client.force_login(bob)
    response = client.post(url(meeting, "summarise"), {"method": "extractive"})
    assert response.status_code == 400
    assert "要約する発言がありません" in response.content.decode()
    assert not audit("minutes.summarised")


def test_the_llm_button_is_off_without_a_url(
    client: Client, meeting: Meeting, bob: User, settings: Any
) -> None:
    settings.MINUTES_LLM_URL = ""
    add_transcript(meeting)
    client.force_login(bob)

    html = client.get(url(meeting)).content.decode()
    refused = client.post(url(meeting, "summarise"), {"method": "llm", "revision": "1"})

    assert 'value="llm" disabled' in html
    assert "庁内LLMは設定されていません" in html
    assert refused.status_code == 400
    assert "庁内LLMは設定されていません" in refused.content.decode()
    assert not Minutes.objects.exists()


# --- the approval flow ----------------------------------------------------------------------


def test_the_flow_from_draft_to_approved(
    client: Client,
    meeting: Meeting,
    alice: User,
    bob: User,
    charlie: User,
    dora: User,
    watcher: Watcher,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    add_transcript(meeting)
    client.force_login(bob)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            url(meeting, "review"), {"comment": "ご確認ください", "revision": "1"}
        )
    assert response.status_code == 302
    minutes = Minutes.objects.get(meeting=meeting)
    assert minutes.status == Minutes.Status.REVIEW
    assert minutes.review_requested_by == bob
    # The approvers (organiser and 所属長) are told; the requester is not.
    for approver in (alice, dora):
        assert [e["op"] for e in stream(approver)] == ["review_requested"]
        assert stream(approver)[0]["meeting_id"] == meeting.pk
    assert stream(bob) == []
    # During review nothing is edited.
    refused = client.post(url(meeting), edit_form(2))
    assert refused.status_code == 409
    assert "確認依頼中です" in refused.content.decode()

    # Bob attends but is not the organiser: he cannot approve; Charlie cannot even read.
    assert client.post(url(meeting, "approve")).status_code == 403
    client.force_login(charlie)
    assert client.post(url(meeting, "approve")).status_code == 403
    assert client.post(url(meeting, "return"), {"comment": "だめ"}).status_code == 403
    assert Minutes.objects.get(meeting=meeting).status == Minutes.Status.REVIEW
    assert AuditEntry.objects.filter(action="auth.denied").count() >= 3

    client.force_login(dora)  # the 所属長 approves
    assert (
        f'action="/minutes/{meeting.pk}/minutes/approve/"'
        in client.get(url(meeting)).content.decode()
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url(meeting, "approve"), {"comment": "承認します"})
    assert response.status_code == 302
    minutes = Minutes.objects.get(meeting=meeting)
    assert minutes.status == Minutes.Status.APPROVED
    assert minutes.approved_by == dora
    assert minutes.approved_at is not None
    text = minutes.approved_text
    assert "会議名：文書管理検討会議" in text
    assert "日時：令和7年6月11日（水）午前10時00分～午前11時00分" in text
    assert "坂東：保存年限を十年に短縮すると書庫の容量に余裕ができます。" in text
    assert "土田 乃 承認" in text
    assert "approved" in [e["op"] for e in stream(bob)]  # the requester
    assert "announced" in [e["op"] for e in stream(alice)]  # announce_approved
    assert [c.kind for c in minutes.comments.all()] == ["review", "approved"]
    assert [a for a in ("minutes.review_requested", "minutes.approved") if audit(a)] == [
        "minutes.review_requested",
        "minutes.approved",
    ]
    assert [e["status"] for e in watcher.events] == ["review", "approved"]

    # Approved: nobody edits, not even the organiser.
    client.force_login(alice)
    assert client.post(url(meeting), edit_form(minutes.revision)).status_code == 403
    assert 'name="summary"' not in client.get(url(meeting)).content.decode()


def test_the_organiser_approves_and_returns(
    client: Client,
    meeting: Meeting,
    alice: User,
    bob: User,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    minutes = do_request_review(minutes_for(meeting), user=bob)
    client.force_login(alice)

    without_reason = client.post(url(meeting, "return"), {"comment": "  "})
    assert without_reason.status_code == 400
    assert "コメントに書いてください" in without_reason.content.decode()
    assert Minutes.objects.get(pk=minutes.pk).status == Minutes.Status.REVIEW

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url(meeting, "return"), {"comment": "議題2の要点が足りません"})
    assert response.status_code == 302
    assert Minutes.objects.get(pk=minutes.pk).status == Minutes.Status.DRAFT
    assert [e["op"] for e in stream(bob)] == ["returned"]
    [entry] = audit("minutes.returned", actor_id=alice.pk)
    assert entry.details["comment"] == "議題2の要点が足りません"
    returned = MinutesComment.objects.get(kind=MinutesComment.Kind.RETURNED)
    assert returned.text == "議題2の要点が足りません"

    # Approving what is not under review is refused (someone returned it meanwhile).
    late = client.post(url(meeting, "approve"))
    assert late.status_code == 409
    assert "確認依頼されていません" in late.content.decode()


def test_it_posts_approved_minutes_to_the_organisers_section_channel(
    meeting: Meeting, alice: User, bob: User
) -> None:
    from yakuba.chat import membership
    from yakuba.chat.models import Conversation, Membership, Message

    membership.ensure_department_channels()
    membership.sync_all()
    channel = Conversation.objects.get(department=meeting.department)
    add_transcript(meeting)
    minutes = do_request_review(minutes_for(meeting), user=bob)

    do_approve_minutes(minutes, user=alice)

    [posted] = Message.objects.filter(conversation=channel)
    assert posted.sender_id is None
    assert posted.sender_label == "議事録"
    assert "議事録が承認されました: 文書管理検討会議（令和7年6月11日の会議）" in posted.text
    assert f"/minutes/{meeting.pk}/minutes/" in posted.text
    # Alice and Bob (文書係) read it in their channel; nothing went anywhere else.
    members = Membership.objects.filter(conversation=channel).values_list("user_id", flat=True)
    assert {alice.pk, bob.pk} <= set(members)
    assert Message.objects.count() == 1


def test_comments_by_editors_and_approvers_only(
    client: Client, meeting: Meeting, bob: User, charlie: User, dora: User, erin: User
) -> None:
    client.force_login(bob)
    assert client.post(url(meeting, "comment"), {"comment": "議題1を確認済み"}).status_code == 302
    client.force_login(dora)
    assert client.post(url(meeting, "comment"), {"comment": "了解です"}).status_code == 302
    empty = client.post(url(meeting, "comment"), {"comment": ""})
    client.force_login(erin)  # the auditor reads only
    by_auditor = client.post(url(meeting, "comment"), {"comment": "監査から"})
    client.force_login(charlie)
    by_outsider = client.post(url(meeting, "comment"), {"comment": "部外者から"})

    assert empty.status_code == 400
    assert by_auditor.status_code == by_outsider.status_code == 403
    texts = list(MinutesComment.objects.values_list("text", "author__username"))
    assert texts == [("議題1を確認済み", "bob"), ("了解です", "dora")]
    assert len(audit("minutes.commented")) == 2
    client.force_login(bob)
    html = client.get(url(meeting)).content.decode()
    assert "議題1を確認済み" in html
    assert "了解です" in html


# --- search ---------------------------------------------------------------------------------


def approve(meeting: Meeting, bob: User, alice: User) -> None:
    minutes = do_request_review(minutes_for(meeting), user=bob)
    do_approve_minutes(minutes, user=alice)


def test_search_finds_approved_minutes_by_japanese_substring(
    client: Client,
    meeting: Meeting,
    alice: User,
    bob: User,
    charlie: User,
    erin: User,
    ward: dict[str, Department],
) -> None:
    add_transcript(meeting)
    draft = Meeting.objects.create(
        title="会議室の予約に関する打合せ",
        starts_at=MEETING_START,
        ends_at=MEETING_START + dt.timedelta(hours=1),
        organiser=alice,
        department=ward["bunsho"],
        created_by=alice,
    )
    minutes_for(draft)  # not approved: never found
    approve(meeting, bob, alice)

    client.force_login(alice)
    found = client.get("/minutes/search/", {"q": "予約"})
    assert found.status_code == 200
    html = found.content.decode()
    assert "文書管理検討会議" in html
    assert "会議室の予約に関する打合せ" not in html
    assert "会議室の<mark>予約</mark>とも連携" in html
    assert "1件" in html

    for params in (
        {"q": "予約", "start": "2025-06-12"},
        {"q": "予約", "end": "2025-06-10"},
        {"q": "予約", "department": str(ward["koseki"].pk)},
        {"q": "存在しない語"},
    ):
        assert "文書管理検討会議" not in client.get("/minutes/search/", params).content.decode()
    for params in (
        {"q": "予約", "start": "2025-06-11", "end": "2025-06-11"},
        {"q": "予約", "department": str(ward["somu_ka"].pk)},  # 文書係 is under 総務課
        {"q": "文書管理"},  # the title
    ):
        assert "文書管理検討会議" in client.get("/minutes/search/", params).content.decode()

    client.force_login(charlie)
    assert "文書管理検討会議" not in client.get("/minutes/search/", {"q": "予約"}).content.decode()
    client.force_login(erin)
    assert "文書管理検討会議" in client.get("/minutes/search/", {"q": "予約"}).content.decode()

    bad = client.get("/minutes/search/", {"start": "2025-06-12", "end": "2025-06-01"})
    assert bad.status_code == 400
    assert "終わりの日付は始めの日付以降にしてください。" in bad.content.decode()


def test_search_and_page_queries_do_not_grow_with_results(
    client: Client,
    meeting: Meeting,
    alice: User,
    bob: User,
    ward: dict[str, Department],
    django_assert_max_num_queries: Callable[..., Any],
) -> None:
    add_transcript(meeting)
    approve(meeting, bob, alice)
    client.force_login(alice)
    client.get("/minutes/search/")  # the first request after sign-in records the session
    with django_assert_max_num_queries(20) as one:
        client.get("/minutes/search/", {"q": "会議"})
    with django_assert_max_num_queries(30) as page_before:
        client.get(url(meeting))
    for number in range(3):
        other = Meeting.objects.create(
            title=f"第{number}回会議",
            starts_at=MEETING_START,
            ends_at=MEETING_START + dt.timedelta(hours=1),
            organiser=alice,
            department=ward["bunsho"],
            created_by=alice,
        )
        other.attendees.add(alice, bob)
        approve(other, bob, alice)
    add_transcript(meeting, [(f"話者{n}", 100 + n, f"追加の発言{n}です。") for n in range(10)])
    MinutesComment.objects.bulk_create(
        [MinutesComment(minutes=meeting.minutes, author=bob, text=f"意見{n}") for n in range(5)]
    )

    with django_assert_max_num_queries(20) as four:
        html = client.get("/minutes/search/", {"q": "会議"}).content.decode()
    with django_assert_max_num_queries(30) as page_after:
        page = client.get(url(meeting)).content.decode()

    assert "4件" in html
    assert "追加の発言9です。" in page
    assert "意見4" in page
    assert len(four.captured_queries) == len(one.captured_queries)
    assert len(page_after.captured_queries) == len(page_before.captured_queries)


@pytest.mark.django_db(transaction=True)
def test_of_two_saves_racing_from_one_revision_exactly_one_wins(
    meeting: Meeting, alice: User, bob: User
) -> None:
    """Real threads, each with its own connection, save from revision 1 at once."""
    minutes_for(meeting)
    outcomes: dict[str, str] = {}
    barrier = threading.Barrier(4)

    def save(user: User, text: str) -> None:
        try:
            barrier.wait(timeout=30)
            do_save_minutes(
                Minutes.objects.get(meeting=meeting),
                user=user,
                revision=1,
                style="verbatim",
                summary_text="",
                decisions=text,
                action_items=[],
            )
            outcomes[text] = "saved"
        except StaleMinutes:
            outcomes[text] = "stale"
        finally:
            connection.close()

    threads = [
        threading.Thread(target=save, args=(user, f"{user.username}-{n}"))
        for n, user in enumerate((alice, bob, alice, bob))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(outcomes.values()) == ["saved", "stale", "stale", "stale"]
    [winner] = [text for text, outcome in outcomes.items() if outcome == "saved"]
    minutes = Minutes.objects.get(meeting=meeting)
    assert (minutes.decisions, minutes.revision) == (winner, 2)
    assert AuditEntry.objects.filter(action="minutes.minutes_changed").count() == 1

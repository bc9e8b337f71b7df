"""Demo minutes for the demo ward: three meetings with a short transcript each, so that a
person who signs in sees the feature at work: one with approved minutes, one waiting
for approval (確認依頼), one being written (作成中).

``load_demo_minutes()`` needs the demo ward (``yakuba demo``: the named accounts) and is
idempotent: a demo meeting whose title exists is left as it is.  The meetings are made
through ``do_create_meeting``; their transcripts stand for what a transcription would
have produced (engine ``demo``, no audio), and the minutes' approval steps are written
as the flow would leave them, each audited as done by 「yakuba demo」 (this is demo data).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db import transaction

from yakuba.audit.models import AuditAction
from yakuba.audit.record import Actor, record
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.minutes.actions.meetings import do_create_meeting
from yakuba.minutes.models import (
    ActionItem,
    Meeting,
    Minutes,
    MinutesComment,
    Segment,
    Speaker,
    TranscriptionJob,
)

PEOPLE = ("kacho", "shokuin", "kanri", "madoguchi", "guest")
ENGINE = "demo"


@dataclass(frozen=True)
class DemoMeeting:
    title: str
    days_ago: int
    hour: int
    minutes_long: int
    place: str
    organiser: str
    attendees: tuple[str, ...]
    absentees: tuple[str, ...]
    agenda: str
    status: str  # a Minutes.Status value
    lines: tuple[tuple[str, str], ...]  # (username, text)
    decisions: str = ""
    actions: tuple[tuple[str, str, int], ...] = ()  # (task, 担当, due in days from the meeting)
    other_attendees: str = ""


MEETINGS = (
    DemoMeeting(
        title="総務課 課内会議（文書管理）",
        days_ago=14,
        hour=10,
        minutes_long=60,
        place="総務課会議室（本庁舎 3階）",
        organiser="kacho",
        attendees=("kacho", "shokuin"),
        absentees=("kanri",),
        agenda="文書保存年限の見直し\n電子決裁の利用状況",
        status=Minutes.Status.APPROVED,
        lines=(
            ("kacho", "それでは課内会議を始めます。最初の議題は文書保存年限の見直しです。"),
            (
                "shokuin",
                "文書係から報告します。保存年限が三年の文書のうち、約二割は一年に短縮できる見込みです。",
            ),
            ("kacho", "短縮する文書の一覧は、各課に確認してもらう必要がありますね。"),
            ("shokuin", "はい。来月末までに照会文を出して、回答を取りまとめます。"),
            ("kacho", "次に電子決裁の利用状況をお願いします。"),
            (
                "shokuin",
                "先月の電子決裁の割合は八十五パーセントで、前月より五ポイント上がりました。",
            ),
            ("kacho", "紙の決裁が残っている課には、個別に説明に行きましょう。以上で終わります。"),
        ),
        decisions="保存年限を短縮する文書の一覧について各課へ照会する\n紙決裁の多い課へ個別に説明する",
        actions=(("各課への照会文の発出", "文書係", 45), ("紙決裁の多い課への説明", "総務課", 60)),
    ),
    DemoMeeting(
        title="災害時の避難者輸送に関する打合せ",
        days_ago=7,
        hour=14,
        minutes_long=45,
        place="防災会議室（第二庁舎 1階）",
        organiser="shokuin",
        attendees=("shokuin", "kacho", "guest"),
        absentees=(),
        agenda="協定に基づく輸送の手順\n連絡体制の確認",
        other_attendees="山田 一郎（みどり交通株式会社 運行管理課）",
        status=Minutes.Status.REVIEW,
        lines=(
            ("shokuin", "本日は、災害時の避難者輸送について手順を確認させていただきます。"),
            ("guest", "弊社では発災から三時間以内に、大型バス五台を区役所前に配車できます。"),
            ("kacho", "夜間や休日の場合も同じ体制でしょうか。"),
            ("guest", "夜間は運転手の参集に時間がかかるため、五時間以内を目安としています。"),
            ("shokuin", "連絡先は、区の防災無線と担当者の携帯電話の二系統にします。"),
            ("kacho", "年に一度、合同で訓練を行うことにしましょう。"),
        ),
        decisions="連絡体制は防災無線と携帯電話の二系統とする\n年一回の合同訓練を実施する",
        actions=(("合同訓練の日程調整", "文書係", 30),),
    ),
    DemoMeeting(
        title="窓口改善の検討会",
        days_ago=1,
        hour=15,
        minutes_long=30,
        place="第7会議室（第二庁舎 2階）",
        organiser="madoguchi",
        attendees=("madoguchi", "shokuin"),
        absentees=("kacho",),
        agenda="マイナンバーカード窓口の待ち時間",
        status=Minutes.Status.DRAFT,
        lines=(
            (
                "madoguchi",
                "マイナンバーカードの窓口では、月曜日の午前中に待ち時間が長くなっています。",
            ),
            ("shokuin", "予約制の枠を月曜日だけ増やすことはできますか。"),
            ("madoguchi", "職員の配置を見直せば、一時間あたり二枠増やせると思います。"),
            ("shokuin", "区のホームページで、空いている時間帯をお知らせするのもよいですね。"),
        ),
    ),
)


class DemoMinutesError(RuntimeError):
    """The demo ward is missing (run ``yakuba demo`` first)."""


@dataclass
class DemoMinutesResult:
    created: list[str] = field(default_factory=list)


def load_demo_minutes() -> DemoMinutesResult:
    """Create the demo meetings that do not exist yet (by title).  Raises
    ``DemoMinutesError`` without the demo ward's named accounts."""
    people = {u.username: u for u in User.objects.filter(username__in=PEOPLE, is_active=True)}
    if set(people) != set(PEOPLE):
        raise DemoMinutesError(
            "デモ区の職員がいません。先に `yakuba demo` でデモ区を作成してください。"
        )
    result = DemoMinutesResult()
    titles = set(
        Meeting.objects.filter(title__in=[m.title for m in MEETINGS]).values_list(
            "title", flat=True
        )
    )
    for demo in MEETINGS:
        if demo.title not in titles:
            _create(demo, people)
            result.created.append(demo.title)
    return result


def _create(demo: DemoMeeting, people: dict[str, User]) -> Meeting:
    day = clock.today() - dt.timedelta(days=demo.days_ago)
    starts_at = dt.datetime.combine(day, dt.time(demo.hour), tzinfo=clock.TOKYO)
    ends_at = starts_at + dt.timedelta(minutes=demo.minutes_long)
    organiser = people[demo.organiser]
    with transaction.atomic():
        meeting = do_create_meeting(
            user=organiser,
            title=demo.title,
            starts_at=starts_at,
            ends_at=ends_at,
            place=demo.place,
            attendees=[people[name] for name in demo.attendees],
            absentees=[people[name] for name in demo.absentees],
            other_attendees=demo.other_attendees,
            agenda=demo.agenda,
        )
        _transcript(meeting, demo, people)
        _minutes(meeting, demo, people)
    return meeting


def _transcript(meeting: Meeting, demo: DemoMeeting, people: dict[str, User]) -> None:
    """Speakers named after the attendees, and one recognised segment per line."""
    speakers: dict[str, Speaker] = {}
    for username, _text in demo.lines:
        if username not in speakers:
            user = people[username]
            speakers[username] = Speaker.objects.create(
                meeting=meeting,
                label=user.display_name or user.username,
                user=user,
                sort_order=len(speakers),
            )
    total_ms = 0
    job = TranscriptionJob.objects.create(
        meeting=meeting,
        engine=ENGINE,
        status=TranscriptionJob.Status.DONE,
        requested_by=meeting.organiser,
        started_at=meeting.ends_at,
        finished_at=meeting.ends_at + dt.timedelta(minutes=5),
    )
    start_ms = 2000
    for number, (username, text) in enumerate(demo.lines):
        length = 1000 + 180 * len(text)  # about a Japanese speaker's pace
        Segment.objects.create(
            meeting=meeting,
            job=job,
            speaker=speakers[username],
            start_ms=start_ms,
            end_ms=start_ms + length,
            text=text,
            engine_text=text,
            engine=ENGINE,
            confidence=0.9 - 0.02 * (number % 4),
            recognised=True,
        )
        total_ms += length
        start_ms += length + 1500
    job.audio_ms_total = job.audio_ms_done = total_ms
    job.save(update_fields=["audio_ms_total", "audio_ms_done"])


def _minutes(meeting: Meeting, demo: DemoMeeting, people: dict[str, User]) -> None:
    actor = Actor.system("yakuba demo")
    organiser = people[demo.organiser]
    after = meeting.ends_at + dt.timedelta(days=1)
    minutes = Minutes.objects.create(
        meeting=meeting, decisions=demo.decisions, updated_at=after, status=Minutes.Status.DRAFT
    )
    for order, (task, assignee, due_in) in enumerate(demo.actions):
        ActionItem.objects.create(
            minutes=minutes,
            task=task,
            assignee=assignee,
            due_date=clock.local(meeting.starts_at).date() + dt.timedelta(days=due_in),
            sort_order=order,
        )
    if demo.status == Minutes.Status.DRAFT:
        return
    minutes.status = Minutes.Status.REVIEW
    minutes.review_requested_by = organiser
    minutes.review_requested_at = after
    MinutesComment.objects.create(
        minutes=minutes,
        author=organiser,
        kind=MinutesComment.Kind.REVIEW_REQUESTED,
        text="内容の確認をお願いします。",
        created_at=after,
    )
    record(AuditAction.MINUTES_REVIEW_REQUESTED, actor=actor, target=minutes)
    if demo.status == Minutes.Status.APPROVED:
        approver = people["kacho"]
        minutes.status = Minutes.Status.APPROVED
        minutes.approved_by = approver
        minutes.approved_at = after + dt.timedelta(hours=3)
        minutes.approved_text = "\n".join(
            f"{people[username].display_name}: {text}" for username, text in demo.lines
        )
        MinutesComment.objects.create(
            minutes=minutes,
            author=approver,
            kind=MinutesComment.Kind.APPROVED,
            text="承認します。",
            created_at=minutes.approved_at,
        )
        record(AuditAction.MINUTES_APPROVED, actor=actor, target=minutes)
    minutes.save(
        update_fields=[
            "status",
            "review_requested_by",
            "review_requested_at",
            "approved_by",
            "approved_at",
            "approved_text",
        ]
    )

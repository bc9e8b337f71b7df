"""議事録: meetings, their recordings, transcripts and minutes.

A ``Meeting`` holds the header of the minutes (会議名, 日時, 場所, 出席者, 欠席者, 議題).
Its recordings are either one file of the whole room (speakers labelled by hand) or one
file per speaker, time-aligned by ``offset_ms`` (the meetings feature will feed these).
A ``TranscriptionJob`` turns the recordings into ``Segment`` rows: the plan (every
speech region found by voice-activity detection) is written first with empty text, then
each segment's text is saved as soon as the engine returns it, so a worker restart
loses at most the segment in progress.  ``Minutes`` is the document made of the
transcript, with its approval flow (作成中 → 確認依頼 → 承認済).
"""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from yakuba.directory.models import Department, User
from yakuba.lib import clock


class Meeting(models.Model):
    title = models.CharField(_("会議名"), max_length=200)
    starts_at = models.DateTimeField(_("開始日時"))
    ends_at = models.DateTimeField(_("終了日時"))
    place = models.CharField(_("場所"), max_length=200, blank=True)
    # The room booking the meeting was held in, when there was one.
    booking = models.ForeignKey(
        "rooms.Booking", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    organiser = models.ForeignKey(
        User, verbose_name=_("主催者"), on_delete=models.PROTECT, related_name="organised_meetings"
    )
    # The organiser's 所属 when the meeting was made: its members may read the transcript,
    # and its 所属長 may approve the minutes, even after the organiser moves on.
    department = models.ForeignKey(
        Department, verbose_name=_("主催所属"), on_delete=models.PROTECT, related_name="+"
    )
    attendees = models.ManyToManyField(
        User, verbose_name=_("出席者"), blank=True, related_name="attended_meetings"
    )
    absentees = models.ManyToManyField(User, verbose_name=_("欠席者"), blank=True, related_name="+")
    # People from outside the ward who attended (one per line: 氏名（所属）).
    other_attendees = models.TextField(_("その他の出席者"), blank=True)
    agenda = models.TextField(_("議題"), blank=True)  # one item per line
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        verbose_name = _("会議")
        verbose_name_plural = _("会議")
        ordering = ("-starts_at", "-pk")

    def __str__(self) -> str:
        return self.title

    def agenda_items(self) -> list[str]:
        return [line.strip() for line in self.agenda.splitlines() if line.strip()]


class Speaker(models.Model):
    """A voice in a meeting's transcript: 「話者1」 until someone names it."""

    meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE, related_name="speakers")
    label = models.CharField(_("話者名"), max_length=100)
    user = models.ForeignKey(
        User, verbose_name=_("職員"), null=True, blank=True, on_delete=models.SET_NULL
    )
    sort_order = models.IntegerField(default=0)

    class Meta:
        verbose_name = _("話者")
        verbose_name_plural = _("話者")
        ordering = ("sort_order", "pk")

    def __str__(self) -> str:
        return self.label


class Recording(models.Model):
    """One uploaded audio file.  The original stays as uploaded (under
    ``MINUTES_MEDIA_DIR``); ``audio_path`` is its 16 kHz mono 16-bit WAV, made by the
    transcription job, which the engines read and the editor plays from."""

    meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE, related_name="recordings")
    # A per-speaker track (multi-track input); null for a recording of the whole room.
    speaker = models.ForeignKey(
        Speaker, null=True, blank=True, on_delete=models.SET_NULL, related_name="tracks"
    )
    # Where this file starts on the meeting's time line (multi-track alignment).
    offset_ms = models.IntegerField(_("開始位置（ミリ秒）"), default=0)
    original_name = models.CharField(_("ファイル名"), max_length=255)
    file_path = models.CharField(max_length=500)  # relative to MINUTES_MEDIA_DIR
    audio_path = models.CharField(max_length=500, blank=True)  # the normalised WAV
    format = models.CharField(_("形式"), max_length=20)  # wav, mp3, m4a, opus
    size_bytes = models.BigIntegerField(_("サイズ"))
    duration_ms = models.IntegerField(_("長さ（ミリ秒）"))
    sha256 = models.CharField(max_length=64)
    uploaded_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField(default=clock.now)

    class Meta:
        verbose_name = _("録音")
        verbose_name_plural = _("録音")
        ordering = ("offset_ms", "pk")

    def __str__(self) -> str:
        return self.original_name


class TranscriptionJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", _("待機中")
        RUNNING = "running", _("文字起こし中")
        CANCELLING = "cancelling", _("中止処理中")
        CANCELLED = "cancelled", _("中止")
        DONE = "done", _("完了")
        FAILED = "failed", _("失敗")

    ACTIVE: ClassVar = (Status.QUEUED, Status.RUNNING, Status.CANCELLING)

    meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE, related_name="jobs")
    engine = models.CharField(_("エンジン"), max_length=40)
    model = models.CharField(_("モデル"), max_length=200, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    # Audio to recognise and recognised so far (speech only, all tracks), for progress.
    audio_ms_total = models.BigIntegerField(default=0)
    audio_ms_done = models.BigIntegerField(default=0)
    # Seconds the engine itself spent, and the whole job: the pipeline's overhead.
    engine_seconds = models.FloatField(default=0)
    requested_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=clock.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        verbose_name = _("文字起こし")
        verbose_name_plural = _("文字起こし")
        ordering = ("-created_at", "-pk")
        constraints: ClassVar = [
            # One active job per meeting: a second request is refused, not queued twice.
            models.UniqueConstraint(
                fields=["meeting"],
                condition=Q(status__in=["queued", "running", "cancelling"]),
                name="one_active_transcription",
            )
        ]

    def __str__(self) -> str:
        return f"{self.meeting} ({self.engine}, {self.status})"

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        if not self.audio_ms_total:
            return 0
        return min(99, int(100 * self.audio_ms_done / self.audio_ms_total))


class Segment(models.Model):
    """One stretch of speech: times on the meeting's time line, its speaker and text.
    ``revision`` grows with every edit, so that two editors can merge their changes."""

    meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE, related_name="segments")
    recording = models.ForeignKey(
        Recording, null=True, blank=True, on_delete=models.SET_NULL, related_name="segments"
    )
    job = models.ForeignKey(
        TranscriptionJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="segments"
    )
    speaker = models.ForeignKey(
        Speaker, null=True, blank=True, on_delete=models.SET_NULL, related_name="segments"
    )
    start_ms = models.IntegerField(_("開始"))
    end_ms = models.IntegerField(_("終了"))
    text = models.TextField(_("発言"), blank=True)
    # What the engine heard, before post-correction and people's edits.
    engine_text = models.TextField(blank=True)
    engine = models.CharField(max_length=40, blank=True)
    confidence = models.FloatField(null=True, blank=True)  # 0..1 where the engine gives one
    # False while the job has planned this segment but not recognised it yet.
    recognised = models.BooleanField(default=False)
    revision = models.PositiveIntegerField(default=1)
    edited_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    edited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("発言")
        verbose_name_plural = _("発言")
        ordering = ("start_ms", "pk")
        indexes: ClassVar = [models.Index(fields=["meeting", "start_ms"], name="segment_time")]

    def __str__(self) -> str:
        return f"{self.start_ms / 1000:.1f}s {self.text[:40]}"


class DictionaryEntry(models.Model):
    """The ward dictionary: names an engine does not know.  Given to engines that take
    hotwords, and used to correct the text of those that do not (each ``variants`` line
    is a wrong form to replace by ``term``)."""

    class Kind(models.TextChoices):
        DEPARTMENT = "department", _("所属名")
        PLACE = "place", _("地名")
        PERSON = "person", _("人名")
        TERM = "term", _("用語")

    term = models.CharField(_("表記"), max_length=100)
    reading = models.CharField(_("読み"), max_length=200, blank=True)
    kind = models.CharField(_("種別"), max_length=12, choices=Kind.choices)
    variants = models.TextField(_("誤認識されやすい表記"), blank=True)  # one per line
    active = models.BooleanField(_("有効"), default=True)
    updated_at = models.DateTimeField(default=clock.now)

    class Meta:
        verbose_name = _("辞書語")
        verbose_name_plural = _("辞書")
        ordering = ("kind", "reading", "term")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["term", "kind"], name="dictionary_term_once")
        ]

    def __str__(self) -> str:
        return self.term

    def variant_list(self) -> list[str]:
        return [line.strip() for line in self.variants.splitlines() if line.strip()]


class Minutes(models.Model):
    class Style(models.TextChoices):
        VERBATIM = "verbatim", _("逐語録")
        SUMMARY = "summary", _("要点筆記")

    class Status(models.TextChoices):
        DRAFT = "draft", _("作成中")
        REVIEW = "review", _("確認依頼")
        APPROVED = "approved", _("承認済")

    class SummaryMethod(models.TextChoices):
        NONE = "", _("なし")
        EXTRACTIVE = "extractive", _("抽出要約")
        LLM = "llm", _("庁内LLM")
        MANUAL = "manual", _("手入力")

    meeting = models.OneToOneField(Meeting, on_delete=models.CASCADE, related_name="minutes")
    style = models.CharField(
        _("形式"), max_length=10, choices=Style.choices, default=Style.VERBATIM
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    # 要点筆記: the summary by topic (plain text; 「■議題」 lines start a topic).
    summary = models.TextField(_("要点"), blank=True)
    summary_method = models.CharField(
        max_length=12, choices=SummaryMethod.choices, default=SummaryMethod.NONE, blank=True
    )
    # A summary made by the ward's LLM keeps what was asked and what came back.
    llm_prompt = models.TextField(blank=True)
    llm_output = models.TextField(blank=True)
    llm_model = models.CharField(max_length=200, blank=True)
    decisions = models.TextField(_("決定事項"), blank=True)  # one per line
    # Approved minutes keep the verbatim text they were approved with (search, export).
    approved_text = models.TextField(blank=True)
    revision = models.PositiveIntegerField(default=1)
    review_requested_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    review_requested_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=clock.now)

    class Meta:
        verbose_name = _("議事録")
        verbose_name_plural = _("議事録")

    def __str__(self) -> str:
        return f"{self.meeting.title} 議事録"

    def decision_list(self) -> list[str]:
        return [line.strip() for line in self.decisions.splitlines() if line.strip()]


class ActionItem(models.Model):
    """今後の予定: what is to be done, by whom (担当), by when (期限)."""

    minutes = models.ForeignKey(Minutes, on_delete=models.CASCADE, related_name="action_items")
    task = models.CharField(_("内容"), max_length=300)
    assignee = models.CharField(_("担当"), max_length=100, blank=True)
    assignee_user = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    due_date = models.DateField(_("期限"), null=True, blank=True)
    sort_order = models.IntegerField(default=0)

    class Meta:
        verbose_name = _("今後の予定")
        verbose_name_plural = _("今後の予定")
        ordering = ("sort_order", "pk")

    def __str__(self) -> str:
        return self.task


class MinutesComment(models.Model):
    """A comment in the approval flow; ``kind`` records what the step did."""

    class Kind(models.TextChoices):
        COMMENT = "comment", _("コメント")
        REVIEW_REQUESTED = "review", _("確認依頼")
        RETURNED = "returned", _("差し戻し")
        APPROVED = "approved", _("承認")

    minutes = models.ForeignKey(Minutes, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.COMMENT)
    text = models.TextField(_("コメント"), blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ("created_at", "pk")

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.text[:40]}"

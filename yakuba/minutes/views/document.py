"""The minutes page (議事録): the rendered document for readers; for editors the form of
形式, 要点, 決定事項 and 今後の予定, and the summary buttons; the approval flow
(確認依頼, 承認, 差し戻し) and comments; the .docx and PDF downloads; the search of
approved minutes.

Views parse (the forms below), fetch through ``access_*``, call one action and redirect
with a message.  A refused change re-renders the page with what was typed and the
action's Japanese message: 409 when someone else changed the minutes first (their
version is shown beside the form), 400 for bad input.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.forms import formset_factory
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils.http import content_disposition_header
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from yakuba.directory.models import Department, User
from yakuba.lib import clock
from yakuba.lib.pdf import PdfFontMissing
from yakuba.minutes import events, export, llm
from yakuba.minutes.access import (
    access_meeting,
    access_meeting_for_approval,
    access_meeting_for_edit,
    access_minutes_feature,
    may_approve_minutes,
    may_edit_meeting,
    readable_meetings,
)
from yakuba.minutes.actions.document import (
    MAX_ACTION_ITEMS,
    ActionItemInput,
    MinutesError,
    MinutesStateError,
    StaleMinutes,
    current_minutes,
    do_approve_minutes,
    do_comment_minutes,
    do_record_export,
    do_request_review,
    do_return_minutes,
    do_save_minutes,
    do_summarise,
)
from yakuba.minutes.models import Meeting, Minutes

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
SEARCH_LIMIT = 50
SNIPPET_CHARS = 40
EARLIEST_DATE, LATEST_DATE = dt.date(2000, 1, 1), dt.date(2999, 12, 31)


# --- forms ----------------------------------------------------------------------------------


class DateInput(forms.DateInput):
    input_type = "date"


class MinutesForm(forms.Form):
    revision = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    style = forms.ChoiceField(
        label=gettext_lazy("形式"), choices=Minutes.Style.choices, widget=forms.RadioSelect
    )
    summary = forms.CharField(
        label=gettext_lazy("要点（「■議題」の行で議題を始めます）"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 12}),
    )
    decisions = forms.CharField(
        label=gettext_lazy("決定事項（1行に1件）"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 5}),
    )


class ActionItemForm(forms.Form):
    task = forms.CharField(label=gettext_lazy("内容"), max_length=300, required=False)
    assignee = forms.CharField(label=gettext_lazy("担当"), max_length=100, required=False)
    assignee_user = forms.TypedChoiceField(
        label=gettext_lazy("担当職員"), coerce=int, required=False, empty_value=None
    )
    due_date = forms.DateField(label=gettext_lazy("期限"), required=False, widget=DateInput)

    def __init__(self, *args: Any, people: list[tuple[int, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["assignee_user"]
        assert isinstance(field, forms.TypedChoiceField)
        field.choices = [("", "—"), *people]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        filled = data.get("assignee") or data.get("assignee_user") or data.get("due_date")
        if filled and not (data.get("task") or "").strip():
            raise forms.ValidationError(_("内容を入力してください。"))
        due = data.get("due_date")
        if due is not None and not EARLIEST_DATE <= due <= LATEST_DATE:
            self.add_error("due_date", _("期限の日付を確かめてください。"))
        return data


ActionItemFormSet = formset_factory(
    ActionItemForm, extra=2, max_num=MAX_ACTION_ITEMS, validate_max=True
)


class CommentForm(forms.Form):
    comment = forms.CharField(
        label=gettext_lazy("コメント"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class SearchForm(forms.Form):
    q = forms.CharField(label=gettext_lazy("キーワード"), required=False, max_length=100)
    start = forms.DateField(label=gettext_lazy("開催日（から）"), required=False, widget=DateInput)
    end = forms.DateField(label=gettext_lazy("開催日（まで）"), required=False, widget=DateInput)
    department = forms.ModelChoiceField(
        label=gettext_lazy("主催所属"),
        queryset=Department.objects.order_by("code"),
        required=False,
        empty_label="すべて",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name in ("start", "end"):
            value = data.get(name)
            if value is not None and not EARLIEST_DATE <= value <= LATEST_DATE:
                self.add_error(name, _("日付を確かめてください。"))
        start, end = data.get("start"), data.get("end")
        if start and end and end < start:
            raise forms.ValidationError(_("終わりの日付は始めの日付以降にしてください。"))
        return data


# --- helpers --------------------------------------------------------------------------------


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)  # access_* has passed
    return request.user


def _error_text(exc: MinutesError) -> str:
    language = get_language() or "ja"
    return exc.message if language.startswith("ja") else exc.english


def _people(meeting: Meeting) -> list[tuple[int, str]]:
    """Who can be 担当: the staff attendees and the organiser."""
    users = (
        User.objects.filter(Q(pk__in=meeting.attendees.values("pk")) | Q(pk=meeting.organiser_id))
        .filter(kind=User.Kind.STAFF)
        .order_by("staff__family_kana", "pk")
    )
    return [(user.pk, str(user)) for user in users]


def _initial_forms(minutes: Minutes, meeting: Meeting) -> tuple[MinutesForm, Any]:
    form = MinutesForm(
        initial={
            "revision": minutes.revision,
            "style": minutes.style,
            "summary": minutes.summary,
            "decisions": minutes.decisions,
        }
    )
    rows = (
        [
            {
                "task": item.task,
                "assignee": item.assignee,
                "assignee_user": item.assignee_user_id,
                "due_date": item.due_date,
            }
            for item in minutes.action_items.all()
        ]
        if minutes.pk
        else []
    )
    items = ActionItemFormSet(
        initial=rows, prefix="items", form_kwargs={"people": _people(meeting)}
    )
    return form, items


def _meeting_url(meeting: Meeting) -> str:
    try:
        return reverse("minutes:meeting", args=[meeting.pk])
    except NoReverseMatch:  # the meeting pages are another module's; tolerate their absence
        return ""


def _page(
    request: HttpRequest,
    meeting: Meeting,
    *,
    status: int = 200,
    form: MinutesForm | None = None,
    items: Any = None,
    error: str = "",
    stale: Minutes | None = None,
    typed: dict[str, str] | None = None,
) -> HttpResponse:
    """The minutes page.  ``form``/``items`` carry what an editor typed; ``typed`` what
    was typed in a comment box, by the form it belongs to."""
    user = _user(request)
    minutes = current_minutes(meeting)
    may_edit = may_edit_meeting(user, meeting)
    may_approve = may_approve_minutes(user, meeting)
    editable = may_edit and minutes.status == Minutes.Status.DRAFT
    if editable and form is None:
        form, items = _initial_forms(minutes, meeting)
    comments = list(minutes.comments.select_related("author")) if minutes.pk else []
    context = {
        "active_nav": "minutes",
        "meeting": meeting,
        "minutes": minutes,
        "doc": export.build_document(meeting, minutes),
        "status_label": minutes.get_status_display(),
        "may_edit": may_edit,
        "editable": editable,
        "may_approve": may_approve,
        "may_comment": may_edit or may_approve,
        "may_request_review": may_edit and minutes.status == Minutes.Status.DRAFT,
        "may_decide": may_approve and minutes.status == Minutes.Status.REVIEW,
        "form": form if editable else None,
        "items": items if editable else None,
        "comments": comments,
        "error": error,
        "stale_doc": export.build_document(meeting, stale) if stale is not None else None,
        "typed": typed or {},
        "llm_configured": llm.is_configured(),
        "meeting_url": _meeting_url(meeting),
        "realtime_topics": events.meeting_topic(meeting.pk),
    }
    return render(request, "minutes/document/document.html", context, status=status)


def _refused(
    request: HttpRequest, meeting: Meeting, exc: MinutesError, **kwargs: Any
) -> HttpResponse:
    status = 409 if isinstance(exc, StaleMinutes | MinutesStateError) else 400
    return _page(request, meeting, status=status, error=_error_text(exc), **kwargs)


def _posted_revision(request: HttpRequest) -> int | None:
    value = request.POST.get("revision", "")
    return int(value) if value.isdigit() else None


# --- the page and its edits ---------------------------------------------------------------


def _action_items(
    rows: list[dict[str, Any]], people: list[tuple[int, str]]
) -> list[ActionItemInput]:
    """The 今後の予定 rows of a valid formset, with the chosen staff fetched at once
    (the choices admit only ``people``, so each chosen pk is one of them)."""
    users = User.objects.in_bulk([pk for pk, _label in people])
    return [
        ActionItemInput(
            task=row.get("task") or "",
            assignee=row.get("assignee") or "",
            assignee_user=users.get(row["assignee_user"]) if row.get("assignee_user") else None,
            due_date=row.get("due_date"),
        )
        for row in rows
        if row and not row.get("DELETE")
    ]


@login_required
@require_http_methods(["GET", "POST"])
def document(request: HttpRequest, meeting_id: int) -> HttpResponse:
    if request.method == "GET":
        return _page(request, access_meeting(request.user, meeting_id))
    meeting = access_meeting_for_edit(request.user, meeting_id)
    form = MinutesForm(request.POST)
    people = _people(meeting)
    items = ActionItemFormSet(request.POST, prefix="items", form_kwargs={"people": people})
    if not (form.is_valid() and items.is_valid()):
        error = _("入力内容を確かめてください。")
        return _page(request, meeting, status=400, form=form, items=items, error=error)
    rows = _action_items(items.cleaned_data, people)
    data = form.cleaned_data
    try:
        do_save_minutes(
            current_minutes(meeting),
            user=_user(request),
            revision=data["revision"],
            style=data["style"],
            summary_text=data["summary"],
            decisions=data["decisions"],
            action_items=rows,
        )
    except StaleMinutes as exc:
        # Keep what was typed; the next save is made against the version now shown.
        fresh = request.POST.copy()
        fresh["revision"] = str(exc.current.revision)
        form = MinutesForm(fresh)
        form.is_valid()
        return _refused(request, meeting, exc, form=form, items=items, stale=exc.current)
    except MinutesError as exc:
        return _refused(request, meeting, exc, form=form, items=items)
    messages.success(request, _("議事録を保存しました。"))
    return redirect("minutes:document", meeting_id=meeting.pk)


def _step(
    request: HttpRequest,
    meeting: Meeting,
    run: Callable[[], object],
    *,
    done: str,
    typed: dict[str, str] | None = None,
) -> HttpResponse:
    """Run one action of the page and redirect with ``done``; a refusal re-renders the
    page with its message, what was typed (``typed``) and, when someone else changed the
    minutes first, their version."""
    try:
        run()
    except StaleMinutes as exc:
        return _refused(request, meeting, exc, stale=exc.current, typed=typed)
    except MinutesError as exc:
        return _refused(request, meeting, exc, typed=typed)
    messages.success(request, done)
    return redirect("minutes:document", meeting_id=meeting.pk)


@login_required
@require_POST
def summarise(request: HttpRequest, meeting_id: int) -> HttpResponse:
    meeting = access_meeting_for_edit(request.user, meeting_id)
    method = request.POST.get("method", "")

    def run() -> Minutes:
        return do_summarise(
            current_minutes(meeting),
            user=_user(request),
            method=method,
            revision=_posted_revision(request),
        )

    done = _("要点を作成しました。内容を確かめて、必要なら修正してください。")
    return _step(request, meeting, run, done=done)


def _comment(request: HttpRequest) -> str:
    form = CommentForm(request.POST)
    return form.cleaned_data["comment"] if form.is_valid() else request.POST.get("comment", "")


@login_required
@require_POST
def request_review(request: HttpRequest, meeting_id: int) -> HttpResponse:
    meeting = access_meeting_for_edit(request.user, meeting_id)
    comment = _comment(request)

    def run() -> Minutes:
        return do_request_review(
            current_minutes(meeting),
            user=_user(request),
            comment=comment,
            revision=_posted_revision(request),
        )

    return _step(request, meeting, run, done=_("確認を依頼しました。"), typed={"review": comment})


def _decide(
    request: HttpRequest,
    meeting_id: int,
    action: Callable[..., Minutes],
    *,
    done: str,
    key: str,
) -> HttpResponse:
    """An approver's step on minutes under review (``do_approve_minutes`` or
    ``do_return_minutes``), with the comment typed in the box named ``key``."""
    meeting = access_meeting_for_approval(request.user, meeting_id)
    comment = _comment(request)

    def run() -> Minutes:
        return action(current_minutes(meeting), user=_user(request), comment=comment)

    return _step(request, meeting, run, done=done, typed={key: comment})


@login_required
@require_POST
def return_minutes(request: HttpRequest, meeting_id: int) -> HttpResponse:
    done = _("議事録を差し戻しました。")
    return _decide(request, meeting_id, do_return_minutes, done=done, key="return")


@login_required
@require_POST
def approve_minutes(request: HttpRequest, meeting_id: int) -> HttpResponse:
    done = _("議事録を承認しました。")
    return _decide(request, meeting_id, do_approve_minutes, done=done, key="approve")


@login_required
@require_POST
def comment_minutes(request: HttpRequest, meeting_id: int) -> HttpResponse:
    meeting = access_meeting(request.user, meeting_id)
    user = _user(request)
    if not (may_edit_meeting(user, meeting) or may_approve_minutes(user, meeting)):
        # Readers who may neither edit nor approve (auditors, the 所属's staff) only read.
        meeting = access_meeting_for_edit(user, meeting_id)
    text = _comment(request)

    def run() -> object:
        return do_comment_minutes(current_minutes(meeting), user=user, text=text)

    return _step(request, meeting, run, done=_("コメントを投稿しました。"), typed={"comment": text})


# --- downloads ------------------------------------------------------------------------------


def _download(content: bytes, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = content_disposition_header(True, filename) or "attachment"
    return response


def _filename(meeting: Meeting, suffix: str) -> str:
    day = clock.local(meeting.starts_at)
    return f"議事録_{meeting.title}_{day:%Y%m%d}.{suffix}".replace("/", "_").replace("\\", "_")


@login_required
@require_GET
def export_docx(request: HttpRequest, meeting_id: int) -> HttpResponse:
    meeting = access_meeting(request.user, meeting_id)
    content = export.minutes_docx(meeting)
    do_record_export(meeting, user=_user(request), file_format="docx")
    return _download(content, DOCX_TYPE, _filename(meeting, "docx"))


@login_required
@require_GET
def export_pdf(request: HttpRequest, meeting_id: int) -> HttpResponse:
    meeting = access_meeting(request.user, meeting_id)
    try:
        content = export.minutes_pdf(meeting)
    except PdfFontMissing as exc:
        # The operator's to fix (YAKUBA_PDF_FONT): say so instead of a bare 500.
        return HttpResponse(str(exc), status=503, content_type="text/plain; charset=utf-8")
    do_record_export(meeting, user=_user(request), file_format="pdf")
    return _download(content, "application/pdf", _filename(meeting, "pdf"))


# --- search ---------------------------------------------------------------------------------


def _department_and_below(department: Department) -> set[int]:
    children: dict[int | None, list[int]] = {}
    for pk, parent_id in Department.objects.values_list("pk", "parent_id"):
        children.setdefault(parent_id, []).append(pk)
    found, todo = set(), [department.pk]
    while todo:
        node = todo.pop()
        if node not in found:
            found.add(node)
            todo += children.get(node, [])
    return found


def snippet(texts: list[str], word: str) -> tuple[str, str, str]:
    """``(before, hit, after)`` around the first place ``word`` occurs in ``texts``
    (case-insensitive); the start of the first text when there is no word."""
    if word:
        folded = word.lower()
        for text in texts:
            flat = " ".join(text.split())
            at = flat.lower().find(folded)
            if at >= 0:
                start = max(0, at - SNIPPET_CHARS)
                before = ("…" if start else "") + flat[start:at]
                end = at + len(word)
                after = flat[end : end + SNIPPET_CHARS] + (
                    "…" if end + SNIPPET_CHARS < len(flat) else ""
                )
                return before, flat[at:end], after
    first = " ".join(next((t for t in texts if t), "").split())
    return first[: SNIPPET_CHARS * 2] + ("…" if len(first) > SNIPPET_CHARS * 2 else ""), "", ""


def _day_start(day: dt.date) -> dt.datetime:
    """Midnight of ``day`` in Tokyo (meetings are dated as the ward sees them)."""
    return dt.datetime.combine(day, dt.time(), tzinfo=clock.TOKYO)


def search_minutes(user: User, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Approved minutes of the meetings ``user`` may read that match the filters."""
    meetings = readable_meetings(user).filter(minutes__status=Minutes.Status.APPROVED)
    word = (data.get("q") or "").strip()
    if word:
        # icontains: a substring match, so 「予約」 finds 「会議室の予約」 with no word
        # boundaries to guess; on PostgreSQL pg_trgm indexes can serve it.
        meetings = meetings.filter(
            Q(title__icontains=word)
            | Q(minutes__approved_text__icontains=word)
            | Q(minutes__summary__icontains=word)
            | Q(minutes__decisions__icontains=word)
        )
    if data.get("start"):
        meetings = meetings.filter(starts_at__gte=_day_start(data["start"]))
    if data.get("end"):
        meetings = meetings.filter(starts_at__lt=_day_start(data["end"] + dt.timedelta(days=1)))
    if data.get("department") is not None:
        meetings = meetings.filter(department_id__in=_department_and_below(data["department"]))
    rows = meetings.select_related("minutes", "department").order_by("-starts_at", "-pk")
    results = []
    for meeting in rows[:SEARCH_LIMIT]:
        minutes = meeting.minutes
        before, hit, after = snippet(
            [minutes.approved_text, minutes.summary, minutes.decisions, meeting.title], word
        )
        results.append(
            {
                "meeting": meeting,
                "date": export.date_span(meeting.starts_at, meeting.ends_at),
                "before": before,
                "hit": hit,
                "after": after,
            }
        )
    return results


@login_required
@require_GET
def search(request: HttpRequest) -> HttpResponse:
    access_minutes_feature(request.user)
    form = SearchForm(request.GET or None)
    results: list[dict[str, Any]] | None = None
    status = 200
    if form.is_bound:
        if form.is_valid():
            results = search_minutes(_user(request), form.cleaned_data)
        else:
            status = 400
    context = {
        "active_nav": "minutes",
        "form": form,
        "results": results,
        "limit": SEARCH_LIMIT,
    }
    return render(request, "minutes/document/search.html", context, status=status)


urlpatterns: list[URLPattern] = [
    path("<int:meeting_id>/minutes/", document, name="document"),
    path("<int:meeting_id>/minutes/summarise/", summarise, name="summarise"),
    path("<int:meeting_id>/minutes/review/", request_review, name="request_review"),
    path("<int:meeting_id>/minutes/return/", return_minutes, name="return_minutes"),
    path("<int:meeting_id>/minutes/approve/", approve_minutes, name="approve_minutes"),
    path("<int:meeting_id>/minutes/comment/", comment_minutes, name="comment_minutes"),
    path("<int:meeting_id>/minutes.docx", export_docx, name="export_docx"),
    path("<int:meeting_id>/minutes.pdf", export_pdf, name="export_pdf"),
    path("search/", search, name="search"),
]

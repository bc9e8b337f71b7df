"""The transcript editor (発言記録の編集), the meeting's speakers and the ward dictionary.

The editor page is rendered on the server (readers see the transcript read-only) and
enhanced by frontend/src/editor.ts, which talks to the JSON endpoints below and watches
the meeting's topic to show other people's changes live.  Every endpoint also takes a
plain form post (the page works without JavaScript) and then redirects back.

JSON answers: 200 with the result; 400 ``{"error": 日本語}`` for bad input (nothing
saved); 403 and 404 likewise as JSON; 409 ``{"error", "status": "conflict", "segment"}``
when another person's change cannot be merged with this one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.backends.utils import csrf_input
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from yakuba.directory.models import User
from yakuba.minutes import events
from yakuba.minutes.access import (
    access_dictionary,
    access_dictionary_management,
    access_meeting,
    access_meeting_for_edit,
    may_edit_meeting,
    may_manage_dictionary,
)
from yakuba.minutes.actions import dictionary as dictionary_actions
from yakuba.minutes.actions.dictionary import DictionaryError, EntryValues
from yakuba.minutes.actions.editor import (
    EditorError,
    SegmentGone,
    do_add_speaker,
    do_edit_segment,
    do_merge_segments,
    do_rename_speaker,
    do_set_segment_speaker,
    do_split_segment,
    speaker_dict,
)
from yakuba.minutes.models import DictionaryEntry, Meeting, Recording, Segment, Speaker
from yakuba.web.csv_pages import csv_download, csv_import_page

MAX_CSV_BYTES = 2 * 1024 * 1024
View = Callable[..., HttpResponse]


class BadInput(ValueError):
    """A request we cannot read: answered 400 with ``message``."""


# --- Helpers ------------------------------------------------------------------------------


def wants_json(request: HttpRequest) -> bool:
    return request.content_type == "application/json" or "application/json" in request.headers.get(
        "Accept", ""
    )


def _error(request: HttpRequest, message: str, status: int, **extra: Any) -> HttpResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def json_errors(view: View) -> View:
    """Answer a JSON request's refusals as JSON (a person's screen shows the message)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not wants_json(request):
            return view(request, *args, **kwargs)
        try:
            return view(request, *args, **kwargs)
        except PermissionDenied as exc:
            return _error(request, str(exc) or _("この操作は許可されていません。"), 403)
        except Http404 as exc:
            return _error(request, str(exc) or _("見つかりません。"), 404)

    return wrapper


def payload(request: HttpRequest) -> dict[str, Any]:
    """The request's fields, from a JSON object body or a form."""
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise BadInput(_("送信された内容を読み取れませんでした。")) from None
        if not isinstance(data, dict):
            raise BadInput(_("送信された内容を読み取れませんでした。"))
        return data
    return {key: request.POST.get(key) for key in request.POST}


def int_field(data: dict[str, Any], name: str, *, required: bool = True) -> int | None:
    value = data.get(name)
    if value in (None, "") and not required:
        return None
    if isinstance(value, bool):
        raise BadInput(_("%(name)s は整数で指定してください。") % {"name": name})
    try:
        return int(value)  # type: ignore[arg-type]  # checked by the except below
    except (TypeError, ValueError):
        raise BadInput(_("%(name)s は整数で指定してください。") % {"name": name}) from None


def str_field(data: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise BadInput(_("%(name)s を入力してください。") % {"name": name})
    return value


def minute_second(ms: int) -> str:
    """00:00 from the meeting's start (h:mm:ss past an hour)."""
    seconds = max(0, ms) // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


def audio_url(meeting_id: int, recording_id: int) -> str:
    # The recordings part serves the audio (HTTP Range); without it nothing plays.
    try:
        return reverse("minutes:recording_audio", args=(meeting_id, recording_id))
    except NoReverseMatch:
        return ""


def recordings_dict(meeting: Meeting) -> dict[str, dict[str, Any]]:
    return {
        str(recording.pk): {
            "url": audio_url(meeting.pk, recording.pk),
            "offset_ms": recording.offset_ms,
        }
        for recording in Recording.objects.filter(meeting=meeting)
    }


def transcript_state(meeting: Meeting, user: User) -> dict[str, Any]:
    segments = Segment.objects.filter(meeting=meeting).order_by("start_ms", "pk")
    return {
        "segments": [events.segment_dict(segment) for segment in segments],
        "speakers": [speaker_dict(s) for s in Speaker.objects.filter(meeting=meeting)],
        "recordings": recordings_dict(meeting),
        "may_edit": may_edit_meeting(user, meeting),
    }


def _segment(meeting: Meeting, segment_id: int) -> Segment:
    segment = Segment.objects.filter(meeting=meeting, pk=segment_id).first()
    if segment is None:
        raise Http404(_("この発言は他の人が結合または削除しました。画面を更新してください。"))
    return segment


def _speaker(meeting: Meeting, speaker_id: int | None) -> Speaker | None:
    if speaker_id is None:
        return None
    speaker = Speaker.objects.filter(meeting=meeting, pk=speaker_id).first()
    if speaker is None:
        raise BadInput(_("この会議の話者を選んでください。"))
    return speaker


def _staff(user_id: int | None) -> User | None:
    if user_id is None:
        return None
    staff = User.objects.filter(pk=user_id, is_active=True, kind=User.Kind.STAFF).first()
    if staff is None:
        raise BadInput(_("在職中の職員を選んでください。"))
    return staff


def staff_choices(meeting: Meeting) -> list[User]:
    """The people a speaker is usually linked to: the meeting's staff."""
    return list(
        User.objects.filter(
            Q(pk=meeting.organiser_id) | Q(attended_meetings=meeting),
            is_active=True,
            kind=User.Kind.STAFF,
        )
        .distinct()
        .order_by("display_name")
    )


def _back(request: HttpRequest, meeting: Meeting, anchor: str = "") -> HttpResponse:
    return redirect(reverse("minutes:transcript", args=(meeting.pk,)) + anchor)


def _refused(
    request: HttpRequest, meeting: Meeting, message: str, status: int = 400
) -> HttpResponse:
    if wants_json(request):
        return _error(request, message, status)
    messages.error(request, message)
    return _back(request, meeting)


# --- The editor page ----------------------------------------------------------------------


def speaker_options(speakers: list[Speaker]) -> dict[int | None, SafeString]:
    """The options of a segment's speaker menu, by the segment's speaker: rendered once
    per speaker, not once per segment (a long meeting has ~1,500 segments)."""
    unknown = format_html('<option value="">{}</option>', _("話者不明"))

    def options(selected: int | None) -> SafeString:
        return unknown + format_html_join(
            "",
            '<option value="{}"{}>{}</option>',
            ((s.pk, mark_safe(" selected") if s.pk == selected else "", s.label) for s in speakers),
        )

    return {key: options(key) for key in [None, *(s.pk for s in speakers)]}


def url_maker(name: str, meeting_id: int) -> Callable[[int], str]:
    """reverse() once, then fill in each segment's id (reverse per segment is slow)."""
    pattern = reverse(name, args=(meeting_id, 999_999_999))
    head, tail = pattern.split("999999999", 1)
    return lambda segment_id: f"{head}{segment_id}{tail}"


def transcript_rows(
    meeting: Meeting, speakers: list[Speaker], recordings: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    names = {speaker.pk: speaker.label for speaker in speakers}
    options = speaker_options(speakers)
    edit_url = url_maker("minutes:transcript_edit", meeting.pk)
    speaker_url = url_maker("minutes:transcript_speaker", meeting.pk)
    return [
        {
            "segment": segment,
            "clock": minute_second(segment.start_ms),
            "speaker_label": names.get(segment.speaker_id or 0, ""),
            "speaker_options": options.get(segment.speaker_id, options[None]),
            "edit_url": edit_url(segment.pk),
            "speaker_url": speaker_url(segment.pk),
            "audio_url": recordings.get(str(segment.recording_id), {}).get("url", ""),
        }
        for segment in Segment.objects.filter(meeting=meeting).order_by("start_ms", "pk")
    ]


@login_required
@require_GET
def transcript(request: HttpRequest, meeting_id: int) -> HttpResponse:
    meeting = access_meeting(request.user, meeting_id)
    assert isinstance(request.user, User)
    may_edit = may_edit_meeting(request.user, meeting)
    speakers = list(Speaker.objects.filter(meeting=meeting))
    recordings = recordings_dict(meeting)
    context = {
        "meeting": meeting,
        "rows": transcript_rows(meeting, speakers, recordings),
        "recordings_json": json.dumps(recordings),
        "speakers": speakers,
        "speaker_options": speaker_options(speakers)[None],
        "csrf_input": csrf_input(request) if may_edit else "",
        "may_edit": may_edit,
        "staff_choices": staff_choices(meeting) if may_edit else [],
        "realtime_topics": events.meeting_topic(meeting.pk),
        "active_nav": "minutes",
    }
    return render(request, "minutes/editor/transcript.html", context)


@login_required
@require_GET
@json_errors
def segments_json(request: HttpRequest, meeting_id: int) -> HttpResponse:
    meeting = access_meeting(request.user, meeting_id)
    assert isinstance(request.user, User)
    return JsonResponse(transcript_state(meeting, request.user))


def _edit_answer(
    request: HttpRequest, meeting: Meeting, view: Callable[[], HttpResponse]
) -> HttpResponse:
    try:
        return view()
    except BadInput as exc:
        return _refused(request, meeting, str(exc))
    except SegmentGone as exc:
        return _refused(request, meeting, exc.message, status=404)
    except EditorError as exc:
        return _refused(request, meeting, exc.message)


EditView = Callable[..., HttpResponse]


def transcript_change(view: EditView) -> View:
    """A POST that changes a meeting's transcript or speakers: signed in, allowed to edit
    the meeting, refusals answered as JSON (or a message on the page).  ``view`` gets the
    request, the meeting, the user and the URL's other arguments."""

    @login_required
    @require_POST
    @json_errors
    @wraps(view)
    def wrapper(request: HttpRequest, meeting_id: int, **kwargs: Any) -> HttpResponse:
        meeting = access_meeting_for_edit(request.user, meeting_id)
        user = request.user
        assert isinstance(user, User)
        return _edit_answer(request, meeting, lambda: view(request, meeting, user, **kwargs))

    return wrapper


@transcript_change
def edit_text(request: HttpRequest, meeting: Meeting, user: User, segment_id: int) -> HttpResponse:
    segment = _segment(meeting, segment_id)
    data = payload(request)
    text = str_field(data, "text")
    assert text is not None
    result = do_edit_segment(
        segment,
        user=user,
        text=text,
        base_revision=int_field(data, "base_revision") or 0,
        base_text=str_field(data, "base_text", required=False),
    )
    current = events.segment_dict(result.segment)
    if not wants_json(request):
        if result.ok:
            messages.success(request, _("保存しました。"))
        else:
            messages.error(
                request,
                _("他の人が同じ箇所を変更したため保存できませんでした。現在の文章: %(text)s")
                % {"text": result.segment.text},
            )
        return _back(request, meeting, f"#segment-{segment.pk}")
    if not result.ok:
        return JsonResponse(
            {
                "error": _(
                    "他の人が同じ箇所を変更しました。あなたの文章は入力欄に残してあります。"
                    "相手の文章と見比べて直してから、もう一度保存してください。"
                ),
                "status": "conflict",
                "segment": current,
                "conflicts": [
                    {"base": c.base, "mine": c.mine, "theirs": c.theirs} for c in result.conflicts
                ],
            },
            status=409,
        )
    return JsonResponse({"status": result.status, "segment": current})


@transcript_change
def merge(request: HttpRequest, meeting: Meeting, user: User, segment_id: int) -> HttpResponse:
    """Merge a segment with the next one (``with``: the next segment's id as the page
    showed it; by default the next one in time)."""
    first = _segment(meeting, segment_id)
    data = payload(request)
    other_id = int_field(data, "with", required=False)
    if other_id is None:
        second = (
            Segment.objects.filter(meeting=meeting)
            .filter(Q(start_ms__gt=first.start_ms) | Q(start_ms=first.start_ms, pk__gt=first.pk))
            .order_by("start_ms", "pk")
            .first()
        )
        if second is None:
            raise BadInput(_("この後に結合できる発言がありません。"))
    else:
        second = _segment(meeting, other_id)
    kept = do_merge_segments(first, second, user=user)
    removed = second.pk if kept.pk == first.pk else first.pk
    if not wants_json(request):
        messages.success(request, _("発言を結合しました。"))
        return _back(request, meeting, f"#segment-{kept.pk}")
    return JsonResponse({"segment": events.segment_dict(kept), "removed": [removed]})


@transcript_change
def split(request: HttpRequest, meeting: Meeting, user: User, segment_id: int) -> HttpResponse:
    segment = _segment(meeting, segment_id)
    data = payload(request)
    at_char = int_field(data, "at_char")
    assert at_char is not None
    first, second = do_split_segment(
        segment,
        user=user,
        at_char=at_char,
        at_ms=int_field(data, "at_ms", required=False),
        base_revision=int_field(data, "base_revision", required=False),
    )
    if not wants_json(request):
        messages.success(request, _("発言を分割しました。"))
        return _back(request, meeting, f"#segment-{first.pk}")
    return JsonResponse({"segments": [events.segment_dict(first), events.segment_dict(second)]})


@transcript_change
def set_speaker(
    request: HttpRequest, meeting: Meeting, user: User, segment_id: int
) -> HttpResponse:
    segment = _segment(meeting, segment_id)
    speaker = _speaker(meeting, int_field(payload(request), "speaker_id", required=False))
    segment = do_set_segment_speaker(segment, user=user, speaker=speaker)
    if not wants_json(request):
        messages.success(request, _("話者を変更しました。"))
        return _back(request, meeting, f"#segment-{segment.pk}")
    return JsonResponse({"segment": events.segment_dict(segment)})


@login_required
@require_http_methods(["GET", "POST"])
@json_errors
def speakers(request: HttpRequest, meeting_id: int) -> HttpResponse:
    """GET: the meeting's speakers (JSON).  POST: add one (``label``, ``user_id``)."""
    if request.method == "GET":
        meeting = access_meeting(request.user, meeting_id)
        found = Speaker.objects.filter(meeting=meeting)
        return JsonResponse({"speakers": [speaker_dict(s) for s in found]})
    meeting = access_meeting_for_edit(request.user, meeting_id)
    assert isinstance(request.user, User)
    user = request.user

    def run() -> HttpResponse:
        data = payload(request)
        speaker = do_add_speaker(
            meeting,
            user=user,
            label=str_field(data, "label", required=False) or "",
            staff=_staff(int_field(data, "user_id", required=False)),
        )
        if not wants_json(request):
            messages.success(
                request, _("話者「%(label)s」を追加しました。") % {"label": speaker.label}
            )
            return _back(request, meeting, "#speakers")
        return JsonResponse({"speaker": speaker_dict(speaker)}, status=201)

    return _edit_answer(request, meeting, run)


@transcript_change
def rename_speaker(
    request: HttpRequest, meeting: Meeting, user: User, speaker_id: int
) -> HttpResponse:
    """Rename a speaker (``label``) and link it to a staff member (``user_id``; empty
    unlinks)."""
    speaker = Speaker.objects.filter(meeting=meeting, pk=speaker_id).first()
    if speaker is None:
        raise Http404(_("話者が見つかりません。"))
    data = payload(request)
    kwargs: dict[str, Any] = {}
    if "user_id" in data:
        kwargs["staff"] = _staff(int_field(data, "user_id", required=False))
    speaker = do_rename_speaker(
        speaker, user=user, label=str_field(data, "label", required=False) or "", **kwargs
    )
    if not wants_json(request):
        messages.success(request, _("話者名を変更しました。"))
        return _back(request, meeting, "#speakers")
    return JsonResponse({"speaker": speaker_dict(speaker)})


# --- The ward dictionary -------------------------------------------------------------------


def _entry_values(data: dict[str, Any]) -> EntryValues:
    return EntryValues(
        term=str(data.get("term") or ""),
        kind=str(data.get("kind") or ""),
        reading=str(data.get("reading") or ""),
        variants=dictionary_actions.split_variants(str(data.get("variants") or "")),
        active=bool(data.get("active")),
    )


@login_required
@require_http_methods(["GET", "POST"])
def dictionary(request: HttpRequest) -> HttpResponse:
    """Everyone on staff reads the dictionary; managers add entries (POST)."""
    access_dictionary(request.user)
    form: dict[str, Any] = {"kind": DictionaryEntry.Kind.DEPARTMENT, "active": True}
    errors: list[str] = []
    status = 200
    if request.method == "POST":
        access_dictionary_management(request.user)
        assert isinstance(request.user, User)
        form = payload(request)
        try:
            entry = dictionary_actions.do_create_entry(_entry_values(form), user=request.user)
        except DictionaryError as exc:
            errors, status = [exc.message], 400
        else:
            messages.success(
                request, _("「%(term)s」を辞書に追加しました。") % {"term": entry.term}
            )
            return redirect("minutes:dictionary")
    query = (request.GET.get("q") or "").strip()[:100]
    kind = request.GET.get("kind") or ""
    entries = DictionaryEntry.objects.all()
    if query:
        entries = entries.filter(
            Q(term__icontains=query) | Q(reading__icontains=query) | Q(variants__icontains=query)
        )
    if kind in DictionaryEntry.Kind.values:
        entries = entries.filter(kind=kind)
    context = {
        "entries": entries,
        "query": query,
        "kind": kind,
        "kinds": DictionaryEntry.Kind.choices,
        "may_manage": may_manage_dictionary(request.user),
        "form": form,
        "errors": errors,
        "active_nav": "minutes",
    }
    return render(request, "minutes/editor/dictionary.html", context, status=status)


def _entry(entry_id: int) -> DictionaryEntry:
    entry = DictionaryEntry.objects.filter(pk=entry_id).first()
    if entry is None:
        raise Http404(_("辞書の語が見つかりません。"))
    return entry


@login_required
@require_http_methods(["GET", "POST"])
def dictionary_entry(request: HttpRequest, entry_id: int) -> HttpResponse:
    access_dictionary_management(request.user)
    assert isinstance(request.user, User)
    entry = _entry(entry_id)
    errors: list[str] = []
    form: dict[str, Any] = {
        "term": entry.term,
        "reading": entry.reading,
        "kind": entry.kind,
        "variants": entry.variants,
        "active": entry.active,
    }
    status = 200
    if request.method == "POST":
        form = payload(request)
        try:
            dictionary_actions.do_change_entry(entry, _entry_values(form), user=request.user)
        except DictionaryError as exc:
            errors, status = [exc.message], 400
        else:
            messages.success(request, _("「%(term)s」を保存しました。") % {"term": entry.term})
            return redirect("minutes:dictionary")
    context = {
        "entry": entry,
        "form": form,
        "errors": errors,
        "kinds": DictionaryEntry.Kind.choices,
        "active_nav": "minutes",
    }
    return render(request, "minutes/editor/dictionary_entry.html", context, status=status)


@login_required
@require_POST
def dictionary_active(request: HttpRequest, entry_id: int) -> HttpResponse:
    access_dictionary_management(request.user)
    assert isinstance(request.user, User)
    entry = _entry(entry_id)
    active = request.POST.get("active") == "1"
    dictionary_actions.do_set_entry_active(entry, user=request.user, active=active)
    message = _("「%(term)s」を有効にしました。") if active else _("「%(term)s」を無効にしました。")
    messages.success(request, message % {"term": entry.term})
    return redirect("minutes:dictionary")


@login_required
@require_POST
def dictionary_delete(request: HttpRequest, entry_id: int) -> HttpResponse:
    access_dictionary_management(request.user)
    assert isinstance(request.user, User)
    entry = _entry(entry_id)
    term = entry.term
    dictionary_actions.do_delete_entry(entry, user=request.user)
    messages.success(request, _("「%(term)s」を辞書から削除しました。") % {"term": term})
    return redirect("minutes:dictionary")


@login_required
@require_http_methods(["GET", "POST"])
def dictionary_import(request: HttpRequest) -> HttpResponse:
    access_dictionary_management(request.user)
    user = request.user
    assert isinstance(user, User)
    return csv_import_page(
        request,
        template="minutes/editor/dictionary_import.html",
        context={"columns": dictionary_actions.COLUMNS, "active_nav": "minutes"},
        run_import=lambda data, encoding: dictionary_actions.check_import_dictionary(
            data, user=user, encoding=encoding
        ),
        max_bytes=MAX_CSV_BYTES,
        done_url=reverse("minutes:dictionary"),
    )


@login_required
@require_GET
def dictionary_export(request: HttpRequest) -> HttpResponse:
    access_dictionary_management(request.user)
    return csv_download(
        request,
        export=dictionary_actions.export_dictionary,
        filename="ward-dictionary.csv",
        error_url=reverse("minutes:dictionary_import"),
    )


urlpatterns: list[URLPattern] = [
    path("<int:meeting_id>/transcript/", transcript, name="transcript"),
    path("<int:meeting_id>/transcript/segments/", segments_json, name="transcript_segments"),
    path(
        "<int:meeting_id>/transcript/segments/<int:segment_id>/text",
        edit_text,
        name="transcript_edit",
    ),
    path(
        "<int:meeting_id>/transcript/segments/<int:segment_id>/merge",
        merge,
        name="transcript_merge",
    ),
    path(
        "<int:meeting_id>/transcript/segments/<int:segment_id>/split",
        split,
        name="transcript_split",
    ),
    path(
        "<int:meeting_id>/transcript/segments/<int:segment_id>/speaker",
        set_speaker,
        name="transcript_speaker",
    ),
    path("<int:meeting_id>/transcript/speakers/", speakers, name="speakers"),
    path(
        "<int:meeting_id>/transcript/speakers/<int:speaker_id>/",
        rename_speaker,
        name="speaker_rename",
    ),
    path("dictionary/", dictionary, name="dictionary"),
    path("dictionary/import/", dictionary_import, name="dictionary_import"),
    path("dictionary/export.csv", dictionary_export, name="dictionary_export"),
    path("dictionary/<int:entry_id>/", dictionary_entry, name="dictionary_entry"),
    path("dictionary/<int:entry_id>/active", dictionary_active, name="dictionary_active"),
    path("dictionary/<int:entry_id>/delete", dictionary_delete, name="dictionary_delete"),
]

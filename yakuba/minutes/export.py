"""The minutes document (会議録) in the municipal format, and its .docx and PDF.

``build_document`` turns a meeting and its minutes into a ``MinutesDocument``, a plain
data structure that the page, ``document_text`` (the text frozen at approval and
searched), the .docx and the PDF all render, so that they never disagree.

The format follows the minutes Japanese local governments publish: a header of
会議名, 日時 (和暦 with the weekday and the time span, 午前/午後), 場所, 出席者 (with
their 所属), 欠席者 and 議題 (numbered); then the proceedings (議事), either 逐語録
(「話者名：発言」 in time order) or 要点筆記 (each 議題 and its points); then 決定事項
(numbered) and 今後の予定 (内容, 担当, 期限).

The document's own labels are fixed Japanese, whatever the reader's UI language: it is
the ward's official record, and its approved text must not depend on who approved it.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from fpdf.fonts import FontFace

from yakuba.lib import clock, docx_font
from yakuba.lib.wareki import WEEKDAYS_JA, wareki
from yakuba.minutes.models import Meeting, Minutes, Segment

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from docx.document import Document as DocxDocument
    from docx.styles.style import BaseStyle
    from docx.text.run import Run

    from yakuba.directory.models import User
    from yakuba.lib.pdf import JapanesePDF

log = logging.getLogger(__name__)

UNKNOWN_SPEAKER = "発言者不明"
GUEST_DEPARTMENT = "区外"
# The face Word uses for Japanese text (w:eastAsia) and, for one look, Latin text too,
# when no font is configured to embed (settings.DOCX_FONT): 游明朝 ships with Windows 8.1
# and later and with Office; a terminal without it (older Windows, LibreOffice)
# substitutes its own Mincho face (MS 明朝, IPAex明朝), so the layout stays close.
FALLBACK_DOCX_FONT = "游明朝"


@dataclass(frozen=True)
class Person:
    name: str
    department: str = ""

    def label(self) -> str:
        return f"{self.name}（{self.department}）" if self.department else self.name


@dataclass(frozen=True)
class Utterance:
    """Consecutive segments of one speaker, joined (逐語録)."""

    speaker: str
    text: str
    start_ms: int

    def line(self) -> str:
        return f"{self.speaker}：{self.text}"


@dataclass(frozen=True)
class Topic:
    """One 議題 of the 要点筆記 and its points."""

    title: str
    points: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """One row of 今後の予定."""

    task: str
    assignee: str
    due: str  # 和暦, or empty


@dataclass(frozen=True)
class MinutesDocument:
    title: str  # 会議名
    date_text: str  # 令和7年6月11日（水）午前10時00分～午前11時00分
    place: str
    attendees: tuple[Person, ...]
    other_attendees: tuple[str, ...]
    absentees: tuple[Person, ...]
    agenda: tuple[str, ...]
    style: str  # Minutes.Style
    utterances: tuple[Utterance, ...] = ()
    topics: tuple[Topic, ...] = ()
    decisions: tuple[str, ...] = ()
    plans: tuple[Plan, ...] = ()
    status: str = Minutes.Status.DRAFT
    approval: str = ""  # 「令和7年6月12日 青木 愛 承認」 once approved
    notes: tuple[str, ...] = field(default=())

    @property
    def heading(self) -> str:
        return f"{self.title} 会議録"

    @property
    def style_label(self) -> str:
        return "逐語録" if self.style == Minutes.Style.VERBATIM else "要点筆記"

    def attendee_labels(self) -> list[str]:
        return [p.label() for p in self.attendees] + list(self.other_attendees)

    def header_rows(self) -> list[tuple[str, str]]:
        """The header as (label, value) rows: every rendering shows these."""
        agenda = "\n".join(f"{n}. {item}" for n, item in enumerate(self.agenda, 1))
        return [
            ("会議名", self.title),
            ("日時", self.date_text),
            ("場所", self.place or "—"),
            ("出席者", "、".join(self.attendee_labels()) or "—"),
            ("欠席者", "、".join(p.label() for p in self.absentees) or "なし"),
            ("議題", agenda or "—"),
        ]


# --- building ----------------------------------------------------------------------------


def japanese_time(moment: dt.datetime) -> str:
    """午前10時00分 / 午後1時30分 (noon is 午後0時, as official documents write it)."""
    local = clock.local(moment)
    half = "午前" if local.hour < 12 else "午後"
    return f"{half}{local.hour % 12}時{local.minute:02d}分"


def date_span(starts_at: dt.datetime, ends_at: dt.datetime) -> str:
    """令和7年6月11日（水）午前10時00分～午前11時00分 (the end's date too when it
    falls on another day)."""
    start, end = clock.local(starts_at), clock.local(ends_at)
    text = f"{_day(start.date())}{japanese_time(start)}～"
    if end.date() != start.date():
        text += _day(end.date())
    return text + japanese_time(end)


def _day(day: dt.date) -> str:
    return f"{wareki(day)}（{WEEKDAYS_JA[day.weekday()]}）"


def _person(user: User) -> Person:
    profile = getattr(user, "staff", None)
    if profile is not None:
        return Person(profile.full_name, profile.department.name)
    return Person(user.display_name or user.username, GUEST_DEPARTMENT)


def _people(users: list[User]) -> tuple[Person, ...]:
    return tuple(_person(user) for user in users)


def _ordered(users: QuerySet[User]) -> list[User]:
    # 所属 by code, then by reading: the order a roster is printed in.
    return list(
        users.select_related("staff__department").order_by(
            "staff__department__code", "staff__family_kana", "staff__given_kana", "pk"
        )
    )


def _joiner(before: str, after: str) -> str:
    """Japanese text joins without a space; two Latin words need one."""
    if before and after and before[-1].isascii() and after[0].isascii():
        return " "
    return ""


def utterances(meeting: Meeting) -> tuple[Utterance, ...]:
    """The transcript in time order, consecutive segments of one speaker joined."""
    joined: list[Utterance] = []
    rows = (
        Segment.objects.filter(meeting=meeting)
        .exclude(text="")
        .select_related("speaker")
        .order_by("start_ms", "pk")
    )
    for segment in rows:
        speaker = segment.speaker.label if segment.speaker is not None else UNKNOWN_SPEAKER
        text = segment.text.strip()
        if not text:
            continue
        if joined and joined[-1].speaker == speaker:
            last = joined[-1]
            joined[-1] = Utterance(
                speaker, last.text + _joiner(last.text, text) + text, last.start_ms
            )
        else:
            joined.append(Utterance(speaker, text, segment.start_ms))
    return tuple(joined)


_POINT_MARK = re.compile(r"^[・\-*＊●○]\s*")


def parse_summary(summary: str) -> tuple[Topic, ...]:
    """``Minutes.summary`` as topics: a 「■議題」 line starts one; the other lines are its
    points (a leading ・ or - is dropped).  Lines before the first ■ form an untitled topic."""
    topics: list[tuple[str, list[str]]] = []
    for raw in summary.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("■"):
            topics.append((line.lstrip("■").strip(), []))
            continue
        if not topics:
            topics.append(("", []))
        topics[-1][1].append(_POINT_MARK.sub("", line))
    return tuple(Topic(title, tuple(points)) for title, points in topics)


def build_document(meeting: Meeting, minutes: Minutes | None = None) -> MinutesDocument:
    """The minutes of ``meeting`` as one structure.  ``minutes`` defaults to the
    meeting's (an empty draft when it has none yet)."""
    if minutes is None:
        minutes = Minutes.objects.filter(meeting=meeting).first() or Minutes(meeting=meeting)
    verbatim = minutes.style == Minutes.Style.VERBATIM
    plans: tuple[Plan, ...] = ()
    if minutes.pk is not None:
        plans = tuple(
            Plan(
                item.task,
                item.assignee
                or (_person(item.assignee_user).label() if item.assignee_user else ""),
                wareki(item.due_date) if item.due_date else "",
            )
            for item in minutes.action_items.select_related(
                "assignee_user__staff__department"
            ).order_by("sort_order", "pk")
        )
    approval = ""
    if minutes.status == Minutes.Status.APPROVED and minutes.approved_at is not None:
        approver = _person(minutes.approved_by).name if minutes.approved_by else ""
        approval = f"{wareki(minutes.approved_at)} {approver} 承認".replace("  ", " ")
    return MinutesDocument(
        title=meeting.title,
        date_text=date_span(meeting.starts_at, meeting.ends_at),
        place=meeting.place,
        attendees=_people(_ordered(meeting.attendees.all())),
        other_attendees=tuple(
            line.strip() for line in meeting.other_attendees.splitlines() if line.strip()
        ),
        absentees=_people(_ordered(meeting.absentees.all())),
        agenda=tuple(meeting.agenda_items()),
        style=minutes.style,
        utterances=utterances(meeting) if verbatim else (),
        topics=() if verbatim else parse_summary(minutes.summary),
        decisions=tuple(minutes.decision_list()),
        plans=plans,
        status=minutes.status,
        approval=approval,
    )


# --- plain text ---------------------------------------------------------------------------


def document_text(doc: MinutesDocument) -> str:
    """The whole document as text: what approval freezes and search looks in."""
    lines = [doc.heading, ""]
    lines += [f"{label}：{value}" for label, value in doc.header_rows()]
    lines += ["", f"議事（{doc.style_label}）"]
    lines += body_lines(doc)
    lines += ["", "決定事項"]
    lines += [f"{n}. {item}" for n, item in enumerate(doc.decisions, 1)] or ["なし"]
    lines += ["", "今後の予定"]
    lines += [
        f"・{plan.task}（担当：{plan.assignee or '—'}、期限：{plan.due or '—'}）"
        for plan in doc.plans
    ] or ["なし"]
    if doc.approval:
        lines += ["", doc.approval]
    return "\n".join(lines) + "\n"


def _body_empty(doc: MinutesDocument) -> bool:
    if doc.style == Minutes.Style.VERBATIM:
        return not doc.utterances
    return not any(topic.title or topic.points for topic in doc.topics)


def body_lines(doc: MinutesDocument) -> list[str]:
    if doc.style == Minutes.Style.VERBATIM:
        return [u.line() for u in doc.utterances] or ["（発言の記録はありません）"]
    lines: list[str] = []
    for topic in doc.topics:
        if topic.title:
            lines.append(f"■{topic.title}")
        lines += [f"・{point}" for point in topic.points]
    return lines or ["（要点は未作成です）"]


# --- .docx --------------------------------------------------------------------------------


def minutes_docx(meeting: Meeting) -> bytes:
    """The minutes as a Word document (A4, Mincho, header table, 今後の予定 table)."""
    from docx import Document
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.shared import Mm

    doc = build_document(meeting)
    font = _embeddable_font()
    family = font[2] if font else FALLBACK_DOCX_FONT
    word = Document()
    section = word.sections[0]
    section.page_width, section.page_height = Mm(210), Mm(297)
    for side in ("left_margin", "right_margin", "top_margin", "bottom_margin"):
        setattr(section, side, Mm(20))
    _docx_fonts(word, family)
    word.core_properties.title = doc.heading
    word.core_properties.language = "ja-JP"

    title = word.add_paragraph(style="Title")
    title.alignment = WD_ALIGN_PARAGRAPH.CENTER
    _east_asian(title.add_run(doc.heading), family)

    table = word.add_table(rows=0, cols=2)
    table.style = "Table Grid"
    for label, value in doc.header_rows():
        cells = table.add_row().cells
        cells[0].width, cells[1].width = Mm(30), Mm(140)
        cells[0].text = label
        cells[1].text = value

    _docx_heading(word, f"議事（{doc.style_label}）", family)
    if doc.style == Minutes.Style.VERBATIM:
        for utterance in doc.utterances:
            paragraph = word.add_paragraph()
            speaker = paragraph.add_run(f"{utterance.speaker}：")
            speaker.bold = True
            paragraph.add_run(utterance.text)
    else:
        for topic in doc.topics:
            if topic.title:
                _docx_heading(word, f"■{topic.title}", family, level=2)
            for point in topic.points:
                word.add_paragraph(f"・{point}")
    if _body_empty(doc):
        word.add_paragraph(body_lines(doc)[0])

    _docx_heading(word, "決定事項", family)
    for number, decision in enumerate(doc.decisions, 1):
        word.add_paragraph(f"{number}. {decision}")
    if not doc.decisions:
        word.add_paragraph("なし")

    _docx_heading(word, "今後の予定", family)
    if doc.plans:
        plans = word.add_table(rows=1, cols=3)
        plans.style = "Table Grid"
        for cell, text in zip(plans.rows[0].cells, ("内容", "担当", "期限"), strict=True):
            cell.text = text
        for plan in doc.plans:
            cells = plans.add_row().cells
            cells[0].text, cells[1].text, cells[2].text = plan.task, plan.assignee, plan.due
    else:
        word.add_paragraph("なし")
    if doc.approval:
        closing = word.add_paragraph(doc.approval)
        closing.alignment = WD_ALIGN_PARAGRAPH.RIGHT
    out = io.BytesIO()
    word.save(out)
    if font is None:
        return out.getvalue()
    path, index, family = font
    return docx_font.embed_font(out.getvalue(), family=family, path=path, index=index)


def _embeddable_font() -> tuple[Path, int, str] | None:
    """The configured .docx font (path, face index, family name), or None when there is
    none to embed (the document then names 游明朝)."""
    path = Path(settings.DOCX_FONT) if settings.DOCX_FONT else None
    if path is None or not path.is_file():
        return None
    try:
        return path, settings.DOCX_FONT_INDEX, docx_font.family_name(path, settings.DOCX_FONT_INDEX)
    except Exception:  # fontTools raises many kinds on a bad file
        log.warning("the .docx font %s cannot be read; embedding nothing", path, exc_info=True)
        return None


def _docx_heading(word: DocxDocument, text: str, family: str, *, level: int = 1) -> None:
    _east_asian(word.add_heading(level=level).add_run(text), family)


def _docx_fonts(word: DocxDocument, family: str) -> None:
    """Set the Japanese face on the styles the document uses."""
    from docx.shared import Pt

    for name in ("Normal", "Title", "Heading 1", "Heading 2", "Table Grid"):
        try:
            style = word.styles[name]
        except KeyError:
            continue
        _east_asian(style, family)
    word.styles["Normal"].font.size = Pt(10.5)


def _east_asian(target: BaseStyle | Run, family: str) -> None:
    """Name the font for East Asian text (w:eastAsia), which ``font.name`` alone does
    not: Word would fall back to the theme's face.  The theme attributes are removed
    because Word prefers them over the named faces."""
    from docx.oxml.ns import qn

    element = target.element
    rpr = element.get_or_add_rPr()
    fonts = rpr.get_or_add_rFonts()
    for attribute in ("w:asciiTheme", "w:hAnsiTheme", "w:eastAsiaTheme", "w:cstheme"):
        fonts.attrib.pop(qn(attribute), None)
    for attribute in ("w:ascii", "w:hAnsi", "w:eastAsia"):
        fonts.set(qn(attribute), family)


# --- PDF ----------------------------------------------------------------------------------


def minutes_pdf(meeting: Meeting) -> bytes:
    """The minutes as an A4 PDF with the Japanese font embedded (``yakuba.lib.pdf``).
    Raises ``PdfFontMissing`` when the server has no Japanese font."""
    from yakuba.lib.pdf import JapanesePDF

    doc = build_document(meeting)
    pdf = JapanesePDF(title=doc.heading, footer_text=doc.heading)
    pdf.alias_nb_pages()
    pdf.add_page()
    pdf.japanese(16)
    pdf.multi_cell(0, 10, doc.heading, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.japanese(10)
    with pdf.table(col_widths=(25, 145), text_align="LEFT", first_row_as_headings=False) as table:
        for label, value in doc.header_rows():
            row = table.row()
            row.cell(label)
            row.cell(value)
    _pdf_heading(pdf, f"議事（{doc.style_label}）")
    if doc.style == Minutes.Style.VERBATIM:
        for utterance in doc.utterances:
            pdf.multi_cell(0, 6, utterance.line(), new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1)
    else:
        for topic in doc.topics:
            if topic.title:
                pdf.japanese(11)
                pdf.multi_cell(0, 7, f"■{topic.title}", new_x="LMARGIN", new_y="NEXT")
                pdf.japanese(10)
            for point in topic.points:
                pdf.multi_cell(0, 6, f"・{point}", new_x="LMARGIN", new_y="NEXT")
    if _body_empty(doc):
        pdf.multi_cell(0, 6, body_lines(doc)[0], new_x="LMARGIN", new_y="NEXT")
    _pdf_heading(pdf, "決定事項")
    lines = [f"{n}. {item}" for n, item in enumerate(doc.decisions, 1)] or ["なし"]
    for line in lines:
        pdf.multi_cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
    _pdf_heading(pdf, "今後の予定")
    if doc.plans:
        # The embedded Japanese font has one face: headings must not ask for bold.
        plain_headings = FontFace(emphasis="", fill_color=(235, 235, 235))
        with pdf.table(
            col_widths=(100, 40, 30), text_align="LEFT", headings_style=plain_headings
        ) as table:
            header = table.row()
            for text in ("内容", "担当", "期限"):
                header.cell(text)
            for plan in doc.plans:
                row = table.row()
                row.cell(plan.task)
                row.cell(plan.assignee or "—")
                row.cell(plan.due or "—")
    else:
        pdf.multi_cell(0, 6, "なし", new_x="LMARGIN", new_y="NEXT")
    if doc.approval:
        pdf.ln(4)
        pdf.multi_cell(0, 6, doc.approval, align="R", new_x="LMARGIN", new_y="NEXT")
    return pdf.pdf_bytes()


def _pdf_heading(pdf: JapanesePDF, text: str) -> None:
    pdf.ln(4)
    pdf.japanese(12)
    pdf.multi_cell(0, 8, text, new_x="LMARGIN", new_y="NEXT")
    pdf.japanese(10)

"""The .docx and PDF of the minutes: opened again, they hold the header fields, the
transcript or the summary, 決定事項 and 今後の予定; both embed their Japanese font;
downloads are for readers only and are audited."""

from __future__ import annotations

import datetime as dt
import io
import re
import uuid
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from docx import Document
from docx.oxml.ns import qn
from fontTools.ttLib import TTFont
from lxml import etree
from pytest_django.fixtures import Settings as SettingsWrapper

from yakuba.audit.models import AuditEntry
from yakuba.directory.models import User
from yakuba.lib.pdf import font_path
from yakuba.minutes.actions.document import (
    do_approve_minutes,
    do_request_review,
    minutes_for,
)
from yakuba.minutes.export import minutes_docx, minutes_pdf
from yakuba.minutes.models import ActionItem, Meeting, Minutes

from ..conftest import service_missing
from .test_document import add_transcript

pytestmark = pytest.mark.django_db

DATE_TEXT = "令和7年6月11日（水）午前10時00分～午前11時00分"


def docx_text(content: bytes) -> str:
    """Every paragraph and table cell of a .docx, one per line."""
    word = Document(io.BytesIO(content))
    lines = [p.text for p in word.paragraphs]
    for table in word.tables:
        for row in table.rows:
            lines += [cell.text for cell in row.cells]
    return "\n".join(lines)


def pdf_text(content: bytes) -> str:
    """The text of an fpdf2 PDF: the shown strings of its content streams decoded
    through the font's ToUnicode map (no PDF library needed)."""
    streams = []
    for match in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", content, re.S):
        try:
            streams.append(zlib.decompress(match.group(1)))
        except zlib.error:
            streams.append(match.group(1))
    to_unicode: dict[int, str] = {}
    for stream in streams:
        for block in re.findall(rb"beginbfchar(.*?)endbfchar", stream, re.S):
            for code, text in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
                to_unicode[int(code, 16)] = bytes.fromhex(text.decode()).decode("utf-16-be")
    lines = []
    for stream in streams:
        for block in re.findall(rb"BT(.*?)ET", stream, re.S):
            raw = b"".join(
                _literal(s) for s in re.findall(rb"\(((?:\\.|[^\\)])*)\)\s*Tj", block, re.S)
            )
            codes = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw) - 1, 2)]
            if codes:
                lines.append("".join(to_unicode.get(code, "?") for code in codes))
    return "\n".join(lines)


def _literal(escaped: bytes) -> bytes:
    simple = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}

    def one(match: re.Match[bytes]) -> bytes:
        token = match.group(1)
        if token[:1].isdigit():
            return bytes([int(token, 8)])
        return simple.get(token, token)

    return re.sub(rb"\\([0-7]{1,3}|.)", one, escaped, flags=re.S)


@pytest.fixture
def japanese_font() -> None:
    try:
        font_path()
    except Exception as exc:
        service_missing(f"no Japanese PDF font: {exc}")


def test_the_docx_holds_the_header_and_the_transcript(
    meeting: Meeting, alice: User, bob: User, charlie: User
) -> None:
    meeting.absentees.add(charlie)
    meeting.save()
    add_transcript(meeting)

    content = minutes_docx(meeting)

    text = docx_text(content)
    for expected in (
        "文書管理検討会議 会議録",
        "会議名",
        "日時",
        DATE_TEXT,
        "場所",
        "本庁舎3階 会議室301",
        "出席者",
        "青木 愛（文書係）、坂東 歩（文書係）",
        "欠席者",
        "千葉 茶太郎（戸籍住民課）",
        "議題",
        "1. 文書保存年限の見直し\n2. 電子決裁の導入",
        "議事（逐語録）",
        "坂東：保存年限を十年に短縮すると書庫の容量に余裕ができます。",
        "決定事項",
        "今後の予定",
    ):
        assert expected in text, expected
    word = Document(io.BytesIO(content))
    section = word.sections[0]
    width, height = section.page_width, section.page_height
    assert width is not None
    assert height is not None
    assert (round(width.mm), round(height.mm)) == (210, 297)  # A4
    fonts = word.styles["Normal"].element.rPr.rFonts
    assert fonts.get(qn("w:eastAsia")) == "Noto Serif CJK JP"
    assert fonts.get(qn("w:eastAsiaTheme")) is None


def embedded_font(content: bytes) -> tuple[str, TTFont]:
    """The family named in fontTable.xml with an embedded regular face, and that face
    de-obfuscated with its key (ECMA-376 §17.8.1) and parsed."""
    w = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
    r = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
    with zipfile.ZipFile(io.BytesIO(content)) as package:
        table = etree.fromstring(package.read("word/fontTable.xml"))
        embeds = table.findall(f"{w}font/{w}embedRegular")
        assert len(embeds) == 1
        embed = embeds[0]
        rels = etree.fromstring(package.read("word/_rels/fontTable.xml.rels"))
        (target,) = [rel.get("Target") for rel in rels if rel.get("Id") == embed.get(f"{r}id")]
        obfuscated = package.read(f"word/{target}")
        types = package.read("[Content_Types].xml").decode()
        settings_xml = package.read("word/settings.xml").decode()
    assert 'Extension="odttf"' in types
    assert "embedTrueTypeFonts" in settings_xml
    key = uuid.UUID(embed.get(f"{w}fontKey"))
    secret = bytes.fromhex(key.hex)[::-1]
    plain = bytes(b ^ secret[i % 16] for i, b in enumerate(obfuscated[:32])) + obfuscated[32:]
    family = embed.getparent().get(f"{w}name")
    return family, TTFont(io.BytesIO(plain))


def test_the_docx_embeds_its_japanese_font_with_every_character_it_uses(
    meeting: Meeting, alice: User
) -> None:
    add_transcript(meeting)

    content = minutes_docx(meeting)

    family, font = embedded_font(content)
    assert family == "Noto Serif CJK JP"
    assert font["name"].getBestFamilyName() == family
    assert "glyf" in font  # TrueType outlines: the only kind Word embeds
    assert font["OS/2"].fsType & 0x2 == 0  # embedding not restricted
    covered = font.getBestCmap()
    missing = {ch for ch in docx_text(content) if not ch.isspace() and ord(ch) not in covered}
    assert not missing
    # A subset, not the whole 20 MB collection.
    assert len(zipfile.ZipFile(io.BytesIO(content)).read("word/fonts/font1.odttf")) < 400_000


def test_without_the_font_the_docx_names_yu_mincho_and_embeds_nothing(
    meeting: Meeting, settings: SettingsWrapper, tmp_path: Path
) -> None:
    settings.DOCX_FONT = str(tmp_path / "missing.ttc")

    content = minutes_docx(meeting)

    word = Document(io.BytesIO(content))
    fonts = word.styles["Normal"].element.rPr.rFonts
    assert fonts.get(qn("w:eastAsia")) == "游明朝"
    assert "word/fonts/font1.odttf" not in zipfile.ZipFile(io.BytesIO(content)).namelist()


def test_the_docx_of_a_summary_has_topics_decisions_and_the_plan_table(
    meeting: Meeting, alice: User
) -> None:
    minutes = minutes_for(meeting)
    minutes.style = Minutes.Style.SUMMARY
    minutes.summary = "■電子決裁の導入\n・来年度から試行する。"
    minutes.decisions = "電子決裁を試行する。"
    minutes.save()
    ActionItem.objects.create(
        minutes=minutes, task="試行部署の選定", assignee="総務課", due_date=dt.date(2025, 7, 31)
    )

    word = Document(io.BytesIO(minutes_docx(meeting)))

    paragraphs = [p.text for p in word.paragraphs]
    assert "議事（要点筆記）" in paragraphs
    assert "■電子決裁の導入" in paragraphs
    assert "・来年度から試行する。" in paragraphs
    assert "1. 電子決裁を試行する。" in paragraphs
    plan = word.tables[-1]
    assert [[c.text for c in row.cells] for row in plan.rows] == [
        ["内容", "担当", "期限"],
        ["試行部署の選定", "総務課", "令和7年7月31日"],
    ]


def test_the_pdf_embeds_its_font_and_holds_the_text(
    meeting: Meeting, alice: User, bob: User, japanese_font: None
) -> None:
    add_transcript(meeting)
    # A 今後の予定 table too: its headings must not ask the one-face font for bold.
    ActionItem.objects.create(
        minutes=minutes_for(meeting), task="試行部署の選定", assignee="総務課"
    )
    minutes = do_request_review(minutes_for(meeting), user=bob)
    do_approve_minutes(minutes, user=alice)

    content = minutes_pdf(meeting)

    assert content.startswith(b"%PDF")
    assert b"/FontFile" in content
    assert re.search(rb"/BaseFont\s*/[A-Z]{6}\+NotoSansCJK", content)  # a subset, embedded
    text = pdf_text(content)
    for expected in (
        "文書管理検討会議 会議録",
        "会議名",
        DATE_TEXT,
        "本庁舎3階 会議室301",
        "1. 文書保存年限の見直し",
        "青木：それでは会議を始めます。",
        "決定事項",
        "試行部署の選定",
        "青木 愛 承認",
    ):
        assert expected in text, expected


def test_downloads_are_for_readers_and_audited(
    client: Client, meeting: Meeting, bob: User, charlie: User, japanese_font: None
) -> None:
    add_transcript(meeting)
    client.force_login(bob)

    docx = client.get(f"/minutes/{meeting.pk}/minutes.docx")
    pdf = client.get(f"/minutes/{meeting.pk}/minutes.pdf")

    assert docx.status_code == 200
    assert docx["Content-Type"].startswith("application/vnd.openxmlformats")
    assert "attachment" in docx["Content-Disposition"]
    assert "filename*=utf-8''" in docx["Content-Disposition"]
    assert DATE_TEXT in docx_text(docx.content)
    assert pdf.status_code == 200
    assert pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    formats = sorted(
        e.details["format"]
        for e in AuditEntry.objects.filter(action="minutes.exported", actor_id=bob.pk)
    )
    assert formats == ["docx", "pdf"]

    client.force_login(charlie)
    assert client.get(f"/minutes/{meeting.pk}/minutes.docx").status_code == 403
    assert client.get(f"/minutes/{meeting.pk}/minutes.pdf").status_code == 403
    assert AuditEntry.objects.filter(action="minutes.exported").count() == 2


def test_a_missing_font_is_a_clear_503(
    client: Client, meeting: Meeting, bob: User, settings: Any, tmp_path: Path
) -> None:
    settings.PDF_FONT = str(tmp_path / "missing.ttf")
    client.force_login(bob)

    response = client.get(f"/minutes/{meeting.pk}/minutes.pdf")

    assert response.status_code == 503
    assert "YAKUBA_PDF_FONT" in response.content.decode()
    assert not AuditEntry.objects.filter(action="minutes.exported").exists()


def test_from_an_uploaded_wav_to_approved_minutes_in_a_docx(
    client: Client,
    meeting: Meeting,
    bob: User,
    dora: User,
    tmp_path: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """The issue's path end to end, through the pages: espeak-ng speech uploaded by an
    attendee, transcribed by pocketsphinx in the worker, sent for review, approved by
    the 所属長, downloaded as .docx and found by the search."""
    from yakuba.tasks.worker import run_once

    from .test_pipeline import phrases, request_transcription, upload

    wav = phrases(["please open the window", "we will discuss the new library"], tmp_path / "m.wav")
    client.force_login(bob)
    upload(client, meeting, wav)
    assert request_transcription(client, meeting, engine="pocketsphinx").status_code == 302
    with django_capture_on_commit_callbacks(execute=True):
        assert run_once() >= 1
    minutes = minutes_for(meeting)
    review = client.post(
        f"/minutes/{meeting.pk}/minutes/review/", {"revision": str(minutes.revision)}
    )
    assert review.status_code == 302
    client.force_login(dora)
    approved = client.post(f"/minutes/{meeting.pk}/minutes/approve/", {"comment": "確認しました"})
    assert approved.status_code == 302
    assert Minutes.objects.get(meeting=meeting).status == Minutes.Status.APPROVED

    client.force_login(bob)
    response = client.get(f"/minutes/{meeting.pk}/minutes.docx")

    assert response.status_code == 200
    text = docx_text(response.content)
    for expected in (
        "会議名",
        "文書管理検討会議",
        DATE_TEXT,
        "本庁舎3階 会議室301",
        "青木 愛（文書係）、坂東 歩（文書係）",
        "1. 文書保存年限の見直し\n2. 電子決裁の導入",
        "議事（逐語録）",
        "土田 乃 承認",
    ):
        assert expected in text, expected
    heard = set(re.findall(r"[a-z]+", text.lower()))
    expected_words = {"please", "open", "window", "discuss", "new", "library"}
    assert len(heard & expected_words) >= 2, heard  # a tolerant match: ASR is not exact
    word = sorted(heard & expected_words, key=len)[-1]
    found = client.get("/minutes/search/", {"q": word})
    assert found.status_code == 200
    assert "文書管理検討会議" in found.content.decode()

"""Attachments: upload through the API, send with a message, permission-checked download
(headers), the size limit, the scanning hook, thumbnails, file names and stored paths,
the sweep of uploads never sent, and the system checks."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import stat
import struct
import time
import types
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.checks import CheckMessage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError, transaction
from django.test import Client
from PIL import Image
from pytest_django.fixtures import Settings as SettingsWrapper

from yakuba.audit.models import AuditAction, AuditEntry
from yakuba.chat import access, attachments, checks
from yakuba.chat.actions import ChatError
from yakuba.chat.actions.messages import check_send_message, do_delete_message
from yakuba.chat.models import Attachment, Conversation, Message
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.tasks.registry import PERIODIC

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings: SettingsWrapper, tmp_path: Path) -> Path:
    folder = tmp_path / "chat-media"
    settings.CHAT_MEDIA_DIR = folder
    settings.CHAT_MAX_ATTACHMENT_MB = 1
    settings.CHAT_SCAN_COMMAND = ""
    return folder


def stored_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def as_user(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def upload(client: Client, conversation: Conversation, name: str, content: bytes) -> Any:
    return client.post(
        f"/api/chat/conversations/{conversation.pk}/attachments",
        {"file": SimpleUploadedFile(name, content, content_type="application/octet-stream")},
    )


def png(width: int, height: int, mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    colour: Any = (200, 30, 30, 128) if mode == "RGBA" else (200, 30, 30)
    Image.new(mode, (width, height), colour).save(out, "PNG")
    return out.getvalue()


def send(user: User, conversation: Conversation, attachment_id: int, text: str = "") -> Message:
    membership = access.access_conversation_for_post(user, conversation.pk)
    message, created = check_send_message(
        membership,
        text=text,
        client_key=f"k-{attachment_id}",
        attachment_ids=[attachment_id],
        acting_user=user,
    )
    assert created
    return message


def scanner(tmp_path: Path, body: str) -> str:
    script = tmp_path / "scan.sh"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return f"{script} --quiet {{path}}"


# --- upload, send, download ----------------------------------------------------------------


def test_it_uploads_sends_and_lets_members_download(
    alice: User, bob: User, project: Conversation, media: Path
) -> None:
    content = "移転スケジュール（案）\n".encode() * 100
    response = upload(as_user(alice), project, "移転スケジュール（案）.txt", content)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "移転スケジュール（案）.txt"
    assert body["size"] == len(content)
    assert body["content_type"] == "text/plain"
    assert body["scan"] == "skipped"
    assert body["has_thumbnail"] is False
    attachment = Attachment.objects.get(pk=body["id"])
    assert attachment.message_id is None
    assert attachment.sha256 == hashlib.sha256(content).hexdigest()
    [stored] = stored_files(media)
    assert stored.read_bytes() == content
    assert stored.relative_to(media).parts[0] == str(project.pk)
    assert attachments.attachment_path(attachment) == stored.resolve()

    # Not sent yet: Bob does not see it, Alice does.
    assert as_user(bob).get(f"/api/chat/attachments/{attachment.pk}").status_code == 404
    assert as_user(alice).get(f"/api/chat/attachments/{attachment.pk}").status_code == 200

    message = send(alice, project, attachment.pk, "スケジュール案です")
    assert message.has_file
    attachment.refresh_from_db()
    assert attachment.message_id == message.pk

    download = as_user(bob).get(f"/api/chat/attachments/{attachment.pk}")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == content  # type: ignore[attr-defined]  # FileResponse
    assert download["Content-Type"] == "text/plain"
    assert download["X-Content-Type-Options"] == "nosniff"
    assert download["Content-Disposition"] == (
        'attachment; filename="___________.txt"; '
        "filename*=UTF-8''%E7%A7%BB%E8%BB%A2%E3%82%B9%E3%82%B1%E3%82%B8%E3%83%A5%E3%83%BC"
        "%E3%83%AB%EF%BC%88%E6%A1%88%EF%BC%89.txt"
    )
    assert "sandbox" in download["Content-Security-Policy"]
    # The ETag lets a browser revalidate (after the permission check) without a download.
    again = as_user(bob).get(
        f"/api/chat/attachments/{attachment.pk}", HTTP_IF_NONE_MATCH=download["ETag"]
    )
    assert again.status_code == 304


def test_it_refuses_charlie_and_audits_the_denial(
    alice: User, charlie: User, bunsho_channel: Conversation
) -> None:
    attachment_id = upload(as_user(alice), bunsho_channel, "memo.txt", b"hello").json()["id"]
    send(alice, bunsho_channel, attachment_id)
    response = as_user(charlie).get(f"/api/chat/attachments/{attachment_id}")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    denial = AuditEntry.objects.get(action=AuditAction.PERMISSION_DENIED, actor_id=charlie.pk)
    assert denial.details["what"] == "chat.download"
    assert denial.target_id == str(attachment_id)
    assert (
        as_user(charlie).get(f"/api/chat/attachments/{attachment_id}/thumbnail").status_code == 403
    )


def test_it_refuses_uploads_from_non_members_and_into_archived_conversations(
    alice: User, charlie: User, project: Conversation, media: Path
) -> None:
    assert upload(as_user(charlie), project, "x.txt", b"x").status_code == 403
    Conversation.objects.filter(pk=project.pk).update(archived_at=clock.now())
    assert upload(as_user(alice), project, "x.txt", b"x").status_code == 403
    assert stored_files(media) == []
    assert not Attachment.objects.exists()


def test_it_asks_for_the_file_when_the_field_is_missing(alice: User, project: Conversation) -> None:
    response = as_user(alice).post(
        f"/api/chat/conversations/{project.pk}/attachments", {"other": "x"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["file"]


def test_it_hides_the_files_of_a_deleted_message(
    alice: User, bob: User, project: Conversation
) -> None:
    attachment_id = upload(as_user(alice), project, "memo.txt", b"hello").json()["id"]
    message = send(alice, project, attachment_id)
    do_delete_message(message, acting_user=alice)
    assert as_user(bob).get(f"/api/chat/attachments/{attachment_id}").status_code == 404


def test_it_shows_only_real_images_inline(alice: User, project: Conversation) -> None:
    client = as_user(alice)
    image = upload(client, project, "photo.PNG", png(40, 30)).json()
    assert image["content_type"] == "image/png"
    shown = client.get(f"/api/chat/attachments/{image['id']}")
    assert shown["Content-Type"] == "image/png"
    assert shown["Content-Disposition"].startswith('inline; filename="photo.PNG"')

    # Named like an image, not one: a plain download, never rendered.
    fake = upload(client, project, "photo.png", b"<script>alert(1)</script>").json()
    assert fake["content_type"] == "application/octet-stream"
    assert fake["has_thumbnail"] is False
    response = client.get(f"/api/chat/attachments/{fake['id']}")
    assert response["Content-Disposition"].startswith("attachment;")

    # HTML and SVG are downloads too.
    for name in ("page.html", "drawing.svg"):
        data = upload(client, project, name, b"<svg onload='alert(1)'/>").json()
        response = client.get(f"/api/chat/attachments/{data['id']}")
        assert response["Content-Disposition"].startswith("attachment;"), name
        assert response["X-Content-Type-Options"] == "nosniff"


def test_it_refuses_files_the_scanner_has_not_cleared(alice: User, project: Conversation) -> None:
    attachment_id = upload(as_user(alice), project, "memo.txt", b"hello").json()["id"]
    Attachment.objects.filter(pk=attachment_id).update(scan=Attachment.Scan.PENDING)
    response = as_user(alice).get(f"/api/chat/attachments/{attachment_id}")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "scan_pending"
    Attachment.objects.filter(pk=attachment_id).update(scan=Attachment.Scan.INFECTED)
    response = as_user(alice).get(f"/api/chat/attachments/{attachment_id}")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "file_blocked"


# --- size limit ----------------------------------------------------------------------------


def test_it_refuses_a_file_over_the_limit_with_413_and_keeps_nothing(
    alice: User, project: Conversation, media: Path
) -> None:
    response = upload(as_user(alice), project, "big.bin", b"x" * (1024 * 1024 + 1))
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "too_large"
    assert "1 MB" in error["message"]
    assert stored_files(media) == []
    assert not Attachment.objects.exists()
    # Exactly at the limit is fine.
    assert upload(as_user(alice), project, "ok.bin", b"x" * (1024 * 1024)).status_code == 201


def test_it_stops_a_streamed_upload_at_the_limit_whatever_its_declared_size(
    alice: User, project: Conversation, media: Path
) -> None:
    lying = SimpleUploadedFile("big.bin", b"x" * (1024 * 1024 + 10))
    lying.size = 10
    membership = access.access_conversation_for_post(alice, project.pk)
    with pytest.raises(ChatError) as refused:
        attachments.check_upload_attachment(membership, upload=lying, acting_user=alice)
    assert refused.value.status == 413
    assert stored_files(media) == []
    assert [p for p in media.rglob("*") if p.parent != media] == []  # no folder left either
    assert not Attachment.objects.exists()


def test_it_answers_413_when_the_site_wide_handler_cut_the_body_off(
    alice: User, project: Conversation, media: Path, settings: SettingsWrapper
) -> None:
    # The handler holds /api/chat/ to chat's limit, not to the (larger) minutes one.
    settings.MINUTES_MAX_UPLOAD_MB = 500
    settings.CHAT_MAX_ATTACHMENT_MB = 1
    response = upload(as_user(alice), project, "big.bin", b"x" * (3 * 1024 * 1024))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert stored_files(media) == []


# --- scanning ------------------------------------------------------------------------------


def test_it_blocks_an_infected_file_deletes_it_and_audits(
    alice: User, project: Conversation, media: Path, settings: SettingsWrapper, tmp_path: Path
) -> None:
    settings.CHAT_SCAN_COMMAND = scanner(tmp_path, 'echo "$2: Eicar-Signature FOUND"; exit 1')
    response = upload(as_user(alice), project, "請求書.exe", b"X5O!P%@AP[4\\PZX54(P^)7CC)7}")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "file_blocked"
    assert "請求書.exe" in error["message"]
    assert stored_files(media) == []
    assert not Attachment.objects.exists()
    entry = AuditEntry.objects.get(action="chat.file_blocked")
    assert entry.actor_id == alice.pk
    assert entry.target_id == str(project.pk)
    assert entry.details["name"] == "請求書.exe"
    assert "Eicar-Signature FOUND" in entry.details["scanner"]


def test_it_refuses_the_upload_when_the_scanner_fails(
    alice: User, project: Conversation, media: Path, settings: SettingsWrapper, tmp_path: Path
) -> None:
    settings.CHAT_SCAN_COMMAND = scanner(tmp_path, "echo 'cannot connect to clamd' >&2; exit 2")
    response = upload(as_user(alice), project, "memo.txt", b"hello")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "scan_failed"
    assert "しばらく待って" in response.json()["error"]["message"]
    assert stored_files(media) == []
    assert not Attachment.objects.exists()
    assert not AuditEntry.objects.filter(action="chat.file_blocked").exists()


def test_it_refuses_the_upload_when_the_scanner_hangs_or_is_missing(
    alice: User,
    project: Conversation,
    media: Path,
    settings: SettingsWrapper,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(attachments, "SCAN_TIMEOUT_SECONDS", 0.5)
    settings.CHAT_SCAN_COMMAND = scanner(tmp_path, "sleep 30; exit 0")
    started = time.monotonic()
    assert upload(as_user(alice), project, "memo.txt", b"hello").status_code == 503
    # The scanner and what it started are killed at the time-out, not waited for.
    assert time.monotonic() - started < 10
    settings.CHAT_SCAN_COMMAND = str(tmp_path / "no-such-scanner") + " {path}"
    assert upload(as_user(alice), project, "memo.txt", b"hello").status_code == 503
    assert stored_files(media) == []
    assert not Attachment.objects.exists()


def test_it_keeps_a_clean_file_and_the_scanner_sees_its_content(
    alice: User, project: Conversation, media: Path, settings: SettingsWrapper, tmp_path: Path
) -> None:
    seen = tmp_path / "seen"
    settings.CHAT_SCAN_COMMAND = scanner(tmp_path, f'cat "$2" > {seen}; exit 0')
    response = upload(as_user(alice), project, "memo.txt", b"hello")
    assert response.status_code == 201
    assert response.json()["scan"] == "clean"
    assert seen.read_bytes() == b"hello"
    assert len(stored_files(media)) == 1


# --- thumbnails ----------------------------------------------------------------------------


def test_it_makes_a_thumbnail_of_a_png(alice: User, project: Conversation) -> None:
    client = as_user(alice)
    body = upload(client, project, "layout.png", png(1000, 500)).json()
    assert body["has_thumbnail"] is True
    response = client.get(f"/api/chat/attachments/{body['id']}/thumbnail")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"  # no transparency: JPEG
    assert response["Content-Disposition"].startswith('inline; filename="layout-thumbnail.jpg"')
    with Image.open(io.BytesIO(b"".join(response.streaming_content))) as thumb:  # type: ignore[attr-defined]  # FileResponse
        assert thumb.size == (320, 160)

    transparent = upload(client, project, "icon.png", png(64, 640, "RGBA")).json()
    response = client.get(f"/api/chat/attachments/{transparent['id']}/thumbnail")
    assert response["Content-Type"] == "image/png"
    with Image.open(io.BytesIO(b"".join(response.streaming_content))) as thumb:  # type: ignore[attr-defined]  # FileResponse
        assert thumb.size == (32, 320)
        assert thumb.mode == "RGBA"


def test_it_keeps_a_corrupt_image_without_a_thumbnail(alice: User, project: Conversation) -> None:
    client = as_user(alice)
    broken = png(50, 50)[:60] + b"\x00garbage" * 10
    response = upload(client, project, "broken.png", broken)
    assert response.status_code == 201
    body = response.json()
    assert body["content_type"] == "image/png"
    assert body["has_thumbnail"] is False
    assert client.get(f"/api/chat/attachments/{body['id']}/thumbnail").status_code == 404
    assert client.get(f"/api/chat/attachments/{body['id']}").status_code == 200


def test_it_makes_no_thumbnail_of_a_decompression_bomb(
    alice: User, project: Conversation, media: Path
) -> None:
    # A real 1×1 PNG whose header claims 60,000 × 60,000 pixels.
    data = bytearray(png(1, 1))
    ihdr = bytes(data[12:16]) + struct.pack(">II", 60000, 60000) + bytes(data[24:29])
    data[16:24] = struct.pack(">II", 60000, 60000)
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr))
    response = upload(as_user(alice), project, "bomb.png", bytes(data))
    assert response.status_code == 201
    assert response.json()["has_thumbnail"] is False
    assert [p.name for p in stored_files(media)] == ["data"]


# --- names and paths -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("/abs/path/議事録（案）.pdf", "議事録（案）.pdf"),
        ("..", "file"),
        ("", "file"),
        (".bashrc", "bashrc"),
        ("report\u202etxt.exe", "reporttxt.exe"),
        ("a\x00b\nc\td.txt", "abcd.txt"),
        ("  会議 メモ.txt  ", "会議 メモ.txt"),
        ("ﾃｽﾄ.txt", "ﾃｽﾄ.txt"),
    ],
)
def test_it_cleans_file_names(raw: str, cleaned: str) -> None:
    assert attachments.clean_name(raw) == cleaned


def test_it_shortens_long_names_keeping_the_extension() -> None:
    name = attachments.clean_name("議" * 300 + ".xlsx")
    assert len(name) == 255
    assert name.endswith("議.xlsx")


def test_it_never_stores_under_the_clients_name(
    alice: User, project: Conversation, media: Path
) -> None:
    body = upload(as_user(alice), project, "../../../evil.sh", b"#!/bin/sh").json()
    assert body["name"] == "evil.sh"
    [stored] = stored_files(media)
    assert stored.name == "data"
    assert stored.is_relative_to(media)


def test_it_never_follows_a_stored_path_outside_the_media_folder(
    alice: User, project: Conversation, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("password")
    attachment_id = upload(as_user(alice), project, "memo.txt", b"hello").json()["id"]
    for forged in ("../secret.txt", str(secret), ""):
        Attachment.objects.filter(pk=attachment_id).update(path=forged, thumbnail_path=forged)
        attachment = Attachment.objects.get(pk=attachment_id)
        with pytest.raises(attachments.StoredPathError):
            attachments.attachment_path(attachment)
        response = as_user(alice).get(f"/api/chat/attachments/{attachment_id}")
        assert response.status_code == 404, forged
        attachments.remove_stored_files(forged, forged)
    assert secret.exists()


# --- uploads never sent --------------------------------------------------------------------


def test_it_sweeps_uploads_never_sent_after_a_day(
    alice: User, project: Conversation, media: Path
) -> None:
    client = as_user(alice)
    sent_id = upload(client, project, "sent.txt", b"sent").json()["id"]
    send(alice, project, sent_id)
    orphan_id = upload(client, project, "orphan.png", png(400, 400)).json()["id"]
    assert len(stored_files(media)) == 3  # sent.txt, and the orphan with its thumbnail

    clock.advance(dt.timedelta(hours=23))
    fresh = upload(as_user(alice), project, "fresh.txt", b"fresh")  # a new session
    assert fresh.status_code == 201, fresh.content
    fresh_id = fresh.json()["id"]
    PERIODIC["chat.orphan_attachments"].function()
    assert Attachment.objects.filter(pk=orphan_id).exists()

    clock.advance(dt.timedelta(hours=2))
    PERIODIC["chat.orphan_attachments"].function()
    assert set(Attachment.objects.values_list("pk", flat=True)) == {sent_id, fresh_id}
    remaining = stored_files(media)
    assert len(remaining) == 2
    assert {p.read_bytes() for p in remaining} == {b"sent", b"fresh"}
    # The orphan's folder went with it.
    assert len([p for p in media.rglob("*") if p.is_dir() and p.parent != media]) == 2
    # A send naming the swept upload is refused.
    membership = access.access_conversation_for_post(alice, project.pk)
    with pytest.raises(ChatError):
        check_send_message(
            membership, text="", client_key="late", attachment_ids=[orphan_id], acting_user=alice
        )


def test_it_keeps_an_upload_sent_while_the_sweep_runs(
    alice: User, project: Conversation, media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attachment_id = upload(as_user(alice), project, "late.txt", b"late").json()["id"]
    clock.advance(dt.timedelta(hours=25))

    @contextlib.contextmanager
    def send_first(*args: Any, **kwargs: Any) -> Iterator[None]:
        # The send commits after the sweep chose its candidates, before it deletes them.
        if not Message.objects.exists():
            send(alice, project, attachment_id, "間に合った")
        with transaction.atomic(*args, **kwargs):
            yield

    fake = types.SimpleNamespace(atomic=send_first, on_commit=transaction.on_commit)
    monkeypatch.setattr("yakuba.chat.attachments.transaction", fake)
    assert attachments.remove_orphan_attachments() == 0
    assert Attachment.objects.get(pk=attachment_id).message_id is not None
    assert [p.read_bytes() for p in stored_files(media)] == [b"late"]


def test_it_leaves_nothing_on_disk_when_saving_the_row_fails(
    alice: User, project: Conversation, media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(**kwargs: Any) -> Attachment:
        raise DatabaseError("disk full")

    monkeypatch.setattr(Attachment.objects, "create", fail)
    membership = access.access_conversation_for_post(alice, project.pk)
    with pytest.raises(DatabaseError):
        attachments.check_upload_attachment(
            membership, upload=SimpleUploadedFile("layout.png", png(500, 500)), acting_user=alice
        )
    assert stored_files(media) == []


# --- system checks -------------------------------------------------------------------------


def ids(messages: list[CheckMessage]) -> list[str | None]:
    return [m.id for m in messages]


def test_it_warns_when_the_media_folder_cannot_be_written(
    settings: SettingsWrapper, tmp_path: Path
) -> None:
    settings.CHAT_MEDIA_DIR = tmp_path / "new" / "chat"
    assert checks.check_media_dir() == []  # can be made
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    settings.CHAT_MEDIA_DIR = blocker
    assert ids(checks.check_media_dir()) == ["chat.W401"]
    settings.CHAT_MEDIA_DIR = blocker / "chat"
    assert ids(checks.check_media_dir()) == ["chat.W401"]


def test_it_warns_when_the_scan_program_is_missing(
    settings: SettingsWrapper, tmp_path: Path
) -> None:
    settings.CHAT_SCAN_COMMAND = ""
    assert checks.check_scan_command() == []
    settings.CHAT_SCAN_COMMAND = scanner(tmp_path, "exit 0")
    assert checks.check_scan_command() == []
    settings.CHAT_SCAN_COMMAND = "no-such-clamdscan --no-summary {path}"
    assert ids(checks.check_scan_command()) == ["chat.W402"]
    settings.CHAT_SCAN_COMMAND = "clamdscan 'unclosed"
    assert ids(checks.check_scan_command()) == ["chat.W402"]


def test_it_refuses_the_upload_when_the_scan_command_cannot_be_parsed(
    alice: User, project: Conversation, media: Path, settings: SettingsWrapper
) -> None:
    # chat.W402 warns at start-up; an upload still gets the 503, never a 500.
    settings.CHAT_SCAN_COMMAND = "clamdscan 'unclosed {path}"
    response = upload(as_user(alice), project, "memo.txt", b"hello")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "scan_failed"
    assert stored_files(media) == []
    assert not Attachment.objects.exists()


def test_it_answers_413_to_a_bot_whose_body_the_site_wide_handler_cut_off(
    project: Conversation, ida: User, media: Path, settings: SettingsWrapper
) -> None:
    # A bearer token has no CSRF check, so nothing reads the body before the view: the
    # view must read it before asking whether the handler refused it.
    from yakuba.chat.webhooks import do_create_bot

    bot = do_create_bot(
        username="scan-bot", display_name="", conversations=[project], acting_user=ida
    )
    settings.MINUTES_MAX_UPLOAD_MB = 500
    settings.CHAT_MAX_ATTACHMENT_MB = 1
    client = Client(HTTP_AUTHORIZATION=f"Bearer {bot.raw_token}")
    response = upload(client, project, "big.bin", b"x" * (3 * 1024 * 1024))
    assert response.status_code == 413, response.content
    assert response.json()["error"]["code"] == "too_large"
    assert stored_files(media) == []
    assert upload(client, project, "small.txt", b"ok").status_code == 201


def test_it_answers_400_for_a_malformed_multipart_body(
    alice: User, project: Conversation, media: Path
) -> None:
    response = as_user(alice).post(
        f"/api/chat/conversations/{project.pk}/attachments",
        data=b"--x\r\nContent-Disposition: form-data; name=file\r\n\r\nabc",
        content_type="multipart/form-data; boundary=",
    )
    # A 4xx, never a 500.  (Answered by Django before the API, in HTML: see the report
    # on yakuba/web/security.py, which reads request.POST for every request.)
    assert response.status_code == 400, response.content
    assert stored_files(media) == []
    assert not Attachment.objects.exists()

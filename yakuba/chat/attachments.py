"""Attachments (添付ファイル): upload, storage, thumbnails, the scanning hook, clean-up.

A file is uploaded first, into a conversation, with no message (``Attachment.message``
NULL); the send that names it attaches it (``check_send_message`` sets ``message`` and
``has_file``).  Only its uploader sees an upload that was never sent, and the periodic job
``chat.orphan_attachments`` removes it after ``ORPHAN_AGE``.

Storage.  ``CHAT_MEDIA_DIR/<conversation id>/<random>/data``, with the thumbnail beside it
(``thumbnail.png`` or ``thumbnail.jpg``).  The client's file name is kept only in the row
(cleaned: no folders, no control characters, at most 255 characters, Japanese kept); it
never becomes a path, so a name such as ``../../etc/passwd`` or one too long for the file
system cannot do harm.  Every file is written under a hidden temporary name and renamed
when complete, so a crash never leaves a half file under its final name; a refused or
failed upload removes its folder again, so that nothing of it stays on disk.

Scanning.  With ``CHAT_SCAN_COMMAND`` set (e.g. ``clamdscan --no-summary {path}``), the
command runs on every stored file before the row is made, with ``{path}`` replaced by the
file's path (the path is appended when the command has no ``{path}``): exit 0 is clean; 1
is infected: the file is deleted, ``chat.file_blocked`` is audited and the upload is
refused; anything else (or no answer within ``SCAN_TIMEOUT_SECONDS``) refuses the upload
with "try again later" and keeps nothing.  Unset: files are marked ``skipped``.  The scan
runs before any image decoder looks at the file.

Content type.  Images are recognised by their first bytes (PNG, JPEG, GIF, WebP), never by
the name or the browser's claim; other files get the type their extension suggests, and a
file named like an image that is not one gets ``application/octet-stream``.  Downloads
are shown inline only for those four image types (api_files).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import mimetypes
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import unicodedata
import warnings
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils.translation import gettext as _
from PIL import Image, ImageOps

from yakuba.audit.models import AuditAction
from yakuba.audit.record import record
from yakuba.chat.actions import ChatError
from yakuba.chat.models import Attachment, Membership
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.tasks.registry import periodic

log = logging.getLogger(__name__)

DATA_NAME = "data"
MAX_NAME_CHARS = 255
FALLBACK_NAME = "file"
# The longest a scanner may take for one file before the upload is refused.
SCAN_TIMEOUT_SECONDS = 120
THUMBNAIL_PX = 320
# Images with more pixels than this get no thumbnail: decoding one would take seconds and
# hundreds of megabytes (a small PNG can declare 100,000 × 100,000 pixels).  Well under
# Pillow's own decompression-bomb limit, which stays in force as well.
THUMBNAIL_MAX_PIXELS = 40_000_000
# Uploads never attached to a message are removed after this long.
ORPHAN_AGE = dt.timedelta(hours=24)
ORPHAN_BATCH = 500

# Shown inline by the download; everything else is a download (attachment).
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
PILLOW_FORMATS = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
}
OCTET_STREAM = "application/octet-stream"


class StoredPathError(ValueError):
    """A stored path that does not lie inside ``CHAT_MEDIA_DIR`` (never followed)."""


def media_root() -> Path:
    return Path(settings.CHAT_MEDIA_DIR)


def max_bytes() -> int:
    return int(settings.CHAT_MAX_ATTACHMENT_MB) * 1024 * 1024


def too_large() -> ChatError:
    limit = int(settings.CHAT_MAX_ATTACHMENT_MB)
    return ChatError(
        _("ファイルが大きすぎます。添付できるのは %(mb)d MB までです。") % {"mb": limit},
        f"The file is too large: at most {limit} MB can be attached.",
        code="too_large",
        status=413,
        field="file",
        details={"max_mb": limit},
    )


# --- names and types -----------------------------------------------------------------------


def clean_name(raw: str) -> str:
    """The client's file name made safe to keep and show: the last part of any path
    (``/`` or ``\\``), without control or format characters (a right-to-left override can
    disguise ``exe.txt``), without leading dots and surrounding spaces, at most 255
    characters (the extension kept), NFC-normalised.  Japanese stays as it is."""
    name = unicodedata.normalize("NFC", raw or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if not unicodedata.category(ch).startswith("C"))
    name = name.strip().lstrip(".").strip()
    if not name:
        return FALLBACK_NAME
    if len(name) > MAX_NAME_CHARS:
        stem, dot, extension = name.rpartition(".")
        if dot and stem and 0 < len(extension) <= 16:
            name = stem[: MAX_NAME_CHARS - len(extension) - 1] + "." + extension
        else:
            name = name[:MAX_NAME_CHARS]
    return name


def sniff_image(head: bytes) -> str | None:
    """The image type that the file's first bytes show, for the four types shown inline."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def content_type_for(name: str, head: bytes) -> str:
    """An image type from the content, else the type the extension suggests (never an
    image type the content does not bear out)."""
    image = sniff_image(head)
    if image is not None:
        return image
    guessed, _encoding = mimetypes.guess_type(name, strict=False)
    if not guessed or guessed.startswith("image/") or len(guessed) > 100:
        return OCTET_STREAM
    return guessed


# --- paths ---------------------------------------------------------------------------------


def _inside_root(relative: str) -> Path:
    root = media_root().resolve()
    path = (root / relative).resolve()
    if not relative or path == root or not path.is_relative_to(root):
        raise StoredPathError(f"stored path {relative!r} is outside CHAT_MEDIA_DIR")
    return path


def attachment_path(attachment: Attachment) -> Path:
    """The absolute path of the attachment's file.  Raises ``StoredPathError`` when the
    stored path would lead outside ``CHAT_MEDIA_DIR`` (``..``, an absolute path, a link
    out), so that a damaged or forged row never serves another file."""
    return _inside_root(attachment.path)


def thumbnail_path(attachment: Attachment) -> Path | None:
    """The absolute path of the thumbnail, or None without one (guarded the same way)."""
    if not attachment.thumbnail_path:
        return None
    return _inside_root(attachment.thumbnail_path)


def remove_stored_files(path: str, thumbnail: str = "") -> None:
    """Delete an attachment's file, its thumbnail and their folder (when empty).  Paths
    outside ``CHAT_MEDIA_DIR`` are logged and left alone."""
    folder: Path | None = None
    for relative in (path, thumbnail):
        if not relative:
            continue
        try:
            absolute = _inside_root(relative)
        except StoredPathError:
            log.error("not removing %r: outside CHAT_MEDIA_DIR", relative)
            continue
        try:
            absolute.unlink(missing_ok=True)
        except OSError:
            log.exception("could not remove %s", absolute)
        folder = absolute.parent
    if folder is not None and folder != media_root().resolve():
        # Not empty or already gone: nothing more of ours to remove.
        with contextlib.suppress(OSError):
            folder.rmdir()


def remove_files_on_commit(attachments: list[Attachment]) -> None:
    """After the caller's transaction commits, delete these attachments' files (for
    deletions and purges of their rows)."""
    paths = [(a.path, a.thumbnail_path) for a in attachments]

    def remove() -> None:
        for path, thumbnail in paths:
            remove_stored_files(path, thumbnail)

    transaction.on_commit(remove)


# --- upload --------------------------------------------------------------------------------


def _store(upload: UploadedFile, partial: Path) -> tuple[int, str, bytes]:
    """Copy the upload to ``partial``: (size, sha256, first bytes).  Stops as soon as the
    limit is passed (``upload.size`` may be absent or wrong for a streamed body)."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    limit = max_bytes()
    with partial.open("xb") as out:
        for chunk in upload.chunks():
            size += len(chunk)
            if size > limit:
                raise too_large()
            if len(head) < 16:
                head += chunk[: 16 - len(head)]
            digest.update(chunk)
            out.write(chunk)
    return size, digest.hexdigest(), head


def _scan_command(path: Path) -> list[str] | None:
    command = str(settings.CHAT_SCAN_COMMAND or "").strip()
    if not command:
        return None
    parts = shlex.split(command)
    if "{path}" in command:
        return [part.replace("{path}", str(path)) for part in parts]
    return [*parts, str(path)]


def scan_file(path: Path) -> tuple[str, str]:
    """Run ``CHAT_SCAN_COMMAND`` on ``path``: (``Attachment.Scan`` value, the scanner's
    output, shortened).  ``""`` as the value means the scan failed (an exit status other
    than 0 or 1, a time-out, a command that cannot run)."""
    try:
        args = _scan_command(path)
    except ValueError as exc:  # unbalanced quotes (chat.W402 says so at start-up)
        log.error("attachment scan command cannot be parsed: %s", exc)
        return "", str(exc)[:500]
    if args is None:
        return Attachment.Scan.SKIPPED, ""
    try:
        # The operator's own command from the settings, never the client's input; the
        # path is ours (random folder, fixed file name) and passed as one argument.  Its
        # own session, so that a time-out kills whatever it started as well.
        with subprocess.Popen(  # noqa: S603
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ) as process:
            try:
                raw, _stderr = process.communicate(timeout=SCAN_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
                log.error("attachment scan timed out after %ss: %s", SCAN_TIMEOUT_SECONDS, args[0])
                return "", "timeout"
    except OSError as exc:
        log.error("attachment scan could not run %s: %s", args[0], exc)
        return "", str(exc)[:500]
    output = raw.decode("utf-8", "replace").strip()[:500]
    if process.returncode == 0:
        return Attachment.Scan.CLEAN, output
    if process.returncode == 1:
        return Attachment.Scan.INFECTED, output
    log.error("attachment scan failed (exit %s): %s", process.returncode, output)
    return "", output


def make_thumbnail(source: Path, folder: Path, content_type: str) -> str:
    """Write a thumbnail (at most ``THUMBNAIL_PX`` on its longer side) of the image at
    ``source`` into ``folder``: its file name, or ``""`` when there is none (not one of
    the four image types, too many pixels, or an image the decoder cannot read: a
    corrupt upload is still kept, just without a thumbnail).  PNG when the image has
    transparency, JPEG otherwise."""
    pillow_format = PILLOW_FORMATS.get(content_type)
    if pillow_format is None:
        return ""
    partial: Path | None = None
    try:
        with warnings.catch_warnings():
            # Pillow warns (and only errors at twice its limit) for huge images.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source, formats=[pillow_format]) as opened:
                if opened.width * opened.height > THUMBNAIL_MAX_PIXELS:
                    log.info("no thumbnail for %s: %dx%d", source, opened.width, opened.height)
                    return ""
                opened.draft("RGB", (THUMBNAIL_PX, THUMBNAIL_PX))  # JPEG: decode smaller
                image = ImageOps.exif_transpose(opened)
                image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
                transparent = image.mode in ("RGBA", "LA", "PA") or (
                    image.mode == "P" and "transparency" in image.info
                )
                if transparent:
                    image, name, save_as = image.convert("RGBA"), "thumbnail.png", "PNG"
                else:
                    image, name, save_as = image.convert("RGB"), "thumbnail.jpg", "JPEG"
                partial = folder / f".{name}.part"
                image.save(partial, save_as, **({"quality": 85} if save_as == "JPEG" else {}))
        os.replace(partial, folder / name)
        return name
    except Exception as exc:  # any decoder failure means "no thumbnail", never a 500
        log.info("no thumbnail for %s: %s", source, exc)
        if partial is not None:
            partial.unlink(missing_ok=True)
        return ""


def _blocked(name: str) -> ChatError:
    return ChatError(
        _(
            "ファイル「%(name)s」からウイルスなどの不正なプログラムが見つかったため、"
            "添付できません。ファイルは削除しました。情報システム担当に連絡してください。"
        )
        % {"name": name},
        "The file was found to contain malware and was not accepted; it has been deleted.",
        code="file_blocked",
        status=422,
        field="file",
    )


def _scan_failed() -> ChatError:
    return ChatError(
        _(
            "ファイルのウイルス検査ができませんでした。"
            "しばらく待ってから、もう一度添付してください。"
        ),
        "The file could not be scanned; try again later.",
        code="scan_failed",
        status=503,
        field="file",
    )


def check_upload_attachment(
    membership: Membership, *, upload: UploadedFile, acting_user: User
) -> Attachment:
    """Store ``upload`` as an attachment of ``membership.conversation``, not yet attached
    to a message.  ``membership`` is ``acting_user``'s, from
    ``access_conversation_for_post``.

    Raises ``ChatError``: too large (413), found infected by the scanner (422; the refusal
    is audited as ``chat.file_blocked``), scanner failed (503).  Whatever fails, nothing
    of the upload stays on disk.  Not audited otherwise (like sends: the row is the
    record), and no event: nobody else sees an upload until a message names it."""
    if membership.user_id != acting_user.pk:
        raise ValueError("membership is not the acting user's")
    if upload.size is not None and upload.size > max_bytes():
        raise too_large()
    conversation = membership.conversation
    name = clean_name(upload.name or "")
    root = media_root()
    folder = root / str(conversation.pk) / secrets.token_hex(16)
    folder.mkdir(parents=True)
    try:
        partial = folder / f".{DATA_NAME}.part"
        final = folder / DATA_NAME
        size, sha256, head = _store(upload, partial)
        os.replace(partial, final)
        content_type = content_type_for(name, head)
        scan, output = scan_file(final)
        if scan == Attachment.Scan.INFECTED:
            shutil.rmtree(folder)
            # Committed on its own: the upload is refused, the finding must stay on record.
            with transaction.atomic():
                record(
                    AuditAction.CHAT_FILE_BLOCKED,
                    actor=acting_user,
                    target=conversation,
                    details={
                        "name": name,
                        "size": size,
                        "sha256": sha256,
                        "content_type": content_type,
                        "scanner": output,
                    },
                )
            raise _blocked(name)
        if not scan:
            raise _scan_failed()
        thumbnail = make_thumbnail(final, folder, content_type)
        relative = folder.relative_to(root)
        with transaction.atomic():
            attachment = Attachment.objects.create(
                conversation=conversation,
                message=None,
                uploaded_by=acting_user,
                name=name,
                content_type=content_type,
                size=size,
                sha256=sha256,
                path=(relative / DATA_NAME).as_posix(),
                thumbnail_path=(relative / thumbnail).as_posix() if thumbnail else "",
                scan=scan,
            )
    except BaseException:
        # Nothing of a refused or failed upload may stay on disk.
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return attachment


# --- uploads never sent --------------------------------------------------------------------


def remove_orphan_attachments(now: dt.datetime | None = None) -> int:
    """Delete uploads that no message named within ``ORPHAN_AGE``, rows and files; the
    number removed.  Safe beside a send that attaches one of them at the same moment:
    the DELETE is conditional on ``message IS NULL`` (and the send's attaching UPDATE is
    conditional the same way), so each file goes either to the message or to the sweep.
    Safe to run in several workers at once."""
    cutoff = (now or clock.now()) - ORPHAN_AGE
    removed = 0
    while True:
        rows = list(
            Attachment.objects.filter(message__isnull=True, created_at__lt=cutoff)
            .order_by("pk")
            .values_list("pk", "path", "thumbnail_path")[:ORPHAN_BATCH]
        )
        if not rows:
            return removed
        ids = [pk for pk, _path, _thumbnail in rows]
        with transaction.atomic():
            Attachment.objects.filter(pk__in=ids, message__isnull=True).delete()
        # Rows still there were attached (or are another sweep's) in the meantime.
        kept = set(Attachment.objects.filter(pk__in=ids).values_list("pk", flat=True))
        for pk, path, thumbnail in rows:
            if pk not in kept:
                remove_stored_files(path, thumbnail)
                removed += 1
        if len(rows) < ORPHAN_BATCH or len(kept) == len(rows):
            return removed


@periodic("chat.orphan_attachments", every=dt.timedelta(hours=1))
def orphan_attachments() -> None:
    removed = remove_orphan_attachments()
    if removed:
        log.info("removed %d attachment(s) never sent", removed)

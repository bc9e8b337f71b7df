"""System checks of the chat settings (ids ``chat.W4xx``): say at start-up, not at the
first upload, that attachments will fail.

- ``chat.W401``: ``CHAT_MEDIA_DIR`` cannot be created or written to.
- ``chat.W402``: ``CHAT_SCAN_COMMAND`` cannot be parsed, or its program is not found (every
  upload would then be refused with "scan failed").
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Warning, register

# The periodic job chat.orphan_attachments registers when attachments is imported, and
# this module is imported by ChatConfig.ready().
from yakuba.chat import attachments  # noqa: F401


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


@register("yakuba")
def check_media_dir(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The folder exists and is writable, or can be made (its nearest existing parent is
    writable).  Nothing is created here."""
    folder = Path(settings.CHAT_MEDIA_DIR)
    hint = (
        "Set YAKUBA_CHAT_MEDIA_DIR to a folder the Yakuba service account can write to "
        "(docs/chat.md)."
    )
    if folder.exists():
        if not folder.is_dir():
            return [Warning(f"CHAT_MEDIA_DIR={folder} is not a folder", hint=hint, id="chat.W401")]
        if not os.access(folder, os.W_OK | os.X_OK):
            return [Warning(f"CHAT_MEDIA_DIR={folder} is not writable", hint=hint, id="chat.W401")]
        return []
    parent = _nearest_existing(folder)
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        return [
            Warning(
                f"CHAT_MEDIA_DIR={folder} does not exist and cannot be created under {parent}",
                hint=hint,
                id="chat.W401",
            )
        ]
    return []


@register("yakuba")
def check_scan_command(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    command = str(settings.CHAT_SCAN_COMMAND or "").strip()
    if not command:
        return []
    hint = (
        "YAKUBA_CHAT_SCAN_COMMAND must name an installed program, e.g. "
        '"clamdscan --no-summary {path}"; empty turns scanning off (docs/chat.md).'
    )
    try:
        parts = shlex.split(command)
    except ValueError as exc:
        return [
            Warning(f"YAKUBA_CHAT_SCAN_COMMAND cannot be parsed: {exc}", hint=hint, id="chat.W402")
        ]
    program = parts[0] if parts else ""
    found = shutil.which(program) if program else None
    if found is None:
        return [
            Warning(
                f"YAKUBA_CHAT_SCAN_COMMAND: the program {program!r} is not found or not "
                "executable; every upload would be refused",
                hint=hint,
                id="chat.W402",
            )
        ]
    return []

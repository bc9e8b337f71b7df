"""System checks of the minutes app (ids ``minutes.W3xx``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Warning, register

from yakuba.minutes import asr


@register("yakuba")
def check_asr_engine(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Say at start-up, not at the first upload, that transcriptions will fail: the
    configured engine's package or model is missing.  The model is not loaded (the
    engine's package is imported: a second or so for CTranslate2 at start-up)."""
    name = str(settings.MINUTES_ASR_ENGINE)
    status = asr.engine_status(name)
    if status.usable:
        return []
    return [
        Warning(
            f"YAKUBA_ASR_ENGINE={name} is not usable: {status.detail}",
            hint="yakuba asr check lists every engine and what it needs (docs/minutes.md).",
            id="minutes.W301",
        )
    ]

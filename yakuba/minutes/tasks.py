"""The minutes app's jobs, registered on import (see ``transcription_tasks``)."""

from __future__ import annotations

from yakuba.minutes import transcription_tasks  # noqa: F401  (registers minutes.transcribe)

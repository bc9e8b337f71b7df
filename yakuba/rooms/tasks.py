"""The rooms app's worker jobs: the extension of recurring series as the booking horizon
moves, and the release of no-shows."""

from __future__ import annotations

from yakuba.rooms import (
    release_tasks,  # noqa: F401  (registers rooms.release_no_shows)
    series_tasks,  # noqa: F401  (registers rooms.extend_series)
)

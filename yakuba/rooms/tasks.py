"""The rooms app's worker jobs: the release of no-shows (``door``) and the extension of
recurring series (``series``) register themselves here."""

from __future__ import annotations

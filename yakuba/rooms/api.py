"""The rooms JSON API (placeholder: filled by the API part)."""

from __future__ import annotations

from ninja import Router

router = Router(tags=["rooms"])

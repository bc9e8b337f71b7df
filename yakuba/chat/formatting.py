"""Light formatting of message text (owned by helper H1; this is a placeholder)."""

from __future__ import annotations

from django.utils.html import escape


def render_html(text: str) -> str:
    """Safe HTML for a message's text."""
    return escape(text).replace("\n", "<br>")

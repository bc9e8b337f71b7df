"""System checks for the rooms feature (ids ``yakuba.W2xx``)."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Warning, register

from yakuba.lib.pdf import PdfFontMissing, font_path


@register("yakuba")
def check_pdf_font(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Reports are printed rarely: say at start-up, not at month's end, that the font
    they need is missing."""
    try:
        font_path()
    except PdfFontMissing as exc:
        return [Warning(str(exc), hint="apt install fonts-noto-cjk", id="yakuba.W201")]
    return []

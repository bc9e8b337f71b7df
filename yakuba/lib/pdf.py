"""PDF documents in Japanese (reports, minutes) with fpdf2 and an embedded font.

The ward prints these on machines that may have no Japanese font, so the font is always
embedded (fpdf2 subsets it to the characters used: a one-page report stays small).  The
font comes from the ``PDF_FONT`` setting (env ``YAKUBA_PDF_FONT``), a TrueType/OpenType
file or a collection (.ttc/.otc; ``PDF_FONT_INDEX``, env ``YAKUBA_PDF_FONT_INDEX``,
picks the face, 0 being Noto Sans CJK JP in Debian's fonts-noto-cjk).  Loading a CJK
font costs about a second of CPU per document; reports are made on request, rarely.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from fpdf import FPDF

# Debian's fonts-noto-cjk; face 0 of the collection is the Japanese one.
DEFAULT_FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
FAMILY = "yakuba-ja"


class PdfFontMissing(ImproperlyConfigured):
    """No usable Japanese font: the operator must install one or set YAKUBA_PDF_FONT."""


def font_path() -> tuple[Path, int]:
    """The configured Japanese font file and its face index within a collection."""
    path = Path(settings.PDF_FONT or DEFAULT_FONT)
    index = settings.PDF_FONT_INDEX
    if not path.is_file():
        raise PdfFontMissing(
            f"PDF用の日本語フォント {path} がありません。fonts-noto-cjk パッケージを入れるか、"
            "環境変数 YAKUBA_PDF_FONT に TrueType/OpenType フォントのパスを設定してください。"
            f" (Japanese PDF font {path} not found: install fonts-noto-cjk or set "
            "YAKUBA_PDF_FONT.)"
        )
    return path, index


class JapanesePDF(FPDF):
    """An A4 FPDF whose default font is the configured Japanese font (embedded).

    ``footer_text`` is printed at the bottom of every page with the page number."""

    def __init__(self, *, title: str = "", footer_text: str = "", orientation: str = "P") -> None:
        super().__init__(orientation=orientation, unit="mm", format="A4")
        path, index = font_path()
        suffix = path.suffix.lower()
        try:
            if suffix in (".ttc", ".otc"):
                self.add_font(FAMILY, "", str(path), collection_font_number=index)
            else:
                self.add_font(FAMILY, "", str(path))
        except Exception as exc:  # fontTools and fpdf2 raise many kinds on a bad file
            raise PdfFontMissing(
                f"PDF用の日本語フォント {path}（{index}番目の書体）を読み込めません。"
                "環境変数 YAKUBA_PDF_FONT と YAKUBA_PDF_FONT_INDEX を確認してください。"
                f" (Japanese PDF font {path}, face {index}, cannot be read: {exc})"
            ) from exc
        self.footer_text = footer_text
        if title:
            self.set_title(title)
        self.set_creator("Yakuba")
        self.set_lang("ja")
        self.set_auto_page_break(auto=True, margin=15)
        self.set_font(FAMILY, size=10)

    def japanese(self, size: float) -> None:
        """Switch to the Japanese font at ``size`` points."""
        self.set_font(FAMILY, size=size)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FAMILY, size=8)
        text = f"{self.footer_text}  {self.page_no()} / {{nb}}".strip()
        self.cell(0, 6, text, align="C")

    def pdf_bytes(self) -> bytes:
        return bytes(self.output())

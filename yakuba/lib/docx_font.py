"""Embedding a Japanese font in a Word document (.docx), so that it prints the same on a
terminal that lacks the face, as the PDF does.

Word embeds fonts as described in ECMA-376 Part 1 §17.8.1 and §17.8.3: the font file is
a part of the package (``word/fonts/fontN.odttf``), referenced from ``fontTable.xml`` by
a ``w:embedRegular`` element that carries a GUID (``w:fontKey``); the part's first 32
bytes are XORed with that GUID's 16 bytes read from the end (obfuscation, not secrecy:
it keeps a casual reader from copying the font out).  ``w:embedTrueTypeFonts`` in
``settings.xml`` tells Word the document carries its fonts.

Word only embeds TrueType outlines, and the CJK fonts Debian ships (Noto CJK) have
PostScript (CFF) outlines, so the face is subset to the characters the document uses
(fontTools; a page of minutes needs a few hundred glyphs, about 100 KB) and its cubic
curves are approximated by quadratic ones (cu2qu, within 1 unit of the 1000-unit em).
"""

from __future__ import annotations

import io
import uuid
import zipfile
from pathlib import Path

from lxml import etree

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
CONTENT_TYPES = "http://schemas.openxmlformats.org/package/2006/content-types"
PACKAGE_RELATIONSHIPS = "http://schemas.openxmlformats.org/package/2006/relationships"
FONT_RELATIONSHIP = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/font"
OBFUSCATED_FONT = "application/vnd.openxmlformats-officedocument.obfuscatedFont"
FONT_PART = "word/fonts/font1.odttf"
FONT_RELS_PART = "word/_rels/fontTable.xml.rels"
RELATIONSHIP_ID = "rIdYakubaFont1"
# Characters every document may need beyond its own text: digits, Latin letters and
# punctuation typed later by whoever edits the file.
BASE_CHARACTERS = "".join(chr(c) for c in range(0x20, 0x7F)) + "　、。・：；（）「」『』〜ー"
# The elements of w:settings that must come before w:embedTrueTypeFonts (CT_Settings is
# a sequence; Word refuses a file whose children are out of order).
SETTINGS_BEFORE_EMBED = (
    "writeProtection",
    "view",
    "zoom",
    "removePersonalInformation",
    "removeDateAndTime",
    "doNotDisplayPageBoundaries",
    "displayBackgroundShape",
    "printPostScriptOverText",
    "printFractionalCharacterWidth",
    "printFormsData",
)


class FontUnusable(ValueError):
    """The font file cannot be read or converted."""


def family_name(path: Path, index: int = 0) -> str:
    """The font's family name, which ``w:rFonts`` must name for the embedded face to be
    used."""
    from fontTools.ttLib import TTFont

    font = TTFont(str(path), fontNumber=index, lazy=True)
    try:
        return str(font["name"].getBestFamilyName())
    finally:
        font.close()


def truetype_subset(path: Path, index: int, text: str) -> bytes:
    """The face at ``index`` of ``path`` cut down to the glyphs of ``text`` (and the
    base characters), with TrueType outlines."""
    from fontTools import subset
    from fontTools.ttLib import TTFont

    try:
        font = TTFont(str(path), fontNumber=index)
    except Exception as exc:  # fontTools raises many kinds on a bad file
        raise FontUnusable(f"cannot read {path}, face {index}: {exc}") from exc
    options = subset.Options()
    options.layout_features = ["vert", "vrt2", "palt", "kern"]
    options.name_IDs = ["*"]
    options.name_languages = ["*"]
    options.notdef_outline = True
    options.hinting = False
    options.desubroutinize = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(text="".join(sorted(set(text) | set(BASE_CHARACTERS))))
    subsetter.subset(font)
    if "CFF " in font:
        _cff_to_glyf(font)
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


def _cff_to_glyf(font: object) -> None:
    """Replace the CFF outlines of ``font`` (a fontTools TTFont) by quadratic TrueType
    ones, and the tables that describe them."""
    from fontTools.pens.cu2quPen import Cu2QuPen
    from fontTools.pens.ttGlyphPen import TTGlyphPen
    from fontTools.ttLib import TTFont, newTable

    assert isinstance(font, TTFont)
    order = font.getGlyphOrder()
    glyph_set = font.getGlyphSet()
    glyphs = {}
    for name in order:
        pen = TTGlyphPen(None)
        # PostScript contours run the other way round from TrueType's.
        glyph_set[name].draw(Cu2QuPen(pen, 1.0, reverse_direction=True))
        glyphs[name] = pen.glyph()
    font["loca"] = newTable("loca")
    glyf = font["glyf"] = newTable("glyf")
    glyf.glyphOrder = order
    glyf.glyphs = glyphs
    for table in ("CFF ", "VORG"):
        if table in font:
            del font[table]
    font["head"].glyphDataFormat = 0
    font["post"].formatType = 3.0  # no glyph names: a CID font has none worth keeping
    maxp = font["maxp"]
    maxp.tableVersion = 0x00010000
    for field in (
        "maxTwilightPoints",
        "maxStorage",
        "maxFunctionDefs",
        "maxInstructionDefs",
        "maxStackElements",
        "maxSizeOfInstructions",
        "maxComponentElements",
    ):
        setattr(maxp, field, 0)
    maxp.maxZones = 1
    font.sfntVersion = "\x00\x01\x00\x00"


def obfuscate(font_bytes: bytes, key: uuid.UUID) -> bytes:
    """ECMA-376 font obfuscation: the first 32 bytes XORed with the GUID's bytes taken
    from the last to the first (its string's hex digit pairs, reversed)."""
    secret = bytes.fromhex(key.hex)[::-1]
    head = bytes(byte ^ secret[i % 16] for i, byte in enumerate(font_bytes[:32]))
    return head + font_bytes[32:]


def embed_font(docx: bytes, *, family: str, path: Path, index: int = 0) -> bytes:
    """``docx`` with the face ``index`` of ``path`` embedded as the regular face of
    ``family``, cut down to the characters the document holds."""
    key = uuid.uuid4()
    parts: dict[str, bytes] = {}
    with zipfile.ZipFile(io.BytesIO(docx)) as source:
        for info in source.infolist():
            parts[info.filename] = source.read(info)
    used = "".join(
        etree.fromstring(parts["word/document.xml"]).itertext(),
    )
    font_bytes = truetype_subset(path, index, used)
    parts["[Content_Types].xml"] = _with_font_type(parts["[Content_Types].xml"])
    parts["word/fontTable.xml"] = _with_font_entry(parts["word/fontTable.xml"], family, key)
    parts["word/settings.xml"] = _with_embedding_settings(parts["word/settings.xml"])
    parts[FONT_RELS_PART] = _font_relationships()
    parts[FONT_PART] = obfuscate(font_bytes, key)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in parts.items():
            target.writestr(name, data)
    return out.getvalue()


def _serialise(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True))


def _with_font_type(xml: bytes) -> bytes:
    root = etree.fromstring(xml)
    if not root.findall(f"{{{CONTENT_TYPES}}}Default[@Extension='odttf']"):
        default = etree.Element(f"{{{CONTENT_TYPES}}}Default")
        default.set("Extension", "odttf")
        default.set("ContentType", OBFUSCATED_FONT)
        root.insert(0, default)
    return _serialise(root)


def _with_font_entry(xml: bytes, family: str, key: uuid.UUID) -> bytes:
    root = etree.fromstring(xml)
    for old in root.findall(f"{{{W}}}font[@{{{W}}}name='{family}']"):
        root.remove(old)
    font = etree.SubElement(root, f"{{{W}}}font")
    font.set(f"{{{W}}}name", family)
    # 0x80: the Shift_JIS character set (Japanese); roman: a serif (Mincho-like) design.
    for tag, value in (("charset", "80"), ("family", "roman"), ("pitch", "variable")):
        etree.SubElement(font, f"{{{W}}}{tag}").set(f"{{{W}}}val", value)
    embed = etree.SubElement(font, f"{{{W}}}embedRegular")
    embed.set(f"{{{R}}}id", RELATIONSHIP_ID)
    embed.set(f"{{{W}}}fontKey", "{" + str(key).upper() + "}")
    return _serialise(root)


def _with_embedding_settings(xml: bytes) -> bytes:
    root = etree.fromstring(xml)
    if root.find(f"{{{W}}}embedTrueTypeFonts") is None:
        position = 0
        for index, child in enumerate(root):
            if etree.QName(child).localname in SETTINGS_BEFORE_EMBED:
                position = index + 1
        # Only the characters used are embedded: Word must not offer to edit with it
        # as if the whole face were there (saveSubsetFonts says so).
        root.insert(position, etree.Element(f"{{{W}}}embedTrueTypeFonts"))
        root.insert(position + 1, etree.Element(f"{{{W}}}saveSubsetFonts"))
    return _serialise(root)


def _font_relationships() -> bytes:
    root = etree.Element(
        f"{{{PACKAGE_RELATIONSHIPS}}}Relationships", nsmap={None: PACKAGE_RELATIONSHIPS}
    )
    relationship = etree.SubElement(root, f"{{{PACKAGE_RELATIONSHIPS}}}Relationship")
    relationship.set("Id", RELATIONSHIP_ID)
    relationship.set("Type", FONT_RELATIONSHIP)
    relationship.set("Target", "fonts/font1.odttf")
    return _serialise(root)

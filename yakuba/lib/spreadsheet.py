"""CSV cells that are safe to open in Excel (the ward's spreadsheet of record).

A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a
formula by Excel ("CSV injection"), so exports put an apostrophe in front, which Excel
shows as text; ``from_excel_safe`` takes it off again on import.
"""

from __future__ import annotations

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def excel_safe(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_START) else value


def from_excel_safe(value: str) -> str:
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_START) else value

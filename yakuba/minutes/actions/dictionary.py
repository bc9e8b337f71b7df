"""Writes of the ward dictionary (所属名, 地名, 人名, 用語), and its CSV.

Each action runs in one transaction and writes a ``DICTIONARY_CHANGED`` audit entry;
the process's corrector (``wardwords``) is dropped after commit.  Permission is the
views' business (``access_dictionary_management``).

The CSV (columns 表記, 読み, 種別, 誤認識されやすい表記, 有効) reads like the
directory's (``yakuba.directory.csv_io``): UTF-8 with or without BOM, or
Shift_JIS/CP932; all or nothing, every bad row named with its line.  誤認識されやすい
表記 lists the wrong forms separated by 「;」.  A row whose 表記 and 種別 are already in
the dictionary updates that entry.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from django.db import transaction
from django.utils.translation import gettext as _

from yakuba.audit.models import AuditAction
from yakuba.audit.record import record
from yakuba.directory import csv_io as base
from yakuba.directory.csv_io import CsvRejected, Row, RowError
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.minutes import wardwords
from yakuba.minutes.models import DictionaryEntry

__all__ = [
    "COLUMNS",
    "CsvRejected",
    "DictionaryError",
    "EntryValues",
    "ImportResult",
    "check_import_dictionary",
    "do_change_entry",
    "do_create_entry",
    "do_delete_entry",
    "do_import_entries",
    "do_set_entry_active",
    "export_dictionary",
    "parse_dictionary",
]

COLUMNS = ("表記", "読み", "種別", "誤認識されやすい表記", "有効")
REQUIRED = ("表記", "種別")
MAX_VARIANTS = 50
KIND_BY_LABEL: dict[str, str] = {
    "所属名": DictionaryEntry.Kind.DEPARTMENT,
    "所属": DictionaryEntry.Kind.DEPARTMENT,
    "地名": DictionaryEntry.Kind.PLACE,
    "人名": DictionaryEntry.Kind.PERSON,
    "用語": DictionaryEntry.Kind.TERM,
    **{kind.value: kind.value for kind in DictionaryEntry.Kind},
}
# Written in Japanese whatever the reader's language, so that an export imports again.
KIND_LABEL = {
    DictionaryEntry.Kind.DEPARTMENT: "所属名",
    DictionaryEntry.Kind.PLACE: "地名",
    DictionaryEntry.Kind.PERSON: "人名",
    DictionaryEntry.Kind.TERM: "用語",
}
YES = {"", "1", "○", "〇", "有効", "はい", "true", "yes", "y"}
NO = {"0", "×", "無効", "いいえ", "false", "no", "n"}
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
VARIANT_SEPARATORS = re.compile(r"[;；\n]")


class DictionaryError(ValueError):
    """A refused change: ``message`` for people (Japanese), ``english`` for logs."""

    def __init__(self, message: str, english: str) -> None:
        super().__init__(message)
        self.message = message
        self.english = english


@dataclass(frozen=True)
class EntryValues:
    """An entry as typed, before it is checked (``clean_entry``)."""

    term: str
    kind: str
    reading: str = ""
    variants: tuple[str, ...] = ()
    active: bool = True


@dataclass
class ImportResult:
    created: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def split_variants(text: str) -> tuple[str, ...]:
    """Variants typed one per line or separated by 「;」, blanks and repeats dropped."""
    seen: dict[str, None] = {}
    for part in VARIANT_SEPARATORS.split(text or ""):
        part = unicodedata.normalize("NFC", part.strip())
        if part:
            seen.setdefault(part, None)
    return tuple(seen)


def entry_problems(values: EntryValues) -> list[str]:
    """What is wrong with ``values`` (Japanese, empty when nothing)."""
    problems: list[str] = []
    term = values.term.strip()
    if not term:
        problems.append(_("表記を入力してください。"))
    elif len(term) > 100:
        problems.append(_("表記は100文字以内で入力してください。"))
    if values.kind not in DictionaryEntry.Kind.values:
        problems.append(_("種別は所属名・地名・人名・用語のいずれかを選んでください。"))
    if len(values.reading.strip()) > 200:
        problems.append(_("読みは200文字以内で入力してください。"))
    if len(values.variants) > MAX_VARIANTS:
        problems.append(_("誤認識されやすい表記は%(n)d個までです。") % {"n": MAX_VARIANTS})
    for variant in values.variants:
        if len(variant) > 100:
            problems.append(
                _("誤認識されやすい表記「%(v)s」は100文字以内にしてください。")
                % {"v": variant[:20]}
            )
        if variant == term:
            problems.append(
                _("誤認識されやすい表記に表記そのもの（%(v)s）は入れられません。") % {"v": term}
            )
    if any(CONTROL.search(text) for text in (values.term, values.reading, *values.variants)):
        problems.append(_("改行・タブなどの制御文字は使えません。"))
    return problems


def clean_entry(values: EntryValues) -> EntryValues:
    problems = entry_problems(values)
    if problems:
        raise DictionaryError(" ".join(problems), "invalid dictionary entry")
    return EntryValues(
        term=unicodedata.normalize("NFC", values.term.strip()),
        kind=values.kind,
        reading=values.reading.strip(),
        variants=values.variants,
        active=values.active,
    )


def _snapshot(entry: DictionaryEntry) -> dict[str, object]:
    return {
        "term": entry.term,
        "kind": entry.kind,
        "reading": entry.reading,
        "variants": entry.variant_list(),
        "active": entry.active,
    }


def _check_unique(values: EntryValues, *, but: int | None = None) -> None:
    taken = DictionaryEntry.objects.filter(term=values.term, kind=values.kind)
    if but is not None:
        taken = taken.exclude(pk=but)
    if taken.exists():
        raise DictionaryError(
            _("「%(term)s」（%(kind)s）はすでに辞書にあります。")
            % {"term": values.term, "kind": KIND_LABEL[DictionaryEntry.Kind(values.kind)]},
            "term already in the dictionary",
        )


def _audit(user: User, entry: DictionaryEntry | None, details: dict[str, object]) -> None:
    target = entry if entry is not None else ("minutes.dictionaryentry", "", "辞書")
    record(AuditAction.DICTIONARY_CHANGED, actor=user, target=target, details=details)
    transaction.on_commit(wardwords.invalidate)


def _set(entry: DictionaryEntry, values: EntryValues) -> None:
    entry.term = values.term
    entry.kind = values.kind
    entry.reading = values.reading
    entry.variants = "\n".join(values.variants)
    entry.active = values.active
    entry.updated_at = clock.now()


def do_create_entry(values: EntryValues, *, user: User) -> DictionaryEntry:
    values = clean_entry(values)
    with transaction.atomic():
        _check_unique(values)
        entry = DictionaryEntry()
        _set(entry, values)
        entry.save()
        _audit(user, entry, {"op": "create", "after": _snapshot(entry)})
    return entry


def do_change_entry(entry: DictionaryEntry, values: EntryValues, *, user: User) -> DictionaryEntry:
    values = clean_entry(values)
    with transaction.atomic():
        _check_unique(values, but=entry.pk)
        before = _snapshot(entry)
        _set(entry, values)
        after = _snapshot(entry)
        if before == after:
            return entry
        entry.save()
        _audit(user, entry, {"op": "change", "before": before, "after": after})
    return entry


def do_set_entry_active(entry: DictionaryEntry, *, user: User, active: bool) -> DictionaryEntry:
    """Stop using an entry (or use it again) without losing it."""
    if entry.active == active:
        return entry
    with transaction.atomic():
        entry.active = active
        entry.updated_at = clock.now()
        entry.save(update_fields=["active", "updated_at"])
        _audit(user, entry, {"op": "activate" if active else "deactivate", "term": entry.term})
    return entry


def do_delete_entry(entry: DictionaryEntry, *, user: User) -> None:
    with transaction.atomic():
        before = _snapshot(entry)
        _audit(user, entry, {"op": "delete", "before": before})
        entry.delete()


def do_import_entries(records: Sequence[EntryValues], *, user: User) -> ImportResult:
    """Create or update (by 表記 and 種別) every record, in one transaction."""
    result = ImportResult()
    with transaction.atomic():
        existing = {(e.term, e.kind): e for e in DictionaryEntry.objects.select_for_update()}
        for values in records:
            entry = existing.get((values.term, values.kind))
            if entry is None:
                entry = DictionaryEntry()
                _set(entry, values)
                entry.save()
                existing[(values.term, values.kind)] = entry
                result.created.append(values.term)
                continue
            before = _snapshot(entry)
            _set(entry, values)
            if _snapshot(entry) == before:
                result.unchanged.append(values.term)
            else:
                entry.save()
                result.changed.append(values.term)
        _audit(
            user,
            None,
            {
                "op": "import",
                "created": result.created,
                "changed": result.changed,
                "unchanged": len(result.unchanged),
            },
        )
    return result


# --- CSV -------------------------------------------------------------------------------


def _active(row: Row) -> bool:
    text = unicodedata.normalize("NFKC", row.get("有効")).lower()
    if text in YES:
        return True
    if text in NO:
        return False
    row.error(f"有効は 1（有効）か 0（無効）で入力してください（「{row.get('有効')}」）")
    return True


def _record(row: Row) -> EntryValues | None:
    kind_text = unicodedata.normalize("NFKC", row.get("種別"))
    kind = KIND_BY_LABEL.get(kind_text, "")
    if kind_text and not kind:
        row.error(f"種別「{kind_text}」は所属名・地名・人名・用語のいずれかにしてください")
    values = EntryValues(
        term=row.get("表記"),
        kind=kind,
        reading=row.get("読み"),
        variants=split_variants(row.get("誤認識されやすい表記")),
        active=_active(row),
    )
    if not values.term:
        row.error("表記が入力されていません")
    elif not kind_text:
        row.error("種別が入力されていません")
    elif kind:
        for problem in entry_problems(values):
            row.error(problem.rstrip("。"))
    return None if row.errors else clean_entry(values)


def parse_dictionary(data: bytes, *, encoding: str = "auto") -> list[EntryValues]:
    """Validated entries in file order, or ``CsvRejected`` naming every bad line."""
    rows, errors, _used = base.read_rows(
        data, encoding=encoding, columns=COLUMNS, required=REQUIRED
    )
    records: list[EntryValues] = []
    seen: dict[tuple[str, str], int] = {}
    for row in rows:
        values = _record(row)
        if values is None:
            continue
        key = (values.term, values.kind)
        if key in seen:
            row.error(f"「{values.term}」が{seen[key]}行目と重複しています")
            continue
        seen[key] = row.line
        records.append(values)
    all_errors = errors + [error for row in rows for error in row.errors]
    if not rows and not errors:
        all_errors.append(RowError(2, "辞書の行がありません"))
    if all_errors:
        raise CsvRejected(all_errors)
    return records


def check_import_dictionary(data: bytes, *, user: User, encoding: str = "auto") -> ImportResult:
    """Read a dictionary CSV and import it; ``CsvRejected`` (nothing written) when any
    row is bad, ``ValueError`` for an encoding we do not read."""
    return do_import_entries(parse_dictionary(data, encoding=encoding), user=user)


def export_dictionary(encoding: str = "utf-8-sig") -> bytes:
    """Every entry (inactive too) in the import format; ``CsvExportError`` when a term
    cannot be written in CP932."""

    def rows() -> Iterator[list[str]]:
        for entry in DictionaryEntry.objects.order_by("kind", "reading", "term"):
            yield [
                entry.term,
                entry.reading,
                KIND_LABEL[DictionaryEntry.Kind(entry.kind)],
                ";".join(entry.variant_list()),
                "1" if entry.active else "0",
            ]

    return base._encode(rows(), COLUMNS, encoding)

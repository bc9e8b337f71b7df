"""The room CSV (会議室一覧): import all-or-nothing, export in the same format.

Columns (header names as below; the order is free)::

    建物コード, 建物名, 階, 階数, 会議室コード, 会議室名, 定員, ディスプレイ, プロジェクター,
    Web会議機材, ホワイトボード, 車椅子対応, バリアフリー情報, 予約できる所属, 承認要否,
    利用開始, 利用終了, 予約間隔（分）, 自動解放

予約できる所属 lists 所属コード separated by ``;`` (empty: everyone may book).  Yes/no
columns take 1/0, ○/×, あり/なし, 要/不要, true/false.  Reading, encodings (UTF-8 with or
without BOM, Shift_JIS/CP932) and the error style are those of the directory's CSV
(``yakuba.directory.csv_io``): any bad row rejects the whole file, every bad row reported
with its line number.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterator
from typing import Any

from yakuba.directory import csv_io as base
from yakuba.directory.csv_io import CsvRejected, Row, RowError
from yakuba.directory.models import Department
from yakuba.rooms.actions.booking import ActingUser
from yakuba.rooms.actions.rooms import ImportResult, RoomRecord, do_import_rooms
from yakuba.rooms.models import Room

__all__ = ["COLUMNS", "CsvRejected", "RowError", "check_import_rooms", "export_rooms"]

COLUMNS = (
    "建物コード",
    "建物名",
    "階",
    "階数",
    "会議室コード",
    "会議室名",
    "定員",
    "ディスプレイ",
    "プロジェクター",
    "Web会議機材",
    "ホワイトボード",
    "車椅子対応",
    "バリアフリー情報",
    "予約できる所属",
    "承認要否",
    "利用開始",
    "利用終了",
    "予約間隔（分）",
    "自動解放",
)
REQUIRED = ("建物コード", "階", "会議室コード", "会議室名", "定員")
# Yes/no columns and the Room field each sets.
FLAGS = {
    "ディスプレイ": "has_display",
    "プロジェクター": "has_projector",
    "Web会議機材": "has_web_meeting_kit",
    "ホワイトボード": "has_whiteboard",
    "車椅子対応": "wheelchair_accessible",
    "承認要否": "requires_approval",
    "自動解放": "auto_release",
}
# A flag left empty takes the Room default.
FLAG_DEFAULTS = {"auto_release": True}
YES = {"1", "○", "〇", "◯", "あり", "有", "要", "はい", "true", "yes", "y"}
NO = {"0", "×", "✕", "なし", "無", "不要", "いいえ", "false", "no", "n", "-"}
CODE = re.compile(r"^[0-9A-Za-z_-]+$")
TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
# The directory's reader folds header cells with NFKC, which turns 「（分）」 into 「(分)」:
# these map such spellings back to ours.
HEADER_ALIASES = {"予約間隔(分)": "予約間隔（分）", "WEB会議機材": "Web会議機材"}


def check_import_rooms(
    data: bytes, *, acting_user: ActingUser, encoding: str = "auto"
) -> ImportResult:
    """Check a room CSV and import it (creating buildings and floors as needed, updating
    rooms with a known 会議室コード).  Raises ``CsvRejected`` listing every bad line,
    in which case nothing was written."""
    return do_import_rooms(parse_rooms(data, encoding=encoding), acting_user=acting_user)


def parse_rooms(data: bytes, *, encoding: str = "auto") -> list[RoomRecord]:
    rows, errors, _used = base.read_rows(
        data, encoding=encoding, columns=(*COLUMNS, *HEADER_ALIASES), required=REQUIRED
    )
    known_departments = set(Department.objects.values_list("code", flat=True))
    records: list[RoomRecord] = []
    seen: dict[str, int] = {}
    for row in rows:
        record = _room_row(row, known_departments)
        code = row.get("会議室コード")
        if code and code in seen:
            row.error(f"会議室コード {code} が{seen[code]}行目と重複しています")
        elif code:
            seen[code] = row.line
        if record is not None:
            records.append(record)
    all_errors = errors + [error for row in rows for error in row.errors]
    if not rows and not errors:
        all_errors.append(RowError(2, "会議室の行がありません"))
    if all_errors:
        raise CsvRejected(all_errors)
    return records


def _room_row(row: Row, departments: set[str]) -> RoomRecord | None:
    values = {_canonical(name): value for name, value in row.values.items()}
    row.values = values
    for column in REQUIRED:
        if not row.get(column):
            row.error(f"{column}が入力されていません")
    for column in ("建物コード", "会議室コード"):
        text = row.get(column)
        if text and not CODE.match(text):
            row.error(f"{column}「{text}」は半角英数字・「-」「_」で入力してください")
    for column, limit in (
        ("建物コード", 20),
        ("建物名", 100),
        ("階", 50),
        ("会議室コード", 30),
        ("会議室名", 100),
        ("バリアフリー情報", 200),
    ):
        if len(row.get(column)) > limit:
            row.error(f"{column}は{limit}文字以内で入力してください")
    capacity = _number(row, "定員", minimum=1, default=None)
    level = _number(row, "階数", minimum=-20, default=_level_from(row.get("階")))
    buffer = _number(row, "予約間隔（分）", minimum=0, default=0, maximum=240)
    flags = {
        name: _flag(row, column, FLAG_DEFAULTS.get(name, False)) for column, name in FLAGS.items()
    }
    opens = _time(row, "利用開始", dt.time(8, 30))
    closes = _time(row, "利用終了", dt.time(20, 0))
    if opens is not None and closes is not None and opens >= closes:
        row.error("利用終了は利用開始より後の時刻にしてください")
    codes = tuple(code for code in base._codes(row.get("予約できる所属")))
    for code in codes:
        if code not in departments:
            row.error(f"予約できる所属の所属コード {code} は存在しません")
    if row.errors or capacity is None or opens is None or closes is None:
        return None
    return RoomRecord(
        building_code=row.get("建物コード"),
        building_name=row.get("建物名") or row.get("建物コード"),
        floor_name=row.get("階"),
        floor_level=level if level is not None else 1,
        values={
            "code": row.get("会議室コード"),
            "name": row.get("会議室名"),
            "capacity": capacity,
            "accessibility_note": row.get("バリアフリー情報"),
            "opens_at": opens,
            "closes_at": closes,
            "buffer_minutes": buffer or 0,
            **{name: bool(value) for name, value in flags.items()},
        },
        department_codes=codes,
    )


def _canonical(name: str) -> str:
    return HEADER_ALIASES.get(name, name)


def _level_from(floor: str) -> int | None:
    """「3階」→ 3, 「地下1階」→ -1, 「B1」→ -1 (a default for an empty 階数)."""
    text = unicodedata.normalize("NFKC", floor)
    match = re.search(r"(\d+)", text)
    if match is None:
        return None
    number = int(match.group(1))
    return -number if ("地下" in text or text.upper().startswith("B")) else number


def _number(
    row: Row, column: str, *, minimum: int, default: int | None, maximum: int = 100000
) -> int | None:
    text = unicodedata.normalize("NFKC", row.get(column))
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        row.error(f"{column}「{row.get(column)}」は整数で入力してください")
        return None
    if not minimum <= value <= maximum:
        row.error(f"{column}は{minimum}以上{maximum}以下で入力してください")
        return None
    return value


def _flag(row: Row, column: str, default: bool) -> bool | None:
    text = unicodedata.normalize("NFKC", row.get(column)).lower()
    if not text:
        return default
    if text in YES or row.get(column) in YES:
        return True
    if text in NO or row.get(column) in NO:
        return False
    row.error(f"{column}「{row.get(column)}」は 1/0、○/×、あり/なし のいずれかで入力してください")
    return None


def _time(row: Row, column: str, default: dt.time) -> dt.time | None:
    text = unicodedata.normalize("NFKC", row.get(column))
    if not text:
        return default
    match = TIME.match(text)
    if match is None or int(match.group(1)) > 24 or int(match.group(2)) > 59:
        row.error(f"{column}「{row.get(column)}」は 8:30 のような時刻で入力してください")
        return None
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour == 24:
        if minute:
            row.error(f"{column}「{row.get(column)}」は 24:00 までの時刻で入力してください")
            return None
        return dt.time(23, 59)
    return dt.time(hour, minute)


# --- export ------------------------------------------------------------------------------


def export_rooms(encoding: str = "utf-8-sig") -> bytes:
    """Every room in the import format, so that export → import changes nothing."""
    rooms = Room.objects.select_related("floor__building").prefetch_related("allowed_departments")

    def yes(value: bool) -> str:
        return "1" if value else "0"

    def rows() -> Iterator[list[str]]:
        for room in rooms:
            codes = ";".join(sorted(d.code for d in room.allowed_departments.all()))
            values: dict[str, Any] = {
                "建物コード": room.floor.building.code,
                "建物名": room.floor.building.name,
                "階": room.floor.name,
                "階数": str(room.floor.level),
                "会議室コード": room.code,
                "会議室名": room.name,
                "定員": str(room.capacity),
                "バリアフリー情報": room.accessibility_note,
                "予約できる所属": "" if room.open_to_all else codes,
                "利用開始": f"{room.opens_at:%H:%M}",
                "利用終了": f"{room.closes_at:%H:%M}",
                "予約間隔（分）": str(room.buffer_minutes),
                **{column: yes(getattr(room, name)) for column, name in FLAGS.items()},
            }
            yield [values[column] for column in COLUMNS]

    return base._encode(rows(), COLUMNS, encoding)

"""CSV files of departments (所属), staff (職員) and personnel transfers (人事異動).

Reading is all-or-nothing: ``parse_*`` returns records only when every row is valid,
otherwise it raises ``CsvRejected`` listing every bad row with its line number, in
Japanese ("12行目: 所属コード 999 は存在しません").  Nothing here writes the database;
the actions in ``yakuba.directory.actions.staff`` do, inside one transaction.

Files are UTF-8 (with or without BOM) or Shift_JIS/CP932, detected automatically unless
the caller names the encoding.  Bytes that the encoding cannot read are reported as an
error on their line, never a crash.

Formula injection: a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return is one that Excel may run as a formula when the file is opened.  Exports write such
a cell with a leading apostrophe (``'=SUM(A1)``), which Excel shows as text; imports drop
an apostrophe in front of one of those characters again, so an export round-trips.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from yakuba.directory.models import Department, StaffProfile, User
from yakuba.lib.spreadsheet import excel_safe, from_excel_safe

# Names people type for the encodings we read.  Shift_JIS means CP932 in practice: Excel
# on Windows writes CP932 (Shift_JIS plus NEC/IBM extensions such as ① and 髙).
ENCODINGS = {
    "auto": "auto",
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "utf-8-sig": "utf-8-sig",
    "cp932": "cp932",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "ms932": "cp932",
    "windows-31j": "cp932",
}
EXPORT_ENCODINGS = {"utf-8-sig": "utf-8-sig", "utf-8": "utf-8-sig", "cp932": "cp932"}
EXPORT_ENCODINGS.update({name: "cp932" for name, value in ENCODINGS.items() if value == "cp932"})

DEPARTMENT_COLUMNS = ("所属コード", "所属名", "所属名かな", "階層", "上位所属コード", "表示順")
DEPARTMENT_REQUIRED = ("所属コード", "所属名", "階層")
STAFF_COLUMNS = (
    "職員番号",
    "姓",
    "名",
    "姓かな",
    "名かな",
    "所属コード",
    "役職",
    "内線",
    "メールアドレス",
    "兼務所属コード",
    "在職状況",
    "退職日",
    "ユーザー名",
)
STAFF_REQUIRED = ("職員番号", "姓", "名", "姓かな", "名かな", "所属コード")
TRANSFER_COLUMNS = ("職員番号", "異動後所属コード", "異動後役職", "兼務所属コード", "退職")
TRANSFER_REQUIRED = ("職員番号",)
# Other spellings people use in headers, after ``_header_name`` has normalised them
# (NFKC: full-width brackets and letters become ASCII; spaces removed).
HEADER_ALIASES = {
    "階層(部/課/係)": "階層",
    "メール": "メールアドレス",
    "Eメール": "メールアドレス",
    "兼務": "兼務所属コード",
    "所属": "所属コード",
    "所属名(かな)": "所属名かな",
    "所属名(ふりがな)": "所属名かな",
    # The admin pages label these 姓（ふりがな） and 名（ふりがな）.
    "姓(ふりがな)": "姓かな",
    "名(ふりがな)": "名かな",
    "姓(かな)": "姓かな",
    "名(かな)": "名かな",
    "姓ふりがな": "姓かな",
    "名ふりがな": "名かな",
    "姓カナ": "姓かな",
    "名カナ": "名かな",
}

LEVEL_BY_LABEL = {
    "部": Department.Level.BU,
    "課": Department.Level.KA,
    "係": Department.Level.KAKARI,
    "bu": Department.Level.BU,
    "ka": Department.Level.KA,
    "kakari": Department.Level.KAKARI,
}
LEVEL_LABEL = {Department.Level.BU: "部", Department.Level.KA: "課", Department.Level.KAKARI: "係"}
LEVEL_RANK = {Department.Level.BU: 0, Department.Level.KA: 1, Department.Level.KAKARI: 2}
STATUS_BY_LABEL = {
    "": StaffProfile.Status.ACTIVE,
    "在職": StaffProfile.Status.ACTIVE,
    "退職": StaffProfile.Status.RETIRED,
}
# Exports write the Japanese label whatever the reader's language, so that a file
# exported by an English-speaking administrator imports again.
STATUS_LABEL = {status: label for label, status in STATUS_BY_LABEL.items() if label}
YES = {"退職", "1", "○", "〇", "はい", "true", "yes", "y"}
NO = {"", "0", "いいえ", "false", "no", "n"}

CODE = re.compile(r"^[0-9A-Za-z_-]+$")
EXTENSION = re.compile(r"^[0-9-]*$")
USERNAME = re.compile(r"^[\w.@+-]+$")
# Hiragana, katakana, the long-vowel mark, middle dot and spaces (full and half width).
KANA = re.compile(r"^[\u3041-\u3096\u309d-\u309f\u30a1-\u30fa\u30fc-\u30ff\u3000 ・]+$")
KATAKANA = re.compile(r"[\u30a1-\u30f6]")
# Columns read after NFKC normalisation: personnel systems and hand-typed files give
# half-width katakana (ﾔﾏﾀﾞ) and full-width digits (２１１１).  Names are left as typed:
# NFKC would turn ㈱ into (株) and ① into 1.
NORMALISED_COLUMNS = frozenset(
    {
        "職員番号",
        "姓かな",
        "名かな",
        "所属コード",
        "上位所属コード",
        "兼務所属コード",
        "異動後所属コード",
        "内線",
        "メールアドレス",
        "表示順",
        "退職日",
        "ユーザー名",
    }
)
# Control characters (NUL, tab, line breaks inside a quoted cell, …) belong in no field, and
# PostgreSQL refuses NUL outright.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def to_hiragana(text: str) -> str:
    """カタカナ → ひらがな: ふりがな are stored in hiragana so that search finds either."""
    return KATAKANA.sub(lambda match: chr(ord(match.group()) - 0x60), text)


@dataclass(frozen=True)
class RowError:
    """One problem on one line of a file (line 1 is the header)."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.line}行目: {self.message}"


class CsvRejected(Exception):
    """The file has bad rows; nothing was imported.  ``errors`` lists every one."""

    def __init__(self, errors: Sequence[RowError]) -> None:
        self.errors = sorted(errors, key=lambda error: error.line)
        super().__init__("\n".join(str(error) for error in self.errors))


class CsvExportError(Exception):
    """The data cannot be written in the requested encoding."""


@dataclass(frozen=True)
class DepartmentRecord:
    code: str
    name: str
    kana: str
    level: str
    parent_code: str
    sort_order: int


@dataclass(frozen=True)
class StaffRecord:
    employee_number: str
    family_name: str
    given_name: str
    family_kana: str
    given_kana: str
    department_code: str
    title: str = ""
    extension: str = ""
    email: str = ""
    # None: the file had no 兼務 column, so existing 兼務 are kept.
    concurrent_codes: tuple[str, ...] | None = ()
    status: str = StaffProfile.Status.ACTIVE
    retired_on: dt.date | None = None
    # None: username = 職員番号 for a new person; an existing person keeps theirs.
    username: str | None = None


@dataclass(frozen=True)
class TransferRecord:
    employee_number: str
    new_department_code: str
    new_title: str
    concurrent_codes: tuple[str, ...]
    retire: bool


@dataclass
class Row:
    """One CSV record: the line it starts on and its values by (normalised) header."""

    line: int
    values: dict[str, str]
    errors: list[RowError] = field(default_factory=list)

    def get(self, column: str) -> str:
        return self.values.get(column, "").strip()

    def error(self, message: str) -> None:
        self.errors.append(RowError(self.line, message))


# --- Decoding ----------------------------------------------------------------------


def _split_lines(data: bytes) -> list[bytes]:
    # Neither UTF-8 nor CP932 ever uses 0x0A/0x0D inside a multi-byte character, so
    # splitting the raw bytes into lines is safe before decoding.
    return data.splitlines(keepends=True)


def _decode(lines: list[bytes], encoding: str) -> tuple[list[str], list[int]]:
    """Decoded lines (bad bytes replaced) and the 1-based numbers of the bad lines."""
    text: list[str] = []
    bad: list[int] = []
    for number, raw in enumerate(lines, start=1):
        try:
            text.append(raw.decode(encoding))
        except UnicodeDecodeError:
            bad.append(number)
            text.append(raw.decode(encoding, errors="replace"))
    return text, bad


def decode(data: bytes, encoding: str = "auto") -> tuple[list[str], list[RowError], str]:
    """The file's lines, an error for each line with unreadable bytes, and the encoding
    used.  ``auto`` reads a BOM as UTF-8; otherwise it picks whichever of UTF-8 and CP932
    reads more lines (UTF-8 on a tie)."""
    chosen = ENCODINGS.get(encoding.lower())
    if chosen is None:
        names = ", ".join(sorted({"auto", "utf-8", "cp932", "shift_jis"}))
        raise ValueError(f"文字コード {encoding} は扱えません（{names} のいずれか）。")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        # Excel's「Unicode テキスト」: tab-separated UTF-16, which we do not read.
        message = (
            "UTF-16 のファイルは読めません。Excel では「CSV UTF-8（コンマ区切り）」か"
            "「CSV（コンマ区切り）」で保存してください"
        )
        return [], [RowError(1, message)], "utf-16"
    if data.startswith(b"\xef\xbb\xbf") and chosen in {"auto", "utf-8"}:
        chosen = "utf-8-sig"
    lines = _split_lines(data)
    if chosen == "auto":
        utf8_text, utf8_bad = _decode(lines, "utf-8")
        cp932_text, cp932_bad = _decode(lines, "cp932")
        if len(cp932_bad) < len(utf8_bad):
            chosen, text, bad = "cp932", cp932_text, cp932_bad
        else:
            chosen, text, bad = "utf-8", utf8_text, utf8_bad
    else:
        # utf-8-sig strips the BOM only at the start of the data, i.e. from the first line.
        text, bad = _decode(lines, chosen)
    label = "Shift_JIS（CP932）として" if chosen == "cp932" else "UTF-8 として"
    errors = [
        RowError(n, f"文字コードが正しくありません（{label}読めない文字があります）") for n in bad
    ]
    return text, errors, chosen


# --- Rows ----------------------------------------------------------------------------


def read_rows(
    data: bytes, *, encoding: str, columns: Sequence[str], required: Sequence[str]
) -> tuple[list[Row], list[RowError], str]:
    """Split the file into rows keyed by header.  Returns the rows, the file-level
    errors (encoding, header, column counts) and the encoding used."""
    lines, errors, used = decode(data, encoding)
    if not lines and errors:
        return [], errors, used
    bad_lines = {error.line for error in errors}
    reader = csv.reader(lines)
    rows: list[Row] = []
    try:
        header = next(reader)
    except StopIteration:
        return [], [RowError(1, "ファイルが空です（見出し行がありません）")], used
    except csv.Error as exc:
        return [], [*errors, RowError(1, f"CSVとして読めません（{exc}）")], used
    names = [_header_name(name) for name in header]
    if not any(names):
        return [], [*errors, RowError(1, "ファイルが空です（見出し行がありません）")], used
    header_errors = [
        RowError(1, f"必須の列「{column}」が見出し行にありません")
        for column in required
        if column not in names
    ]
    duplicates = sorted({name for name in names if name and names.count(name) > 1})
    header_errors += [
        RowError(1, f"列「{name}」が見出し行に2回以上あります") for name in duplicates
    ]
    if header_errors:
        # Without a usable header no row can be read; say so once instead of per row.
        return [], errors + header_errors, used
    known = set(columns)
    previous_end = reader.line_num
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(RowError(previous_end + 1, f"CSVとして読めません（{exc}）"))
            break
        start, previous_end = previous_end + 1, reader.line_num
        if not any(value.strip() for value in values):
            continue
        if set(range(start, previous_end + 1)) & bad_lines:
            continue  # already reported as an encoding error
        if len(values) != len(names):
            # A quote left open swallows the following lines into one cell.
            hint = '。「"」が閉じられていない可能性があります' if previous_end > start else ""
            errors.append(
                RowError(
                    start,
                    f"列の数が見出し行と合いません"
                    f"（見出し {len(names)} 列、この行 {len(values)} 列）{hint}",
                )
            )
            continue
        row = Row(
            start,
            {n: _from_cell(n, v) for n, v in zip(names, values, strict=True) if n in known},
        )
        for column, value in row.values.items():
            if CONTROL.search(value.strip()):
                row.error(f"{column}に改行・タブなどの制御文字が含まれています")
        rows.append(row)
    return rows, errors, used


def _header_name(text: str) -> str:
    """A header cell in its canonical spelling: 「姓（ふりがな）」→「姓かな」."""
    name = re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))
    return HEADER_ALIASES.get(name, name)


def _from_cell(column: str, value: str) -> str:
    """A cell as read: the apostrophe an export put before a formula character dropped,
    and codes and ふりがな in their normal width."""
    value = from_excel_safe(value)
    if column in NORMALISED_COLUMNS:
        value = unicodedata.normalize("NFKC", value)
    return value


def _codes(text: str) -> list[str]:
    return [code.strip() for code in re.split(r"[;；]", text) if code.strip()]


def _date(text: str) -> dt.date | None:
    for pattern in ("%Y-%m-%d", "%Y/%m/%d"):
        try:
            return dt.datetime.strptime(text, pattern).date()  # noqa: DTZ007 (a date, no time)
        except ValueError:
            continue
    raise ValueError(text)


def _check_required(row: Row, columns: Iterable[str]) -> None:
    for column in columns:
        if not row.get(column):
            row.error(f"{column}が入力されていません")


def _check_length(row: Row, column: str, limit: int) -> None:
    if len(row.get(column)) > limit:
        row.error(f"{column}は{limit}文字以内で入力してください")


def _check_duplicates(rows: list[Row], column: str, label: str) -> None:
    first_line: dict[str, int] = {}
    for row in rows:
        key = row.get(column)
        if not key:
            continue
        if key in first_line:
            row.error(f"{label} {key} が{first_line[key]}行目と重複しています")
        else:
            first_line[key] = row.line


def _reject_if_errors(rows: list[Row], errors: list[RowError]) -> None:
    errors = errors + [error for row in rows for error in row.errors]
    if errors:
        raise CsvRejected(errors)


# --- Departments ----------------------------------------------------------------------


def parse_departments(data: bytes, *, encoding: str = "auto") -> list[DepartmentRecord]:
    """Validated department records in file order, or ``CsvRejected``."""
    rows, errors, _ = read_rows(
        data, encoding=encoding, columns=DEPARTMENT_COLUMNS, required=DEPARTMENT_REQUIRED
    )
    existing = dict(Department.objects.values_list("code", "level"))
    in_file = {row.get("所属コード"): row for row in rows}
    _check_duplicates(rows, "所属コード", "所属コード")
    records = []
    for row in rows:
        _check_required(row, DEPARTMENT_REQUIRED)
        code = row.get("所属コード")
        if code and (not CODE.match(code) or len(code) > 20):
            row.error(f"所属コード {code} は20文字以内の半角英数字で入力してください")
        _check_length(row, "所属名", 100)
        _check_length(row, "所属名かな", 200)
        level = LEVEL_BY_LABEL.get(row.get("階層"))
        if row.get("階層") and level is None:
            row.error(f"階層「{row.get('階層')}」は 部・課・係 のいずれかで入力してください")
        parent_code = row.get("上位所属コード")
        _check_parent(row, code, level, parent_code, existing, in_file)
        order_text = row.get("表示順") or "0"
        # isdecimal, not isdigit (int() refuses "²" and the like); nine digits fit the column.
        if not order_text.isdecimal() or len(order_text) > 9:
            row.error(f"表示順「{order_text}」は9桁までの0以上の整数で入力してください")
        if not row.errors and level is not None:
            records.append(
                DepartmentRecord(
                    code=code,
                    name=row.get("所属名"),
                    kana=row.get("所属名かな"),
                    level=level,
                    parent_code=parent_code,
                    sort_order=int(order_text),
                )
            )
    _check_children_stay_below(records, in_file)
    _reject_if_errors(rows, errors)
    return records


def _check_children_stay_below(records: list[DepartmentRecord], in_file: dict[str, Row]) -> None:
    """A row that lowers a department's 階層 must not leave a department that is not in
    the file (and so keeps its parent) on the same level or above it."""
    changed_level = {record.code: record.level for record in records}
    children = Department.objects.filter(parent__code__in=list(changed_level)).exclude(
        code__in=list(in_file)
    )
    for code, level, parent_code in children.values_list("code", "level", "parent__code"):
        parent_level = Department.Level(changed_level[parent_code])
        if LEVEL_RANK[parent_level] >= LEVEL_RANK[Department.Level(level)]:
            in_file[parent_code].error(
                f"下位所属 {code}（{LEVEL_LABEL[Department.Level(level)]}）があるため、"
                f"{LEVEL_LABEL[parent_level]}にできません"
            )


def _check_parent(
    row: Row,
    code: str,
    level: str | None,
    parent_code: str,
    existing: dict[str, str],
    in_file: dict[str, Row],
) -> None:
    if level is None:
        return
    if level == Department.Level.BU:
        if parent_code:
            row.error("部には上位所属コードを指定できません")
        return
    if not parent_code:
        row.error(f"{LEVEL_LABEL[Department.Level(level)]}には上位所属コードが必要です")
        return
    if parent_code == code:
        row.error("上位所属コードに自分自身は指定できません")
        return
    if parent_code in in_file:
        parent_level = LEVEL_BY_LABEL.get(in_file[parent_code].get("階層"))
    elif parent_code in existing:
        parent_level = Department.Level(existing[parent_code])
    else:
        row.error(f"上位所属コード {parent_code} は存在しません")
        return
    # A parent always sits on a higher level, which also rules out cycles.
    if parent_level is not None and LEVEL_RANK[parent_level] >= LEVEL_RANK[Department.Level(level)]:
        row.error(
            f"上位所属 {parent_code} は{LEVEL_LABEL[Department.Level(parent_level)]}のため、"
            f"{LEVEL_LABEL[Department.Level(level)]}の上位にできません"
        )


# --- Staff ------------------------------------------------------------------------------


def parse_staff(data: bytes, *, encoding: str = "auto") -> list[StaffRecord]:
    """Validated staff records in file order, or ``CsvRejected``."""
    rows, errors, _ = read_rows(
        data, encoding=encoding, columns=STAFF_COLUMNS, required=STAFF_REQUIRED
    )
    has_concurrent = any("兼務所属コード" in row.values for row in rows)
    departments = set(Department.objects.values_list("code", flat=True))
    # Usernames already taken, and by which 職員番号 (None for guests and bots).
    taken: dict[str, str | None] = dict(
        User.objects.values_list("username", "staff__employee_number")
    )
    _check_duplicates(rows, "職員番号", "職員番号")
    existing = {number for number in taken.values() if number}
    for row in rows:
        # The username each row ends up with: a new person without ユーザー名 gets the
        # 職員番号, so two rows can collide without sharing a ユーザー名 cell.
        if row.errors:  # a repeated 職員番号 is reported once, as such
            row.values["ユーザー名(実際)"] = ""
        elif not row.get("ユーザー名") and row.get("職員番号") not in existing:
            row.values["ユーザー名(実際)"] = row.get("職員番号")
        else:
            row.values["ユーザー名(実際)"] = row.get("ユーザー名")
    _check_duplicates(rows, "ユーザー名(実際)", "ユーザー名")
    records = []
    for row in rows:
        record = _staff_row(row, departments, taken, existing, has_concurrent)
        if record is not None and not row.errors:
            records.append(record)
    _reject_if_errors(rows, errors)
    return records


def _staff_row(
    row: Row,
    departments: set[str],
    taken: dict[str, str | None],
    existing: set[str],
    has_concurrent: bool,
) -> StaffRecord | None:
    """One staff row checked against the database: ``taken`` maps usernames in use to
    their 職員番号 (None for guests and bots); ``existing`` holds the known 職員番号."""
    _check_required(row, STAFF_REQUIRED)
    number = row.get("職員番号")
    if number and (not CODE.match(number) or len(number) > 20):
        row.error(f"職員番号 {number} は20文字以内の半角英数字で入力してください")
    for column, limit in (("姓", 50), ("名", 50), ("姓かな", 100), ("名かな", 100), ("役職", 50)):
        _check_length(row, column, limit)
    for column in ("姓かな", "名かな"):
        if row.get(column) and not KANA.match(row.get(column)):
            row.error(f"{column}「{row.get(column)}」はひらがなかカタカナで入力してください")
    code = row.get("所属コード")
    if code and code not in departments:
        row.error(f"所属コード {code} は存在しません")
    concurrent = _codes(row.get("兼務所属コード"))
    for other in concurrent:
        if other not in departments:
            row.error(f"兼務所属コード {other} は存在しません")
        elif other == code:
            row.error(f"兼務所属コード {other} は本務の所属と同じです")
    if len(set(concurrent)) != len(concurrent):
        row.error("兼務所属コードに同じ所属が2回以上あります")
    extension = row.get("内線")
    if not EXTENSION.match(extension) or len(extension) > 20:
        row.error(f"内線「{extension}」は20文字以内の数字とハイフンで入力してください")
    email = row.get("メールアドレス")
    if len(email) > 254:  # EmailField's max_length; PostgreSQL would refuse it
        row.error("メールアドレスは254文字以内で入力してください")
    elif email:
        try:
            validate_email(email)
        except ValidationError:
            row.error(f"メールアドレス「{email}」の形式が正しくありません")
    status = STATUS_BY_LABEL.get(row.get("在職状況"))
    if status is None:
        row.error(f"在職状況「{row.get('在職状況')}」は 在職 か 退職 で入力してください")
    retired_on = _retired_on(row, status)
    username = row.get("ユーザー名") or None
    if username is not None:
        if not USERNAME.match(username) or len(username) > 150:
            row.error(f"ユーザー名「{username}」に使えない文字があります")
        elif username in taken and taken[username] != number:
            row.error(f"ユーザー名 {username} は他の利用者が使っています")
    elif number not in existing and number in taken:
        # A new person would get their 職員番号 as username, but someone has it.
        row.error(f"ユーザー名 {number}（職員番号）は他の利用者が使っています")
    if row.errors or status is None:
        return None
    return StaffRecord(
        employee_number=number,
        family_name=row.get("姓"),
        given_name=row.get("名"),
        family_kana=to_hiragana(row.get("姓かな")),
        given_kana=to_hiragana(row.get("名かな")),
        department_code=code,
        title=row.get("役職"),
        extension=extension,
        email=email,
        concurrent_codes=tuple(concurrent) if has_concurrent else None,
        status=status,
        retired_on=retired_on,
        username=username,
    )


def _retired_on(row: Row, status: str | None) -> dt.date | None:
    text = row.get("退職日")
    if not text:
        return None
    if status != StaffProfile.Status.RETIRED:
        row.error("退職日は在職状況が「退職」のときだけ入力します")
        return None
    try:
        return _date(text)
    except ValueError:
        row.error(f"退職日「{text}」は 2025-03-31 の形式で入力してください")
        return None


# --- Transfers ----------------------------------------------------------------------------


def parse_transfers(data: bytes, *, encoding: str = "auto") -> list[TransferRecord]:
    """Validated transfer records, or ``CsvRejected``.  A blank 兼務所属コード means the
    person holds no 兼務 after the transfer (兼務 are issued afresh with each 発令)."""
    rows, errors, _ = read_rows(
        data, encoding=encoding, columns=TRANSFER_COLUMNS, required=TRANSFER_REQUIRED
    )
    departments = set(Department.objects.values_list("code", flat=True))
    staff = dict(
        StaffProfile.objects.values_list("employee_number", "department__code").filter(
            status=StaffProfile.Status.ACTIVE
        )
    )
    retired = set(
        StaffProfile.objects.filter(status=StaffProfile.Status.RETIRED).values_list(
            "employee_number", flat=True
        )
    )
    _check_duplicates(rows, "職員番号", "職員番号")
    records = []
    for row in rows:
        record = _transfer_row(row, departments, staff, retired)
        if record is not None and not row.errors:
            records.append(record)
    _reject_if_errors(rows, errors)
    return records


def _transfer_row(
    row: Row, departments: set[str], staff: dict[str, str], retired: set[str]
) -> TransferRecord | None:
    _check_required(row, TRANSFER_REQUIRED)
    number = row.get("職員番号")
    if number in retired:
        row.error(f"職員番号 {number} の職員は既に退職しています")
    elif number and number not in staff:
        row.error(f"職員番号 {number} の職員は存在しません")
    code = row.get("異動後所属コード")
    if code and code not in departments:
        row.error(f"異動後所属コード {code} は存在しません")
    _check_length(row, "異動後役職", 50)
    retire_text = row.get("退職").lower()
    if retire_text not in YES | NO:
        row.error(f"退職「{row.get('退職')}」は 空欄 か「退職」で入力してください")
    retire = retire_text in YES
    if retire and code:
        row.error("退職する職員には異動後所属コードを指定できません")
    primary = code or staff.get(number, "")
    concurrent = _codes(row.get("兼務所属コード"))
    for other in concurrent:
        if other not in departments:
            row.error(f"兼務所属コード {other} は存在しません")
        elif other == primary:
            row.error(f"兼務所属コード {other} は異動後の本務の所属と同じです")
    if row.errors:
        return None
    return TransferRecord(
        employee_number=number,
        new_department_code=code,
        new_title=row.get("異動後役職"),
        concurrent_codes=tuple(dict.fromkeys(concurrent)),
        retire=retire,
    )


# --- Export ----------------------------------------------------------------------------------


def _encode(rows: Iterator[list[str]], header: Sequence[str], encoding: str) -> bytes:
    """CSV bytes with CRLF line ends (what Excel writes and expects)."""
    codec = EXPORT_ENCODINGS.get(encoding.lower())
    if codec is None:
        raise CsvExportError(f"文字コード {encoding} では出力できません（utf-8 か cp932）。")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    problems = []
    for number, values in enumerate(rows, start=2):
        writer.writerow([excel_safe(value) for value in values])
        if codec == "cp932":
            try:
                "".join(values).encode("cp932")
            except UnicodeEncodeError as exc:
                bad = exc.object[exc.start : exc.end]
                problems.append(f"{number}行目: 「{bad}」は Shift_JIS（CP932）で表せません")
    if problems:
        raise CsvExportError("\n".join(problems))
    return buffer.getvalue().encode(codec)


def export_departments(encoding: str = "utf-8-sig") -> bytes:
    """All departments, parents before children, in the import format."""
    departments = list(Department.objects.select_related("parent"))
    ordered = sorted(departments, key=lambda d: (LEVEL_RANK[Department.Level(d.level)],))

    def rows() -> Iterator[list[str]]:
        for department in ordered:
            yield [
                department.code,
                department.name,
                department.kana,
                LEVEL_LABEL[Department.Level(department.level)],
                department.parent.code if department.parent else "",
                str(department.sort_order),
            ]

    return _encode(rows(), DEPARTMENT_COLUMNS, encoding)


def export_staff(encoding: str = "utf-8-sig") -> bytes:
    """All staff (retired too) in the import format, so that export→import round-trips."""
    profiles = StaffProfile.objects.select_related("user", "department").prefetch_related(
        "concurrent_posts__department"
    )

    def rows() -> Iterator[list[str]]:
        for staff in profiles.order_by("employee_number"):
            concurrent = sorted(post.department.code for post in staff.concurrent_posts.all())
            yield [
                staff.employee_number,
                staff.family_name,
                staff.given_name,
                staff.family_kana,
                staff.given_kana,
                staff.department.code,
                staff.title,
                staff.extension,
                staff.email,
                ";".join(concurrent),
                STATUS_LABEL[StaffProfile.Status(staff.status)],
                staff.retired_on.isoformat() if staff.retired_on else "",
                staff.user.username,
            ]

    return _encode(rows(), STAFF_COLUMNS, encoding)

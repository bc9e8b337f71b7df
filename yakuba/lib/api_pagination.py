"""Cursor pagination for the JSON API: ``{"items": [...], "next_cursor": "..." | null}``.

Keyset pagination, not offsets: the cursor holds the ordering values of the last item
sent, and the next page is "rows after those values".  A row inserted or deleted
between two requests therefore never makes an item appear twice or go missing (an
inserted row shows up if it sorts after the cursor, and never shifts the others).

The ordering must be total: ``paginate`` appends ``pk`` so that equal values still
have one order.  The cursor is opaque to clients (URL-safe base64 of a small JSON
document that also names the ordering, so a cursor from another list is refused).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Model, Q, QuerySet

from yakuba.lib.api_errors import ApiError

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class Page(Generic[M]):
    items: list[M]
    next_cursor: str | None


def paginate(
    queryset: QuerySet[M],
    *,
    ordering: Sequence[str],
    cursor: str | None,
    limit: int | None,
    max_limit: int = MAX_LIMIT,
) -> Page[M]:
    """One page of ``queryset`` in ``ordering`` (ascending field names), after ``cursor``.

    ``limit`` defaults to ``DEFAULT_LIMIT`` and is capped at ``max_limit``.  A cursor that
    cannot be decoded, or that was made for another ordering, answers 422 with the
    field ``cursor``.  Costs one query.
    """
    fields = [*ordering, "pk"] if "pk" not in ordering else list(ordering)
    size = max(1, min(limit or DEFAULT_LIMIT, max_limit))
    rows = queryset.order_by(*fields)
    if cursor:
        values = decode_cursor(cursor, fields)
        try:
            rows = rows.filter(_after(fields, values))
            page = list(rows[: size + 1])
        except (ValueError, TypeError, OverflowError, DjangoValidationError) as exc:
            # A hand-made cursor whose values do not fit the fields' types (or a date
            # out of range once shifted to UTC).
            raise _bad_cursor() from exc
    else:
        page = list(rows[: size + 1])
    if len(page) <= size:
        return Page(items=page, next_cursor=None)
    page = page[:size]
    return Page(items=page, next_cursor=encode_cursor(fields, _values(page[-1], fields)))


def encode_cursor(fields: Sequence[str], values: Sequence[Any]) -> str:
    document = json.dumps({"o": list(fields), "v": list(values)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(document.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, fields: Sequence[str]) -> list[Any]:
    """The ordering values in ``cursor``; ``ApiError`` (422) if it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        document = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        values = document["v"]
        valid = document["o"] == list(fields) and len(values) == len(fields)
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeError):
        valid = False
    if not valid:
        raise _bad_cursor()
    return list(values)


def _bad_cursor() -> ApiError:
    return ApiError(
        "validation_error",
        fields={"cursor": ["カーソルが正しくありません。最初のページから取得し直してください。"]},
    )


def _after(fields: Sequence[str], values: Sequence[Any]) -> Q:
    """Rows strictly after ``values`` in lexicographic order of ``fields``:
    (a > x) OR (a = x AND b > y) OR (a = x AND b = y AND c > z) …"""
    condition = Q()
    for index, field in enumerate(fields):
        step = Q(**{f"{field}__gt": values[index]})
        for previous, value in zip(fields[:index], values[:index], strict=True):
            step &= Q(**{previous: value})
        condition |= step
    return condition


def _values(row: Model, fields: Sequence[str]) -> list[Any]:
    values: list[Any] = []
    for field in fields:
        value: Any = row
        for part in field.split("__"):
            value = getattr(value, part)
        if isinstance(value, Model):
            value = value.pk
        elif hasattr(value, "isoformat"):
            value = value.isoformat()
        values.append(value)
    return values

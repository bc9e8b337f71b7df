"""Loading the list of 祝日 and 休庁日 (``yakuba.rooms.holidays`` reads it).

A file replaces the holidays of the years it covers, and only those: importing next
year's list keeps this year's, and a date dropped from a year's list (a corrected
equinox) disappears.  All rows or none: ``parse_holidays_csv`` refuses a file with any
bad line before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction

from yakuba.audit.models import AuditAction
from yakuba.audit.record import Actor, record
from yakuba.directory.models import User
from yakuba.rooms.holidays import HolidayRow, parse_holidays_csv
from yakuba.rooms.models import Holiday


@dataclass(frozen=True)
class HolidayImport:
    years: list[int]
    created: int
    changed: int
    removed: int
    unchanged: int


def check_import_holidays(
    data: bytes, *, encoding: str = "auto", file_name: str = "", acting_user: User | Actor
) -> HolidayImport:
    """Read a holiday CSV and load it (``CsvRejected`` lists every bad line; ``ValueError``
    for an unknown encoding).  The caller checked the permission (facility managers,
    ``access_facility_management``)."""
    rows = parse_holidays_csv(data, encoding=encoding)
    return do_import_holidays(rows, acting_user=acting_user, file_name=file_name)


def do_import_holidays(
    rows: Sequence[HolidayRow], *, acting_user: User | Actor, file_name: str = ""
) -> HolidayImport:
    """Replace the holidays of the years in ``rows`` with ``rows``, in one transaction,
    audited as ``HOLIDAYS_CHANGED`` with every date added, renamed or removed."""
    years = sorted({row.date.year for row in rows})
    wanted = {row.date: row.name for row in rows}
    with transaction.atomic():
        existing = {
            holiday.date: holiday
            for holiday in Holiday.objects.select_for_update().filter(date__year__in=years)
        }
        removed = sorted(day for day in existing if day not in wanted)
        Holiday.objects.filter(date__in=removed).delete()
        created, changed = [], []
        for day, name in sorted(wanted.items()):
            holiday = existing.get(day)
            if holiday is None:
                created.append(Holiday(date=day, name=name))
            elif holiday.name != name:
                holiday.name = name
                holiday.save(update_fields=["name"])
                changed.append(day)
        Holiday.objects.bulk_create(created)
        result = HolidayImport(
            years=years,
            created=len(created),
            changed=len(changed),
            removed=len(removed),
            unchanged=len(wanted) - len(created) - len(changed),
        )
        record(
            AuditAction.HOLIDAYS_CHANGED,
            actor=acting_user,
            target=("rooms.holiday", ",".join(map(str, years)), file_name or "holidays"),
            details={
                "file": file_name,
                "years": years,
                "created": [h.date.isoformat() for h in created],
                "changed": [day.isoformat() for day in changed],
                "removed": [day.isoformat() for day in removed],
            },
        )
    return result

"""Load the shipped list of 祝日 and 休庁日 (``yakuba/rooms/data/holidays.csv``) so that a
fresh installation flags holidays from the start.  The file is read here directly (never
through app code, which may have changed since); later years come with
``yakuba import-holidays FILE``."""

import csv
import datetime as dt
from pathlib import Path

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

CSV_PATH = Path(__file__).resolve().parent.parent / "data" / "holidays.csv"


def _rows() -> list[tuple[dt.date, str]]:
    lines = [
        line
        for line in CSV_PATH.read_text(encoding="utf-8-sig").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    reader = csv.reader(lines[1:])  # lines[0] is the header 日付,名称
    return [(dt.date.fromisoformat(day.strip()), name.strip()) for day, name in reader]


def load(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    holiday = apps.get_model("rooms", "Holiday")
    for day, name in _rows():
        holiday.objects.update_or_create(date=day, defaults={"name": name})


def unload(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    holiday = apps.get_model("rooms", "Holiday")
    holiday.objects.filter(date__in=[day for day, _ in _rows()]).delete()


class Migration(migrations.Migration):
    dependencies = [("rooms", "0002_booking_exclusion_constraint")]

    operations = [migrations.RunPython(load, unload, elidable=False)]

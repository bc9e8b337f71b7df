"""``yakuba export-departments [FILE]``: write departments (所属) as CSV in the import format."""

from __future__ import annotations

from yakuba.directory.actions.staff import do_export_departments
from yakuba.directory.management.commands._csv import ExportCommand


class Command(ExportCommand):
    help = (
        "Export departments (所属) as CSV (UTF-8 with BOM by default; --encoding cp932 for Excel)."
    )
    command_name = "export-departments"
    exporter = staticmethod(do_export_departments)

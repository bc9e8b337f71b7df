"""``yakuba export-staff [FILE]``: write staff (職員) as CSV in the import format."""

from __future__ import annotations

from yakuba.directory.actions.staff import do_export_staff
from yakuba.directory.management.commands._csv import ExportCommand


class Command(ExportCommand):
    help = "Export staff (職員) as CSV (UTF-8 with BOM by default; --encoding cp932 for Excel)."
    command_name = "export-staff"
    exporter = staticmethod(do_export_staff)

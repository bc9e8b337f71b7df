"""``yakuba import-staff FILE``: import staff (職員) from CSV, all rows or none."""

from __future__ import annotations

from yakuba.directory.actions.staff import check_import_staff
from yakuba.directory.management.commands._csv import ImportCommand


class Command(ImportCommand):
    help = "Import staff (職員) from a CSV file; a file with any bad row imports nothing."
    command_name = "import-staff"
    importer = staticmethod(check_import_staff)

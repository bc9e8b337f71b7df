"""``yakuba import-departments FILE``: import departments (所属) from CSV, all rows or none."""

from __future__ import annotations

from yakuba.directory.actions.staff import check_import_departments
from yakuba.directory.management.commands._csv import ImportCommand


class Command(ImportCommand):
    help = "Import departments (所属) from a CSV file; a file with any bad row imports nothing."
    command_name = "import-departments"
    importer = staticmethod(check_import_departments)

"""A trigram index for the search of approved minutes, on PostgreSQL only.

The search matches a Japanese substring (``icontains``: 「予約」 inside 「会議室の予約」,
with no word boundaries to guess), which Django writes as
``UPPER(approved_text::text) LIKE UPPER('%予約%')``.  A B-tree cannot serve a leading
wildcard; pg_trgm's GIN index can, and it is built on the same ``UPPER(...)`` expression
so that the planner recognises it.  (pg_trgm needs a search word of three characters or
more to use the index; shorter words fall back to a scan, which is still correct.)
SQLite has neither: there the search scans, which is fine at a ward's volume.
"""

from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

ADD = (
    "CREATE INDEX IF NOT EXISTS minutes_approved_text_trgm ON minutes_minutes "
    "USING gin ((UPPER(approved_text)) gin_trgm_ops)"
)
DROP = "DROP INDEX IF EXISTS minutes_approved_text_trgm"


def add_index(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(ADD)


def drop_index(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("minutes", "0001_initial")]

    operations = [
        # CREATE EXTENSION IF NOT EXISTS pg_trgm; skipped on SQLite by Django itself.
        TrigramExtension(),
        migrations.RunPython(add_index, drop_index, elidable=False),
    ]

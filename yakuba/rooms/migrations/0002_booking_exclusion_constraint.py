"""The backstop against double bookings on PostgreSQL: an exclusion constraint over the
room and the span a live booking holds.  btree_gist lets a GiST index compare the room
id with ``=`` beside the range's ``&&``.  SQLite has no such constraint; there the
actions' BEGIN IMMEDIATE transactions serialise every booking."""

from django.contrib.postgres.operations import BtreeGistExtension
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

ADD = """
ALTER TABLE rooms_booking ADD CONSTRAINT booking_no_overlap EXCLUDE USING gist (
    room_id WITH =,
    tstzrange(block_start, block_end, '[)') WITH &&
) WHERE (status IN ('pending', 'confirmed'))
"""
DROP = "ALTER TABLE rooms_booking DROP CONSTRAINT booking_no_overlap"


def add_constraint(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(ADD)


def drop_constraint(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("rooms", "0001_initial")]

    operations = [
        # Skipped on SQLite by Django itself.
        BtreeGistExtension(),
        migrations.RunPython(add_constraint, drop_constraint, elidable=False),
    ]

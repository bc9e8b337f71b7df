"""The index of the chat search (Japanese substrings, no word boundaries to guess).

SQLite: an FTS5 table ``chat_search`` with the trigram tokenizer (SQLite 3.34 or later),
one row per message that is not deleted, ``rowid`` = the message's id, holding its text
(``body``) and its attachments' names (``names``).  It keeps its own copy of the text:
the names live in another table, so an external-content table cannot serve them, and a
contentless one needs the old values to delete a row (``contentless_delete`` is
SQLite 3.43).  Triggers on ``chat_message`` and ``chat_attachment`` keep it in step in
the writer's own transaction, whatever code writes (actions, retention, the admin).
On an SQLite without FTS5 or trigram, nothing is created and the search scans
(``chat.search`` looks for the table).

Caution for later migrations on SQLite: altering ``chat_message`` or
``chat_attachment`` makes Django rebuild the table, which drops its triggers.  Such a
migration must run ``create_sqlite`` again (``tests/chat/test_search.py`` checks that
the triggers exist after all migrations).

PostgreSQL: pg_trgm's GIN indexes on ``UPPER(text)`` and ``UPPER(name)``, the
expression Django's ``icontains`` writes, so the planner uses them for words of three
characters or more (as for the minutes, ``minutes/0002_search_trigram``).  The
extension is created if missing and never dropped here: the minutes index needs it.
"""

from django.db import DatabaseError, migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

# Rewrites the search row of one message from the tables; MESSAGE_ID stands for an
# expression of the trigger (``new.id``, ``old.message_id``…), never for input.
REFRESH = (
    "DELETE FROM chat_search WHERE rowid = MESSAGE_ID; "
    "INSERT INTO chat_search (rowid, body, names) "
    "SELECT m.id, m.text, coalesce((SELECT group_concat(a.name, char(10)) "
    "FROM chat_attachment a WHERE a.message_id = m.id), '') "
    "FROM chat_message m WHERE m.id = MESSAGE_ID AND m.deleted_at IS NULL;"
)


def _refresh(message_id: str) -> str:
    return REFRESH.replace("MESSAGE_ID", message_id)


SQLITE_CREATE = [
    "CREATE VIRTUAL TABLE chat_search USING fts5(body, names, tokenize='trigram')",
    "CREATE TRIGGER chat_search_message_insert AFTER INSERT ON chat_message "
    f"BEGIN {_refresh('new.id')} END",
    # Only when the text or the deletion changed: a save of the whole row (a reaction's
    # reply_count, a pin) leaves the index alone.
    "CREATE TRIGGER chat_search_message_update AFTER UPDATE OF text, deleted_at ON chat_message "
    "WHEN old.text IS NOT new.text OR old.deleted_at IS NOT new.deleted_at "
    f"BEGIN {_refresh('new.id')} END",
    "CREATE TRIGGER chat_search_message_delete AFTER DELETE ON chat_message "
    "BEGIN DELETE FROM chat_search WHERE rowid = old.id; END",
    # A file is uploaded first (no message) and attached by the send that names it.
    "CREATE TRIGGER chat_search_attachment_insert AFTER INSERT ON chat_attachment "
    f"WHEN new.message_id IS NOT NULL BEGIN {_refresh('new.message_id')} END",
    "CREATE TRIGGER chat_search_attachment_update AFTER UPDATE OF name, message_id "
    "ON chat_attachment "
    "WHEN old.name IS NOT new.name OR old.message_id IS NOT new.message_id "
    f"BEGIN {_refresh('old.message_id')} {_refresh('new.message_id')} END",
    "CREATE TRIGGER chat_search_attachment_delete AFTER DELETE ON chat_attachment "
    f"WHEN old.message_id IS NOT NULL BEGIN {_refresh('old.message_id')} END",
    # Messages written before this migration.
    "INSERT INTO chat_search (rowid, body, names) "
    "SELECT m.id, m.text, coalesce((SELECT group_concat(a.name, char(10)) "
    "FROM chat_attachment a WHERE a.message_id = m.id), '') "
    "FROM chat_message m WHERE m.deleted_at IS NULL",
]

SQLITE_TRIGGERS = (
    "chat_search_message_insert",
    "chat_search_message_update",
    "chat_search_message_delete",
    "chat_search_attachment_insert",
    "chat_search_attachment_update",
    "chat_search_attachment_delete",
)

POSTGRESQL_CREATE = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS chat_message_text_trgm ON chat_message "
    "USING gin ((UPPER(text)) gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS chat_attachment_name_trgm ON chat_attachment "
    "USING gin ((UPPER(name)) gin_trgm_ops)",
]
POSTGRESQL_DROP = [
    "DROP INDEX IF EXISTS chat_attachment_name_trgm",
    "DROP INDEX IF EXISTS chat_message_text_trgm",
]


def sqlite_has_trigram(schema_editor: BaseDatabaseSchemaEditor) -> bool:
    """Whether this SQLite can build an FTS5 trigram table (FTS5 compiled in, 3.34+):
    tried on a temporary table, since builds differ in how they report FTS5."""
    with schema_editor.connection.cursor() as cursor:
        try:
            cursor.execute(
                "CREATE VIRTUAL TABLE temp.chat_search_probe USING fts5(x, tokenize='trigram')"
            )
        except DatabaseError:
            return False
        cursor.execute("DROP TABLE temp.chat_search_probe")
    return True


def create_sqlite(schema_editor: BaseDatabaseSchemaEditor) -> None:
    """Drop and create the table and its triggers, then fill the table."""
    drop_sqlite(schema_editor)
    for statement in SQLITE_CREATE:
        schema_editor.execute(statement)


def drop_sqlite(schema_editor: BaseDatabaseSchemaEditor) -> None:
    for trigger in SQLITE_TRIGGERS:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    schema_editor.execute("DROP TABLE IF EXISTS chat_search")


def add_index(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        for statement in POSTGRESQL_CREATE:
            schema_editor.execute(statement)
    elif vendor == "sqlite" and sqlite_has_trigram(schema_editor):
        create_sqlite(schema_editor)


def drop_index(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        for statement in POSTGRESQL_DROP:
            schema_editor.execute(statement)
    elif vendor == "sqlite":
        drop_sqlite(schema_editor)


class Migration(migrations.Migration):
    dependencies = [("chat", "0001_chat")]

    operations = [migrations.RunPython(add_index, drop_index, elidable=False)]

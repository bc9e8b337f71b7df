"""The database itself refuses to change or delete audit rows (see yakuba/audit/guard.py).

Also installs the trigger that queues every new entry for the sealer in the same
transaction.  A later migration that makes Django rebuild one of these tables on SQLite
(most AlterField operations do) drops its triggers: it must run this SQL again.
"""

from django.db import migrations

REFUSED = "監査ログは変更・削除できません (audit log rows cannot be changed or deleted)"

# An entry may be deleted only when a prune anchor covers it and its seal is gone
# (which itself needs the anchor) and it is not waiting to be sealed.
ENTRY_PRUNABLE = """
    EXISTS (SELECT 1 FROM audit_auditpruneanchor a
            WHERE OLD.id <= a.max_entry_id AND OLD.occurred_at < a.before)
    AND NOT EXISTS (SELECT 1 FROM audit_auditseal s WHERE s.entry_id = OLD.id)
    AND NOT EXISTS (SELECT 1 FROM audit_auditpending p WHERE p.entry_id = OLD.id)
"""
SEAL_PRUNABLE = "OLD.seq <= COALESCE((SELECT max(seq) FROM audit_auditpruneanchor), 0)"
TABLES = ["audit_auditentry", "audit_auditseal", "audit_auditcheckpoint", "audit_auditpruneanchor"]

SQLITE = [
    "CREATE TRIGGER audit_entry_enqueue AFTER INSERT ON audit_auditentry "
    "BEGIN INSERT INTO audit_auditpending (entry_id) VALUES (NEW.id); END",
    *[
        f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{REFUSED}'); END"
        for table in TABLES
    ],
    "CREATE TRIGGER audit_auditentry_no_delete BEFORE DELETE ON audit_auditentry "
    f"WHEN NOT yakuba_audit_maintenance() AND NOT ({ENTRY_PRUNABLE}) "
    f"BEGIN SELECT RAISE(ABORT, '{REFUSED}'); END",
    "CREATE TRIGGER audit_auditseal_no_delete BEFORE DELETE ON audit_auditseal "
    f"WHEN NOT yakuba_audit_maintenance() AND NOT ({SEAL_PRUNABLE}) "
    f"BEGIN SELECT RAISE(ABORT, '{REFUSED}'); END",
    *[
        f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
        f"WHEN NOT yakuba_audit_maintenance() BEGIN SELECT RAISE(ABORT, '{REFUSED}'); END"
        for table in ("audit_auditcheckpoint", "audit_auditpruneanchor")
    ],
    # Entries written before this migration are queued too.
    "INSERT INTO audit_auditpending (entry_id) SELECT id FROM audit_auditentry",
]
SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS audit_entry_enqueue",
    *[f"DROP TRIGGER IF EXISTS {table}_no_update" for table in TABLES],
    *[f"DROP TRIGGER IF EXISTS {table}_no_delete" for table in TABLES],
]

POSTGRESQL = [
    """CREATE FUNCTION yakuba_audit_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO audit_auditpending (entry_id) VALUES (NEW.id);
        RETURN NEW;
    END $$""",
    f"""CREATE FUNCTION yakuba_audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{REFUSED}' USING ERRCODE = 'insufficient_privilege',
            DETAIL = TG_OP || ' on ' || TG_TABLE_NAME;
    END $$""",
    f"""CREATE FUNCTION yakuba_audit_entry_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF {ENTRY_PRUNABLE} THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION '{REFUSED}' USING ERRCODE = 'insufficient_privilege',
            DETAIL = 'DELETE of entry ' || OLD.id || ' not covered by a prune anchor';
    END $$""",
    f"""CREATE FUNCTION yakuba_audit_seal_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF {SEAL_PRUNABLE} THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION '{REFUSED}' USING ERRCODE = 'insufficient_privilege',
            DETAIL = 'DELETE of seal ' || OLD.seq || ' not covered by a prune anchor';
    END $$""",
    "CREATE TRIGGER audit_entry_enqueue AFTER INSERT ON audit_auditentry "
    "FOR EACH ROW EXECUTE FUNCTION yakuba_audit_enqueue()",
    *[
        f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION yakuba_audit_refuse()"
        for table in TABLES
    ],
    "CREATE TRIGGER audit_auditentry_no_delete BEFORE DELETE ON audit_auditentry "
    "FOR EACH ROW EXECUTE FUNCTION yakuba_audit_entry_delete()",
    "CREATE TRIGGER audit_auditseal_no_delete BEFORE DELETE ON audit_auditseal "
    "FOR EACH ROW EXECUTE FUNCTION yakuba_audit_seal_delete()",
    *[
        f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION yakuba_audit_refuse()"
        for table in ("audit_auditcheckpoint", "audit_auditpruneanchor")
    ],
    "INSERT INTO audit_auditpending (entry_id) SELECT id FROM audit_auditentry",
]
POSTGRESQL_REVERSE = [
    *[f"DROP TRIGGER IF EXISTS {table}_no_update ON {table}" for table in TABLES],
    *[f"DROP TRIGGER IF EXISTS {table}_no_delete ON {table}" for table in TABLES],
    "DROP TRIGGER IF EXISTS audit_entry_enqueue ON audit_auditentry",
    "DROP FUNCTION IF EXISTS yakuba_audit_enqueue()",
    "DROP FUNCTION IF EXISTS yakuba_audit_refuse()",
    "DROP FUNCTION IF EXISTS yakuba_audit_entry_delete()",
    "DROP FUNCTION IF EXISTS yakuba_audit_seal_delete()",
]


def _run(statements_by_vendor, schema_editor):
    for statement in statements_by_vendor.get(schema_editor.connection.vendor, []):
        schema_editor.execute(statement, params=None)


def install(apps, schema_editor):
    _run({"sqlite": SQLITE, "postgresql": POSTGRESQL}, schema_editor)


def uninstall(apps, schema_editor):
    _run({"sqlite": SQLITE_REVERSE, "postgresql": POSTGRESQL_REVERSE}, schema_editor)


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_seals_checkpoints_anchors")]

    operations = [migrations.RunPython(install, uninstall)]

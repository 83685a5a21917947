"""On PostgreSQL the database itself refuses UPDATE and DELETE of audit events.

A row trigger raises for every UPDATE, and for every DELETE unless the transaction has set
``kubedoor.audit_purge`` to ``on`` — which only ``manage.py kubedoor_audit_purge`` does
(``SET LOCAL``, so it ends with its transaction). TRUNCATE is not a row operation: test flushes
still work. Other databases (SQLite for an embedded installation) keep the model's own guard only.
"""

from django.conf import settings
from django.db import migrations, models

TABLE = "audit_auditevent"

INSTALL_SQL = f"""
CREATE OR REPLACE FUNCTION kubedoor_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND coalesce(current_setting('kubedoor.audit_purge', true), '') = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit events are append-only: % of audit event % refused', TG_OP, OLD.id
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Old events are removed only by manage.py kubedoor_audit_purge.';
END;
$$;
CREATE TRIGGER kubedoor_audit_append_only
    BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION kubedoor_audit_append_only();
"""

REMOVE_SQL = f"""
DROP TRIGGER IF EXISTS kubedoor_audit_append_only ON {TABLE};
DROP FUNCTION IF EXISTS kubedoor_audit_append_only();
"""


def _on_postgresql(sql: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, None)  # no parameters: the % in RAISE stays as it is

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0003_notificationdelivery_repeats"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditevent",
            name="actor",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=models.DO_NOTHING,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="actor",
            ),
        ),
        migrations.RunPython(_on_postgresql(INSTALL_SQL), _on_postgresql(REMOVE_SQL), elidable=False),
    ]

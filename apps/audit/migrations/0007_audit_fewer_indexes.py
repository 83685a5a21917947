"""Five fewer indexes to update on every audit event (ten before, five after).

- ``actor`` (the user's id) loses its index: nothing looks events up by it; ``actor_name`` is indexed.
- ``cluster`` loses its own index: the (cluster, namespace, name) index ``auditevent_object`` starts with
  it and serves every filter on it.
- On PostgreSQL, ``actor_name`` and ``action`` keep their b-tree index but lose the ``varchar_pattern_ops``
  copy Django adds to every indexed text column for ``LIKE 'prefix%'``: nothing queries them that way
  (filters are exact; the admin's search is ``icontains``, which no b-tree serves).

The webhook writes an event for every patch and denial, thousands a second at peak. Loading events
with COPY, PostgreSQL's backend spent 11.0–11.4 µs of CPU per event with the ten indexes and 8.1–8.6 µs
with these five (bench/webhook/audit_indexes.py: 8 alternating rounds of 60 × 350 events, on 100 000
events already in each table). Dropping an index takes a moment's lock and no scan.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

LIKE_INDEXED = ("actor_name", "action")


def _like_index_names(apps, schema_editor) -> list[str]:
    model = apps.get_model("audit", "AuditEvent")
    table = model._meta.db_table
    return [
        schema_editor._create_index_name(table, [model._meta.get_field(name).column], suffix="_like")
        for name in LIKE_INDEXED
    ]


def drop_like_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # only PostgreSQL has them
    for name in _like_index_names(apps, schema_editor):
        schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


def create_like_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    model = apps.get_model("audit", "AuditEvent")
    for field_name, index_name in zip(LIKE_INDEXED, _like_index_names(apps, schema_editor), strict=True):
        column = model._meta.get_field(field_name).column
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {schema_editor.quote_name(index_name)} "
            f"ON {schema_editor.quote_name(model._meta.db_table)} ({schema_editor.quote_name(column)} varchar_pattern_ops)"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0006_admin_role_unlocks_logins"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditevent",
            name="actor",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="actor",
            ),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="cluster",
            field=models.CharField(blank=True, max_length=63, verbose_name="cluster"),
        ),
        migrations.RunPython(drop_like_indexes, create_like_indexes, elidable=False),
    ]

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


def _like_indexed(apps) -> tuple[type, list]:
    model = apps.get_model("audit", "AuditEvent")
    return model, [model._meta.get_field(name) for name in LIKE_INDEXED]


def drop_like_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # only PostgreSQL has them
    model, fields = _like_indexed(apps)
    for field in fields:  # the name Django gave the index when it made it (its ``_create_like_index_sql``)
        name = schema_editor._create_index_name(model._meta.db_table, [field.column], suffix="_like")
        schema_editor.execute(schema_editor._delete_index_sql(model, name))


def create_like_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    model, fields = _like_indexed(apps)
    for field in fields:  # as Django makes it for an indexed varchar column
        schema_editor.execute(schema_editor._create_like_index_sql(model, field))


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

"""Store on the control row whether a person set its requests, instead of recovering it from the audit trail.

Until now the refresh scanned the audit trail on every run (``hand_set_requests`` in apps/metrics/refresh.py):
a request counted as set by hand when the latest ``microservice.create`` or ``microservice.update`` made by a
person (source ``admin`` or ``api``) whose ``after`` names the field left a value in it. This migration
computes the flags of the existing rows by that same rule, so an installation keeps its behaviour.
"""

from django.db import migrations, models

REQUEST_FIELDS = ("request_cpu_m", "request_mem_mib")
PERSON_SOURCES = ("admin", "api")
BATCH = 1000


def requests_by_hand_from_audit(apps, schema_editor):
    AuditEvent = apps.get_model("audit", "AuditEvent")
    Microservice = apps.get_model("control", "Microservice")
    latest: dict[tuple[str, str, str, str], bool] = {}
    events = (
        AuditEvent.objects.filter(action__in=("microservice.create", "microservice.update"), source__in=PERSON_SOURCES)
        .order_by("at", "id")
        .values_list("cluster", "namespace", "name", "after")
    )
    for cluster, namespace, name, after in events.iterator(chunk_size=2000):
        if not isinstance(after, dict):
            continue
        for field in REQUEST_FIELDS:
            if field in after:
                latest[(cluster, namespace, name, field)] = after[field] is not None
    if not any(latest.values()):
        return
    rows = {
        (cluster, namespace, name): pk
        for pk, cluster, namespace, name in Microservice.objects.values_list("pk", "cluster__name", "namespace", "name")
    }
    for field in REQUEST_FIELDS:
        pks = [rows[key[:3]] for key, is_set in latest.items() if is_set and key[3] == field and key[:3] in rows]
        for start in range(0, len(pks), BATCH):
            Microservice.objects.filter(pk__in=pks[start : start + BATCH]).update(**{f"{field}_by_hand": True})


class Migration(migrations.Migration):
    dependencies = [
        ("control", "0008_userpreference_to_accounts"),
        ("audit", "0003_notificationdelivery_repeats"),
    ]

    operations = [
        migrations.AddField(
            model_name="microservice",
            name="request_cpu_m_by_hand",
            field=models.BooleanField(default=False, editable=False, verbose_name="CPU request set by hand"),
        ),
        migrations.AddField(
            model_name="microservice",
            name="request_mem_mib_by_hand",
            field=models.BooleanField(default=False, editable=False, verbose_name="memory request set by hand"),
        ),
        migrations.RunPython(requests_by_hand_from_audit, migrations.RunPython.noop),
    ]

"""Give the role groups the permissions of the daily-peak archive and collection runs (DESIGN §10)."""

from django.db import migrations

from apps.control.roles import roles_sync


class Migration(migrations.Migration):
    dependencies = [
        ("metrics", "0001_initial"),
        ("control", "0002_roles"),
    ]

    operations = [migrations.RunPython(roles_sync, migrations.RunPython.noop)]

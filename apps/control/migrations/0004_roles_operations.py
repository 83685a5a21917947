"""Give the role groups the permissions of scheduled operations and notification channels (DESIGN §10)."""

from django.db import migrations

from apps.control.roles import roles_sync


class Migration(migrations.Migration):
    dependencies = [
        ("control", "0003_scheduled_operation"),
        ("audit", "0002_notification_channel"),
    ]

    operations = [migrations.RunPython(roles_sync, migrations.RunPython.noop)]

"""Create the viewer, operator and admin groups with their permissions (DESIGN §10)."""

from django.db import migrations

from apps.control.roles import roles_sync


class Migration(migrations.Migration):
    dependencies = [
        ("control", "0001_initial"),
        ("audit", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("authtoken", "0004_alter_tokenproxy_options"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(roles_sync, migrations.RunPython.noop)]

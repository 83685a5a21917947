"""The admin role may see and lift login lockouts (django-axes' access attempts).

The same two permissions ``apps.accounts.roles`` lists for the role, added here once axes' tables
exist (``roles_sync`` skips permissions that do not exist yet). Written without importing the
accounts app: the audit app imports no other app.
"""

from django.db import migrations

UNLOCK_PERMISSIONS = ("view_accessattempt", "delete_accessattempt")


def grant(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    axes_config = apps.get_app_config("axes")
    axes_config.models_module = True
    create_permissions(axes_config, apps=apps, verbosity=0)
    axes_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.filter(name="admin").first()
    if group is not None:
        group.permissions.add(
            *Permission.objects.filter(content_type__app_label="axes", codename__in=UNLOCK_PERMISSIONS)
        )


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0005_notificationchannel_language_secret_keyword"),
        ("axes", "0010_accessattemptexpiration"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]

"""Group scopes (issue 13 §2): a group's role on one cluster, optionally limited to namespaces; admins manage them."""

import django.db.models.deletion
from django.db import migrations, models

from apps.accounts.roles import roles_sync


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_initial'),
        ('auth', '0012_alter_user_first_name_max_length'),
        ('control', '0020_cluster_metrics_backend'),
        # roles_sync sets the role groups' permissions exactly: every app they name must be there
        ('metrics', '0007_import_run'),
        ('audit', '0006_admin_role_unlocks_logins'),
        ('axes', '0010_accessattemptexpiration'),
        ('authtoken', '0004_alter_tokenproxy_options'),
        ('django_celery_beat', '0019_alter_periodictasks_options'),
    ]

    operations = [
        migrations.CreateModel(
            name='GroupScope',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('role', models.CharField(choices=[('viewer', 'viewer'), ('operator', 'operator'), ('admin', 'admin')], max_length=16, verbose_name='role')),
                ('namespaces', models.JSONField(blank=True, default=list, help_text='A JSON list, e.g. ["shop", "payments"]; [] for the whole cluster.', verbose_name='namespaces')),
                ('from_config', models.BooleanField(default=False, help_text='Made from KUBEDOOR_GROUP_SCOPES and kept in sync with it on every LDAP or OIDC login.', verbose_name='from configuration')),
                ('created_at', models.DateTimeField(auto_now_add=True, verbose_name='created at')),
                ('updated_at', models.DateTimeField(auto_now=True, verbose_name='updated at')),
                ('cluster', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='group_scopes', to='control.cluster', verbose_name='cluster')),
                ('group', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='kubedoor_scopes', to='auth.group', verbose_name='group')),
            ],
            options={
                'verbose_name': 'group scope',
                'verbose_name_plural': 'group scopes',
                'ordering': ['group__name', 'cluster__name', 'role'],
            },
        ),
        migrations.RunPython(roles_sync, migrations.RunPython.noop),
    ]

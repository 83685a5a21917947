"""Take over ``UserPreference`` from the control app: its table and rows stay as they are.

The model moved from ``apps.control`` (created by control 0006) to ``apps.accounts``; the table
keeps its name ``control_userpreference``, so this migration changes Django's state only, and
control 0008 removes the model from the control app's state. Its content type is renamed with
it, so the ids of its permissions do not change.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def _content_type_move(apps, schema_editor, *, source: str, target: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    content_types = ContentType.objects.using(schema_editor.connection.alias)
    if not content_types.filter(app_label=target, model="userpreference").exists():
        content_types.filter(app_label=source, model="userpreference").update(app_label=target)


def content_type_forward(apps, schema_editor) -> None:
    _content_type_move(apps, schema_editor, source="control", target="accounts")


def content_type_backward(apps, schema_editor) -> None:
    _content_type_move(apps, schema_editor, source="accounts", target="control")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("control", "0006_user_preference"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="UserPreference",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID"),
                        ),
                        (
                            "language",
                            models.CharField(
                                blank=True,
                                choices=[("", "as the browser asks"), ("en", "English"), ("zh-hans", "简体中文")],
                                max_length=16,
                                verbose_name="language",
                            ),
                        ),
                        (
                            "user",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="kubedoor_preference",
                                to=settings.AUTH_USER_MODEL,
                                verbose_name="user",
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "user preference",
                        "verbose_name_plural": "user preferences",
                        "db_table": "control_userpreference",
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_type_forward, content_type_backward),
    ]

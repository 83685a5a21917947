"""Python names for the replicas fields that say what each holds; the columns keep their names.

``pod_count_init`` → ``replicas_initial``, ``pod_count`` → ``replicas_measured``,
``pod_count_manual`` → ``replicas_specified``, ``pod_count_ai`` → ``replicas_recommended``. Each
rename is paired with ``db_column`` set to the old name, so the migration changes no table.
"""

import django.core.validators
from django.db import migrations, models

RENAMES = (
    ("pod_count_init", "replicas_initial"),
    ("pod_count", "replicas_measured"),
    ("pod_count_manual", "replicas_specified"),
    ("pod_count_ai", "replicas_recommended"),
)


def _field(old: str) -> models.Field:
    if old == "pod_count_init":
        return models.PositiveIntegerField(default=0, verbose_name="initial pod", db_column=old)
    if old == "pod_count":
        return models.PositiveIntegerField(default=0, verbose_name="today pod", db_column=old)
    return models.PositiveIntegerField(
        blank=True,
        null=True,
        validators=[django.core.validators.MaxValueValidator(1000)],
        verbose_name="specified pod" if old == "pod_count_manual" else "recommended pod",
        db_column=old,
    )


class Migration(migrations.Migration):
    dependencies = [("control", "0009_microservice_requests_by_hand")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                operation
                for old, new in RENAMES
                for operation in (
                    migrations.RenameField("microservice", old, new),
                    migrations.AlterField("microservice", new, _field(old)),
                )
            ],
        )
    ]

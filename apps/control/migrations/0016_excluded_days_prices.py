"""Excluded days (the calendar of days left out of the source-day choice) and waste prices per cluster."""

import django.core.validators
import django.db.models.deletion
from django.db import migrations, models

from apps.accounts.roles import roles_sync


class Migration(migrations.Migration):
    dependencies = [
        ("control", "0010_microservice_replicas_names"),
    ]

    operations = [
        migrations.AddField(
            model_name="cluster",
            name="price_cpu_core_hour",
            field=models.FloatField(
                blank=True,
                help_text="Empty: the waste board shows cores, not money.",
                null=True,
                validators=[django.core.validators.MinValueValidator(0.0)],
                verbose_name="price per CPU core-hour",
            ),
        ),
        migrations.AddField(
            model_name="cluster",
            name="price_mem_gib_hour",
            field=models.FloatField(
                blank=True,
                help_text="Empty: the waste board shows GiB, not money.",
                null=True,
                validators=[django.core.validators.MinValueValidator(0.0)],
                verbose_name="price per memory GiB-hour",
            ),
        ),
        migrations.CreateModel(
            name="ExcludedDay",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("start", models.DateField(verbose_name="first day")),
                (
                    "end",
                    models.DateField(blank=True, help_text="Empty: the first day only.", verbose_name="last day"),
                ),
                ("reason", models.CharField(max_length=200, verbose_name="reason")),
                ("created_by", models.CharField(blank=True, editable=False, max_length=150, verbose_name="created by")),
                ("created_at", models.DateTimeField(auto_now_add=True, verbose_name="created")),
                (
                    "cluster",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="excluded_days",
                        to="control.cluster",
                        verbose_name="cluster",
                    ),
                ),
            ],
            options={
                "verbose_name": "excluded day",
                "verbose_name_plural": "excluded days",
                "ordering": ["cluster", "-start", "-id"],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("end__gte", models.F("start"))), name="excluded_day_end_after_start"
                    )
                ],
            },
        ),
        # viewers read the calendar, operators edit it (DESIGN §10)
        migrations.RunPython(roles_sync, migrations.RunPython.noop),
    ]

"""Validation of a scheduled operation's fields: each bad field named, nothing written."""

from __future__ import annotations

import datetime
import zoneinfo

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from apps.audit.models import AuditEvent
from apps.control import scheduling
from apps.control.models import ScheduledOperation
from tests.factories import ClusterFactory, MicroserviceFactory, api_actor

UTC = datetime.UTC
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def test_a_naive_run_at_is_read_in_the_operation_time_zone(operator_schedules):
    local = (timezone.now() + datetime.timedelta(days=2)).astimezone(BERLIN).replace(tzinfo=None, microsecond=0)

    operation = operator_schedules(schedule="once", run_at=local, time_zone="Europe/Berlin")

    assert operation.run_at == local.replace(tzinfo=BERLIN)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"schedule": "cron", "cron": "61 * * * *"}, "cron"),
        ({"schedule": "cron", "cron": "* * *"}, "cron"),
        ({"schedule": "once", "run_at": datetime.datetime(2020, 1, 1, tzinfo=UTC)}, "run_at"),
        ({"schedule": "once", "run_at": None}, "run_at"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"replicas": 1001}, "replicas"),
        ({"replicas": -1}, "replicas"),
        ({"interval_seconds": 3601}, "interval_seconds"),
        ({"schedule": "weekly"}, "schedule"),
        ({"kind": "delete"}, "kind"),
        ({"targets": []}, "targets"),
    ],
)
def test_invalid_input_names_the_field_and_writes_nothing(targets, operator, overrides, field):
    values = {"kind": "scale", "targets": targets, "replicas": 2, "schedule": "now", **overrides}

    with pytest.raises(ValidationError) as caught:
        scheduling.operation_schedule(actor=api_actor(operator), **values)

    assert list(caught.value.message_dict) == [field]
    assert not ScheduledOperation.objects.exists()
    assert not PeriodicTask.objects.exists()
    assert not AuditEvent.objects.exists()


def test_targets_in_different_clusters_are_refused(targets, operator):
    other = MicroserviceFactory(cluster=ClusterFactory(name="staging"), namespace="shop", name="a")

    with pytest.raises(ValidationError) as caught:
        scheduling.operation_schedule(actor=api_actor(operator), kind="restart", targets=[*targets, other])

    assert caught.value.message_dict == {"targets": ["All targets must be in the same cluster."]}
    assert not ScheduledOperation.objects.exists()

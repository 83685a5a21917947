"""Fixtures shared by the tests of apps/control/scheduling/."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from apps.control import scheduling
from tests.factories import api_actor


@pytest.fixture
def operator_schedules(targets, operator):
    """Schedule an operation as the operator through the API: a restart of ``targets`` unless told otherwise;
    ``schedule="once"`` without ``run_at`` runs an hour from now."""

    def schedule(**fields):
        fields = {"kind": "restart", "targets": targets, **fields}
        if fields.get("schedule") == "once":
            fields.setdefault("run_at", timezone.now() + datetime.timedelta(hours=1))
        return scheduling.operation_schedule(actor=api_actor(operator), **fields)

    return schedule

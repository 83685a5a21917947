"""Validation of a scheduled operation's fields, shared by the services and the admin form."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.control.models import MAX_INTERVAL_SECONDS, Microservice, OperationKind, ScheduleKind
from apps.control.operations import replicas_validate
from apps.control.scheduling.cron import cron_fields, time_zone_get

# The fields of an operation a person may change after scheduling it.
EDITABLE_FIELDS = (
    "targets",
    "replicas",
    "temporary",
    "restart_fallback",
    "interval_seconds",
    "schedule",
    "run_at",
    "cron",
    "time_zone",
    "enabled",
)


def _aware(value: datetime.datetime, time_zone: str) -> datetime.datetime:
    if timezone.is_naive(value):
        return value.replace(tzinfo=time_zone_get(time_zone))
    return value


def operation_values_validate(values: dict[str, Any], *, now: datetime.datetime, check_past: bool) -> dict[str, Any]:
    """Check and normalise a full set of operation fields in place (what the services store).

    A ``once`` time is made aware in the operation's time zone and stored in UTC; a cron expression
    is stored with single spaces; the fields another schedule does not use are cleared.
    Raises ``ValidationError`` naming each bad field.
    """
    errors: dict[str, str] = {}
    kind = values["kind"]
    if kind not in OperationKind.values:
        errors["kind"] = _("Choose scale, restart or resize.")
    targets: Sequence[Microservice] = values["targets"]
    if not targets:
        errors["targets"] = _("Choose at least one microservice.")
    elif len({microservice.cluster_id for microservice in targets}) > 1:
        errors["targets"] = _("All targets must be in the same cluster.")
    replicas = values["replicas"]
    if values.get("temporary") and kind in (OperationKind.RESTART, OperationKind.RESIZE):
        errors["temporary"] = _("Only a scale can be temporary.")
    if values.get("restart_fallback") and kind in (OperationKind.SCALE, OperationKind.RESTART):
        errors["restart_fallback"] = _("Only a resize has a restart fallback.")
    if replicas is not None and kind in (OperationKind.RESTART, OperationKind.RESIZE):
        errors["replicas"] = _("Replicas only apply to scale operations.")
    else:
        try:
            replicas_validate(replicas)
        except ValidationError as exc:
            errors["replicas"] = exc.message_dict["replicas"][0]
    interval = values["interval_seconds"]
    if interval is None or not 0 <= interval <= MAX_INTERVAL_SECONDS:
        errors["interval_seconds"] = _("The interval must be between 0 and %(max)s seconds.") % {
            "max": MAX_INTERVAL_SECONDS
        }
    schedule = values["schedule"]
    try:
        time_zone_get(values["time_zone"])
        tz_ok = True
    except ValidationError as exc:
        errors["time_zone"] = exc.message_dict["time_zone"][0]
        tz_ok = False
    if schedule not in ScheduleKind.values:
        errors["schedule"] = _("Choose now, once or cron.")
    elif schedule == ScheduleKind.ONCE:
        values["cron"] = ""
        if values["run_at"] is None:
            errors["run_at"] = _("Give the time to run at.")
        elif tz_ok:
            values["run_at"] = _aware(values["run_at"], values["time_zone"]).astimezone(datetime.UTC)
            if check_past and values["run_at"] <= now:
                errors["run_at"] = _("The time to run at is in the past.")
    elif schedule == ScheduleKind.CRON:
        values["run_at"] = None
        try:
            values["cron"] = " ".join(cron_fields(values["cron"] or ""))
        except ValidationError as exc:
            errors["cron"] = exc.message_dict["cron"][0]
    else:
        values["run_at"] = None
        values["cron"] = ""
    if errors:
        raise ValidationError(errors)
    return values


def operation_validate(*, values: Mapping[str, Any], check_past: bool = True) -> dict[str, Any]:
    """Check an operation's fields as the services will (for forms); ``ValidationError`` names each bad field."""
    full = {
        "kind": values.get("kind"),
        "targets": list(values.get("targets") or []),
        "replicas": values.get("replicas"),
        "temporary": bool(values.get("temporary")),
        "restart_fallback": bool(values.get("restart_fallback")),
        "interval_seconds": values.get("interval_seconds", 0),
        "schedule": values.get("schedule", ScheduleKind.NOW),
        "run_at": values.get("run_at"),
        "cron": values.get("cron") or "",
        "time_zone": values.get("time_zone") or "UTC",
    }
    return operation_values_validate(full, now=timezone.now(), check_past=check_past)

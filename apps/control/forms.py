"""Admin forms for operations: the scale/restart intermediate page and the scheduled-operation form."""

from __future__ import annotations

import datetime
import zoneinfo
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _

from apps.control.models import MAX_INTERVAL_SECONDS, MAX_REPLICAS, ScheduledOperation, ScheduleKind
from apps.control.scheduling import EDITABLE_FIELDS


class LocalDateTimeField(forms.DateTimeField):
    """A date and time as typed, without the site's time zone applied: the operation's time zone applies."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")

    def to_python(self, value: Any) -> datetime.datetime | None:
        if value in self.empty_values:
            return None
        if isinstance(value, datetime.datetime):
            return value
        try:
            parsed = parse_datetime(str(value).strip())
        except ValueError:
            parsed = None
        if parsed is None:
            raise ValidationError(_("Enter a date and time such as 2026-05-01T09:30."), code="invalid")
        return parsed

    def prepare_value(self, value: Any) -> Any:
        return value


def time_zone_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in sorted(zoneinfo.available_timezones())]


class OperationScheduleForm(forms.Form):
    """When (now / at a time / by cron) and how to run a scale, restart or resize on the selected rows."""

    schedule = forms.ChoiceField(
        label=_("when"), choices=ScheduleKind.choices, initial=ScheduleKind.NOW, widget=forms.RadioSelect
    )
    run_at = LocalDateTimeField(label=_("run at"), required=False)
    cron = forms.CharField(
        label=_("cron expression"), required=False, help_text=_("m h dom mon dow, e.g. 0 9 * * 1-5"), max_length=100
    )
    time_zone = forms.ChoiceField(label=_("time zone"), choices=time_zone_choices, initial="UTC")
    replicas = forms.IntegerField(
        label=_("replicas"),
        required=False,
        min_value=0,
        max_value=MAX_REPLICAS,
        help_text=_("Empty: each microservice's effective replicas."),
    )
    temporary = forms.BooleanField(
        label=_("temporary"),
        required=False,
        help_text=_(
            "Leave the control table unchanged: the next deploy or restart applies its replicas again. "
            "Unticked, the replicas become each microservice's specified pods."
        ),
    )
    restart_fallback = forms.BooleanField(
        label=_("restart when a resize cannot be done"),
        required=False,
        help_text=_(
            "When a pod's in-place resize is infeasible, refused, or still deferred after the wait, restart "
            "the Deployment instead."
        ),
    )
    interval_seconds = forms.IntegerField(
        label=_("interval between microservices (s)"), min_value=0, max_value=MAX_INTERVAL_SECONDS, initial=0
    )

    def __init__(self, *args: Any, kind: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if kind != "scale":
            del self.fields["replicas"]
            del self.fields["temporary"]
        if kind != "resize":
            del self.fields["restart_fallback"]


class ScheduledOperationForm(forms.ModelForm):
    """The scheduled-operation change form; saving goes through ``apps.control.scheduling``."""

    run_at = LocalDateTimeField(label=_("run at"), required=False)
    time_zone = forms.ChoiceField(label=_("time zone"), choices=time_zone_choices, initial="UTC")

    class Meta:
        model = ScheduledOperation
        fields = ["kind", *EDITABLE_FIELDS]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.run_at and "run_at" in self.fields:
            # show the stored instant as wall-clock time in the operation's zone
            local = self.instance.run_at.astimezone(zoneinfo.ZoneInfo(self.instance.time_zone))
            self.initial["run_at"] = local.replace(tzinfo=None).strftime("%Y-%m-%dT%H:%M")

    def _post_clean(self) -> None:
        # Validation of the whole operation (past times, one cluster, cron) is the service's.
        return

"""Next run times of cron operations: daylight saving, and agreement with beat's own crontab."""

from __future__ import annotations

import datetime

import pytest
from django_celery_beat.models import PeriodicTask

from apps.control import scheduling

UTC = datetime.UTC


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        # winter time (CET, UTC+1): 09:00 local is 08:00 UTC
        (datetime.datetime(2026, 3, 27, 7, 0, tzinfo=UTC), datetime.datetime(2026, 3, 27, 8, 0, tzinfo=UTC)),
        # across the spring change (29 March 2026): the next 09:00 is CEST, 07:00 UTC
        (datetime.datetime(2026, 3, 28, 8, 30, tzinfo=UTC), datetime.datetime(2026, 3, 29, 7, 0, tzinfo=UTC)),
        # across the autumn change (25 October 2026): back to CET, 08:00 UTC
        (datetime.datetime(2026, 10, 24, 8, 0, tzinfo=UTC), datetime.datetime(2026, 10, 25, 8, 0, tzinfo=UTC)),
    ],
)
def test_next_cron_run_follows_daylight_saving(after, expected):
    got = scheduling.next_run_compute(
        schedule="cron", run_at=None, cron="0 9 * * *", time_zone="Europe/Berlin", after=after
    )

    assert got == expected


def test_next_cron_run_agrees_with_beat_across_daylight_saving(operator_schedules):
    # given: the crontab beat itself evaluates, in Europe/Berlin
    operator_schedules(schedule="cron", cron="0 9 * * *", time_zone="Europe/Berlin")
    beat_schedule = PeriodicTask.objects.get().crontab.schedule
    last_run = datetime.datetime(2026, 3, 28, 8, 0, tzinfo=UTC)  # Saturday 09:00 CET

    # when
    last_local = last_run.astimezone(beat_schedule.tz)
    beat_next = last_local + beat_schedule.remaining_delta(last_local)[1]
    ours = scheduling.next_run_compute(
        schedule="cron", run_at=None, cron="0 9 * * *", time_zone="Europe/Berlin", after=last_run
    )

    # then
    assert ours == datetime.datetime(2026, 3, 29, 7, 0, tzinfo=UTC)
    assert beat_next.astimezone(UTC) == ours

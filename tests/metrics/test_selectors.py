"""``day_range_get``: the one day-range rule of the dashboard pages, the dashboard API and the peaks API."""

from __future__ import annotations

import dataclasses
import datetime
import zoneinfo

import pytest
from django.core.exceptions import ValidationError

from apps.metrics.selectors import MAX_RANGE_DAYS, DayRange, cluster_today, day_range_get
from tests.factories import ClusterFactory

pytestmark = pytest.mark.django_db

D = datetime.date


@pytest.fixture
def far(db):
    """A cluster whose day starts well before the server's (UTC+14)."""
    return ClusterFactory(name="far", time_zone="Pacific/Kiritimati", lookback_days=7)


def test_today_is_the_clusters_today(far):
    assert cluster_today(far) == datetime.datetime.now(zoneinfo.ZoneInfo("Pacific/Kiritimati")).date()


def test_an_unknown_time_zone_counts_days_in_utc(far):
    far.time_zone = "Nowhere/Atlantis"
    assert cluster_today(far) == datetime.datetime.now(datetime.UTC).date()


def test_without_ends_the_range_is_the_clusters_lookback_ending_today(far):
    today = cluster_today(far)
    assert day_range_get(cluster=far) == DayRange(day_from=today - datetime.timedelta(days=6), day_to=today)


def test_default_days_replaces_the_lookback(far):
    today = cluster_today(far)
    assert day_range_get(cluster=far, default_days=10) == DayRange(
        day_from=today - datetime.timedelta(days=9), day_to=today
    )


def test_a_lookback_of_zero_still_means_one_day(far):
    far.lookback_days = 0
    assert day_range_get(cluster=far, day_to=D(2026, 3, 3)) == DayRange(day_from=D(2026, 3, 3), day_to=D(2026, 3, 3))


def test_only_day_to_gives_the_days_before_it_and_only_day_from_ends_today(far):
    assert day_range_get(cluster=far, day_to=D(2026, 3, 3)) == DayRange(day_from=D(2026, 2, 25), day_to=D(2026, 3, 3))
    assert day_range_get(cluster=far, day_from=D(2026, 3, 1)) == DayRange(
        day_from=D(2026, 3, 1), day_to=cluster_today(far)
    )


def test_given_ends_are_kept(far):
    span = day_range_get(cluster=far, day_from=D(2026, 3, 1), day_to=D(2026, 3, 1))
    assert span == DayRange(day_from=D(2026, 3, 1), day_to=D(2026, 3, 1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        span.day_to = D(2026, 3, 2)  # type: ignore[misc]


def test_a_reversed_range_is_refused_naming_day_from(far):
    with pytest.raises(ValidationError) as error:
        day_range_get(cluster=far, day_from=D(2026, 3, 3), day_to=D(2026, 3, 1))
    assert error.value.message_dict == {"day_from": ["The range must start before it ends."]}


def test_at_most_400_days(far):
    assert MAX_RANGE_DAYS == 400
    longest = day_range_get(cluster=far, day_from=D(2025, 2, 2), day_to=D(2026, 3, 8))
    assert (longest.day_to - longest.day_from).days + 1 == 400
    with pytest.raises(ValidationError) as error:
        day_range_get(cluster=far, day_from=D(2025, 2, 1), day_to=D(2026, 3, 8))
    assert error.value.message_dict == {"day_from": ["Ask for at most 400 days at a time."]}
    with pytest.raises(ValidationError):
        day_range_get(cluster=far, day_from=D(2026, 3, 1), day_to=D(2026, 3, 8), max_days=7)

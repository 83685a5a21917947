"""Fixtures of the metrics tests: a cluster on the generated history (Prometheus, then VictoriaMetrics), a clock."""

from __future__ import annotations

import datetime
import zoneinfo

import pytest

from apps.metrics.store import OrmStore
from tests.factories import ClusterFactory
from tests.servers.prometheus import CLUSTER_LABEL, TIME_ZONE


@pytest.fixture(params=["prometheus", "victoriametrics"])
def prom(request):
    """The generated history on each metrics backend in turn: the collection tests run against both."""
    return request.getfixturevalue(f"{request.param}_server")


@pytest.fixture
def now(prom) -> datetime.datetime:
    """09:00 local on the day after the generated history: that day's window has not ended yet."""
    day = prom.days[-1] + datetime.timedelta(days=1)
    return datetime.datetime.combine(day, datetime.time(9, 0), zoneinfo.ZoneInfo(TIME_ZONE)).astimezone(datetime.UTC)


@pytest.fixture
def prom_cluster(db, prom):
    return ClusterFactory(
        name="prod",
        prometheus_url=prom.url,
        prometheus_label_key=CLUSTER_LABEL,
        prometheus_label_value="prod",
        time_zone=TIME_ZONE,
        peak_start=datetime.time(10, 0),
        peak_end=datetime.time(11, 30),
        metrics_backend=prom.backend,
    )


@pytest.fixture
def orm_store() -> OrmStore:
    return OrmStore()

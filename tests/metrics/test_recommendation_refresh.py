"""Collection and refresh with the safety feedback, against a real Prometheus (tests/servers/history_feedback.py).

Four days of the "feedback" cluster, the second every service's busiest (factor 2): "api" OOM-killed once on
the third day, "worker" throttled 25 % on the first day, "calm" with a row whose requests are far above its
use, "fresh" seen on the last two days only. Expected values are written from the formulas (a flat history:
P95 = peak × day factor × mean pod multiplier; recommender.py for the rest).
"""

from __future__ import annotations

import datetime
import zoneinfo

import pytest

from apps.audit.services import Actor
from apps.control.models import Microservice
from apps.metrics import services
from apps.metrics.models import DailyPeak
from apps.metrics.store import OrmStore
from tests.factories import ClusterFactory, MicroserviceFactory
from tests.servers.history_feedback import (
    FEEDBACK_LABEL,
    expected_cpu_cores,
    expected_mem_mib,
    expected_oom_kills,
    expected_throttled_pct,
)
from tests.servers.prometheus import CLUSTER_LABEL, TIME_ZONE

ACTOR = Actor.system("tester", source="system")


@pytest.fixture
def fb(feedback_prometheus):
    return feedback_prometheus


@pytest.fixture
def fb_cluster(db, fb):
    # every issue-11 setting at its default: min_days 3, max_change_pct 50, OOM ×1.2 / +100 MiB, throttling 10 %
    return ClusterFactory(
        name="fb",
        prometheus_url=fb.url,
        prometheus_label_key=CLUSTER_LABEL,
        prometheus_label_value=FEEDBACK_LABEL,
        time_zone=TIME_ZONE,
        peak_start=datetime.time(10, 0),
        peak_end=datetime.time(11, 30),
    )


def collect(cluster, fb):
    now = datetime.datetime.combine(
        fb.days[-1] + datetime.timedelta(days=1), datetime.time(9, 0), zoneinfo.ZoneInfo(TIME_ZONE)
    )
    run = services.collection_start(cluster=cluster, days=5, actor=ACTOR, enqueue=False)
    return services.collection_run(run_id=run.pk, now=now.astimezone(datetime.UTC), store=OrmStore())


def row(name):
    return Microservice.objects.get(cluster__name="fb", name=name)


def test_the_archive_holds_each_days_oom_kills_and_throttling(fb, fb_cluster):
    run = collect(fb_cluster, fb)
    assert run.state == "done", run.errors
    assert run.days_collected == [day.isoformat() for day in fb.days]
    for dep in fb.history.deployments:
        (container,) = dep.containers
        for day in fb.days:
            peak = DailyPeak.objects.get(cluster="fb", day=day, deployment=dep.name)
            assert (peak.oom_kills, peak.throttled_pct) == (
                expected_oom_kills(fb.spec, dep, container, day),
                pytest.approx(expected_throttled_pct(fb.spec, dep, container, day), abs=1e-9),
            ), (dep.name, day)
    api_oom = DailyPeak.objects.filter(cluster="fb", deployment="api").values_list("day", "oom_kills")
    assert dict(api_oom) == {fb.days[0]: 0, fb.days[1]: 0, fb.days[2]: 1, fb.days[3]: 0}
    worker = dict(DailyPeak.objects.filter(cluster="fb", deployment="worker").values_list("day", "throttled_pct"))
    assert worker == {fb.days[0]: 25.0, fb.days[1]: 0.0, fb.days[2]: 0.0, fb.days[3]: 5.0}
    assert set(DailyPeak.objects.filter(cluster="fb", deployment="fresh").values_list("day", flat=True)) == set(
        fb.days[2:]
    )


def test_refresh_applies_oom_throttling_clamp_and_minimum_days_exactly(fb, fb_cluster):
    # given: "calm" is registered with requests far above its use (not set by hand)
    MicroserviceFactory(
        cluster=fb_cluster,
        namespace="shop",
        name="calm",
        request_cpu_m=1000,
        request_mem_mib=1024,
        limit_cpu_m=1000,
        limit_mem_mib=1024,
    )
    # when
    run = collect(fb_cluster, fb)
    # then
    assert run.state == "done", run.errors
    source = fb.days[1]
    api_dep = fb.history.deployments[0]
    assert expected_cpu_cores(fb.history, api_dep, api_dep.containers[0], source) == pytest.approx(0.345)
    assert expected_mem_mib(fb.history, api_dep, api_dep.containers[0], source) == pytest.approx(690.0)

    # api: 0.15 × 2 × 1.15 = 0.345 cores → 345 m; 300 × 2 × 1.15 = 690 MiB, OOM-killed in the lookback:
    # max(ceil(690 × 1.2), 690 + 100) = 828 MiB; pods ceil(4 × 34.5 / 70) = 2
    api = row("api")
    assert (api.source_day, api.replicas_measured, api.request_cpu_m, api.request_mem_mib) == (source, 4, 345, 828)
    assert api.replicas_recommended == 2
    assert [reason["code"] for reason in api.explanation["reasons"]] == [
        "source_day",
        "request_cpu",
        "request_mem",
        "oom_bump",
        "replicas_formula",
    ]
    assert api.explanation["reasons"][3]["params"] == {
        "oom_kills": 1,
        "factor": 1.2,
        "min_mib": 100,
        "before": 690,
        "after": 828,
    }

    # worker: 0.4 × 2 × 1.05 = 0.84 → 840 m; 100 × 2 × 1.05 = 210 MiB; throttled 25 % > 10 %: flagged;
    # pods ceil(2 × 84 / 70) = 3, never above today's 2
    worker = row("worker")
    assert (worker.request_cpu_m, worker.request_mem_mib, worker.replicas_recommended) == (840, 210, 2)
    reasons = {reason["code"]: reason["params"] for reason in worker.explanation["reasons"]}
    assert reasons["cpu_throttled"] == {"throttled_pct": 25.0, "threshold_pct": 10.0}
    assert reasons["replicas_no_scale_up"] == {"pods": 2}
    assert (worker.limit_cpu_m, worker.limit_mem_mib) == (1000, 1024)

    # calm: wants 210 m and 210 MiB, but one refresh lowers by at most 50 %: 1000 → 500 m, 1024 → 512 MiB;
    # pods ceil(2 × 21 / 70) = 1, kept at 2
    calm = row("calm")
    assert (calm.request_cpu_m, calm.request_mem_mib, calm.replicas_recommended) == (500, 512, 2)
    reasons = {reason["code"]: reason["params"] for reason in calm.explanation["reasons"]}
    assert reasons["clamp_cpu"] == {"current": 1000, "wanted": 210, "after": 500, "max_change_pct": 50.0}
    assert reasons["clamp_mem"] == {"current": 1024, "wanted": 210, "after": 512, "max_change_pct": 50.0}
    assert "replicas_keep_two" in reasons

    # fresh: two days of data, three needed: registered, but no numbers; the explanation says why
    fresh = row("fresh")
    assert (fresh.source_day, fresh.replicas_measured, fresh.request_cpu_m, fresh.request_mem_mib) == (
        None,
        0,
        None,
        None,
    )
    assert fresh.replicas_recommended is None
    assert fresh.explanation == {"reasons": [{"code": "insufficient_data", "params": {"days": 2, "min_days": 3}}]}

    # a second refresh lowers "calm" by at most 50 % again: 500 → 250 m (it wants 210), 512 → 256 MiB
    collect(fb_cluster, fb)
    calm = row("calm")
    assert (calm.request_cpu_m, calm.request_mem_mib) == (250, 256)
    # the recommendation is shown, never applied while the cluster does not apply recommendations
    assert (calm.replicas_recommended, calm.effective_replicas) == (2, 2)
    assert row("api").effective_replicas == 4

"""The collections and peaks endpoints."""

from __future__ import annotations

import datetime

import pytest

from apps.audit.models import AuditEvent
from apps.metrics.models import CollectionRun
from apps.metrics.selectors import cluster_today
from apps.metrics.store import OrmStore
from tests.factories import ClusterFactory
from tests.metrics.test_store import make_row

D1 = datetime.date(2026, 3, 1)


@pytest.fixture
def prod(cluster):
    cluster.prometheus_url = "http://127.0.0.1:9"
    cluster.save()
    return cluster


def test_an_operator_starts_a_collection_and_gets_202(operator_api, prod, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = operator_api.post("/api/v1/collections/", {"cluster": "prod", "days": 3}, format="json")
    assert response.status_code == 202, response.data
    run = CollectionRun.objects.get()
    assert response.data["id"] == run.pk
    assert (response.data["cluster"], response.data["days"], response.data["state"]) == ("prod", 3, "queued")
    assert (response.data["progress_done"], response.data["progress_total"], response.data["progress_pct"]) == (
        0,
        21,  # 3 days × 7 requests on Prometheus
        0,
    )
    assert set(response.data["queries"]) == {
        "p95_cpu_cores",
        "p95_mem_mib",
        "pod_count",
        "resources",
        "p95_cpu_pct",
        "p95_mem_pct",
        "oom_kills",
        "throttled_pct",
        "pods",
    }
    assert len(callbacks) == 1  # the task is queued only after commit
    event = AuditEvent.objects.get(action="collection.start")
    assert (event.actor_name, event.source, event.after) == ("operator1", "api", {"run": run.pk, "days": 3})


def test_a_second_start_is_refused_with_a_clear_message(operator_api, prod):
    assert operator_api.post("/api/v1/collections/", {"cluster": "prod", "days": 3}, format="json").status_code == 202
    response = operator_api.post("/api/v1/collections/", {"cluster": "prod", "days": 3}, format="json")
    assert response.status_code == 400
    assert "already collecting" in response.data["errors"]["non_field_errors"][0]
    assert CollectionRun.objects.count() == 1


def test_bad_input_gets_field_errors(operator_api, prod):
    response = operator_api.post("/api/v1/collections/", {"cluster": "nope", "days": 0}, format="json")
    assert response.status_code == 400
    assert set(response.data["errors"]) == {"cluster", "days"}
    assert CollectionRun.objects.count() == 0


def test_a_viewer_can_follow_but_not_start(viewer_api, operator_api, prod):
    assert viewer_api.post("/api/v1/collections/", {"cluster": "prod", "days": 3}, format="json").status_code == 403
    assert CollectionRun.objects.count() == 0
    run_id = operator_api.post("/api/v1/collections/", {"cluster": "prod", "days": 1}, format="json").data["id"]
    CollectionRun.objects.filter(pk=run_id).update(state="running", progress_done=3)
    response = viewer_api.get(f"/api/v1/collections/{run_id}/")
    assert response.status_code == 200
    assert (response.data["state"], response.data["progress_done"], response.data["progress_pct"]) == (
        "running",
        3,
        43,  # 3 of 1 day × 7 requests
    )
    listing = viewer_api.get("/api/v1/collections/?cluster=prod")
    assert [item["id"] for item in listing.data["results"]] == [run_id]
    assert viewer_api.get("/api/v1/collections/?cluster=other").data["results"] == []
    assert viewer_api.get("/api/v1/collections/999999/").status_code == 404


def test_nobody_sees_nothing(nobody, prod):
    from tests.conftest import _token_client

    client = _token_client(nobody)
    assert client.get("/api/v1/collections/").status_code == 403
    assert client.get("/api/v1/peaks/?cluster=prod").status_code == 403


def test_peaks_filter_by_cluster_range_namespace_and_deployment(viewer_api, prod):
    store = OrmStore()
    for offset in range(3):
        day = D1 + datetime.timedelta(days=offset)
        store.day_replace(
            cluster="prod",
            day=day,
            rows=[make_row(day=day), make_row(day=day, namespace="pay", deployment="api", container="api")],
        )
    store.day_replace(cluster="stage", day=D1, rows=[make_row(cluster="stage")])
    # when
    response = viewer_api.get("/api/v1/peaks/", {"cluster": "prod", "day_from": "2026-03-02", "day_to": "2026-03-03"})
    # then
    assert response.status_code == 200
    assert response.data["count"] == 4
    assert [(r["day"], r["namespace"], r["deployment"]) for r in response.data["results"]] == [
        ("2026-03-02", "pay", "api"),
        ("2026-03-02", "shop", "cart"),
        ("2026-03-03", "pay", "api"),
        ("2026-03-03", "shop", "cart"),
    ]
    first = response.data["results"][1]
    assert (first["p95_cpu_cores"], first["pod_count"], first["limit_mem_mib"], first["quantile"]) == (
        0.25,
        3,
        512,
        0.95,
    )
    assert first["window_end"] == "2026-03-02T03:30:00Z"
    filtered = viewer_api.get(
        "/api/v1/peaks/", {"cluster": "prod", "day_from": "2026-03-01", "day_to": "2026-03-03", "namespace": "pay"}
    )
    assert [r["day"] for r in filtered.data["results"]] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    by_name = viewer_api.get(
        "/api/v1/peaks/", {"cluster": "prod", "day_from": "2026-03-01", "day_to": "2026-03-03", "deployment": "cart"}
    )
    assert by_name.data["count"] == 3
    paged = viewer_api.get(
        "/api/v1/peaks/",
        {"cluster": "prod", "day_from": "2026-03-01", "day_to": "2026-03-03", "page_size": 2, "page": 2},
    )
    assert [(r["day"], r["deployment"]) for r in paged.data["results"]] == [
        ("2026-03-02", "api"),
        ("2026-03-02", "cart"),
    ]


def test_peaks_need_a_known_cluster_and_a_sane_range(viewer_api, prod):
    assert set(viewer_api.get("/api/v1/peaks/").data["errors"]) == {"cluster"}
    bad = viewer_api.get("/api/v1/peaks/", {"cluster": "prod", "day_from": "2026-03-05", "day_to": "2026-03-01"})
    assert bad.status_code == 400
    assert set(bad.data["errors"]) == {"day_from"}
    assert (
        viewer_api.get(
            "/api/v1/peaks/", {"cluster": "prod", "day_from": "2020-01-01", "day_to": "2026-03-01"}
        ).status_code
        == 400
    )


def test_peaks_default_to_the_last_10_days_ending_today_in_the_clusters_zone(viewer_api):
    # given a cluster whose day starts well before the server's (UTC+14), with peaks around its today
    far = ClusterFactory(name="far", time_zone="Pacific/Kiritimati", lookback_days=3)
    today = cluster_today(far)
    store = OrmStore()
    for offset in (0, 9, 10):
        day = today - datetime.timedelta(days=offset)
        store.day_replace(cluster="far", day=day, rows=[make_row(cluster="far", day=day)])
    # when
    response = viewer_api.get("/api/v1/peaks/", {"cluster": "far"})
    # then the last 10 days of the cluster's calendar, whatever its lookback
    assert response.status_code == 200
    assert [r["day"] for r in response.data["results"]] == [
        (today - datetime.timedelta(days=9)).isoformat(),
        today.isoformat(),
    ]

"""Admin pages: Collect & update, a run's progress page, run history, Daily peaks by date."""

from __future__ import annotations

import datetime

import pytest

from apps.audit.models import AuditEvent
from apps.metrics.models import CollectionRun
from apps.metrics.store import OrmStore
from tests.metrics.test_store import make_row


@pytest.fixture
def prod(cluster):
    cluster.prometheus_url = "http://127.0.0.1:9"
    cluster.save()
    return cluster


def test_collect_page_starts_a_run_and_shows_its_progress(client, operator, prod, django_capture_on_commit_callbacks):
    client.force_login(operator)
    page = client.get("/admin/metrics/collectionrun/add/")
    assert page.status_code == 200
    assert b"Collect &amp; update" in page.content
    # when
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post("/admin/metrics/collectionrun/add/", {"cluster": "prod", "days": "5"})
    # then
    run = CollectionRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/admin/metrics/collectionrun/{run.pk}/change/"
    assert (run.days, run.state, run.requested_by) == (5, "queued", "operator1")
    assert len(callbacks) == 1
    assert AuditEvent.objects.get(action="collection.start").source == "admin"
    detail = client.get(response["Location"]).content.decode()
    assert '<progress id="kd-progress" max="35" value="0"' in detail  # 5 days × 7 requests (Prometheus)
    assert f"/api/v1/collections/{run.pk}/" in detail  # the bar polls the API while the run goes
    assert "quantile_over_time(0.95, (avg by (namespace, deployment, container)" in detail
    assert "kube_pod_status_ready" in detail


def test_a_busy_cluster_is_refused_on_the_form(client, operator, prod):
    client.force_login(operator)
    client.post("/admin/metrics/collectionrun/add/", {"cluster": "prod", "days": "5"})
    response = client.post("/admin/metrics/collectionrun/add/", {"cluster": "prod", "days": "5"})
    assert response.status_code == 200
    assert "is already collecting" in response.content.decode()
    assert CollectionRun.objects.count() == 1


def test_viewers_see_history_but_cannot_start(client, viewer, prod):
    CollectionRun.objects.create(cluster=prod, days=3, state="failed", errors=["Prometheus x is unreachable"])
    client.force_login(viewer)
    assert client.get("/admin/metrics/collectionrun/add/").status_code == 403
    history = client.get("/admin/metrics/collectionrun/")
    assert history.status_code == 200
    assert "Prometheus x is unreachable" in history.content.decode()
    assert CollectionRun.objects.count() == 1


def test_finished_runs_do_not_poll(client, viewer, prod):
    run = CollectionRun.objects.create(cluster=prod, days=3, state="done", progress_done=27, progress_total=27)
    client.force_login(viewer)
    detail = client.get(f"/admin/metrics/collectionrun/{run.pk}/change/").content.decode()
    assert 'value="27"' in detail
    assert "window.setTimeout(poll" not in detail


def test_daily_peaks_by_date(client, viewer, prod):
    day = datetime.date(2026, 3, 1)
    OrmStore().day_replace(
        cluster="prod", day=day, rows=[make_row(day=day), make_row(day=day, deployment="web", container="web")]
    )
    client.force_login(viewer)
    page = client.get("/admin/metrics/dailypeak/", {"cluster": "prod", "day": "2026-03-01"}).content.decode()
    assert page.count("<td>cart</td>") == 2  # deployment and container
    assert "<td>web</td>" in page
    assert "2026-02-28" in page  # previous day
    assert "2026-03-02" in page  # next day
    filtered = client.get("/admin/metrics/dailypeak/", {"cluster": "prod", "day": "2026-03-01", "deployment": "web"})
    assert "<td>cart</td>" not in filtered.content.decode()
    empty = client.get("/admin/metrics/dailypeak/", {"cluster": "prod", "day": "2026-03-02"}).content.decode()
    assert "No peaks collected for this day." in empty

"""``GET /api/v1/dashboard/summary`` and ``/curves``: payloads, defaults, errors and permissions."""

from __future__ import annotations

import datetime
import zoneinfo

import pytest
from rest_framework.test import APIClient

from apps.metrics import dashboard
from apps.metrics.clickhouse import ClickHouseDoor
from apps.metrics.store import ClickHouseStore, OrmStore
from tests.factories import ClusterFactory, MicroserviceFactory
from tests.metrics.test_dashboard import D1, D3, EXPECTED_NAMESPACES, EXPECTED_TOP, EXPECTED_TOTALS, SCENARIO, load

SUMMARY = "/api/v1/dashboard/summary"
CURVES = "/api/v1/dashboard/curves"


@pytest.fixture
def prod(db):
    return ClusterFactory(name="prod", time_zone="Asia/Shanghai", lookback_days=10)


@pytest.fixture
def archive(prod):
    load(OrmStore(), SCENARIO)


def test_summary_payload(viewer_api, archive):
    # when
    response = viewer_api.get(SUMMARY, {"cluster": "prod", "day_from": "2026-03-01", "day_to": "2026-03-03"})
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["cluster"] == "prod"
    assert (body["day_from"], body["day_to"]) == ("2026-03-01", "2026-03-03")
    assert body["data"] == {"rows": 10, "first_day": "2026-02-28", "last_day": "2026-03-03"}
    assert body["namespaces"] == 2
    assert body["totals"] == EXPECTED_TOTALS
    assert body["top"] == EXPECTED_TOP
    assert body["namespace_rows"] == EXPECTED_NAMESPACES


def test_summary_defaults_to_the_clusters_lookback_ending_today_in_its_zone(viewer_api, prod):
    # given: nothing collected
    today = datetime.datetime.now(zoneinfo.ZoneInfo("Asia/Shanghai")).date()
    # when
    body = viewer_api.get(SUMMARY, {"cluster": "prod"}).json()
    # then
    assert body["day_to"] == today.isoformat()
    assert body["day_from"] == (today - datetime.timedelta(days=9)).isoformat()
    assert body["data"] == {"rows": 0, "first_day": None, "last_day": None}
    assert body["totals"]["services"] == 0
    assert body["namespace_rows"] == []


def test_curves_payload(viewer_api, archive):
    response = viewer_api.get(
        CURVES,
        {
            "cluster": "prod",
            "namespace": "shop",
            "deployment": "cart",
            "day_from": "2026-03-01",
            "day_to": "2026-03-03",
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("cluster", "namespace", "deployment", "day_from", "day_to")} == {
        "cluster": "prod",
        "namespace": "shop",
        "deployment": "cart",
        "day_from": "2026-03-01",
        "day_to": "2026-03-03",
    }
    assert [(p["day"], p["pods"], p["cpu_cores"], p["cpu_limit_cores"], p["mem_mib"]) for p in body["points"]] == [
        ("2026-03-01", 3, 0.375, 1.5, 364.0),
        ("2026-03-02", 4, 0.625, None, 464.0),
    ]


def test_curves_of_a_registered_service_without_data_are_empty(viewer_api, archive, prod):
    MicroserviceFactory(cluster=prod, namespace="shop", name="new")
    response = viewer_api.get(CURVES, {"cluster": "prod", "namespace": "shop", "deployment": "new"})
    assert response.status_code == 200
    assert response.json()["points"] == []


def test_curves_of_an_archived_service_outside_the_range_are_empty(viewer_api, archive):
    response = viewer_api.get(
        CURVES,
        {
            "cluster": "prod",
            "namespace": "pay",
            "deployment": "ledger",
            "day_from": "2026-03-01",
            "day_to": "2026-03-02",
        },
    )
    assert response.status_code == 200
    assert response.json()["points"] == []


def test_unknown_service_is_404(viewer_api, archive):
    response = viewer_api.get(CURVES, {"cluster": "prod", "namespace": "shop", "deployment": "nope"})
    assert response.status_code == 404
    assert "shop/nope" in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        (SUMMARY, {"cluster": "nope"}, "cluster"),
        (SUMMARY, {}, "cluster"),
        (SUMMARY, {"cluster": "prod", "day_from": "2026-03-03", "day_to": "2026-03-01"}, "day_from"),
        (SUMMARY, {"cluster": "prod", "day_from": "2025-01-01", "day_to": "2026-03-01"}, "day_from"),
        (SUMMARY, {"cluster": "prod", "day_to": "yesterday"}, "day_to"),
        (CURVES, {"cluster": "prod", "namespace": "shop"}, "deployment"),
        (CURVES, {"cluster": "nope", "namespace": "shop", "deployment": "cart"}, "cluster"),
    ],
)
def test_bad_queries_are_400_with_field_errors(viewer_api, archive, path, query, field):
    response = viewer_api.get(path, query)
    assert response.status_code == 400
    assert field in str(response.json())


def test_only_day_to_gives_the_lookback_before_it(viewer_api, archive):
    body = viewer_api.get(SUMMARY, {"cluster": "prod", "day_to": "2026-03-03"}).json()
    assert (body["day_from"], body["day_to"]) == ("2026-02-22", "2026-03-03")
    assert body["totals"]["services"] == 4


def test_a_year_is_accepted(viewer_api, archive):
    response = viewer_api.get(SUMMARY, {"cluster": "prod", "day_from": "2025-03-04", "day_to": "2026-03-03"})
    assert response.status_code == 200
    body = response.json()
    # cart's busiest day is now 2026-02-28 (5 cores × 10 pods)
    assert body["top"]["load"][0] == {
        "namespace": "shop",
        "deployment": "cart",
        "source_day": "2026-02-28",
        "value": 50.0,
    }
    assert (body["totals"]["services"], body["totals"]["pods"]) == (4, 18)


@pytest.mark.parametrize("path", [SUMMARY, CURVES])
def test_permissions(nobody, archive, path):
    query = {"cluster": "prod", "namespace": "shop", "deployment": "cart"}
    assert APIClient().get(path, query).status_code in (401, 403)
    client = APIClient()
    client.force_authenticate(nobody)
    assert client.get(path, query).status_code == 403


def test_session_login_works_for_the_admin_page(client, viewer, archive):
    client.force_login(viewer)
    response = client.get(SUMMARY, {"cluster": "prod", "day_from": "2026-03-01", "day_to": "2026-03-03"})
    assert response.status_code == 200
    assert response.json()["totals"]["pods"] == 12


@pytest.mark.django_db
def test_summary_through_the_clickhouse_store(viewer_api, prod, settings, clickhouse_url, monkeypatch):
    # given: the archive in ClickHouse 18.16 (the "clickhouse" alias is replaced by the scratch database)
    door = ClickHouseDoor.from_url(clickhouse_url)
    monkeypatch.setattr(ClickHouseDoor, "default", classmethod(lambda cls: door))
    settings.KUBEDOOR_PEAK_STORE = "clickhouse"
    store = ClickHouseStore(door)
    store.ensure_schema()
    load(store, SCENARIO)
    try:
        # when
        body = viewer_api.get(SUMMARY, {"cluster": "prod", "day_from": D1.isoformat(), "day_to": D3.isoformat()}).json()
        curves = viewer_api.get(
            CURVES, {"cluster": "prod", "namespace": "shop", "deployment": "cart", "day_from": "2026-03-01"}
        ).json()
    finally:
        door.close()
    # then
    assert body["totals"] == EXPECTED_TOTALS
    assert body["top"] == EXPECTED_TOP
    assert body["data"]["rows"] == 10
    assert [p["day"] for p in curves["points"]] == ["2026-03-01", "2026-03-02"]
    assert isinstance(dashboard.dashboard_store(), dashboard.ClickHouseDashboard)

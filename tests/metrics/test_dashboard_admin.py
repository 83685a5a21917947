"""The Dashboard admin pages: index link, permissions, empty states, range form, curves page, and the
control table's link to each service's curves. (The charts themselves are tested in tests/e2e/.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.urls import reverse

from apps.metrics.store import OrmStore
from tests.factories import ClusterFactory, MicroserviceFactory
from tests.metrics.test_dashboard import SCENARIO, load

DASHBOARD = "/admin/metrics/dashboard/"
CURVES = "/admin/metrics/dashboard/curves/"
STATIC = Path(__file__).resolve().parents[2] / "apps/metrics/static/kubedoor"
TEMPLATES = Path(__file__).resolve().parents[2] / "apps/metrics/templates/admin/metrics"


@pytest.fixture
def prod(db):
    return ClusterFactory(name="prod", lookback_days=10)


def test_urls_are_named():
    assert reverse("admin:metrics_dashboard") == DASHBOARD
    assert reverse("admin:metrics_dashboard_curves") == CURVES


def test_the_index_links_the_dashboard_for_viewers(client, viewer):
    client.force_login(viewer)
    response = client.get("/admin/")
    assert response.status_code == 200
    assert f'href="{DASHBOARD}"' in response.content.decode()
    # and the metrics app page too
    assert f'href="{DASHBOARD}"' in client.get("/admin/metrics/").content.decode()


def test_no_link_and_no_page_without_the_permission(client, nobody, prod):
    client.force_login(nobody)
    assert DASHBOARD not in client.get("/admin/").content.decode()
    assert client.get(DASHBOARD).status_code == 403
    assert client.get(CURVES, {"cluster": "prod", "namespace": "shop", "deployment": "cart"}).status_code == 403


def test_anonymous_users_are_sent_to_the_login(client):
    response = client.get(DASHBOARD)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_without_a_cluster_the_page_says_to_add_one(client, viewer):
    client.force_login(viewer)
    page = client.get(DASHBOARD).content.decode()
    assert "No cluster yet — add one, then run Collect & update." in page
    assert f'href="{reverse("admin:control_cluster_add")}"' in page
    assert 'id="kd-dashboard"' not in page


def test_a_cluster_without_data_says_run_collect_and_update(client, viewer, prod):
    client.force_login(viewer)
    page = client.get(DASHBOARD).content.decode()
    assert "No data yet — run Collect & update" in page
    assert f'<a class="button" href="{reverse("admin:metrics_collectionrun_add")}">' in page
    assert 'id="kd-dashboard"' not in page


def test_a_cluster_with_data_gets_the_charts_shell_with_the_range(client, viewer, prod):
    load(OrmStore(), SCENARIO)
    client.force_login(viewer)
    # when
    page = client.get(DASHBOARD, {"cluster": "prod", "day_from": "2026-03-01", "day_to": "2026-03-03"}).content.decode()
    # then
    assert 'id="kd-dashboard"' in page
    assert 'data-summary-api="/api/v1/dashboard/summary"' in page
    assert 'data-cluster="prod"' in page
    assert 'data-day-from="2026-03-01"' in page
    assert 'data-day-to="2026-03-03"' in page
    assert "The archive holds 2026-02-28 to 2026-03-03." in page
    assert len(re.findall(r'class="kd-chart" data-board="(\w+)"', page)) == 5
    assert '<script src="/jsi18n/">' in page
    assert "/static/kubedoor/charts.js" in page
    assert "/static/kubedoor/dashboard.js" in page


def test_a_reversed_range_is_an_error_on_the_form(client, viewer, prod):
    load(OrmStore(), SCENARIO)
    client.force_login(viewer)
    page = client.get(DASHBOARD, {"cluster": "prod", "day_from": "2026-03-03", "day_to": "2026-03-01"}).content.decode()
    assert "The range must start before it ends." in page
    assert 'id="kd-dashboard"' not in page


def test_the_curves_page_shell(client, viewer, prod):
    load(OrmStore(), SCENARIO)
    service = MicroserviceFactory(cluster=prod, namespace="shop", name="cart")
    client.force_login(viewer)
    # when
    response = client.get(
        CURVES,
        {
            "cluster": "prod",
            "namespace": "shop",
            "deployment": "cart",
            "day_from": "2026-03-01",
            "day_to": "2026-03-03",
        },
    )
    # then
    assert response.status_code == 200
    page = response.content.decode()
    assert "Daily curves of shop/cart" in page
    assert 'data-curves-api="/api/v1/dashboard/curves"' in page
    assert 'data-namespace="shop"' in page
    assert 'data-deployment="cart"' in page
    assert 'data-day-from="2026-03-01"' in page
    for chart in ("kd-chart-cpu", "kd-chart-mem", "kd-chart-pods"):
        assert f'id="{chart}"' in page
    assert reverse("admin:control_microservice_change", args=[service.pk]) in page


@pytest.mark.parametrize(
    "query",
    [{}, {"cluster": "nope", "namespace": "shop", "deployment": "cart"}, {"cluster": "prod", "namespace": "shop"}],
)
def test_the_curves_page_needs_a_cluster_and_a_service(client, viewer, prod, query):
    client.force_login(viewer)
    assert client.get(CURVES, query).status_code == 404


def test_each_control_table_row_links_to_its_curves(client, viewer, prod):
    MicroserviceFactory(cluster=prod, namespace="shop", name="cart")
    MicroserviceFactory(cluster=prod, namespace="pay", name="api")
    client.force_login(viewer)
    page = client.get("/admin/control/microservice/").content.decode()
    links = re.findall(r'<a class="kd-curves-link" href="([^"]+)">', page)
    assert sorted(links) == [
        f"{CURVES}?cluster=prod&amp;namespace=pay&amp;deployment=api",
        f"{CURVES}?cluster=prod&amp;namespace=shop&amp;deployment=cart",
    ]


def test_the_javascript_catalogue_is_served(client):
    response = client.get("/jsi18n/")
    assert response.status_code == 200
    assert b"gettext" in response.content


def test_pages_and_scripts_load_nothing_from_the_internet():
    files = [*STATIC.iterdir(), *TEMPLATES.glob("dashboard*.html")]
    assert {f.name for f in STATIC.iterdir()} >= {"charts.js", "dashboard.js", "curves.js", "dashboard.css"}
    for file in files:
        text = file.read_text()
        # the only absolute URL allowed is the SVG namespace identifier
        assert re.findall(r"https?://[^\s\"')]+", text.replace("http://www.w3.org/2000/svg", "")) == [], file.name
        assert "//cdn" not in text

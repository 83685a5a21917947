"""The node board and the pod curves in headless Chromium, populated by ``kubedoor_demo``.

The ``demo`` fixture runs ``kubedoor_demo`` (which writes the demo's pod and node figures through
``kubedoor_demo_pods_nodes``) and 30 days of daily peaks; nothing here writes pod or node rows.
"""

from __future__ import annotations

import datetime

import pytest

from apps.metrics import pod_node_dashboard
from apps.metrics.selectors import cluster_today
from tests.e2e.conftest import DEMO_DAYS, log_in, shot
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_node_board_draws_every_node_of_the_demo(live_server, new_page, demo):
    UserFactory(username="viewer1", role="viewer")
    day_to = cluster_today(demo) - datetime.timedelta(days=1)
    day_from = day_to - datetime.timedelta(days=DEMO_DAYS - 1)
    board = pod_node_dashboard.node_board(cluster="demo", day_from=day_from, day_to=day_to)
    assert board.day == day_to
    page = new_page()
    log_in(page, live_server.url, "viewer1")
    # when
    page.goto(f"{live_server.url}/admin/metrics/dashboard/?cluster=demo&day_from={day_from}&day_to={day_to}")
    page.wait_for_selector("#kd-nodes[data-loaded='true']")
    # then: one row per node, each with its allocatable, requested and used bars for CPU and memory
    rows = page.locator("#kd-node-chart g.kd-node-row")
    assert rows.count() == len(board.nodes) >= 3
    assert rows.evaluate_all("els => els.map(e => e.dataset.node)") == [n.node for n in board.nodes]
    used = page.locator("#kd-node-chart rect.kd-node-used[data-resource='cpu']").evaluate_all(
        "els => els.map(e => Number(e.getAttribute('width')))"
    )
    assert len(used) == len(board.nodes)
    assert min(used) > 0
    assert page.locator("#kd-node-chart g.kd-node-row rect.kd-node-request").count() == 2 * len(board.nodes)
    # the most and least loaded nodes and the spread, as the API computes them
    most = page.locator(".kd-node-card[data-key='most'] .kd-node-line").all_inner_texts()
    assert [line.split(":")[0] for line in most] == [n.node for n in board.most_loaded]
    least = page.locator(".kd-node-card[data-key='least'] .kd-node-line").all_inner_texts()
    assert [line.split(":")[0] for line in least] == [n.node for n in board.least_loaded]
    spread = page.inner_text(".kd-node-card[data-key='spread']")
    assert f"{board.spread.cpu_spread_pct:.1f}".rstrip("0").rstrip(".") in spread
    assert str(board.day) in page.inner_text("#kd-nodes-day")
    shot(page, "20-dashboard-node-board")


def test_a_services_curves_page_draws_its_pods(live_server, new_page, demo):
    UserFactory(username="viewer1", role="viewer")
    day_to = cluster_today(demo) - datetime.timedelta(days=1)
    day_from = day_to - datetime.timedelta(days=DEMO_DAYS - 1)
    curves = pod_node_dashboard.pod_curves(
        cluster="demo", namespace="shop", deployment="cart", day_from=day_from, day_to=day_to
    )
    page = new_page()
    log_in(page, live_server.url, "viewer1")
    # when
    page.goto(
        f"{live_server.url}/admin/metrics/dashboard/curves/?cluster=demo&namespace=shop&deployment=cart"
        f"&day_from={day_from}&day_to={day_to}"
    )
    page.wait_for_selector("#kd-pods[data-loaded='true']")
    # then: a line per pod, a point per day each pod ran, in both charts
    assert int(page.get_attribute("#kd-pods", "data-pods")) == len(curves.pods) > 0
    for chart in ("#kd-chart-pod-cpu", "#kd-chart-pod-mem"):
        assert page.locator(f"{chart} path.kd-line").count() == len(curves.pods)
        assert page.locator(f"{chart} circle.kd-point").count() == sum(len(c.points) for c in curves.pods)
    first = curves.pods[0]
    names = page.locator("#kd-chart-pod-cpu path.kd-line").evaluate_all("els => els.map(e => e.dataset.series)")
    assert names == [c.pod for c in curves.pods]
    assert page.locator("#kd-chart-pod-cpu .kd-chart-empty").count() == 0
    assert first.points[0].cpu_cores is not None
    shot(page, "21-curves-pods")


def test_a_range_without_node_figures_says_so(live_server, new_page, demo):
    UserFactory(username="viewer1", role="viewer")
    page = new_page()
    log_in(page, live_server.url, "viewer1")
    page.goto(f"{live_server.url}/admin/metrics/dashboard/?cluster=demo&day_from=2020-01-01&day_to=2020-01-31")
    page.wait_for_selector("#kd-nodes[data-loaded='true']")
    assert page.inner_text("#kd-node-chart .kd-nodes-empty") == (
        "No node figures in this range: they come with the next collection."
    )
    assert page.locator("#kd-node-chart g.kd-node-row").count() == 0
    assert page.get_attribute("#kd-nodes", "data-nodes") == "0"

"""After ``kubedoor_demo`` alone, every board has data (issue 11 §7), checked in headless Chromium.

The dashboard, its waste board and a service's curves over the default range (the cluster's
lookback): no empty state anywhere, the excluded incident day marked on the curves and the trend.
"""

from __future__ import annotations

import datetime
import io

import pytest
from django.core.management import call_command

from apps.control.models import Cluster, ExcludedDay
from apps.metrics.selectors import cluster_today
from tests.e2e.conftest import log_in, shot
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def no_empty_state(page) -> None:
    assert page.locator(".kd-chart-empty").count() == 0
    assert page.locator(".errornote").count() == 0
    empty = page.locator("#kd-empty")
    assert empty.count() == 0 or not empty.is_visible()


def test_the_demo_populates_the_dashboard_the_waste_board_and_the_curves(live_server, new_page):
    # given: only the demo command
    call_command("kubedoor_demo", stdout=io.StringIO())
    cluster = Cluster.objects.get(name="demo")
    incident = ExcludedDay.objects.get(cluster=cluster).start
    today = cluster_today(cluster)
    UserFactory(username="viewer1", role="viewer")
    page = new_page()
    log_in(page, live_server.url, "viewer1")
    # when: the dashboard over its default range
    page.goto(f"{live_server.url}/admin/metrics/dashboard/?cluster=demo")
    page.wait_for_selector("#kd-dashboard[data-loaded='true']")
    page.wait_for_selector("#kd-waste[data-loaded='true']")
    # then: the boards and the waste board are drawn, nothing is empty
    no_empty_state(page)
    assert page.locator("#kd-dashboard rect.kd-bar").count() == 50  # five boards of ten
    assert page.locator("#kd-waste-top rect.kd-bar").count() == 10
    assert page.locator("#kd-waste-totals .kd-total[data-key='monthly_cost']").count() == 1
    assert (
        float(
            page.locator("#kd-waste-totals .kd-total[data-key='monthly_cost'] .kd-total-value")
            .inner_text()
            .replace(",", "")
        )
        > 0
    )
    assert page.locator("#kd-waste-namespaces tbody tr").count() == 5
    trend_days = page.locator("#kd-waste-trend circle.kd-waste-cpu").evaluate_all("els => els.map(e => e.dataset.day)")
    # the range is the lookback ending today; the archive ends yesterday
    assert trend_days == [str(today - datetime.timedelta(days=n)) for n in range(cluster.lookback_days - 1, 0, -1)]
    assert page.locator("#kd-waste-trend rect.kd-marked-day").evaluate_all("els => els.map(e => e.dataset.day)") == [
        str(incident)
    ]
    shot(page, "20-demo-dashboard-waste")
    # when: a wasting service's curves, from the waste board
    with page.expect_navigation():
        page.locator("#kd-waste-top a").first.click()
    page.wait_for_selector("#kd-curves[data-loaded='true']")
    # then
    no_empty_state(page)
    assert page.locator("#kd-chart-cpu circle.kd-point").count() == cluster.lookback_days - 1
    assert page.locator("#kd-chart-cpu rect.kd-marked-day").evaluate_all("els => els.map(e => e.dataset.day)") == [
        str(incident)
    ]
    assert page.locator("#kd-excluded .kd-excluded-day").all_inner_texts() == [str(incident)]
    shot(page, "21-demo-curves-excluded-day")

"""The run page's progress bar in headless Chromium: it follows the API while the run goes."""

from __future__ import annotations

import pytest

from apps.metrics.models import CollectionRun
from tests.e2e.conftest import browser, log_in, new_page, shot  # noqa: F401 - fixtures reused from tests/e2e
from tests.factories import ClusterFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_the_progress_bar_moves_while_the_run_goes_and_stops_when_done(live_server, new_page):  # noqa: F811
    # given: a running collection at 3 of 27 queries
    UserFactory(username="operator1", role="operator")
    cluster = ClusterFactory(name="prod", prometheus_url="http://127.0.0.1:9")
    run = CollectionRun.objects.create(cluster=cluster, days=3, state="running", progress_done=3, progress_total=27)
    page = new_page()
    url = f"/admin/metrics/collectionrun/{run.pk}/change/"
    log_in(page, live_server.url, "operator1", next_url=url)
    assert page.locator("#kd-progress").get_attribute("value") == "3"
    # when: the worker gets further
    CollectionRun.objects.filter(pk=run.pk).update(progress_done=20)
    # then: the bar follows without a reload
    page.wait_for_function("document.getElementById('kd-progress').value === 20", timeout=10_000)
    assert "20/27" in page.locator("#kd-progress-text").inner_text()
    shot(page, "metrics-collection-progress")
    # when: the run finishes, the page reloads once and stops polling
    with page.expect_navigation(timeout=10_000):
        CollectionRun.objects.filter(pk=run.pk).update(progress_done=27, state="done", rows_written=81)
    page.wait_for_load_state()
    assert page.locator("#kd-progress").get_attribute("value") == "27"
    assert "window.setTimeout(poll" not in page.content()
    assert "81" in page.locator(".field-rows_written").inner_text()

"""The admin's drift page in a browser: a viewer opens it from the Admission list, in Chinese too."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import log_in, shot
from tests.factories import MicroserviceFactory, UserFactory
from tests.servers.k8s_standin import standin_cluster

pytestmark = pytest.mark.e2e

ROW = {"request_cpu_m": 250, "request_mem_mib": 256, "limit_cpu_m": 1000, "limit_mem_mib": 1024}
RESOURCES = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1000m", "memory": "1024Mi"}}


def test_a_viewer_opens_the_drift_of_a_cluster(live_server, new_page, k8s_standin):
    # given: cart runs 5 pods where the table says 3; api is as the table says
    cluster = standin_cluster(k8s_standin, name="prod")
    for name, replicas in (("cart", 5), ("api", 3)):
        k8s_standin.add_deployment(
            "shop", name, replicas=replicas, containers=[{"name": name, "image": "x:1", "resources": RESOURCES}]
        )
        MicroserviceFactory(cluster=cluster, namespace="shop", name=name, replicas_specified=3, **ROW)
    UserFactory(username="viewer1", role="viewer")
    page = new_page()
    log_in(page, live_server.url, "viewer1")
    # when: Admission → drift
    page.goto(f"{live_server.url}/admin/webhook/admission/")
    with page.expect_navigation():
        page.click("a[href$='/drift/']")
    # then
    assert page.locator("#drift-summary").inner_text() == "1 of 2 controlled Deployments drift"
    rows = page.locator("#drift tbody tr").all()
    assert len(rows) == 1
    assert rows[0].locator("td").nth(1).inner_text() == "cart"
    assert rows[0].locator("td").nth(2).inner_text() == '{"replicas": 5}'
    assert rows[0].locator("td").nth(3).inner_text() == '{"replicas": 3}'
    assert '"path": "/spec/replicas"' in rows[0].locator("pre").inner_text()
    shot(page, "30-drift")
    # and in Chinese
    zh = new_page(locale="zh-CN", extra_http_headers={"Accept-Language": "zh-hans"})
    log_in(zh, live_server.url, "viewer1")
    zh.goto(f"{live_server.url}/admin/webhook/admission/{cluster.pk}/drift/")
    assert zh.locator("#drift-summary").inner_text() == "2 个受控 Deployment 中有 1 个发生漂移"
    shot(zh, "31-drift-zh-hans")

"""The admin UI in headless Chromium against a live server with the demo data (issue 6 §4).

Log in, the control table (filter by namespace, sort, open a service's curves), Save & scale against
the Kubernetes stand-in, the dashboard's charts, its empty state, the admission switch to audit with
its confirmation, and one page in Chinese. Each page is saved under test-output/screenshots/.
"""

from __future__ import annotations

import datetime
import re

import pytest
import trustme

from apps.control.models import Cluster, Microservice
from apps.metrics import dashboard
from apps.metrics.selectors import cluster_today, day_range_get
from tests.e2e.conftest import DEMO_DAYS, log_in, shot
from tests.factories import ClusterFactory, UserFactory
from tests.servers.k8s_standin import standin_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CONFIGS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"


def numbers(texts: list[str]) -> list[float]:
    return [float(t.replace(",", "")) for t in texts]


def test_log_in_filter_sort_and_open_a_services_curves(live_server, new_page, demo):
    UserFactory(username="viewer1", role="viewer")
    page = new_page()
    # log in
    log_in(page, live_server.url, "viewer1")
    assert page.locator("#user-tools").inner_text().upper().startswith("WELCOME,")
    assert page.locator("a[href='/admin/metrics/dashboard/']").count() >= 1  # the index links the dashboard
    shot(page, "01-index")
    # the control table
    page.goto(f"{live_server.url}/admin/control/microservice/")
    assert page.locator("h1").inner_text() == "Control table"
    assert page.locator("#result_list tbody tr").count() == 50
    shot(page, "02-control-table")
    # filter by namespace from the sidebar
    with page.expect_navigation():
        page.locator("#changelist-filter a", has_text=re.compile(r"^payments$")).click()
    assert "namespace=payments" in page.url
    assert page.locator("td.field-namespace").all_inner_texts() == ["payments"] * 10
    # sort by limit CPU: one click ascending, a second descending
    with page.expect_navigation():
        page.locator("th.column-limit_cpu_m .text a").click()
    ascending = numbers(page.locator("td.field-limit_cpu_m").all_inner_texts())
    assert ascending == sorted(ascending)
    assert page.locator("td.field-namespace").all_inner_texts() == ["payments"] * 10
    with page.expect_navigation():
        page.locator("th.column-limit_cpu_m .sortoptions a.toggle").click()
    descending = numbers(page.locator("td.field-limit_cpu_m").all_inner_texts())
    assert descending == sorted(ascending, reverse=True)
    shot(page, "03-control-table-filtered-sorted")
    # a row's curves: one point per day with data in the cluster's lookback (today is not collected yet)
    first = page.locator("#result_list tbody tr").first
    name = first.locator("th.field-name, td.field-name").inner_text()
    with page.expect_navigation():
        first.locator("a.kd-curves-link").click()
    page.wait_for_selector("#kd-curves[data-loaded='true']")
    lookback = day_range_get(cluster=demo)
    expected = dashboard.dashboard_curves(
        cluster="demo",
        namespace="payments",
        deployment=name,
        day_from=lookback.day_from,
        day_to=lookback.day_to,
    )
    assert len(expected) == demo.lookback_days - 1 == 9
    assert page.locator("#kd-chart-cpu circle.kd-point").count() == 9
    assert page.locator("#kd-chart-mem circle.kd-point").count() == 9
    assert page.locator("#kd-chart-pods circle.kd-point").count() == 9
    assert page.locator("#kd-chart-cpu path.kd-line").count() == 3  # P95, request, limit
    days = page.locator("#kd-chart-cpu circle.kd-point").evaluate_all("els => els.map(e => e.dataset.day)")
    assert days == [p.day.isoformat() for p in expected]
    values = page.locator("#kd-chart-pods circle.kd-point").evaluate_all("els => els.map(e => Number(e.dataset.value))")
    assert values == [p.pods for p in expected]
    assert page.locator("h1").inner_text() == f"Daily curves of payments/{name}"
    # the row's source day is marked on each chart (issue 11)
    source_day = Microservice.objects.get(cluster=demo, namespace="payments", name=name).source_day.isoformat()
    for chart in ("cpu", "mem", "pods"):
        marks = page.locator(f"#kd-chart-{chart} line.kd-mark-source").evaluate_all(
            "els => els.map(e => e.dataset.day)"
        )
        assert marks == [source_day]
    shot(page, "04-curves")


def test_save_and_scale_patches_the_scale_subresource(live_server, new_page, demo, k8s_standin):
    # given: the demo cluster's kubeconfig points at the recording stand-in, which runs shop/cart
    standin_cluster(k8s_standin, name="demo")
    k8s_standin.add_deployment("shop", "cart", replicas=2)
    UserFactory(username="operator1", role="operator")
    service = Microservice.objects.get(cluster__name="demo", namespace="shop", name="cart")
    page = new_page()
    log_in(page, live_server.url, "operator1")
    # when: the operator sets the specified pods and presses Save & scale
    page.goto(f"{live_server.url}/admin/control/microservice/{service.pk}/change/")
    page.fill("#id_replicas_specified", "5")
    shot(page, "05-change-form")
    with page.expect_navigation():
        page.click("button[name=_saveandscale]")
    # then
    messages = page.locator("ul.messagelist li").all_inner_texts()
    assert any("was changed successfully" in m for m in messages), messages
    assert any("shop/cart" in m and "5" in m for m in messages), messages
    shot(page, "06-saved-and-scaled")
    patches = k8s_standin.calls("PATCH", "/apis/apps/v1/namespaces/shop/deployments/cart/scale")
    assert [(p.content_type, p.body) for p in patches] == [("application/merge-patch+json", {"spec": {"replicas": 5}})]
    assert k8s_standin.deployment("shop", "cart")["spec"]["replicas"] == 5
    service.refresh_from_db()
    assert service.replicas_specified == 5


def test_dashboard_draws_every_chart(live_server, new_page, demo):
    UserFactory(username="viewer1", role="viewer")
    day_to = cluster_today(demo) - datetime.timedelta(days=1)
    day_from = day_to - datetime.timedelta(days=DEMO_DAYS - 1)
    summary = dashboard.dashboard_summary(cluster="demo", day_from=day_from, day_to=day_to)
    page = new_page()
    log_in(page, live_server.url, "viewer1")
    # when
    page.goto(f"{live_server.url}/admin/metrics/dashboard/?cluster=demo&day_from={day_from}&day_to={day_to}")
    page.wait_for_selector("#kd-dashboard[data-loaded='true']")
    # then: the totals
    totals = dict(
        zip(
            page.locator(".kd-total").evaluate_all("els => els.map(e => e.dataset.key)"),
            page.locator(".kd-total-value").all_inner_texts(),
            strict=True,
        )
    )
    assert totals["namespaces"] == "5"
    assert totals["services"] == "50"
    assert totals["pods"] == f"{summary.totals.pods:,}"
    assert float(totals["cpu_used_cores"].replace(",", "")) == round(summary.totals.cpu_used_cores, 2)
    assert float(totals["mem_limit_gib"].replace(",", "")) == round(summary.totals.mem_limit_gib, 2)
    # each top-10 board drew ten bars, labelled with the services the API ranks first
    for board in dashboard.BOARDS:
        chart = page.locator(f".kd-chart[data-board='{board}']")
        assert chart.locator("rect.kd-bar").count() == 10, board
        labels = chart.locator("text.kd-bar-label").all_text_contents()
        assert labels == [f"{e.namespace}/{e.deployment}" for e in summary.top[board]], board
        notes = chart.locator("tspan.kd-bar-note").all_text_contents()
        assert notes == [e.source_day.isoformat() for e in summary.top[board]], board
        widths = numbers(chart.locator("rect.kd-bar").evaluate_all("els => els.map(e => e.getAttribute('width'))"))
        assert widths == sorted(widths, reverse=True), board
    titles = page.locator(".kd-chart[data-board='load'] g.kd-bar-row > title").all_text_contents()
    assert titles[0] == f"{summary.top['load'][0].namespace}/{summary.top['load'][0].deployment} — source day " + (
        summary.top["load"][0].source_day.isoformat()
    )
    # the namespace table, sortable
    rows = page.locator("#kd-namespaces tbody tr")
    assert rows.count() == 5
    assert rows.locator("th").all_inner_texts() == sorted(r.namespace for r in summary.namespace_rows)
    shot(page, "07-dashboard")
    page.click("#kd-namespaces th[data-key='cpu_used_cores']")
    by_cpu = sorted(summary.namespace_rows, key=lambda r: r.totals.cpu_used_cores, reverse=True)
    assert rows.locator("th").all_inner_texts() == [r.namespace for r in by_cpu]
    assert page.locator("#kd-namespaces th[data-key='cpu_used_cores']").get_attribute("aria-sort") == "descending"
    page.click("#kd-namespaces th[data-key='cpu_used_cores']")
    assert rows.locator("th").all_inner_texts() == [r.namespace for r in reversed(by_cpu)]
    share = rows.first.locator("td").nth(3).locator(".kd-share").inner_text()
    assert share.endswith(" %")
    assert abs(float(share[:-2]) - by_cpu[-1].shares["cpu_used_cores"]) <= 0.05
    shot(page, "08-dashboard-sorted")
    # a bar leads to that service's curves over the same range
    top = summary.top["load"][0]
    with page.expect_navigation():
        page.locator(".kd-chart[data-board='load'] a").first.click()
    page.wait_for_selector("#kd-curves[data-loaded='true']")
    assert page.locator("h1").inner_text() == f"Daily curves of {top.namespace}/{top.deployment}"
    assert page.locator("#kd-chart-cpu circle.kd-point").count() == DEMO_DAYS
    shot(page, "09-curves-from-dashboard")


def test_a_cluster_without_data_says_what_to_do(live_server, new_page, transactional_db):
    ClusterFactory(name="fresh")
    UserFactory(username="operator1", role="operator")
    page = new_page()
    log_in(page, live_server.url, "operator1")
    page.goto(f"{live_server.url}/admin/metrics/dashboard/?cluster=fresh")
    assert page.locator("#kd-empty").inner_text().startswith("No data yet — run Collect & update")
    assert page.locator("#kd-dashboard").count() == 0
    shot(page, "10-dashboard-empty")
    with page.expect_navigation():
        page.locator("#kd-empty a.button").click()
    assert page.url == f"{live_server.url}/admin/metrics/collectionrun/add/"
    assert page.locator("h1").inner_text() == "Collect & update"
    shot(page, "11-collect-page")


def test_switch_admission_to_audit_with_confirmation(live_server, new_page, demo, k8s_standin, tmp_path, settings):
    # given
    ca = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))
    settings.KUBEDOOR_WEBHOOK_CA_BUNDLE = str(ca)
    settings.KUBEDOOR_WEBHOOK_CA_INJECT_FROM = ""
    settings.KUBEDOOR_WEBHOOK_URL = ""
    standin_cluster(k8s_standin, name="demo")
    UserFactory(username="admin1", role="admin")
    page = new_page()
    log_in(page, live_server.url, "admin1")
    page.goto(f"{live_server.url}/admin/webhook/admission/{demo.pk}/mode/")
    assert page.locator("#registration").inner_text() == "Not registered."
    shot(page, "12-admission")
    # when: audit is chosen, the page asks first — nothing is sent yet
    page.check("input[name=mode][value=audit]")
    with page.expect_navigation():
        page.click("#content-main input[type=submit]")
    assert page.locator("#confirm-text").inner_text().startswith("Switch cluster demo to audit?")
    assert [r for r in k8s_standin.requests if r.method != "GET"] == []
    shot(page, "13-admission-confirm")
    with page.expect_navigation():
        page.click("input[type=submit][value^='Yes']")
    # then
    assert "Admission of demo is now audit." in page.locator("ul.messagelist").inner_text()
    (posted,) = k8s_standin.calls("POST", CONFIGS)
    assert posted.body["kind"] == "MutatingWebhookConfiguration"
    assert posted.body["metadata"]["name"] == "kubedoor-demo"
    assert page.locator("#admission-mode").inner_text() == "audit"
    assert "/mutate/demo" in page.locator("#registration").inner_text()
    assert Cluster.objects.get(name="demo").admission_mode == "audit"
    shot(page, "14-admission-audit")


def test_a_page_in_chinese(live_server, new_page, demo):
    UserFactory(username="viewer1", role="viewer")
    page = new_page(locale="zh-CN", extra_http_headers={"Accept-Language": "zh-hans"})
    log_in(page, live_server.url, "viewer1")
    page.goto(f"{live_server.url}/admin/metrics/dashboard/?cluster=demo")
    page.wait_for_selector("#kd-dashboard[data-loaded='true']")
    assert '<html lang="zh-hans"' in page.content()
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    assert page.locator(".kd-chart[data-board='pods'] rect.kd-bar").count() == 10
    assert "命名空间" in page.inner_text("#kd-totals")  # drawn by the script from the JavaScript catalogue
    shot(page, "15-dashboard-zh-hans")


def test_a_range_without_data_says_which_days_the_archive_holds(live_server, new_page, demo):
    UserFactory(username="viewer1", role="viewer")
    page = new_page()
    log_in(page, live_server.url, "viewer1")
    page.goto(f"{live_server.url}/admin/metrics/dashboard/?cluster=demo&day_from=2020-01-01&day_to=2020-01-31")
    page.wait_for_selector("#kd-dashboard[data-loaded='true']")
    first = cluster_today(demo) - datetime.timedelta(days=DEMO_DAYS)
    last = cluster_today(demo) - datetime.timedelta(days=1)
    assert page.locator("#kd-status").inner_text() == f"No data in this range — the archive holds {first} to {last}."
    assert page.locator("rect.kd-bar").count() == 0
    assert page.locator("#kd-dashboard .kd-chart-empty").all_inner_texts() == ["No service has this figure."] * 5
    page.wait_for_selector("#kd-waste[data-loaded='true']")
    assert page.locator("#kd-waste .kd-chart-empty").all_inner_texts() == [
        "No service wastes anything in this range.",
        "No data in this range.",
    ]
    assert page.locator("#kd-namespaces tbody tr").count() == 0
    shot(page, "16-dashboard-range-without-data")
    # and a service's curves over such a range say so
    page.goto(
        f"{live_server.url}/admin/metrics/dashboard/curves/?cluster=demo&namespace=shop&deployment=cart"
        "&day_from=2020-01-01&day_to=2020-01-31"
    )
    page.wait_for_selector("#kd-curves[data-loaded='true']")
    assert page.locator("#kd-empty").is_visible()
    assert page.locator("#kd-empty p").first.inner_text().startswith("No data for this microservice in this range")
    assert page.locator("circle.kd-point").count() == 0
    shot(page, "17-curves-range-without-data")

"""Drift: GET /api/v1/clusters/{name}/drift/, the admin page, and the nightly check through beat.

A cluster of Deployments in the Kubernetes stand-in is first made exactly what the control table asks
(replicas and the controlled container's requests and limits), then a few differences are planted, and
next to them changes admission does not own (an HPA's replicas, ``replicas_mode`` ignore, a sidecar's
resources, ``ephemeral-storage``, the same quantity in other words, a value the row leaves unset). Drift
must name exactly the planted ones, read with one paged list call per namespace (page size 4 here, so
every namespace spans several pages).
"""

from __future__ import annotations

import pytest
from celery.signals import beat_init
from django_celery_beat.models import PeriodicTask

from apps.audit.models import AuditEvent, AuditResult, NotificationChannel, NotificationDelivery
from apps.webhook.queue import DRIFT_CHECK_TASK
from apps.webhook.services import drift
from apps.webhook.tasks import drift_check_task
from tests.conftest import _token_client
from tests.factories import MicroserviceFactory
from tests.servers.k8s_standin import standin_cluster

PAGE = 4
ROW = {"request_cpu_m": 250, "request_mem_mib": 256, "limit_cpu_m": 1000, "limit_mem_mib": 1024}


def _in_sync(name, *, sidecar=False, extra=None):
    """Containers whose controlled one holds exactly the row's values (in the webhook's words)."""
    resources = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1000m", "memory": "1024Mi"}}
    for part, values in (extra or {}).items():
        resources[part].update(values)
    containers = [{"name": name, "image": f"registry.local/{name}:1", "resources": resources}]
    if sidecar:
        containers.insert(
            0, {"name": "proxy", "image": "registry.local/proxy:1", "resources": {"requests": {"cpu": "10m"}}}
        )
    return containers


@pytest.fixture
def drifting(k8s_standin, db, settings):
    settings.KUBEDOOR_K8S_LIST_PAGE_SIZE = PAGE
    cluster = standin_cluster(k8s_standin, name="prod", admission_mode="enforce")
    # 11 Deployments in shop and 9 in pay, all as the table asks, replicas 3
    for namespace, count in (("shop", 11), ("pay", 9)):
        for index in range(count):
            name = f"{namespace}-{index:02d}"
            k8s_standin.add_deployment(namespace, name, replicas=3, containers=_in_sync(name, sidecar=index % 3 == 0))
            MicroserviceFactory(cluster=cluster, namespace=namespace, name=name, replicas_specified=3, **ROW)
    # planted drift: replicas, a request, a limit (three Deployments, on different pages)
    _live(k8s_standin, "shop", "shop-01", replicas=5)
    _live(k8s_standin, "shop", "shop-09", container={"requests": {"cpu": "100m"}})
    _live(k8s_standin, "pay", "pay-06", container={"limits": {"memory": "2Gi"}})
    # changes admission does not own: none of these drift
    _live(k8s_standin, "shop", "shop-02", replicas=9)
    _row(cluster, "shop-02", hpa_name="shop-02")
    _live(k8s_standin, "shop", "shop-04", replicas=1)
    _row(cluster, "shop-04", replicas_mode="ignore")
    _live(k8s_standin, "shop", "shop-03", sidecar={"requests": {"cpu": "900m"}})
    _live(k8s_standin, "shop", "shop-05", container={"requests": {"ephemeral-storage": "2Gi"}})
    _live(k8s_standin, "pay", "pay-01", container={"requests": {"cpu": "0.25"}, "limits": {"memory": "1Gi"}})
    _live(k8s_standin, "pay", "pay-02", container={"limits": {"cpu": "3"}})
    _row(cluster, "pay-02", namespace="pay", limit_cpu_m=None)
    # a row without its Deployment, a Deployment without a row, an excluded namespace
    MicroserviceFactory(cluster=cluster, namespace="shop", name="gone", replicas_specified=2, **ROW)
    k8s_standin.add_deployment("shop", "stray", replicas=7)
    k8s_standin.add_deployment("kube-system", "coredns", replicas=2)
    MicroserviceFactory(cluster=cluster, namespace="kube-system", name="coredns", replicas_specified=5, **ROW)
    k8s_standin.reset()
    return cluster


def _live(standin, namespace, name, *, replicas=None, container=None, sidecar=None):
    """Change the stored Deployment directly (as a write past the webhook would)."""
    obj = standin.deployment(namespace, name)
    containers = obj["spec"]["template"]["spec"]["containers"]
    if replicas is not None:
        obj["spec"]["replicas"] = replicas
    for target, values in ((containers[-1], container), (containers[0], sidecar)):
        for part, keys in (values or {}).items():
            target.setdefault("resources", {}).setdefault(part, {}).update(keys)
    standin.add_deployment(namespace, name, replicas=obj["spec"]["replicas"], containers=containers)


def _row(cluster, name, namespace="shop", **fields):
    cluster.microservices.filter(namespace=namespace, name=name).update(**fields)


EXPECTED = [
    {
        "namespace": "pay",
        "name": "pay-06",
        "container": "pay-06",
        "live": {"containers": {"pay-06": {"limits": {"memory": "2Gi"}}}},
        "wanted": {"containers": {"pay-06": {"limits": {"memory": "1024Mi"}}}},
        "patch": [
            {
                "op": "replace",
                "path": "/spec/template/spec/containers/1/resources/limits/memory",
                "value": "1024Mi",
            }
        ],
    },
    {
        "namespace": "shop",
        "name": "shop-01",
        "container": "shop-01",
        "live": {"replicas": 5},
        "wanted": {"replicas": 3},
        "patch": [{"op": "replace", "path": "/spec/replicas", "value": 3}],
    },
    {
        "namespace": "shop",
        "name": "shop-09",
        "container": "shop-09",
        "live": {"containers": {"shop-09": {"requests": {"cpu": "100m"}}}},
        "wanted": {"containers": {"shop-09": {"requests": {"cpu": "250m"}}}},
        # shop-09 has the proxy sidecar first (index % 3 == 0): the controlled container is the second
        "patch": [
            {"op": "replace", "path": "/spec/template/spec/containers/1/resources/requests/cpu", "value": "250m"}
        ],
    },
]


def _pages(standin, namespace):
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    return [(r.query.get("limit"), "continue" in r.query) for r in standin.calls("GET", path)]


def test_drift_names_exactly_the_planted_differences_across_pages(viewer_api, drifting, k8s_standin):
    # when
    response = viewer_api.get("/api/v1/clusters/prod/drift/")
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    got = [
        {k: item[k] for k in ("namespace", "name", "container", "live", "wanted", "patch")} for item in body["items"]
    ]
    assert got == EXPECTED
    assert (body["checked"], body["drifted"], body["missing"]) == (20, 3, [{"namespace": "shop", "name": "gone"}])
    # the would-be patch in strategic-merge form too
    assert body["items"][2]["strategic_patch"]["spec"] == {
        "replicas": 3,
        "template": {
            "spec": {
                "containers": [
                    {"name": "proxy"},
                    {
                        "name": "shop-09",
                        "resources": {
                            "requests": {"cpu": "250m", "memory": "256Mi"},
                            "limits": {"cpu": "1000m", "memory": "1024Mi"},
                        },
                    },
                ]
            }
        },
    }
    # one list call per namespace of the table, paged: shop has 12 Deployments (3 pages), pay 9 (3 pages)
    assert _pages(k8s_standin, "shop") == [(["4"], False), (["4"], True), (["4"], True)]
    assert _pages(k8s_standin, "pay") == [(["4"], False), (["4"], True), (["4"], True)]
    assert {r.path for r in k8s_standin.requests} == {
        "/apis/apps/v1/namespaces/shop/deployments",
        "/apis/apps/v1/namespaces/pay/deployments",
    }
    assert [r.method for r in k8s_standin.requests] == ["GET"] * 6
    assert AuditEvent.objects.count() == 0


def test_drift_of_one_namespace(viewer_api, drifting, k8s_standin):
    body = viewer_api.get("/api/v1/clusters/prod/drift/?namespace=pay").json()
    assert [item["name"] for item in body["items"]] == ["pay-06"]
    assert (body["namespace"], body["checked"], body["missing"]) == ("pay", 9, [])
    assert {r.path for r in k8s_standin.requests} == {"/apis/apps/v1/namespaces/pay/deployments"}


def test_a_cluster_in_sync_has_no_drift(viewer_api, k8s_standin, db, settings):
    settings.KUBEDOOR_K8S_LIST_PAGE_SIZE = PAGE
    cluster = standin_cluster(k8s_standin, name="prod")
    for index in range(6):
        k8s_standin.add_deployment("shop", f"s{index}", replicas=2, containers=_in_sync(f"s{index}"))
        MicroserviceFactory(cluster=cluster, namespace="shop", name=f"s{index}", replicas_specified=2, **ROW)
    body = viewer_api.get("/api/v1/clusters/prod/drift/").json()
    assert (body["checked"], body["drifted"], body["items"]) == (6, 0, [])


def test_drift_needs_a_role_and_a_reachable_cluster(nobody, viewer_api, drifting, k8s_standin):
    assert _token_client(nobody).get("/api/v1/clusters/prod/drift/").status_code == 403
    assert viewer_api.get("/api/v1/clusters/nope/drift/").status_code == 404
    assert k8s_standin.requests == []
    k8s_standin.respond("GET", "/apis/apps/v1/namespaces/shop/deployments", status=503)
    response = viewer_api.get("/api/v1/clusters/prod/drift/")
    assert response.status_code == 502
    assert response.json()["detail"].startswith("cluster prod: list deployments in shop: API server error 503")


def test_drift_admin_page_lists_the_drifted_deployments(client, viewer, drifting):
    client.force_login(viewer)
    response = client.get(f"/admin/webhook/admission/{drifting.pk}/drift/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "3 of 20 controlled Deployments drift" in page
    for name in ("shop-01", "shop-09", "pay-06"):
        assert f"<td>{name}</td>" in page
    assert "<td>shop-02</td>" not in page
    assert "<li>shop/gone</li>" in page
    assert "/api/v1/clusters/prod/export/?format=kustomize" in page


def test_drift_admin_page_shows_an_unreachable_cluster(client, viewer, drifting, k8s_standin):
    k8s_standin.respond("GET", "/apis/apps/v1/namespaces/pay/deployments", status=403)
    client.force_login(viewer)
    page = client.get(f"/admin/webhook/admission/{drifting.pk}/drift/").content.decode()
    assert 'id="drift-error"' in page
    assert "cluster prod: list deployments in pay: forbidden" in page


def test_nightly_check_records_the_count_and_notifies(drifting, k8s_standin, db):
    # given a channel subscribed to drift checks, and a second cluster that is clean
    channel = NotificationChannel.objects.create(
        name="ops", kind="slack", target="http://127.0.0.1:9/hook", actions=["drift.check"], results=[]
    )
    clean = standin_cluster(k8s_standin, name="clean")
    k8s_standin.add_deployment("web", "site", replicas=2, containers=_in_sync("site"))
    MicroserviceFactory(cluster=clean, namespace="web", name="site", replicas_specified=2, **ROW)
    # when
    result = drift_check_task.apply().get()
    # then one event per cluster, the drifted one notified
    assert result["prod"] == {
        "checked": 20,
        "drifted": 3,
        "missing": 1,
        "deployments": ["pay/pay-06", "shop/shop-01", "shop/shop-09"],
    }
    events = {e.cluster: e for e in AuditEvent.objects.filter(action="drift.check")}
    assert sorted(events) == ["clean", "prod"]
    prod = events["prod"]
    assert (prod.actor_name, prod.source, prod.result) == ("drift-check", "task", AuditResult.OK)
    assert prod.after == result["prod"]
    assert prod.message == ("3 of 20 controlled Deployments of prod drift: pay/pay-06, shop/shop-01, shop/shop-09")
    assert events["clean"].after == {"checked": 1, "drifted": 0, "missing": 0, "deployments": []}
    notified = NotificationDelivery.objects.filter(channel=channel).values_list("event__cluster", flat=True)
    assert list(notified) == ["prod"]


def test_nightly_check_of_an_unreachable_cluster_is_an_audited_error(drifting, k8s_standin, db):
    k8s_standin.respond("GET", "/apis/apps/v1/namespaces/pay/deployments", status=403)
    after = drift.drift_check_all(actor=drift.Actor.system("drift-check"))
    event = AuditEvent.objects.get(action="drift.check")
    assert event.result == AuditResult.ERROR
    assert after["prod"] == event.after
    assert event.after["error"].startswith("cluster prod: list deployments in pay: forbidden")


def test_beat_entry_follows_the_setting_when_beat_starts(db, settings):
    # given
    settings.KUBEDOOR_DRIFT_CHECK_CRON = "15 2 * * 1-5"
    settings.TIME_ZONE = "Asia/Shanghai"
    # when beat starts
    beat_init.send(sender=None)
    # then
    entry = PeriodicTask.objects.get(name="kubedoor-drift-check")
    assert entry.task == DRIFT_CHECK_TASK == "apps.webhook.tasks.drift_check_task"
    crontab = entry.crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_month, crontab.month_of_year, crontab.day_of_week) == (
        "15",
        "2",
        "*",
        "*",
        "1-5",
    )
    assert str(crontab.timezone) == "Asia/Shanghai"
    # an empty setting removes the entry
    settings.KUBEDOOR_DRIFT_CHECK_CRON = ""
    beat_init.send(sender=None)
    assert not PeriodicTask.objects.filter(name="kubedoor-drift-check").exists()


def test_a_cron_without_five_fields_is_refused_naming_it(db):
    with pytest.raises(ValueError, match="KUBEDOOR_DRIFT_CHECK_CRON '30 3' must have five fields"):
        drift.drift_schedule_sync(cron="30 3")
    assert not PeriodicTask.objects.exists()


def test_drift_admin_page_needs_a_role(client, nobody, drifting, k8s_standin):
    client.force_login(nobody)
    assert client.get(f"/admin/webhook/admission/{drifting.pk}/drift/").status_code == 403
    assert k8s_standin.requests == []

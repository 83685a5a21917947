"""The control-table and cluster API: authentication, roles, validation and auditing."""

import pytest
from rest_framework.test import APIClient

from apps.audit.models import AuditEvent
from apps.control.models import Cluster, Microservice
from tests.factories import ClusterFactory, MicroserviceFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/microservices/"


def detail(service) -> str:
    return f"{URL}{service.pk}/"


def test_requests_without_credentials_get_401_in_the_error_format(service):
    # when
    response = APIClient().get(URL)
    # then
    assert response.status_code == 401
    assert response.json() == {
        "status": 401,
        "code": "not_authenticated",
        "detail": "Authentication credentials were not provided.",
    }


def test_a_bad_token_gets_401(service):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef")
    assert client.get(URL).status_code == 401


def test_user_without_a_role_cannot_read(nobody, service):
    client = APIClient()
    client.force_authenticate(nobody)
    response = client.get(URL)
    assert response.status_code == 403
    assert response.json()["status"] == 403


def test_viewer_reads_rows_with_every_field_and_effective_replicas(viewer_api, service):
    # given
    Microservice.objects.filter(pk=service.pk).update(replicas_specified=0, p95_cpu_pct=42.5)
    # when
    response = viewer_api.get(detail(service))
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["cluster"] == "prod"
    assert body["namespace"] == "shop"
    assert body["name"] == "cart"
    assert body["pod_count"] == 2
    assert body["replicas_specified"] == 0
    assert body["effective_replicas"] == 0
    assert body["p95_cpu_pct"] == 42.5
    assert body["request_cpu_m"] == 250
    assert body["limit_mem_mib"] == 1024
    assert body["is_present"] is True


def test_reads_carry_the_replicas_fields_under_their_names_and_their_old_aliases(viewer_api, service):
    # given: four different values, so a swapped alias cannot pass
    Microservice.objects.filter(pk=service.pk).update(
        replicas_initial=1, replicas_measured=2, replicas_specified=3, replicas_recommended=4
    )
    # when
    body = viewer_api.get(detail(service)).json()
    # then
    assert (body["replicas_initial"], body["replicas_measured"]) == (1, 2)
    assert (body["replicas_specified"], body["replicas_recommended"]) == (3, 4)
    assert (body["pod_count_init"], body["pod_count"], body["pod_count_manual"], body["pod_count_ai"]) == (1, 2, 3, 4)


@pytest.mark.parametrize(
    ("payload", "stored"),
    [
        ({"pod_count_manual": 5}, (5, None)),
        ({"pod_count_ai": 6}, (None, 6)),
        ({"replicas_specified": 7, "pod_count_manual": 7}, (7, None)),
    ],
)
def test_writes_accept_the_old_names(admin_api, service, payload, stored):
    # when
    response = admin_api.patch(detail(service), payload, format="json")
    # then
    assert response.status_code == 200, response.json()
    service.refresh_from_db()
    assert (service.replicas_specified, service.replicas_recommended) == stored


def test_a_write_naming_both_names_with_different_values_is_400_and_changes_nothing(admin_api, service):
    # when
    response = admin_api.patch(detail(service), {"replicas_specified": 4, "pod_count_manual": 5}, format="json")
    # then
    assert response.status_code == 400
    assert "pod_count_manual" in response.json()["errors"]
    service.refresh_from_db()
    assert service.replicas_specified is None
    assert not AuditEvent.objects.exists()


def test_ordering_takes_the_old_names(viewer_api, cluster):
    # given
    for name, pods in (("b", 3), ("a", 1), ("c", 2)):
        MicroserviceFactory(cluster=cluster, name=name, replicas_measured=pods)
    # when
    names = {
        term: [row["name"] for row in viewer_api.get(URL, {"ordering": term}).json()["results"]]
        for term in ("pod_count", "-pod_count", "replicas_measured")
    }
    # then
    assert names == {"pod_count": ["a", "c", "b"], "-pod_count": ["b", "c", "a"], "replicas_measured": ["a", "c", "b"]}


def test_viewer_cannot_write_and_nothing_changes(viewer_api, service):
    # when
    response = viewer_api.patch(detail(service), {"replicas_specified": 5}, format="json")
    # then
    assert response.status_code == 403
    service.refresh_from_db()
    assert service.replicas_specified is None
    assert AuditEvent.objects.count() == 0


def test_operator_sets_specified_pods_and_limits_with_one_audit_event(operator_api, operator, service):
    # when
    response = operator_api.patch(
        detail(service), {"replicas_specified": 4, "limit_cpu_m": 2000, "limit_mem_mib": 2048}, format="json"
    )
    # then
    assert response.status_code == 200, response.json()
    assert response.json()["effective_replicas"] == 4
    service.refresh_from_db()
    assert (service.replicas_specified, service.limit_cpu_m, service.limit_mem_mib) == (4, 2000, 2048)
    assert service.updated_by == "operator1"
    event = AuditEvent.objects.get()
    assert event.action == "microservice.update"
    assert event.actor == operator
    assert event.actor_name == "operator1"
    assert event.source == "api"
    assert (event.cluster, event.namespace, event.name) == ("prod", "shop", "cart")
    assert event.before == {
        "replicas_specified": None,
        "limit_cpu_m": 1000,
        "limit_mem_mib": 1024,
        "effective_replicas": 2,
    }
    assert event.after == {"replicas_specified": 4, "limit_cpu_m": 2000, "limit_mem_mib": 2048, "effective_replicas": 4}
    assert event.result == "ok"
    assert event.request_id


def test_operator_cannot_change_requests(operator_api, service):
    # when
    response = operator_api.patch(detail(service), {"request_cpu_m": 500, "replicas_specified": 3}, format="json")
    # then
    assert response.status_code == 403
    assert "request_cpu_m" in response.json()["detail"]
    service.refresh_from_db()
    assert service.request_cpu_m == 250
    assert service.replicas_specified is None
    assert AuditEvent.objects.count() == 0


def test_operator_sending_unchanged_requests_is_not_refused(operator_api, service):
    response = operator_api.patch(detail(service), {"request_cpu_m": 250, "replicas_specified": 3}, format="json")
    assert response.status_code == 200
    assert AuditEvent.objects.get().after == {"replicas_specified": 3, "effective_replicas": 3}


def test_operator_cannot_create_or_delete_rows(operator_api, service, cluster):
    created = operator_api.post(URL, {"cluster": "prod", "namespace": "shop", "name": "new"}, format="json")
    deleted = operator_api.delete(detail(service))
    assert created.status_code == 403
    assert deleted.status_code == 403
    assert Microservice.objects.count() == 1
    assert AuditEvent.objects.count() == 0


def test_admin_creates_updates_and_deletes_each_with_one_event(admin_api, cluster):
    # create
    response = admin_api.post(
        URL,
        {
            "cluster": "prod",
            "namespace": "payments",
            "name": "ledger",
            "request_cpu_m": 300,
            "request_mem_mib": 512,
            "limit_cpu_m": 1000,
            "limit_mem_mib": 1024,
            "replicas_mode": "ignore",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    service_id = response.json()["id"]
    assert response.json()["effective_replicas"] is None
    created = AuditEvent.objects.get(action="microservice.create")
    assert created.before is None
    assert created.after["request_cpu_m"] == 300
    assert created.after["replicas_mode"] == "ignore"
    assert created.actor_name == "admin1"

    # update a request (admins may)
    response = admin_api.patch(f"{URL}{service_id}/", {"request_cpu_m": 400}, format="json")
    assert response.status_code == 200
    updated = AuditEvent.objects.get(action="microservice.update")
    assert (updated.before, updated.after) == ({"request_cpu_m": 300}, {"request_cpu_m": 400})

    # delete
    response = admin_api.delete(f"{URL}{service_id}/")
    assert response.status_code == 204
    assert not Microservice.objects.filter(pk=service_id).exists()
    deleted = AuditEvent.objects.get(action="microservice.delete")
    assert deleted.before["request_cpu_m"] == 400
    assert deleted.after is None
    assert AuditEvent.objects.count() == 3


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"cluster": "prod", "namespace": "shop", "name": "x", "replicas_specified": -1}, "replicas_specified"),
        ({"cluster": "prod", "namespace": "shop", "name": "x", "replicas_specified": 1001}, "replicas_specified"),
        ({"cluster": "nowhere", "namespace": "shop", "name": "x"}, "cluster"),
        ({"cluster": "prod", "namespace": "Shop_NS", "name": "x"}, "namespace"),
        (
            {"cluster": "prod", "namespace": "shop", "name": "x", "request_cpu_m": 500, "limit_cpu_m": 100},
            "limit_cpu_m",
        ),
        (
            {"cluster": "prod", "namespace": "shop", "name": "x", "request_mem_mib": 512, "limit_mem_mib": 256},
            "limit_mem_mib",
        ),
        ({"cluster": "prod", "namespace": "shop", "name": "x", "replicas_mode": "sometimes"}, "replicas_mode"),
        ({"cluster": "prod", "namespace": "shop"}, "name"),
    ],
)
def test_bad_input_gives_400_naming_the_field_and_changes_nothing(admin_api, cluster, payload, field):
    # when
    response = admin_api.post(URL, payload, format="json")
    # then
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == 400
    assert body["code"] == "invalid"
    assert field in body["errors"], body
    assert Microservice.objects.count() == 0
    assert AuditEvent.objects.count() == 0


def test_duplicate_service_gives_400_and_changes_nothing(admin_api, service):
    # when
    response = admin_api.post(URL, {"cluster": "prod", "namespace": "shop", "name": "cart"}, format="json")
    # then
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "non_field_errors": ["The fields cluster, namespace, name must make a unique set."]
    }
    assert Microservice.objects.count() == 1
    assert AuditEvent.objects.count() == 0


def test_limit_below_existing_request_on_update_is_refused(operator_api, service):
    response = operator_api.patch(detail(service), {"limit_cpu_m": 100}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"limit_cpu_m": ["The CPU limit must not be below the CPU request."]}
    service.refresh_from_db()
    assert service.limit_cpu_m == 1000
    assert AuditEvent.objects.count() == 0


def test_identity_fields_cannot_be_changed(admin_api, service):
    response = admin_api.patch(detail(service), {"name": "renamed", "namespace": "other"}, format="json")
    assert response.status_code == 200
    service.refresh_from_db()
    assert (service.namespace, service.name) == ("shop", "cart")
    assert AuditEvent.objects.count() == 0


def test_unknown_row_is_404(viewer_api):
    response = viewer_api.get(f"{URL}999999/")
    assert response.status_code == 404
    assert response.json() == {"status": 404, "code": "not_found", "detail": "Not found."}


def test_list_filters_by_cluster_namespace_and_presence(viewer_api):
    # given
    prod, staging = ClusterFactory(name="prod"), ClusterFactory(name="staging")
    MicroserviceFactory(cluster=prod, namespace="shop", name="a")
    MicroserviceFactory(cluster=prod, namespace="shop", name="b", is_present=False)
    MicroserviceFactory(cluster=prod, namespace="users", name="c")
    MicroserviceFactory(cluster=staging, namespace="shop", name="d")

    def names(query: str) -> list[str]:
        response = viewer_api.get(URL + query)
        assert response.status_code == 200
        return sorted(row["name"] for row in response.json()["results"])

    # then
    assert names("?cluster=prod") == ["a", "b", "c"]
    assert names("?cluster=prod&namespace=shop") == ["a", "b"]
    assert names("?cluster=prod&present=false") == ["b"]
    assert names("?cluster=prod&present=true&namespace=shop") == ["a"]
    assert names("?search=shop") == ["a", "b", "d"]


def test_list_default_order_is_p95_cpu_descending_with_unmeasured_last(viewer_api, cluster):
    MicroserviceFactory(cluster=cluster, name="low", p95_cpu_pct=10.0)
    MicroserviceFactory(cluster=cluster, name="none", p95_cpu_pct=None)
    MicroserviceFactory(cluster=cluster, name="high", p95_cpu_pct=90.0)
    response = viewer_api.get(URL)
    assert [row["name"] for row in response.json()["results"]] == ["high", "low", "none"]
    response = viewer_api.get(URL + "?ordering=name")
    assert [row["name"] for row in response.json()["results"]] == ["high", "low", "none"]
    response = viewer_api.get(URL + "?ordering=-name")
    assert [row["name"] for row in response.json()["results"]] == ["none", "low", "high"]


def test_page_size_is_capped_at_500(viewer_api, cluster):
    Microservice.objects.bulk_create(
        Microservice(cluster=cluster, namespace="bulk", name=f"svc-{i:03d}") for i in range(501)
    )
    response = viewer_api.get(URL + "?page_size=1000")
    body = response.json()
    assert body["count"] == 501
    assert len(body["results"]) == 500
    assert len(viewer_api.get(URL).json()["results"]) == 100


def test_no_endpoint_accepts_sql_in_filters(viewer_api, service):
    response = viewer_api.get(URL + "?namespace=shop' OR '1'='1")
    assert response.status_code == 200
    assert response.json()["count"] == 0


# --- clusters ------------------------------------------------------------------------------------


def test_cluster_secrets_are_write_only_and_the_prometheus_password_never_returns(admin_api):
    # when
    response = admin_api.post(
        "/api/v1/clusters/",
        {
            "name": "east",
            "prometheus_url": "https://reader:s3cret@prom.example:9090",
            "prometheus_token": "tok-123",
            "kubeconfig": "apiVersion: v1\nkind: Config\n",
        },
        format="json",
    )
    # then
    assert response.status_code == 201, response.json()
    body = admin_api.get("/api/v1/clusters/east/").json()
    assert body["prometheus_url"] == "https://reader:***@prom.example:9090"
    assert "kubeconfig" not in body
    assert "prometheus_token" not in body
    assert body["kubeconfig_set"] is True
    assert body["prometheus_token_set"] is True
    assert body["admission_mode"] == "off"
    stored = Cluster.objects.get(name="east")
    assert stored.prometheus_token == "tok-123"
    event = AuditEvent.objects.get(action="cluster.create")
    assert event.after["kubeconfig"] == "<set>"
    assert event.after["prometheus_token"] == "<set>"
    assert event.after["prometheus_url"] == "https://reader:***@prom.example:9090"
    assert "s3cret" not in str(event.after)


def test_cluster_admission_mode_is_not_writable_through_the_cluster_endpoint(admin_api, cluster):
    response = admin_api.patch("/api/v1/clusters/prod/", {"admission_mode": "enforce"}, format="json")
    assert response.status_code == 200
    cluster.refresh_from_db()
    assert cluster.admission_mode == "off"


def test_cluster_metrics_backend_defaults_to_prometheus_and_takes_victoriametrics(admin_api, cluster):
    assert admin_api.get("/api/v1/clusters/prod/").json()["metrics_backend"] == "prometheus"
    # when
    response = admin_api.patch("/api/v1/clusters/prod/", {"metrics_backend": "victoriametrics"}, format="json")
    # then
    assert response.status_code == 200, response.json()
    cluster.refresh_from_db()
    assert cluster.metrics_backend == "victoriametrics"
    refused = admin_api.patch("/api/v1/clusters/prod/", {"metrics_backend": "thanos"}, format="json")
    assert refused.status_code == 400
    assert "metrics_backend" in refused.json()["errors"]
    cluster.refresh_from_db()
    assert cluster.metrics_backend == "victoriametrics"


def test_cluster_validation_names_the_field(admin_api):
    response = admin_api.post(
        "/api/v1/clusters/",
        {"name": "west", "time_zone": "Mars/Olympus", "peak_start": "12:00", "peak_end": "11:00"},
        format="json",
    )
    assert response.status_code == 400
    assert "time_zone" in response.json()["errors"]
    assert not Cluster.objects.filter(name="west").exists()


def test_operator_cannot_change_clusters(operator_api, cluster):
    response = operator_api.patch("/api/v1/clusters/prod/", {"lookback_days": 3}, format="json")
    assert response.status_code == 403
    cluster.refresh_from_db()
    assert cluster.lookback_days == 10
    assert AuditEvent.objects.count() == 0


def test_peak_window_must_not_cross_midnight(admin_api, cluster):
    response = admin_api.patch("/api/v1/clusters/prod/", {"peak_start": "23:00", "peak_end": "01:00"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"peak_end": ["The peak window must end after it starts, on the same day."]}


def test_cluster_daily_collection_entry_follows_the_cluster(admin_api):
    from django_celery_beat.models import PeriodicTask

    # when a cluster is created with daily collection
    response = admin_api.post(
        "/api/v1/clusters/", {"name": "north", "time_zone": "Asia/Shanghai", "peak_end": "11:30"}, format="json"
    )
    assert response.status_code == 201, response.json()
    task = PeriodicTask.objects.get(name="kubedoor-collect-north")
    assert (task.crontab.hour, task.crontab.minute, str(task.crontab.timezone)) == ("11", "45", "Asia/Shanghai")
    # when collection is switched off, the entry goes
    admin_api.patch("/api/v1/clusters/north/", {"collect_enabled": False}, format="json")
    assert not PeriodicTask.objects.filter(name="kubedoor-collect-north").exists()
    # on again, then the cluster is deleted: the entry goes with it
    admin_api.patch("/api/v1/clusters/north/", {"collect_enabled": True}, format="json")
    assert PeriodicTask.objects.filter(name="kubedoor-collect-north").exists()
    assert admin_api.delete("/api/v1/clusters/north/").status_code == 204
    assert not PeriodicTask.objects.filter(name="kubedoor-collect-north").exists()


def test_a_cluster_cannot_be_renamed(admin_api, cluster):
    response = admin_api.patch("/api/v1/clusters/prod/", {"name": "renamed"}, format="json")
    assert response.status_code == 200
    cluster.refresh_from_db()
    assert cluster.name == "prod"


def test_deleting_a_cluster_removes_the_beat_entries_of_its_operations(admin_api, service):
    from django_celery_beat.models import PeriodicTask

    # given a cron operation on the cluster (and no daily collection entry)
    admin_api.patch("/api/v1/clusters/prod/", {"collect_enabled": False}, format="json")
    response = admin_api.post(
        "/api/v1/operations/",
        {
            "kind": "restart",
            "targets": [service.pk],
            "schedule": "cron",
            "cron": "0 3 * * *",
            "time_zone": "Europe/Berlin",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert PeriodicTask.objects.count() == 1
    # when
    assert admin_api.delete("/api/v1/clusters/prod/").status_code == 204
    # then
    assert PeriodicTask.objects.count() == 0


@pytest.mark.parametrize("filled", [True, False])
def test_fast_row_rendering_equals_drf_field_rendering(service, filled):
    import datetime

    from rest_framework import serializers as drf

    from apps.control.serializers import MicroserviceSerializer

    # given a row with every nullable field set, or none
    values = (
        {
            "replicas_specified": 0,
            "replicas_recommended": 3,
            "p95_cpu_pct": 12.5,
            "p95_mem_pct": 40.0,
            "p95_cpu_cores": 0.125,
            "p95_mem_mib": 300.5,
            "cpu_headroom": 0.2,
            "mem_headroom": 0.1,
            "min_cpu_m": 20,
            "min_mem_mib": 32,
            "source_day": datetime.date(2026, 11, 20),
            "request_capped": True,
            "updated_by": "ops",
        }
        if filled
        else {"request_cpu_m": None, "request_mem_mib": None, "limit_cpu_m": None, "limit_mem_mib": None}
    )
    Microservice.objects.filter(pk=service.pk).update(**values)
    row = Microservice.objects.select_related("cluster").get(pk=service.pk)
    serializer = MicroserviceSerializer(row)
    # then the direct rendering is DRF's, key for key and in order
    generic = drf.ModelSerializer.to_representation(serializer, row)
    assert list(serializer.data.items()) == list(generic.items())

"""Recommendation settings through the API and the admin (audited), the explanation in the API in both
languages, and the admin action that accepts recommendations (issue 11)."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.utils import translation

from apps.audit.models import AuditEvent
from apps.control.admin import ClusterAdminForm
from apps.control.models import Cluster, Microservice
from tests.factories import MicroserviceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _default_language_after():
    """A request in Chinese leaves Chinese active in this thread; later tests expect the default."""
    yield
    translation.deactivate()


URL = "/api/v1/microservices/"
EXPLANATION = {
    "reasons": [
        {"code": "source_day", "params": {"day": "2026-03-09", "rule": "service", "pods": 4}},
        {"code": "request_cpu", "params": {"p95_cpu_cores": 0.345, "headroom_pct": 0.0, "request_cpu_m": 345}},
        {"code": "oom_bump", "params": {"oom_kills": 1, "factor": 1.2, "min_mib": 100, "before": 690, "after": 828}},
        {
            "code": "replicas_formula",
            "params": {"pods": 4, "p95_cpu_pct": 34.5, "target_cpu_pct": 70.0, "replicas": 2},
        },
    ]
}


def test_a_new_cluster_has_the_documented_defaults():
    cluster = Cluster(name="new")
    assert (
        cluster.target_cpu_pct,
        cluster.target_mem_pct,
        cluster.min_replicas,
        cluster.allow_single_replica,
        cluster.allow_scale_up,
        cluster.apply_recommended_replicas,
    ) == (70.0, 80.0, 1, False, False, False)
    assert (
        cluster.oom_bump,
        cluster.oom_bump_min_mib,
        cluster.throttle_threshold_pct,
        cluster.max_change_pct,
        cluster.min_days,
    ) == (1.2, 100, 10.0, 50.0, 3)


def test_admin_changes_the_recommendation_settings_through_the_api_audited(admin_api, cluster):
    # when
    response = admin_api.patch(
        "/api/v1/clusters/prod/",
        {"apply_recommended_replicas": True, "target_cpu_pct": 60, "max_change_pct": 30, "min_days": 5},
        format="json",
    )
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["apply_recommended_replicas"], body["target_cpu_pct"], body["max_change_pct"], body["min_days"]) == (
        True,
        60.0,
        30.0,
        5,
    )
    event = AuditEvent.objects.get(action="cluster.update")
    assert event.actor_name == "admin1"
    assert event.before == {
        "apply_recommended_replicas": False,
        "target_cpu_pct": 70.0,
        "max_change_pct": 50.0,
        "min_days": 3,
    }
    assert event.after == {
        "apply_recommended_replicas": True,
        "target_cpu_pct": 60.0,
        "max_change_pct": 30.0,
        "min_days": 5,
    }


@pytest.mark.parametrize(
    ("payload", "field"),
    [({"target_cpu_pct": 0}, "target_cpu_pct"), ({"oom_bump": 0.9}, "oom_bump"), ({"min_days": 0}, "min_days")],
)
def test_a_bad_setting_is_400_naming_it_and_changes_nothing(admin_api, cluster, payload, field):
    response = admin_api.patch("/api/v1/clusters/prod/", payload, format="json")
    assert response.status_code == 400
    assert field in json.dumps(response.json())
    cluster.refresh_from_db()
    assert (cluster.target_cpu_pct, cluster.oom_bump, cluster.min_days) == (70.0, 1.2, 3)
    assert not AuditEvent.objects.filter(action="cluster.update").exists()


def test_operator_cannot_change_cluster_settings(operator_api, cluster):
    response = operator_api.patch("/api/v1/clusters/prod/", {"apply_recommended_replicas": True}, format="json")
    assert response.status_code == 403
    cluster.refresh_from_db()
    assert cluster.apply_recommended_replicas is False


def test_per_service_overrides_through_the_api_audited(admin_api, service):
    response = admin_api.patch(
        f"{URL}{service.pk}/", {"target_cpu_pct": 50, "allow_scale_up": True, "min_replicas": 2}, format="json"
    )
    assert response.status_code == 200, response.content
    service.refresh_from_db()
    assert (service.target_cpu_pct, service.allow_scale_up, service.min_replicas, service.target_mem_pct) == (
        50.0,
        True,
        2,
        None,
    )
    event = AuditEvent.objects.get(action="microservice.update")
    assert event.after == {"target_cpu_pct": 50.0, "allow_scale_up": True, "min_replicas": 2}
    assert event.before == {"target_cpu_pct": None, "allow_scale_up": None, "min_replicas": None}


def test_the_api_returns_the_explanation_structured_and_rendered_in_english(viewer_api, service):
    Microservice.objects.filter(pk=service.pk).update(explanation=EXPLANATION)
    body = viewer_api.get(f"{URL}{service.pk}/", HTTP_ACCEPT_LANGUAGE="en").json()
    assert body["explanation"] == {
        "reasons": EXPLANATION["reasons"],
        "text": [
            "Source day 2026-03-09: the service's busiest day in the lookback (4 pods).",
            "CPU request 345 m = P95 CPU 0.345 cores × 1000 × (1 + 0 % headroom).",
            "1 OOM kill(s) in the lookback: memory request raised from 690 to 828 MiB (× 1.2, at least +100 MiB).",
            "Recommended pods 2 = ceil(4 pods × P95 CPU 34.5 % ÷ target 70 %).",
        ],
    }
    listed = viewer_api.get(URL, HTTP_ACCEPT_LANGUAGE="en").json()["results"][0]
    assert listed["explanation"] == body["explanation"]


def test_the_api_returns_the_explanation_rendered_in_chinese(viewer_api, service):
    Microservice.objects.filter(pk=service.pk).update(explanation=EXPLANATION)
    body = viewer_api.get(f"{URL}{service.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans").json()
    assert body["explanation"]["reasons"] == EXPLANATION["reasons"]
    assert body["explanation"]["text"] == [
        "来源日 2026-03-09：回溯期内该服务最繁忙的一天（4 个 Pod）。",
        "CPU 请求值 345 毫核 = P95 CPU 0.345 核 × 1000 × (1 + 0 % 余量)。",
        "回溯期内发生 1 次 OOM 终止：内存请求值从 690 MiB 提高到 828 MiB（× 1.2，至少 +100 MiB）。",
        "推荐Pod 2 = ceil(4 个 Pod × P95 CPU 34.5 % ÷ 目标 70 %)。",
    ]


def test_a_row_never_refreshed_has_an_empty_explanation(viewer_api, service):
    body = viewer_api.get(f"{URL}{service.pk}/").json()
    assert body["explanation"] == {"reasons": [], "text": []}


# --- admin ------------------------------------------------------------------------------------------


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def cluster_form_data(cluster: Cluster, **changes) -> dict:
    """The cluster change form as a browser posts it, with ``changes``."""
    form = ClusterAdminForm(instance=cluster)
    data = {}
    for name in form.fields:
        value = form[name].value()
        if isinstance(value, bool):
            if value:
                data[name] = "on"
            continue
        if isinstance(value, list):
            value = json.dumps(value)
        data[name] = "" if value is None else str(value)
    for name, value in changes.items():
        if isinstance(value, bool):
            if value:
                data[name] = "on"
            else:
                data.pop(name, None)
        else:
            data[name] = str(value)
    return data


def test_admin_sets_the_recommendation_settings_in_the_cluster_form_audited(admin_user, cluster):
    client = logged_in(admin_user)
    page = client.get(f"/admin/control/cluster/{cluster.pk}/change/").content.decode()
    assert 'name="apply_recommended_replicas"' in page
    assert 'name="throttle_threshold_pct"' in page
    # when
    response = client.post(
        f"/admin/control/cluster/{cluster.pk}/change/",
        cluster_form_data(cluster, apply_recommended_replicas=True, oom_bump="1.5", throttle_threshold_pct="20"),
    )
    # then
    assert response.status_code == 302, response.context["adminform"].form.errors
    cluster.refresh_from_db()
    assert (cluster.apply_recommended_replicas, cluster.oom_bump, cluster.throttle_threshold_pct) == (True, 1.5, 20.0)
    event = AuditEvent.objects.get(action="cluster.update")
    assert (event.source, event.actor_name) == ("admin", "admin1")
    assert event.after == {"apply_recommended_replicas": True, "oom_bump": 1.5, "throttle_threshold_pct": 20.0}


def test_the_change_form_shows_the_explanation_translated(viewer, service):
    Microservice.objects.filter(pk=service.pk).update(explanation=EXPLANATION)
    url = f"/admin/control/microservice/{service.pk}/change/"
    english = logged_in(viewer).get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "<li>Recommended pods 2 = ceil(4 pods × P95 CPU 34.5 % ÷ target 70 %).</li>" in english
    chinese = logged_in(viewer).get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "<li>推荐Pod 2 = ceil(4 个 Pod × P95 CPU 34.5 % ÷ 目标 70 %)。</li>" in chinese


def test_operator_accepts_recommendations_for_selected_rows_audited(operator, cluster):
    # given: one row with a recommendation, one already specifying it, one without
    a = MicroserviceFactory(cluster=cluster, name="a", replicas_measured=4, replicas_recommended=2)
    b = MicroserviceFactory(cluster=cluster, name="b", replicas_recommended=3, replicas_specified=3)
    c = MicroserviceFactory(cluster=cluster, name="c", replicas_recommended=None)
    # when
    response = logged_in(operator).post(
        "/admin/control/microservice/",
        {"action": "accept_recommendation_action", "_selected_action": [a.pk, b.pk, c.pk]},
        follow=True,
    )
    # then
    assert response.status_code == 200
    text = response.content.decode()
    assert "1 row now specifies its recommended pods: shop/a." in text
    assert "Left alone (no recommendation, or already specified so): shop/b, shop/c." in text
    specified = dict(Microservice.objects.values_list("name", "replicas_specified"))
    assert specified == {"a": 2, "b": 3, "c": None}
    (event,) = AuditEvent.objects.filter(action="microservice.recommendation_accept")
    assert (event.name, event.actor_name, event.source) == ("a", "operator1", "admin")
    # the cluster does not apply recommendations: before, a ran today's 4; now its specified 2
    assert (event.before, event.after) == (
        {"replicas_specified": None, "effective_replicas": 4},
        {"replicas_specified": 2, "effective_replicas": 2},
    )


def test_viewer_has_no_accept_action_and_a_post_changes_nothing(viewer, cluster):
    a = MicroserviceFactory(cluster=cluster, name="a", replicas_recommended=2)
    client = logged_in(viewer)
    assert "accept_recommendation_action" not in client.get("/admin/control/microservice/").content.decode()
    client.post("/admin/control/microservice/", {"action": "accept_recommendation_action", "_selected_action": [a.pk]})
    a.refresh_from_db()
    assert a.replicas_specified is None
    assert not AuditEvent.objects.filter(action="microservice.recommendation_accept").exists()


def test_the_curves_page_marks_the_source_day_and_explains_the_numbers(viewer, cluster):
    MicroserviceFactory(
        cluster=cluster, namespace="shop", name="cart", source_day="2026-03-09", explanation=EXPLANATION
    )
    query = {"cluster": "prod", "namespace": "shop", "deployment": "cart", "day_from": "2026-03-01"}
    client = logged_in(viewer)
    page = client.get("/admin/metrics/dashboard/curves/", {**query, "day_to": "2026-03-10"}).content.decode()
    assert 'data-source-day="2026-03-09"' in page
    assert "Source day 2026-03-09 (marked on the charts)." in page
    assert "<li>1 OOM kill(s) in the lookback: memory request raised from 690 to 828 MiB" in page
    chinese = client.get(
        "/admin/metrics/dashboard/curves/", {**query, "day_to": "2026-03-10"}, HTTP_ACCEPT_LANGUAGE="zh-hans"
    ).content.decode()
    assert "<li>回溯期内发生 1 次 OOM 终止：内存请求值从 690 MiB 提高到 828 MiB" in chinese

"""The admin UI for each role, rendered through Django's test client."""

import re

import pytest
from django.test import Client

from apps.audit.models import AuditEvent
from apps.control.models import Microservice
from tests.factories import ClusterFactory, MicroserviceFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/control/microservice/"


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def row_names(html: str) -> list[str]:
    """The microservice names of the changelist rows, in display order."""
    return re.findall(r'<th class="field-name"><a href="[^"]+">([^<]+)</a></th>', html)


@pytest.fixture
def table(cluster):
    MicroserviceFactory(cluster=cluster, namespace="shop", name="cart", p95_cpu_pct=55.0)
    MicroserviceFactory(cluster=cluster, namespace="shop", name="web", p95_cpu_pct=None)
    MicroserviceFactory(cluster=cluster, namespace="users", name="auth", p95_cpu_pct=80.0)
    MicroserviceFactory(cluster=ClusterFactory(name="staging"), namespace="shop", name="search", p95_cpu_pct=99.0)


@pytest.mark.parametrize("role_user", ["viewer", "operator", "admin_user"])
def test_every_role_sees_the_admin_pages(request, role_user, table):
    client = logged_in(request.getfixturevalue(role_user))
    service = Microservice.objects.get(name="cart")
    for url in [
        "/admin/",
        CHANGELIST,
        f"{CHANGELIST}{service.pk}/change/",
        "/admin/control/cluster/",
        "/admin/audit/auditevent/",
    ]:
        response = client.get(url)
        assert response.status_code == 200, url


def test_user_without_a_role_cannot_see_the_control_table(nobody, table):
    response = logged_in(nobody).get(CHANGELIST)
    assert response.status_code == 403


def test_anonymous_is_sent_to_login():
    response = Client().get(CHANGELIST)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_changelist_has_the_columns_and_banner(viewer, table):
    html = logged_in(viewer).get(CHANGELIST).content.decode()
    headers = re.findall(r'<th scope="col" class="[^"]*column-([a-z0-9_]+)', html)
    assert headers == [
        "namespace",
        "name",
        "replicas_measured",
        "replicas_specified",
        "replicas_recommended",
        "p95_cpu_pct_display",
        "request_cpu_m",
        "limit_cpu_m",
        "p95_mem_pct_display",
        "request_mem_mib",
        "limit_mem_mib",
        "source_day",
        "hpa_display",
        "is_present",
        "curves_link",
    ]
    assert "each service's busiest day (highest P95 CPU × pods) of the last 10 days" in html
    assert "peak window 10:00–11:30" in html


def test_changelist_default_order_is_p95_cpu_descending_unmeasured_last(viewer, table):
    html = logged_in(viewer).get(CHANGELIST).content.decode()
    assert row_names(html) == ["search", "auth", "cart", "web"]


def test_changelist_filters_by_cluster_and_namespace(viewer, table, cluster):
    client = logged_in(viewer)
    html = client.get(CHANGELIST, {"cluster__id__exact": cluster.pk}).content.decode()
    assert row_names(html) == ["auth", "cart", "web"]
    html = client.get(CHANGELIST, {"cluster__id__exact": cluster.pk, "namespace": "shop"}).content.decode()
    assert row_names(html) == ["cart", "web"]
    html = client.get(CHANGELIST, {"q": "auth"}).content.decode()
    assert row_names(html) == ["auth"]


def test_changelist_sorts_by_a_column(viewer, table):
    # column 1 is "name" (0-based in Django's `o` parameter; viewers have no action checkbox column)
    html = logged_in(viewer).get(CHANGELIST, {"o": "1"}).content.decode()
    assert row_names(html) == ["auth", "cart", "search", "web"]
    html = logged_in(viewer).get(CHANGELIST, {"o": "-1"}).content.decode()
    assert row_names(html) == ["web", "search", "cart", "auth"]


def form_fields(html: str) -> set[str]:
    """Names of the inputs of the change form (not of the header's language switch)."""
    form = html[html.index('id="microservice_form"') :]
    form = form[: form.index("</form>")]
    return set(re.findall(r'<(?:input|select|textarea)[^>]* name="([a-z_0-9]+)"', form))


def test_operator_edits_specified_pods_and_limits_but_requests_are_read_only(operator, service):
    client = logged_in(operator)
    url = f"{CHANGELIST}{service.pk}/change/"
    html = client.get(url).content.decode()
    editable = form_fields(html) - {"csrfmiddlewaretoken", "_save", "_continue", "_addanother"}
    assert editable == {"replicas_specified", "limit_cpu_m", "limit_mem_mib"}

    # when the operator saves, even with request fields forged into the POST
    response = client.post(
        url, {"replicas_specified": "6", "limit_cpu_m": "1500", "limit_mem_mib": "1024", "request_cpu_m": "999"}
    )
    # then
    assert response.status_code == 302
    service.refresh_from_db()
    assert (service.replicas_specified, service.limit_cpu_m, service.request_cpu_m) == (6, 1500, 250)
    event = AuditEvent.objects.get()
    assert event.source == "admin"
    assert event.actor_name == "operator1"
    assert event.after == {"replicas_specified": 6, "limit_cpu_m": 1500, "effective_replicas": 6}


def test_admin_may_edit_requests(admin_user, service):
    client = logged_in(admin_user)
    url = f"{CHANGELIST}{service.pk}/change/"
    html = client.get(url).content.decode()
    assert {"request_cpu_m", "request_mem_mib", "container", "replicas_mode"} <= form_fields(html)
    response = client.post(
        url,
        {
            "container": "",
            "replicas_mode": "enforce",
            "replicas_specified": "",
            "replicas_recommended": "",
            "request_cpu_m": "300",
            "request_mem_mib": "256",
            "limit_cpu_m": "1000",
            "limit_mem_mib": "1024",
            "cpu_headroom": "",
            "mem_headroom": "",
            "min_cpu_m": "",
            "min_mem_mib": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    service.refresh_from_db()
    assert service.request_cpu_m == 300
    assert AuditEvent.objects.get().after == {"request_cpu_m": 300}


def test_admin_form_refuses_a_limit_below_the_request(operator, service):
    response = logged_in(operator).post(
        f"{CHANGELIST}{service.pk}/change/", {"replicas_specified": "", "limit_cpu_m": "100", "limit_mem_mib": "1024"}
    )
    assert response.status_code == 200
    assert "The CPU limit must not be below the CPU request." in response.content.decode()
    service.refresh_from_db()
    assert service.limit_cpu_m == 1000
    assert AuditEvent.objects.count() == 0


def test_viewer_gets_a_read_only_form_and_cannot_post(viewer, service):
    client = logged_in(viewer)
    url = f"{CHANGELIST}{service.pk}/change/"
    assert form_fields(client.get(url).content.decode()) <= {"csrfmiddlewaretoken"}
    response = client.post(url, {"replicas_specified": "9", "limit_cpu_m": "1000", "limit_mem_mib": "1024"})
    assert response.status_code == 403
    service.refresh_from_db()
    assert service.replicas_specified is None
    assert AuditEvent.objects.count() == 0


def test_admin_post_without_csrf_token_is_refused(operator, service):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    response = client.post(f"{CHANGELIST}{service.pk}/change/", {"replicas_specified": "9"})
    assert response.status_code == 403
    service.refresh_from_db()
    assert service.replicas_specified is None


def test_cluster_secrets_are_hidden_from_viewers_and_not_rendered_for_admins(viewer, admin_user):
    cluster = ClusterFactory(name="secretive", kubeconfig="TOP-SECRET-KUBECONFIG", prometheus_token="TOKEN-XYZ")
    viewer_html = logged_in(viewer).get(f"/admin/control/cluster/{cluster.pk}/change/").content.decode()
    admin_html = logged_in(admin_user).get(f"/admin/control/cluster/{cluster.pk}/change/").content.decode()
    for html in (viewer_html, admin_html):
        assert "TOP-SECRET-KUBECONFIG" not in html
        assert "TOKEN-XYZ" not in html
    assert 'name="kubeconfig"' in admin_html


@pytest.mark.parametrize("role_user", ["viewer", "operator", "admin_user"])
def test_audit_log_is_read_only_for_everyone_even_superusers(request, role_user, django_user_model):
    from apps.audit.services import Actor, audit_event_record

    event = audit_event_record(actor=Actor.system(), action="cluster.create", cluster="prod")
    users = [request.getfixturevalue(role_user), django_user_model.objects.create_superuser("root", "r@x.test", "pw")]
    for user in users:
        client = logged_in(user)
        assert client.get("/admin/audit/auditevent/add/").status_code == 403
        assert client.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
        detail = client.get(f"/admin/audit/auditevent/{event.pk}/change/")
        assert detail.status_code == 200
        assert 'name="action"' not in detail.content.decode()
        client.post(f"/admin/audit/auditevent/{event.pk}/change/", {"action": "tampered"})
    event.refresh_from_db()
    assert event.action == "cluster.create"
    assert AuditEvent.objects.count() == 1


def test_p95_column_is_marked_sorted_and_unmeasured_rows_stay_last_both_ways(viewer, table):
    client = logged_in(viewer)
    html = client.get(CHANGELIST).content.decode()
    assert re.search(r"class=\"sortable column-p95_cpu_pct_display sorted descending\"", html)
    # column 5 is P95 CPU % (0-based); ascending
    html = client.get(CHANGELIST, {"o": "5"}).content.decode()
    assert row_names(html) == ["cart", "auth", "search", "web"]

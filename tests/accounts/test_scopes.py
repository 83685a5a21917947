"""Roles scoped to clusters and namespaces (issue 13 §2): scoped users see exactly their rows, elsewhere 404.

Two clusters, services in several namespaces. ``vera`` is a scoped viewer (the whole of prod, and
staging's ``ops``); ``olga`` a scoped operator of prod's ``shop`` who may also look at prod's
``payments``. Every list, dashboard and export is asserted by the exact set of names it returns.
"""

from __future__ import annotations

import csv
import datetime
import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from apps.accounts.models import GroupScope
from apps.accounts.scope_services import group_scope_create, group_scope_delete, group_scope_update
from apps.accounts.scopes import GLOBAL_ONLY_PERMISSIONS, SCOPED_ROLE_PERMISSIONS, scope_filter
from apps.audit.models import AuditEvent
from apps.audit.services import Actor, audit_event_record
from apps.control.models import ExcludedDay, Microservice, ScheduledOperation, ScheduleKind
from apps.metrics.models import CollectionRun, DailyPeak
from kubedoor_site.scope_config import ConfiguredScope, group_scopes_parse
from tests.factories import ClusterFactory, MicroserviceFactory, UserFactory, role_groups_ensure

pytestmark = pytest.mark.django_db

DAY = datetime.date(2026, 5, 4)
SERVICES = {  # name: (cluster, namespace)
    "alpha-cart": ("prod", "shop"),
    "bravo-checkout": ("prod", "shop"),
    "charlie-pay": ("prod", "payments"),
    "delta-find": ("prod", "search"),
    "echo-stgcart": ("staging", "shop"),
    "foxtrot-tool": ("staging", "ops"),
}
VERA_SEES = {"alpha-cart", "bravo-checkout", "charlie-pay", "delta-find", "foxtrot-tool"}
OLGA_SEES = {"alpha-cart", "bravo-checkout", "charlie-pay"}


def _client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def _scope(group: str, role: str, cluster, namespaces=()) -> GroupScope:
    """A scope as the admin makes it, without its audit event (so the audit lists below hold only the world's)."""
    return GroupScope.objects.create(
        group=Group.objects.get_or_create(name=group)[0], role=role, cluster=cluster, namespaces=list(namespaces)
    )


@pytest.fixture
def world(db):
    role_groups_ensure()
    prod = ClusterFactory(name="prod")
    staging = ClusterFactory(name="staging")
    clusters = {"prod": prod, "staging": staging}
    rows = {}
    for name, (cluster, namespace) in SERVICES.items():
        rows[name] = MicroserviceFactory(cluster=clusters[cluster], namespace=namespace, name=name)
        window = timezone.make_aware(datetime.datetime(2026, 5, 4, 10))
        DailyPeak.objects.create(
            cluster=cluster,
            day=DAY,
            namespace=namespace,
            deployment=name,
            container=name,
            window_start=window,
            window_end=window + datetime.timedelta(minutes=90),
            pod_count=2,
            p95_cpu_cores=0.5,
            request_cpu_m=1000,
            limit_cpu_m=2000,
            p95_mem_mib=100,
            request_mem_mib=200,
            limit_mem_mib=400,
            quantile=0.95,
            aggregation="max",
            step_seconds=30,
            collected_at=window,
        )
        audit_event_record(
            actor=Actor.system("test"), action="microservice.update", cluster=cluster, namespace=namespace, name=name
        )
    audit_event_record(actor=Actor.system("test"), action="admission.mode", cluster="prod", name="prod-mode")
    audit_event_record(actor=Actor.system("test"), action="admission.mode", cluster="staging", name="staging-mode")
    audit_event_record(actor=Actor.system("test"), action="login.failed", name="login-event")
    for cluster in clusters.values():
        holiday = DAY + datetime.timedelta(days=1)
        ExcludedDay.objects.create(cluster=cluster, start=holiday, end=holiday, reason=f"{cluster.name}-holiday")
        CollectionRun.objects.create(cluster=cluster, days=3, requested_by=f"{cluster.name}-run")
    operations = {}
    for label, target in (("op-cart", "alpha-cart"), ("op-find", "delta-find"), ("op-tool", "foxtrot-tool")):
        operation = ScheduledOperation.objects.create(
            kind="scale",
            cluster=rows[target].cluster,
            schedule=ScheduleKind.CRON,
            cron="0 3 * * *",
            created_by_name=label,
        )
        operation.targets.set([rows[target]])
        operations[label] = operation
    mixed = ScheduledOperation.objects.create(
        kind="restart", cluster=prod, schedule=ScheduleKind.CRON, cron="0 4 * * *", created_by_name="op-mixed"
    )
    mixed.targets.set([rows["alpha-cart"], rows["delta-find"]])  # one target outside olga's scopes
    operations["op-mixed"] = mixed
    # the scoped users, and what their groups hold
    _scope("team-watch", "viewer", prod)
    _scope("team-watch", "viewer", staging, ["ops"])
    _scope("team-shop", "operator", prod, ["shop"])  # admin-made
    _scope("team-pay-watch", "viewer", prod, ["payments"])
    vera = UserFactory(username="vera", is_staff=False)
    vera.groups.add(Group.objects.get(name="team-watch"))
    olga = UserFactory(username="olga", is_staff=False)
    olga.groups.add(Group.objects.get(name="team-shop"), Group.objects.get(name="team-pay-watch"))
    global_viewer = UserFactory(username="gina", role="viewer")
    return {
        "clusters": clusters,
        "rows": rows,
        "operations": operations,
        "vera": vera,
        "olga": olga,
        "gina": global_viewer,
    }


def names(results, key="name") -> set[str]:
    return {row[key] for row in results}


# --- permissions ---------------------------------------------------------------------------------


def test_scoped_users_hold_their_highest_role_less_the_global_only_permissions(world):
    vera, olga, gina = world["vera"], world["olga"], world["gina"]
    assert vera.get_all_permissions() == set(SCOPED_ROLE_PERMISSIONS["viewer"])
    assert olga.get_all_permissions() == set(SCOPED_ROLE_PERMISSIONS["operator"])
    assert not olga.has_perm("control.add_cluster")
    assert not olga.has_perm("audit.view_notificationchannel")
    assert not GLOBAL_ONLY_PERMISSIONS & olga.get_all_permissions()
    # the global viewer keeps exactly the viewer role's permissions
    assert "audit.view_notificationchannel" in gina.get_all_permissions()
    assert scope_filter(gina, Microservice.objects.all()).count() == len(SERVICES)


def test_scope_changes_are_audited_with_the_acting_user(world):
    admin = UserFactory(username="ada", role="admin")
    actor = Actor(user=admin, name="ada", source="admin")
    scope = group_scope_create(
        actor=actor, group=Group.objects.get(name="team-shop"), role="viewer", cluster=world["clusters"]["staging"]
    )
    group_scope_update(actor=actor, scope=scope, data={"role": "operator", "namespaces": ["shop"]})
    group_scope_delete(actor=actor, scope=scope)
    events = AuditEvent.objects.filter(action__startswith="scope.", actor=admin).order_by("id")
    assert [(e.action, e.cluster, e.name, e.before, e.after) for e in events] == [
        (
            "scope.create",
            "staging",
            "team-shop",
            None,
            {"group": "team-shop", "role": "viewer", "cluster": "staging", "namespaces": [], "from_config": False},
        ),
        (
            "scope.update",
            "staging",
            "team-shop",
            {"role": "viewer", "namespaces": []},
            {"role": "operator", "namespaces": ["shop"]},
        ),
        (
            "scope.delete",
            "staging",
            "team-shop",
            {
                "group": "team-shop",
                "role": "operator",
                "cluster": "staging",
                "namespaces": ["shop"],
                "from_config": False,
            },
            None,
        ),
    ]


# --- the API ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("user", "expected"), [("vera", VERA_SEES), ("olga", OLGA_SEES), ("gina", set(SERVICES))])
def test_microservices_list_holds_exactly_the_rows_of_the_scopes(world, user, expected):
    response = _client(world[user]).get("/api/v1/microservices/", {"page_size": 100})
    assert response.status_code == 200
    assert names(response.json()["results"]) == expected


def test_details_outside_the_scopes_are_404_and_acting_with_a_viewer_role_is_403(world):
    olga, rows = _client(world["olga"]), world["rows"]
    assert olga.get(f"/api/v1/microservices/{rows['alpha-cart'].pk}/").status_code == 200
    assert olga.get(f"/api/v1/microservices/{rows['delta-find'].pk}/").status_code == 404
    assert olga.get(f"/api/v1/microservices/{rows['echo-stgcart'].pk}/").status_code == 404
    # acting: outside the scopes 404, with only a viewer role there 403, in the operator scope allowed
    for name, expected in (("delta-find", 404), ("echo-stgcart", 404), ("charlie-pay", 403)):
        for verb in ("scale", "restart", "resize"):
            response = olga.post(f"/api/v1/microservices/{rows[name].pk}/{verb}/", {}, format="json")
            assert response.status_code == expected, (name, verb, response.content)
        patch = olga.patch(f"/api/v1/microservices/{rows[name].pk}/", {"replicas_specified": 4}, format="json")
        assert patch.status_code == expected
    ok = olga.patch(f"/api/v1/microservices/{rows['alpha-cart'].pk}/", {"replicas_specified": 4}, format="json")
    assert ok.status_code == 200
    assert {m.name: m.replicas_specified for m in Microservice.objects.all()} == {
        "alpha-cart": 4,
        "bravo-checkout": None,
        "charlie-pay": None,
        "delta-find": None,
        "echo-stgcart": None,
        "foxtrot-tool": None,
    }
    # a scoped viewer acts nowhere
    vera = _client(world["vera"])
    assert vera.post(f"/api/v1/microservices/{rows['alpha-cart'].pk}/scale/", {}, format="json").status_code == 403


def test_clusters_operations_collections_and_excluded_days_are_those_of_the_scopes(world):
    vera, olga = _client(world["vera"]), _client(world["olga"])
    assert names(vera.get("/api/v1/clusters/").json()["results"]) == {"prod", "staging"}
    assert names(olga.get("/api/v1/clusters/").json()["results"]) == {"prod"}
    assert olga.get("/api/v1/clusters/staging/").status_code == 404
    labels = {operation.pk: label for label, operation in world["operations"].items()}
    assert {labels[row["id"]] for row in vera.get("/api/v1/operations/").json()["results"]} == {
        "op-cart",
        "op-find",
        "op-tool",
        "op-mixed",
    }
    assert {labels[row["id"]] for row in olga.get("/api/v1/operations/").json()["results"]} == {"op-cart"}
    mixed = world["operations"]["op-mixed"]
    assert olga.get(f"/api/v1/operations/{mixed.pk}/").status_code == 404
    assert olga.delete(f"/api/v1/operations/{mixed.pk}/").status_code == 404
    assert {r["cluster"] for r in vera.get("/api/v1/collections/").json()["results"]} == {"prod", "staging"}
    assert {r["cluster"] for r in olga.get("/api/v1/collections/").json()["results"]} == {"prod"}
    reasons = {r["reason"] for r in vera.get("/api/v1/clusters/staging/excluded-days/").json()["results"]}
    assert reasons == {"staging-holiday"}
    assert olga.get("/api/v1/clusters/staging/excluded-days/").status_code == 404
    # olga holds prod only in part: cluster-wide writes (a collection, an excluded day) are not hers
    day = {"start": "2026-05-10", "reason": "sale"}
    assert olga.post("/api/v1/clusters/prod/excluded-days/", day, format="json").status_code == 403
    assert olga.post("/api/v1/collections/", {"cluster": "prod", "days": 1}, format="json").status_code == 400
    assert ExcludedDay.objects.count() == 2
    assert CollectionRun.objects.count() == 2


def test_a_scoped_operator_schedules_only_inside_the_operator_scope(world):
    olga, rows = _client(world["olga"]), world["rows"]
    body = {"kind": "restart", "schedule": "cron", "cron": "0 5 * * *", "time_zone": "UTC"}
    outside = olga.post("/api/v1/operations/", {**body, "targets": [rows["delta-find"].pk]}, format="json")
    assert outside.status_code == 400
    assert list(outside.json()["errors"]) == ["targets"]
    viewer_only = olga.post("/api/v1/operations/", {**body, "targets": [rows["charlie-pay"].pk]}, format="json")
    assert viewer_only.status_code == 400
    assert ScheduledOperation.objects.count() == 4  # nothing written
    inside = olga.post("/api/v1/operations/", {**body, "targets": [rows["bravo-checkout"].pk]}, format="json")
    assert inside.status_code == 201, inside.content
    assert ScheduledOperation.objects.get(pk=inside.json()["id"]).targets.get().name == "bravo-checkout"


def test_archive_and_audit_lists_and_exports_hold_exactly_the_scopes(world):
    vera, olga = _client(world["vera"]), _client(world["olga"])
    day = {"day_from": DAY.isoformat(), "day_to": DAY.isoformat()}
    assert names(vera.get("/api/v1/peaks/", {"cluster": "prod", **day}).json()["results"], "deployment") == {
        "alpha-cart",
        "bravo-checkout",
        "charlie-pay",
        "delta-find",
    }
    assert names(vera.get("/api/v1/peaks/", {"cluster": "staging", **day}).json()["results"], "deployment") == {
        "foxtrot-tool"
    }
    olga_peaks = olga.get("/api/v1/peaks/", {"cluster": "prod", "page_size": 2, **day}).json()
    assert olga_peaks["count"] == 3
    olga_all = olga.get("/api/v1/peaks/", {"cluster": "prod", "page_size": 100, **day}).json()["results"]
    assert names(olga_all, "deployment") == OLGA_SEES
    assert olga.get("/api/v1/peaks/", {"cluster": "prod", "namespace": "search", **day}).json()["count"] == 0
    assert olga.get("/api/v1/peaks/", {"cluster": "staging", **day}).status_code == 400
    # audit events: their cluster and namespaces; cluster-level events through a whole-cluster scope only
    assert names(vera.get("/api/v1/audit-events/", {"page_size": 100}).json()["results"]) == {
        *VERA_SEES,
        "prod-mode",
    }
    assert names(olga.get("/api/v1/audit-events/", {"page_size": 100}).json()["results"]) == OLGA_SEES
    exported = olga.get("/api/v1/audit-events/export/", {"format": "csv"})
    assert exported.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(exported.streaming_content).decode())))
    assert {row["name"] for row in rows} == OLGA_SEES
    lines = b"".join(vera.get("/api/v1/audit-events/export/", {"format": "jsonl"}).streaming_content).splitlines()
    assert {json.loads(line)["name"] for line in lines} == {*VERA_SEES, "prod-mode"}


def test_dashboards_hold_only_the_scopes_namespaces(world):
    vera, olga, gina = _client(world["vera"]), _client(world["olga"]), _client(world["gina"])
    day = {"day_from": DAY.isoformat(), "day_to": DAY.isoformat()}

    def summary(client, cluster):
        response = client.get("/api/v1/dashboard/summary", {"cluster": cluster, **day})
        assert response.status_code == 200, response.content
        payload = response.json()
        return (
            {row["namespace"] for row in payload["namespace_rows"]},
            {entry["deployment"] for entry in payload["top"]["load"]},
            payload["totals"]["services"],
        )

    assert summary(olga, "prod") == ({"shop", "payments"}, OLGA_SEES, 3)
    assert summary(vera, "prod") == ({"shop", "payments", "search"}, VERA_SEES - {"foxtrot-tool"}, 4)
    assert summary(vera, "staging") == ({"ops"}, {"foxtrot-tool"}, 1)
    assert summary(gina, "staging") == ({"shop", "ops"}, {"echo-stgcart", "foxtrot-tool"}, 2)
    assert olga.get("/api/v1/dashboard/summary", {"cluster": "staging", **day}).status_code == 400
    waste = olga.get("/api/v1/dashboard/waste", {"cluster": "prod", **day}).json()
    assert {row["deployment"] for row in waste["services"]} == OLGA_SEES
    assert waste["trend"][0]["cpu_waste_cores"] == 3.0  # her three services: (1 − 0.5) cores × 2 pods each
    curves = {"cluster": "prod", "namespace": "search", "deployment": "delta-find", **day}
    assert olga.get("/api/v1/dashboard/curves", curves).status_code == 404
    assert olga.get("/api/v1/dashboard/pods", curves).status_code == 404
    assert vera.get("/api/v1/dashboard/curves", curves).status_code == 200
    assert olga.get("/api/v1/dashboard/nodes", {"cluster": "prod", **day}).status_code == 200
    assert olga.get("/api/v1/dashboard/nodes", {"cluster": "staging", **day}).status_code == 400


# --- the admin --------------------------------------------------------------------------------


def _admin(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _changelist(client: Client, url: str, attribute: str = "name") -> set[str]:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return {str(getattr(obj, attribute)) for obj in response.context["cl"].result_list}


def test_admin_changelists_hold_exactly_the_scopes_rows(world):
    olga, vera = _admin(world["olga"]), _admin(world["vera"])
    assert _changelist(olga, "/admin/control/microservice/") == OLGA_SEES
    assert _changelist(vera, "/admin/control/microservice/") == VERA_SEES
    assert _changelist(olga, "/admin/control/cluster/") == {"prod"}
    assert _changelist(vera, "/admin/control/cluster/") == {"prod", "staging"}
    assert _changelist(olga, "/admin/webhook/admission/") == {"prod"}
    assert _changelist(olga, "/admin/control/scheduledoperation/", "created_by_name") == {"op-cart"}
    assert _changelist(vera, "/admin/control/scheduledoperation/", "created_by_name") == {
        "op-cart",
        "op-find",
        "op-tool",
        "op-mixed",
    }
    assert _changelist(olga, "/admin/control/excludedday/", "reason") == {"prod-holiday"}
    assert _changelist(olga, "/admin/metrics/collectionrun/", "requested_by") == {"prod-run"}
    assert _changelist(vera, "/admin/metrics/collectionrun/", "requested_by") == {"prod-run", "staging-run"}
    assert _changelist(olga, "/admin/audit/auditevent/") == OLGA_SEES
    assert _changelist(vera, "/admin/audit/auditevent/") == {*VERA_SEES, "prod-mode"}
    peaks = olga.get("/admin/metrics/dailypeak/", {"cluster": "prod", "day": DAY.isoformat()})
    assert {row.deployment for row in peaks.context["page"]} == OLGA_SEES
    assert (
        olga.get("/admin/metrics/dailypeak/", {"cluster": "staging", "day": DAY.isoformat()}).context["page"] is None
    )  # not one of her clusters: the form refuses it
    dashboard = olga.get("/admin/metrics/dashboard/")
    assert dashboard.status_code == 200
    assert [c.name for c in dashboard.context["form"].fields["cluster"].queryset] == ["prod"]
    # the audit export of the admin
    exported = olga.get("/admin/audit/auditevent/export/", {"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(b"".join(exported.streaming_content).decode())))
    assert {row["name"] for row in rows} == OLGA_SEES


def test_admin_objects_outside_the_scopes_are_not_found_and_viewer_scopes_are_read_only(world):
    olga, rows = _admin(world["olga"]), world["rows"]
    outside = olga.get(f"/admin/control/microservice/{rows['delta-find'].pk}/change/")
    assert outside.status_code == 302  # the admin's "does not exist" answer, as for a missing id
    assert olga.get(f"/admin/control/microservice/{rows['alpha-cart'].pk}/change/").context["has_change_permission"]
    pay = olga.get(f"/admin/control/microservice/{rows['charlie-pay'].pk}/change/")
    assert pay.status_code == 200
    assert pay.context["has_change_permission"] is False
    posted = olga.post(
        f"/admin/control/microservice/{rows['charlie-pay'].pk}/change/", {"replicas_specified": 9, "_save": "Save"}
    )
    assert posted.status_code == 403
    assert Microservice.objects.get(name="charlie-pay").replicas_specified is None
    curves = olga.get(
        "/admin/metrics/dashboard/curves/", {"cluster": "prod", "namespace": "search", "deployment": "delta-find"}
    )
    assert curves.status_code == 404
    # scopes are for admins: olga may not see them
    assert olga.get("/admin/accounts/groupscope/").status_code == 403


def test_global_roles_are_unaffected(world):
    gina = _admin(world["gina"])
    assert _changelist(gina, "/admin/control/microservice/") == set(SERVICES)
    assert _changelist(gina, "/admin/audit/auditevent/") == {*SERVICES, "prod-mode", "staging-mode", "login-event"}
    assert names(_client(world["gina"]).get("/api/v1/clusters/").json()["results"]) == {"prod", "staging"}


# --- the configuration ------------------------------------------------------------------------


def test_group_scopes_parse_and_refuse_bad_items():
    assert group_scopes_parse(" team-a=operator@prod:shop, payments ;team-b=viewer@staging;") == (
        ConfiguredScope("team-a", "operator", "prod", ("payments", "shop")),
        ConfiguredScope("team-b", "viewer", "staging", ()),
    )
    assert group_scopes_parse("") == ()
    for text, message in (
        ("team-a", "is not group=role@cluster"),
        ("team-a=owner@prod", "the role must be one of viewer, operator, admin"),
        ("team-a=viewer", "give a cluster name after @"),
        ("team-a=viewer@Prod", "give a cluster name after @"),
        ("team-a=viewer@prod:Shop_1", "Shop_1 is not a namespace name"),
        ("team-a=viewer@prod;team-a=admin@prod", "group 'team-a' has two items for cluster 'prod'"),
    ):
        with pytest.raises(ValueError, match=message):
            group_scopes_parse(text)


# --- LDAP and OIDC logins land in their scopes ------------------------------------------------------

CONFIG_SCOPES = "team-shop=operator@prod:shop;team-shop=viewer@staging;gone=admin@prod"
# A team-shop member after logging in: (cluster, role, namespaces, from configuration) and the rows they see.
TEAM_SHOP_SCOPES = {
    ("prod", "operator", ("shop",), False),  # made in the admin: left alone
    ("prod", "operator", ("shop",), True),
    ("staging", "viewer", (), True),
}
TEAM_SHOP_ROWS = {"alpha-cart", "bravo-checkout", "echo-stgcart", "foxtrot-tool"}
SCOPE_BACKENDS = ["django.contrib.auth.backends.ModelBackend", "apps.accounts.scopes.ScopeBackend"]


def _scopes_of(username: str) -> set[tuple[str, str, tuple[str, ...], bool]]:
    rows = GroupScope.objects.filter(group__user__username=username)
    return {(s.cluster.name, s.role, tuple(s.namespaces), s.from_config) for s in rows}


def test_an_ldap_user_whose_groups_map_to_scopes_lands_in_them(world, slapd):
    from django.test import override_settings

    from kubedoor_site.ldap_config import ldap_settings

    env = {**slapd.env(), "KUBEDOOR_GROUP_SCOPES": CONFIG_SCOPES}
    # given: an admin-made scope of team-shop, and a stale configured one the configuration no longer has
    developers = Group.objects.create(name="developers")
    GroupScope.objects.create(group=developers, role="admin", cluster=world["clusters"]["prod"], from_config=True)
    settings = {
        **ldap_settings(env, base_backends=SCOPE_BACKENDS),
        "KUBEDOOR_GROUP_SCOPES": group_scopes_parse(CONFIG_SCOPES),
    }
    with override_settings(**settings):
        client = Client()
        # when erin (in team-shop and developers, in no role group) logs in
        response = client.post("/admin/login/?next=/admin/", {"username": "erin", "password": "erin-pass-55555"})
        # then she is in, as a scoped operator of prod/shop and viewer of staging
        assert response.status_code == 302
        assert response["Location"] == "/admin/"
        assert _scopes_of("erin") == TEAM_SHOP_SCOPES
        assert _changelist(client, "/admin/control/microservice/") == TEAM_SHOP_ROWS
        # dave, in no role group and no group with a scope, is still refused
        refused = Client().post("/admin/login/", {"username": "dave", "password": "dave-pass-4444"})
        assert refused.status_code == 200
    assert [
        (e.action, e.cluster, e.name) for e in AuditEvent.objects.filter(action__startswith="scope.").order_by("id")
    ] == [
        ("scope.delete", "prod", "developers"),
        ("scope.create", "prod", "team-shop"),
        ("scope.create", "staging", "team-shop"),
    ]


def test_an_oidc_user_whose_groups_map_to_scopes_lands_in_them(world, oidc_provider):
    from django.test import override_settings

    from kubedoor_site.oidc_config import oidc_settings
    from tests.accounts.test_oidc import sso_login

    env = {**oidc_provider.env(), "KUBEDOOR_GROUP_SCOPES": CONFIG_SCOPES}
    settings = {
        **oidc_settings(env, backends=SCOPE_BACKENDS),
        "KUBEDOOR_GROUP_SCOPES": group_scopes_parse(CONFIG_SCOPES),
    }
    with override_settings(**settings):
        # a group with a scope lets the user in, though it maps to no role
        oidc_provider.user_set("sub-sam-1", {"preferred_username": "sam", "groups": ["team-shop"]})
        client = Client()
        response = sso_login(client, oidc_provider, "sub-sam-1")
        assert response.status_code == 302
        assert response["Location"] == "/admin/"
        assert _scopes_of("sam") == TEAM_SHOP_SCOPES
        assert _changelist(client, "/admin/control/microservice/") == TEAM_SHOP_ROWS
        # a user whose groups hold neither a role nor a scope is refused, and not created
        oidc_provider.user_set("sub-ned-1", {"preferred_username": "ned", "groups": ["dev"]})
        refused = sso_login(Client(), oidc_provider, "sub-ned-1")
        assert refused["Location"] == "/admin/login/?sso=failed"
    assert not get_user_model().objects.filter(username="ned").exists()


def test_the_gitops_export_holds_only_the_scopes_rows(world, k8s_standin):
    from tests.servers.k8s_standin import standin_cluster

    # given: prod's Deployments live in the stand-in, as the table has them
    standin_cluster(k8s_standin, name="prod")
    for name, (cluster, namespace) in SERVICES.items():
        if cluster == "prod":
            container = {"name": name, "image": "x:1", "resources": {"requests": {"cpu": "1"}}}
            k8s_standin.add_deployment(namespace, name, replicas=2, containers=[container])
    k8s_standin.requests.clear()
    # when olga exports prod
    response = _client(world["olga"]).get("/api/v1/clusters/prod/export/", {"format": "json"})
    # then: her rows only, read from her namespaces only
    assert response.status_code == 200, response.content
    assert {d["name"] for d in response.json()["deployments"]} == OLGA_SEES
    assert [(r.method, r.path) for r in k8s_standin.requests] == [
        ("GET", "/apis/apps/v1/namespaces/payments/deployments"),
        ("GET", "/apis/apps/v1/namespaces/shop/deployments"),
    ]
    assert _client(world["olga"]).get("/api/v1/clusters/staging/export/", {"format": "json"}).status_code == 404
    everything = _client(world["gina"]).get("/api/v1/clusters/prod/export/", {"format": "json"}).json()
    assert {d["name"] for d in everything["deployments"]} == VERA_SEES - {"foxtrot-tool"}


def test_admins_manage_scopes_in_the_admin_and_each_change_is_audited(world):
    ada = UserFactory(username="ada", role="admin")
    client = _admin(ada)
    form = {
        "group": Group.objects.get(name="team-shop").pk,
        "role": "viewer",
        "cluster": world["clusters"]["staging"].pk,
    }
    # a role group already reaches everything: refused
    refused = client.post(
        "/admin/accounts/groupscope/add/", {**form, "group": Group.objects.get(name="viewer").pk, "namespaces": "[]"}
    )
    assert refused.status_code == 200
    assert not GroupScope.objects.filter(group__name="viewer").exists()
    # added with namespaces, then deleted
    added = client.post("/admin/accounts/groupscope/add/", {**form, "namespaces": '["ops", "shop"]'})
    assert added.status_code == 302, added.content
    scope = GroupScope.objects.get(group__name="team-shop", cluster__name="staging")
    assert (scope.role, scope.namespaces, scope.from_config) == ("viewer", ["ops", "shop"], False)
    deleted = client.post(f"/admin/accounts/groupscope/{scope.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    events = AuditEvent.objects.filter(action__startswith="scope.").order_by("id")
    assert [(e.action, e.actor_name, e.source, e.cluster, e.name) for e in events] == [
        ("scope.create", "ada", "admin", "staging", "team-shop"),
        ("scope.delete", "ada", "admin", "staging", "team-shop"),
    ]
    # a scoped user, even an operator, cannot reach the scopes
    assert _admin(world["olga"]).get("/admin/accounts/groupscope/add/").status_code == 403

"""A scoped operator in a real browser: the control table shows exactly the rows of her scopes."""

from __future__ import annotations

from django.contrib.auth.models import Group

from apps.accounts.models import GroupScope
from tests.e2e.conftest import log_in, shot
from tests.factories import ClusterFactory, MicroserviceFactory, UserFactory


def test_a_scoped_operator_sees_only_her_namespaces_in_the_control_table(live_server, new_page):
    # given: two clusters; olga's group is operator on prod's shop namespace only
    prod, staging = ClusterFactory(name="prod"), ClusterFactory(name="staging")
    for cluster, namespace, name in (
        (prod, "shop", "alpha-cart"),
        (prod, "shop", "bravo-checkout"),
        (prod, "search", "delta-find"),
        (staging, "shop", "echo-stgcart"),
    ):
        MicroserviceFactory(cluster=cluster, namespace=namespace, name=name)
    team = Group.objects.create(name="team-shop")
    GroupScope.objects.create(group=team, role="operator", cluster=prod, namespaces=["shop"])
    olga = UserFactory(username="olga", is_staff=False)
    olga.groups.add(team)
    page = new_page()
    # when
    log_in(page, live_server.url, "olga")
    page.goto(f"{live_server.url}/admin/control/microservice/")
    # then: her rows; the filters offer her namespace only, and no other cluster (one cluster: no cluster filter)
    names = sorted(link.inner_text() for link in page.locator("#result_list tbody th a").all())
    assert names == ["alpha-cart", "bravo-checkout"]
    namespaces = page.locator("#changelist-filter details").filter(has_text="By namespace").locator("li a")
    assert [link.inner_text() for link in namespaces.all()] == ["All", "shop"]
    assert "staging" not in page.locator("#changelist-filter").inner_text()
    shot(page, "40-scoped-control-table")

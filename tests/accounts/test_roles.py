"""The role groups: each holds exactly its permissions, and ``roles_sync`` puts them back."""

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group, Permission

from apps.accounts.roles import ADMIN, OPERATOR, ROLE_PERMISSIONS, ROLES, VIEWER, roles_sync
from tests.factories import role_groups_ensure

pytestmark = pytest.mark.django_db


def permissions_of(role: str) -> set[str]:
    group = Group.objects.get(name=role)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}


def test_each_role_holds_exactly_its_permissions():
    # given the groups as the migrations (or, after a flush, roles_sync) made them
    role_groups_ensure()
    # then
    assert sorted(Group.objects.filter(name__in=ROLES).values_list("name", flat=True)) == sorted(ROLES)
    for role in ROLES:
        assert permissions_of(role) == set(ROLE_PERMISSIONS[role])


def test_each_role_holds_the_permissions_of_the_role_below():
    assert set(ROLE_PERMISSIONS[VIEWER]) < set(ROLE_PERMISSIONS[OPERATOR]) < set(ROLE_PERMISSIONS[ADMIN])
    assert all(name.startswith("view_") for name in (p.split(".")[1] for p in ROLE_PERMISSIONS[VIEWER]))


def test_roles_sync_takes_back_a_permission_granted_by_hand():
    # given a viewer group someone gave the right to delete clusters
    role_groups_ensure()
    viewer = Group.objects.get(name=VIEWER)
    viewer.permissions.add(Permission.objects.get(content_type__app_label="control", codename="delete_cluster"))
    assert "control.delete_cluster" in permissions_of(VIEWER)
    # when
    roles_sync(django_apps)
    # then
    assert permissions_of(VIEWER) == set(ROLE_PERMISSIONS[VIEWER])
    assert Group.objects.filter(name__in=ROLES).count() == 3

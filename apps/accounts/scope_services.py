"""Writes of group scopes: by an admin (audited with the acting user) and from ``KUBEDOOR_GROUP_SCOPES``.

Scopes from the configuration are marked ``from_config`` and rewritten on every LDAP or OIDC login
(``group_scopes_config_sync``): the configuration is their source of truth, as the directory is for
roles. Scopes made in the admin are never touched by a login.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction

from apps.accounts.models import GroupScope
from apps.accounts.roles import ROLES
from apps.audit.services import Actor, audit_event_record
from kubedoor_site.exceptions import editable_fields_check

logger = logging.getLogger(__name__)

EDITABLE_FIELDS = ("group", "role", "cluster", "namespaces")


def group_scope_snapshot(scope: GroupScope) -> dict[str, Any]:
    """The audited state of a scope."""
    return {
        "group": scope.group.name,
        "role": scope.role,
        "cluster": scope.cluster.name,
        "namespaces": list(scope.namespaces),
        "from_config": scope.from_config,
    }


def _check(scope: GroupScope) -> None:
    scope.namespaces = sorted(set(scope.namespaces or []))
    scope.full_clean()


def _record(*, actor: Actor, action: str, scope: GroupScope, before: Any = None, after: Any = None) -> None:
    audit_event_record(
        actor=actor, action=action, cluster=scope.cluster.name, name=scope.group.name, before=before, after=after
    )


@transaction.atomic
def group_scope_create(
    *, actor: Actor, group: Group, role: str, cluster: Any, namespaces: Iterable[str] = (), from_config: bool = False
) -> GroupScope:
    scope = GroupScope(group=group, role=role, cluster=cluster, namespaces=list(namespaces), from_config=from_config)
    _check(scope)
    scope.save()
    _record(actor=actor, action="scope.create", scope=scope, after=group_scope_snapshot(scope))
    return scope


@transaction.atomic
def group_scope_update(*, actor: Actor, scope: GroupScope, data: Mapping[str, Any]) -> GroupScope:
    editable_fields_check(data, EDITABLE_FIELDS)
    scope = GroupScope.objects.select_for_update().select_related("group", "cluster").get(pk=scope.pk)
    before = group_scope_snapshot(scope)
    for field, value in data.items():
        setattr(scope, field, value)
    _check(scope)
    scope.save()
    after = group_scope_snapshot(scope)
    keys = [key for key in after if before[key] != after[key]]
    if keys:
        _record(
            actor=actor,
            action="scope.update",
            scope=scope,
            before={key: before[key] for key in keys},
            after={key: after[key] for key in keys},
        )
    return scope


@transaction.atomic
def group_scope_delete(*, actor: Actor, scope: GroupScope) -> None:
    scope = GroupScope.objects.select_for_update().select_related("group", "cluster").get(pk=scope.pk)
    before = group_scope_snapshot(scope)  # as stored, not as the caller's copy last saw it
    _record(actor=actor, action="scope.delete", scope=scope, before=before)
    scope.delete()


def group_scopes_config_sync(*, actor: Actor, group_names: Iterable[str]) -> None:
    """Make the ``from_config`` scopes of ``group_names`` exactly what ``KUBEDOOR_GROUP_SCOPES`` says.

    Called on each directory login with the user's groups; an item naming a cluster that does not
    exist (yet) is skipped with a warning, and applied at a later login once the cluster exists.
    """
    names = set(group_names) - set(ROLES)
    wanted = {
        (item.group, item.cluster): item
        for item in getattr(settings, "KUBEDOOR_GROUP_SCOPES", ())
        if item.group in names
    }
    with transaction.atomic():
        existing = GroupScope.objects.select_related("group", "cluster").filter(from_config=True, group__name__in=names)
        for scope in existing:
            item = wanted.pop((scope.group.name, scope.cluster.name), None)
            if item is None:
                group_scope_delete(actor=actor, scope=scope)
            elif (scope.role, sorted(scope.namespaces)) != (item.role, list(item.namespaces)):
                group_scope_update(
                    actor=actor, scope=scope, data={"role": item.role, "namespaces": list(item.namespaces)}
                )
        cluster_model: Any = GroupScope._meta.get_field("cluster").related_model  # the control app's Cluster
        cluster_names = {cluster for _group, cluster in wanted}
        clusters = {c.name: c for c in cluster_model._default_manager.filter(name__in=cluster_names)}
        for (group_name, cluster_name), item in sorted(wanted.items()):
            cluster = clusters.get(cluster_name)
            if cluster is None:
                logger.warning("KUBEDOOR_GROUP_SCOPES: no cluster %s for group %s, skipped", cluster_name, group_name)
                continue
            group, _created = Group.objects.get_or_create(name=group_name)
            group_scope_create(
                actor=actor,
                group=group,
                role=item.role,
                cluster=cluster,
                namespaces=item.namespaces,
                from_config=True,
            )


def configured_clusters_exist(group_names: Iterable[str]) -> bool:
    """Whether ``KUBEDOOR_GROUP_SCOPES`` gives any of these groups a scope on a cluster that exists."""
    names = set(group_names)
    clusters = {item.cluster for item in getattr(settings, "KUBEDOOR_GROUP_SCOPES", ()) if item.group in names}
    cluster_model: Any = GroupScope._meta.get_field("cluster").related_model
    return bool(clusters) and cluster_model._default_manager.filter(name__in=clusters).exists()


def groups_have_scopes(group_names: Iterable[str]) -> bool:
    """Whether any of these groups holds a scope (a login through them is let in)."""
    return GroupScope.objects.filter(group__name__in=list(group_names)).exists()

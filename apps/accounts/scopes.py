"""Who sees what: roles scoped to clusters and namespaces (issue 13 §2).

A user is **unrestricted** — everything stays as it was before scopes existed — when they are a
superuser, a member of a global role group (``viewer``, ``operator``, ``admin``), or hold no scope at
all (their model permissions, if any, decide as before). A user whose groups hold scopes
(``GroupScope``) and who is none of these is **scoped**: every read goes through ``scope_filter``
(admin ``get_queryset``, API ``get_queryset``, selectors, dashboards, exports), so they see exactly the
rows of their scopes, and every act is checked with ``scope_has_perm`` against the role of the scope
covering that object.

The permissions a scoped user holds (``ScopeBackend``) are those of the highest role among their
scopes, less ``GLOBAL_ONLY_PERMISSIONS``: what concerns the whole installation rather than one
cluster's rows (clusters themselves, admission modes, notification channels, users and groups, API
token admin, imports, login lockouts, beat entries) stays with global roles. A scoped admin is an
operator who may also change requests (``control.change_microservice_requests``) in their scopes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, TypeVar

from django.contrib.admin import filters as admin_filters
from django.contrib.auth.backends import BaseBackend
from django.db.models import Model, Q, QuerySet

from apps.accounts.roles import ADMIN, INSTALLATION_PERMS, OPERATOR, ROLE_PERMISSIONS, ROLES, VIEWER

M = TypeVar("M", bound=Model)

ROLE_RANK = {VIEWER: 1, OPERATOR: 2, ADMIN: 3}

# Installation-wide permissions no scope grants (see the module docstring).
GLOBAL_ONLY_PERMISSIONS = frozenset(INSTALLATION_PERMS)

SCOPED_ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    role: frozenset(names) - GLOBAL_ONLY_PERMISSIONS for role, names in ROLE_PERMISSIONS.items()
}

_CACHE = "_kubedoor_scopes"


@dataclasses.dataclass(frozen=True)
class Scope:
    """One role on one cluster; ``namespaces`` empty = the whole cluster."""

    cluster: str
    role: str
    namespaces: frozenset[str] = frozenset()

    def covers(self, *, cluster: str, namespace: str | None) -> bool:
        """Whether this scope reaches (cluster, namespace); ``namespace=None``: a cluster-wide object."""
        if cluster != self.cluster:
            return False
        return namespace is None or not self.namespaces or namespace in self.namespaces


def user_scopes(user: Any) -> tuple[Scope, ...] | None:
    """The user's scopes, or ``None`` for an unrestricted user (see the module docstring). Cached on the user."""
    if user is None or not getattr(user, "is_authenticated", False) or not getattr(user, "pk", None):
        return None
    if hasattr(user, _CACHE):
        cached: tuple[Scope, ...] | None = getattr(user, _CACHE)
        return cached
    from apps.accounts.models import GroupScope

    scopes: tuple[Scope, ...] | None = None
    if not user.is_superuser and not user.groups.filter(name__in=ROLES).exists():
        rows = GroupScope.objects.filter(group__user=user).values_list("cluster__name", "role", "namespaces")
        found = tuple(
            sorted(
                {Scope(cluster, role, frozenset(namespaces or ())) for cluster, role, namespaces in rows},
                key=lambda s: (s.cluster, s.role, sorted(s.namespaces)),
            )
        )
        scopes = found or None
    setattr(user, _CACHE, scopes)
    return scopes


def user_scopes_forget(user: Any) -> None:
    """Drop the cached scopes (after the user's groups or scopes changed within one request)."""
    if hasattr(user, _CACHE):
        delattr(user, _CACHE)
    for cache in ("_perm_cache", "_group_perm_cache", "_user_perm_cache", "_scope_perm_cache"):
        if hasattr(user, cache):
            delattr(user, cache)


def is_scoped(user: Any) -> bool:
    return user_scopes(user) is not None


def scope_q(
    scopes: Iterable[Scope], *, cluster: str = "cluster__name", namespace: str | None = "namespace", role: str = VIEWER
) -> Q:
    """The rows the scopes reach with at least ``role``; ``namespace=None`` for cluster-wide rows."""
    condition = Q(pk__in=[])
    for scope in scopes:
        if ROLE_RANK[scope.role] < ROLE_RANK[role]:
            continue
        part = Q(**{cluster: scope.cluster})
        if namespace is not None and scope.namespaces:
            part &= Q(**{f"{namespace}__in": sorted(scope.namespaces)})
        condition |= part
    return condition


def scope_filter(
    user: Any,
    queryset: QuerySet[M],
    *,
    cluster: str = "cluster__name",
    namespace: str | None = "namespace",
    role: str = VIEWER,
) -> QuerySet[M]:
    """``queryset`` as ``user`` may see it: unchanged for an unrestricted user, else only their scopes' rows.

    ``cluster`` and ``namespace`` name the lookups of the row's cluster name and namespace;
    ``namespace=None`` for rows that belong to a whole cluster (clusters, nodes, collection runs,
    excluded days), which any scope on that cluster reaches. ``role``: the least role needed.
    """
    scopes = user_scopes(user)
    if scopes is None:
        return queryset
    # The conditions follow foreign keys and plain columns only: no join can repeat a row, no DISTINCT needed.
    return queryset.filter(scope_q(scopes, cluster=cluster, namespace=namespace, role=role))


def scope_role(user: Any, *, cluster: str, namespace: str | None = None) -> str | None:
    """The highest role of the user's scopes reaching (cluster, namespace); ``None`` when none does.

    For an unrestricted user: ``None`` as well; callers ask ``scope_has_perm`` instead.
    """
    scopes = user_scopes(user) or ()
    roles = [scope.role for scope in scopes if scope.covers(cluster=cluster, namespace=namespace)]
    return max(roles, key=ROLE_RANK.__getitem__) if roles else None


def scope_sees(user: Any, *, cluster: str, namespace: str | None = None) -> bool:
    """Whether the user may see an object of (cluster, namespace); always for an unrestricted user."""
    return user_scopes(user) is None or scope_role(user, cluster=cluster, namespace=namespace) is not None


def scope_has_perm(user: Any, perm: str, *, cluster: str, namespace: str | None = None) -> bool:
    """Whether ``user`` holds ``perm`` on an object of (cluster, namespace).

    Unrestricted users: their model permission. Scoped users: the permission of the role of a
    scope covering that object (never a global-only one); ``namespace=None`` is a cluster-wide
    object, which only a whole-cluster scope may change.
    """
    scopes = user_scopes(user)
    if scopes is None:
        return bool(user.has_perm(perm))
    if not user.is_active:
        return False
    if namespace is None and not perm.partition(".")[2].startswith("view_"):
        # A write to a cluster-wide object (excluded days, collections) needs a whole-cluster scope.
        scopes = tuple(scope for scope in scopes if not scope.namespaces)
    roles = [scope.role for scope in scopes if scope.covers(cluster=cluster, namespace=namespace)]
    return any(perm in SCOPED_ROLE_PERMISSIONS[role] for role in roles)


def scope_clusters(user: Any) -> set[str] | None:
    """The names of the clusters the user reaches; ``None`` = every cluster (unrestricted)."""
    scopes = user_scopes(user)
    return None if scopes is None else {scope.cluster for scope in scopes}


def scope_namespaces(user: Any, *, cluster: str) -> frozenset[str] | None:
    """The namespaces of ``cluster`` the user reaches: ``None`` = all of them, empty = none."""
    scopes = user_scopes(user)
    if scopes is None:
        return None
    reaching = [scope for scope in scopes if scope.cluster == cluster]
    if any(not scope.namespaces for scope in reaching):
        return None
    return frozenset().union(*(scope.namespaces for scope in reaching))


class ScopeBackend(BaseBackend):
    """Model permissions for scoped users: the highest role of their scopes, less the global-only ones.

    Authenticates nobody. Unrestricted users get nothing from here (``ModelBackend`` answers for them),
    so global roles behave exactly as before. Object-level checks go through ``scope_has_perm``.
    """

    def get_all_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        if obj is not None or not getattr(user_obj, "is_active", False):
            return set()
        cached = getattr(user_obj, "_scope_perm_cache", None)
        if cached is None:
            scopes = user_scopes(user_obj)
            if not scopes:
                cached = set()
            else:
                top = max((scope.role for scope in scopes), key=ROLE_RANK.__getitem__)
                cached = set(SCOPED_ROLE_PERMISSIONS[top])
            user_obj._scope_perm_cache = cached
        return set(cached)

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        return perm in self.get_all_permissions(user_obj, obj)

    def has_module_perms(self, user_obj: Any, app_label: str) -> bool:
        return any(perm.startswith(app_label + ".") for perm in self.get_all_permissions(user_obj))


class ScopedAdminMixin:
    """For a ModelAdmin: the changelist and every object view hold only the user's scopes' rows.

    ``scope_cluster`` / ``scope_namespace`` are the lookups ``scope_filter`` takes; an object the user
    cannot see is "not found" like any missing object; one they see through a role too low to
    change or delete it is read-only for them.
    """

    scope_cluster = "cluster__name"
    scope_namespace: str | None = "namespace"

    def get_queryset(self, request: Any) -> Any:
        queryset = super().get_queryset(request)  # type: ignore[misc]
        return scope_filter(request.user, queryset, cluster=self.scope_cluster, namespace=self.scope_namespace)

    def scope_of(self, obj: Any) -> tuple[str, str | None]:
        """(cluster name, namespace or ``None``) of an object of this admin."""
        cluster = obj
        for part in self.scope_cluster.split("__"):
            cluster = getattr(cluster, part)
        return str(cluster), (getattr(obj, self.scope_namespace) if self.scope_namespace else None)

    def _scope_allows(self, request: Any, action: str, obj: Any) -> bool:
        if obj is None or user_scopes(request.user) is None:
            return True
        opts = obj._meta
        cluster, namespace = self.scope_of(obj)
        return scope_has_perm(
            request.user, f"{opts.app_label}.{action}_{opts.model_name}", cluster=cluster, namespace=namespace
        )

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        allowed = super().has_change_permission(request, obj)  # type: ignore[misc]
        return bool(allowed) and self._scope_allows(request, "change", obj)

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        allowed = super().has_delete_permission(request, obj)  # type: ignore[misc]
        return bool(allowed) and self._scope_allows(request, "delete", obj)


class ScopedRelatedFieldListFilter(admin_filters.RelatedFieldListFilter):
    """A cluster filter that offers a scoped user only the clusters of the rows they see (no names leak)."""

    def field_choices(self, field: Any, request: Any, model_admin: Any) -> Any:
        if user_scopes(request.user) is None:
            return super().field_choices(field, request, model_admin)
        return admin_filters.RelatedOnlyFieldListFilter.field_choices(self, field, request, model_admin)  # type: ignore[arg-type]


class ScopedClusterNameListFilter(admin_filters.AllValuesFieldListFilter):
    """``cluster__name`` values, only the user's clusters for a scoped user."""

    def __init__(self, field: Any, request: Any, params: Any, model: Any, model_admin: Any, field_path: str) -> None:
        super().__init__(field, request, params, model, model_admin, field_path)
        clusters = scope_clusters(request.user)
        if clusters is not None:
            self.lookup_choices = self.lookup_choices.filter(**{f"{field.name}__in": sorted(clusters)})


def scope_cluster_filter(user: Any, clusters: QuerySet[M], *, perm: str | None = None) -> QuerySet[M]:
    """Clusters (a ``Cluster`` queryset) the user reaches; with ``perm``, only those where they hold it cluster-wide."""
    scopes = user_scopes(user)
    if scopes is None:
        return clusters
    names = {scope.cluster for scope in scopes}
    if perm is not None:
        names = {name for name in names if scope_has_perm(user, perm, cluster=name)}
    return clusters.filter(name__in=sorted(names))


def audit_event_scope_filter(user: Any, events: QuerySet[M]) -> QuerySet[M]:
    """Audit events inside the user's scopes: their cluster, and their namespaces where a scope names some.

    Events of a cluster without a namespace (a collection, an admission mode) are seen through a
    whole-cluster scope only; events of no cluster (logins, channels) by unrestricted users only.
    """
    return scope_filter(user, events, cluster="cluster", namespace="namespace")

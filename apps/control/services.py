"""Writes to clusters and the control table. Each write records its audit event in the same transaction."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.forms.models import model_to_dict
from django.http import Http404
from django.utils.translation import gettext as _

from apps.accounts.scopes import is_scoped, scope_has_perm, scope_sees
from apps.audit.models import AuditSource
from apps.audit.services import Actor, audit_event_record
from apps.control.choices import AdmissionEngine, AdmissionMode
from apps.control.collection_schedule import collection_schedule_delete, collection_schedule_sync
from apps.control.models import Cluster, Microservice
from apps.control.queue import admission_policy_sync_enqueue
from kubedoor_site.beat import periodic_tasks_delete
from kubedoor_site.exceptions import editable_fields_check

logger = logging.getLogger(__name__)

# Fields of a control row that a person edits (everything else is measured by collection).
MICROSERVICE_EDITABLE_FIELDS = (
    "container",
    "replicas_specified",
    "replicas_recommended",
    "request_cpu_m",
    "request_mem_mib",
    "limit_cpu_m",
    "limit_mem_mib",
    "cpu_headroom",
    "mem_headroom",
    "min_cpu_m",
    "min_mem_mib",
    "target_cpu_pct",
    "target_mem_pct",
    "min_replicas",
    "allow_single_replica",
    "allow_scale_up",
    "replicas_mode",
)
# Fields only admins may change (operators edit specified pods and limits, DESIGN §10).
MICROSERVICE_REQUEST_FIELDS = ("request_cpu_m", "request_mem_mib")
# Who sets a request "by hand" (``request_*_by_hand``): a person, through the admin or the API.
REQUEST_BY_HAND_SOURCES = (AuditSource.ADMIN, AuditSource.API)
# Cluster fields never written into audit events or shown to non-admins.
CLUSTER_SECRET_FIELDS = ("kubeconfig", "prometheus_token")


def microservice_snapshot(microservice: Microservice) -> dict[str, Any]:
    """The audited state of a control row."""
    data = model_to_dict(microservice, exclude=["id", "cluster"])
    data["cluster"] = microservice.cluster.name
    data["effective_replicas"] = microservice.effective_replicas
    return data


def cluster_snapshot(cluster: Cluster) -> dict[str, Any]:
    """The audited state of a cluster, secrets replaced by whether they are set."""
    data = model_to_dict(cluster, exclude=["id"])
    for field in CLUSTER_SECRET_FIELDS:
        data[field] = "<set>" if data.get(field) else ""
    if cluster.prometheus_url:
        data["prometheus_url"] = redact_url(cluster.prometheus_url)
    return data


def redact_url(url: str) -> str:
    """Hide the password of a URL with embedded basic auth."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    keys = [key for key in after if before.get(key) != after.get(key)]
    return {key: before.get(key) for key in keys}, {key: after.get(key) for key in keys}


def _check_scope(*, actor: Actor, perm: str, cluster: str, namespace: str) -> None:
    """A scoped person (admin or API) acts only inside their scopes: unseen rows are "not found"."""
    if actor.user is None or actor.source not in (AuditSource.ADMIN, AuditSource.API) or not is_scoped(actor.user):
        return  # unrestricted users: the faces checked their model permissions, as before scopes
    if not scope_sees(actor.user, cluster=cluster, namespace=namespace):
        raise Http404(_("No such microservice."))
    if not scope_has_perm(actor.user, perm, cluster=cluster, namespace=namespace):
        raise PermissionDenied(
            _("Your role in %(cluster)s/%(namespace)s does not allow this.")
            % {"cluster": cluster, "namespace": namespace}
        )


def _check_request_permission(*, user: Any, fields: Iterable[str], cluster: str, namespace: str) -> None:
    if user is None:
        return
    touched = [field for field in fields if field in MICROSERVICE_REQUEST_FIELDS]
    if touched and not scope_has_perm(
        user, "control.change_microservice_requests", cluster=cluster, namespace=namespace
    ):
        raise PermissionDenied(_("Only admins may change requests (%(fields)s).") % {"fields": ", ".join(touched)})


# --- the admission policy's parameters ----------------------------------------------------------


def admission_params_changed(*, cluster: Cluster, namespaces: Iterable[str] | None) -> None:
    """After commit, have the cluster's admission-policy parameters rewritten (engine ``policy``, admission on).

    ``namespaces`` are the ones whose rows changed; ``None`` rewrites every namespace and the policies
    (the cluster's settings changed). The webhook engine reads the table itself: nothing is queued.
    """
    if cluster.admission_engine != AdmissionEngine.POLICY or cluster.admission_mode == AdmissionMode.OFF:
        return
    names = None if namespaces is None else sorted(set(namespaces))
    if names == []:
        return
    cluster_id = cluster.pk
    transaction.on_commit(lambda: admission_policy_sync_enqueue(cluster_id=cluster_id, namespaces=names))


# --- clusters ---------------------------------------------------------------------------------


@transaction.atomic
def cluster_create(*, actor: Actor, **fields: Any) -> Cluster:
    """Register a cluster, with its daily collection entry in beat when ``collect_enabled``."""
    cluster = Cluster(**fields)
    cluster.full_clean()
    cluster.save()
    collection_schedule_sync(cluster=cluster)
    audit_event_record(actor=actor, action="cluster.create", cluster=cluster.name, after=cluster_snapshot(cluster))
    return cluster


@transaction.atomic
def cluster_update(*, actor: Actor, cluster: Cluster, data: Mapping[str, Any]) -> Cluster:
    """Change a cluster's settings (not its name, which URLs and the webhook path use)."""
    if "name" in data and data["name"] != cluster.name:
        raise ValidationError({"name": _("A cluster cannot be renamed.")})
    cluster = Cluster.objects.select_for_update().get(pk=cluster.pk)
    before = cluster_snapshot(cluster)
    for field, value in data.items():
        setattr(cluster, field, value)
    cluster.full_clean()
    cluster.save()
    collection_schedule_sync(cluster=cluster)
    changed_before, changed_after = _changes(before, cluster_snapshot(cluster))
    if changed_after:
        audit_event_record(
            actor=actor, action="cluster.update", cluster=cluster.name, before=changed_before, after=changed_after
        )
        admission_params_changed(cluster=cluster, namespaces=None)
    return cluster


@transaction.atomic
def cluster_delete(*, actor: Actor, cluster: Cluster) -> None:
    """Delete a cluster with its control rows and operations, and every beat entry that served them."""
    before = cluster_snapshot(cluster)
    before["microservices"] = cluster.microservices.count()
    name = cluster.name
    collection_schedule_delete(cluster_name=name)
    # The cluster's scheduled operations go with it (cascade); their beat entries must too.
    periodic_tasks_delete(
        names=cluster.scheduled_operations.exclude(periodic_task=None).values_list("periodic_task__name", flat=True)
    )
    cluster.delete()
    audit_event_record(actor=actor, action="cluster.delete", cluster=name, before=before)


# --- microservices ----------------------------------------------------------------------------


@transaction.atomic
def microservice_create(*, actor: Actor, cluster: Cluster, namespace: str, name: str, **fields: Any) -> Microservice:
    """Register a Deployment in the control table."""
    _check_scope(actor=actor, perm="control.add_microservice", cluster=cluster.name, namespace=namespace)
    _check_request_permission(
        user=actor.user,
        fields=[f for f, v in fields.items() if v is not None],
        cluster=cluster.name,
        namespace=namespace,
    )
    unknown = set(fields) - set(MICROSERVICE_EDITABLE_FIELDS) - {"replicas_measured", "replicas_initial", "is_present"}
    if unknown:
        raise ValidationError({field: _("This field cannot be set.") for field in sorted(unknown)})
    microservice = Microservice(cluster=cluster, namespace=namespace, name=name, updated_by=actor.name, **fields)
    microservice.full_clean()
    _requests_by_hand_mark(actor=actor, microservice=microservice, fields=MICROSERVICE_REQUEST_FIELDS)
    microservice.save()
    admission_params_changed(cluster=cluster, namespaces=[namespace])
    audit_event_record(
        actor=actor,
        action="microservice.create",
        cluster=cluster.name,
        namespace=namespace,
        name=name,
        after=microservice_snapshot(microservice),
    )
    return microservice


@transaction.atomic
def microservice_update(*, actor: Actor, microservice: Microservice, data: Mapping[str, Any]) -> Microservice:
    """Apply a person's edit to a control row; only the fields that really change are audited.

    Raises ``PermissionDenied`` when a non-admin changes a request, ``ValidationError`` for bad
    values; nothing is written in either case.
    """
    editable_fields_check(data, MICROSERVICE_EDITABLE_FIELDS)
    microservice = Microservice.objects.select_for_update().select_related("cluster").get(pk=microservice.pk)
    before = microservice_snapshot(microservice)
    where = {"cluster": microservice.cluster.name, "namespace": microservice.namespace}
    _check_scope(actor=actor, perm="control.change_microservice", **where)
    changed = [field for field, value in data.items() if getattr(microservice, field) != value]
    _check_request_permission(user=actor.user, fields=changed, **where)
    if not changed:
        return microservice
    for field in changed:
        setattr(microservice, field, data[field])
    microservice.updated_by = actor.name
    microservice.full_clean()
    _requests_by_hand_mark(actor=actor, microservice=microservice, fields=changed)
    microservice.save()
    admission_params_changed(cluster=microservice.cluster, namespaces=[microservice.namespace])
    changed_before, changed_after = _changes(before, microservice_snapshot(microservice))
    changed_after.pop("updated_at", None)
    changed_before.pop("updated_at", None)
    changed_after.pop("updated_by", None)
    changed_before.pop("updated_by", None)
    audit_event_record(
        actor=actor,
        action="microservice.update",
        cluster=microservice.cluster.name,
        namespace=microservice.namespace,
        name=microservice.name,
        before=changed_before,
        after=changed_after,
    )
    return microservice


@dataclasses.dataclass(frozen=True)
class RecommendationsAccepted:
    accepted: list[str]  # "namespace/name" whose specified pods are now their recommended pods
    skipped: list[str]  # without a recommendation, or already specified so


@transaction.atomic
def microservice_recommendation_accept(
    *, actor: Actor, microservices: Iterable[Microservice]
) -> RecommendationsAccepted:
    """Copy each row's recommended pods into its specified pods (issue 11), one audit event per changed row.

    Rows without a recommendation, or whose specified pods already equal it, are skipped and left alone.
    """
    accepted: list[str] = []
    skipped: list[str] = []
    changed: dict[int, tuple[Cluster, set[str]]] = {}
    pks = [microservice.pk for microservice in microservices]
    rows = Microservice.objects.select_for_update().select_related("cluster").filter(pk__in=pks)
    for microservice in rows.order_by("namespace", "name"):
        recommended = microservice.replicas_recommended
        if recommended is None or microservice.replicas_specified == recommended:
            skipped.append(str(microservice))
            continue
        before = {
            "replicas_specified": microservice.replicas_specified,
            "effective_replicas": microservice.effective_replicas,
        }
        microservice.replicas_specified = recommended
        microservice.updated_by = actor.name
        microservice.save(update_fields=["replicas_specified", "updated_by", "updated_at"])
        audit_event_record(
            actor=actor,
            action="microservice.recommendation_accept",
            cluster=microservice.cluster.name,
            namespace=microservice.namespace,
            name=microservice.name,
            before=before,
            after={"replicas_specified": recommended, "effective_replicas": microservice.effective_replicas},
        )
        accepted.append(str(microservice))
        changed.setdefault(microservice.cluster_id, (microservice.cluster, set()))[1].add(microservice.namespace)
    for cluster, namespaces in changed.values():
        admission_params_changed(cluster=cluster, namespaces=namespaces)
    return RecommendationsAccepted(accepted=accepted, skipped=skipped)


def _requests_by_hand_mark(*, actor: Actor, microservice: Microservice, fields: Iterable[str]) -> None:
    """A request a person writes stays theirs until they clear it: refreshes leave it alone (DESIGN §5.4)."""
    if actor.source not in REQUEST_BY_HAND_SOURCES:
        return
    for field in fields:
        if field in MICROSERVICE_REQUEST_FIELDS:
            setattr(microservice, f"{field}_by_hand", getattr(microservice, field) is not None)


@transaction.atomic
def microservice_delete(*, actor: Actor, microservice: Microservice) -> None:
    before = microservice_snapshot(microservice)
    cluster, namespace, name = microservice.cluster.name, microservice.namespace, microservice.name
    admission_params_changed(cluster=microservice.cluster, namespaces=[namespace])
    microservice.delete()
    audit_event_record(
        actor=actor, action="microservice.delete", cluster=cluster, namespace=namespace, name=name, before=before
    )

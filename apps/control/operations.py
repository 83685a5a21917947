"""Scale and restart microservices, one by one or in batches (DESIGN §7).

Every Kubernetes call happens outside any database transaction: "save & scale" commits the save
first, then scales. Each target's outcome is written as an audit event (which queues the
notifications of subscribed channels) and returned as a ``TargetResult``; Kubernetes errors become
readable messages, never exceptions escaping a batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.audit.models import AuditResult, AuditSource
from apps.audit.services import Actor, audit_event_record
from apps.control import k8s
from apps.control.models import MAX_REPLICAS, Microservice, OperationKind
from apps.control.services import microservice_update

logger = logging.getLogger(__name__)

KIND_PERMISSIONS = {
    OperationKind.SCALE: "control.scale_microservice",
    OperationKind.RESTART: "control.restart_microservice",
}


@dataclass(frozen=True)
class TargetResult:
    """What happened to one microservice."""

    service_id: int
    cluster: str
    namespace: str
    name: str
    kind: str
    ok: bool
    before_replicas: int | None = None
    after_replicas: int | None = None
    message: str = ""
    error: str = ""
    dry_run: bool = False
    at: str = field(default_factory=lambda: timezone.now().isoformat())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BatchResult:
    """The outcome of a batch: every target's result, in order."""

    kind: str
    results: tuple[TargetResult, ...]

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results)

    @property
    def succeeded(self) -> list[str]:
        return [f"{r.namespace}/{r.name}" for r in self.results if r.ok]

    @property
    def failed(self) -> list[str]:
        return [f"{r.namespace}/{r.name}" for r in self.results if not r.ok]

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ok": self.ok,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "results": [result.as_dict() for result in self.results],
        }


def operation_permission_check(*, actor: Actor, kind: str) -> None:
    """A person (admin or API) needs the kind's permission; the scheduler acts on a checked creation."""
    if actor.source not in (AuditSource.ADMIN, AuditSource.API):
        return
    perm = KIND_PERMISSIONS[OperationKind(kind)]
    if actor.user is None or not actor.user.has_perm(perm):
        raise PermissionDenied(_("You may not %(kind)s microservices.") % {"kind": OperationKind(kind).label})


def replicas_validate(replicas: int | None) -> None:
    if replicas is not None and not 0 <= replicas <= MAX_REPLICAS:
        raise ValidationError({"replicas": _("Replicas must be between 0 and %(max)s.") % {"max": MAX_REPLICAS}})


def _target_replicas(service: Microservice, replicas: int | None) -> int:
    if replicas is not None:
        return replicas
    effective = service.effective_replicas
    if effective is None:
        raise ValidationError(
            {
                "replicas": _(
                    "%(service)s has no effective replicas (no specified, recommended or measured pod count): "
                    "give the replicas."
                )
                % {"service": service}
            }
        )
    return effective


def _record(*, actor: Actor, service: Microservice, action: str, result: TargetResult, before: Any, after: Any) -> None:
    outcome = (
        AuditResult.DRY_RUN if result.dry_run and result.ok else (AuditResult.OK if result.ok else AuditResult.ERROR)
    )
    with transaction.atomic():
        audit_event_record(
            actor=actor,
            action=action,
            cluster=service.cluster.name,
            namespace=service.namespace,
            name=service.name,
            before=before,
            after=after,
            result=outcome,
            message=result.error or result.message,
        )


def microservice_scale(
    *, actor: Actor, service: Microservice, replicas: int | None = None, dry_run: bool = False
) -> TargetResult:
    """Scale one Deployment through its ``scale`` subresource to ``replicas`` or the row's effective replicas.

    Raises ``ValidationError`` (nothing sent) when no replica count can be found or it is out of
    range, ``PermissionDenied`` for a person without the scale permission. A Kubernetes failure is
    returned as a failed ``TargetResult`` (and audited), not raised.
    """
    operation_permission_check(actor=actor, kind=OperationKind.SCALE)
    replicas_validate(replicas)
    wanted = _target_replicas(service, replicas)
    cluster = service.cluster
    base = {"service_id": service.pk, "cluster": cluster.name, "namespace": service.namespace, "name": service.name}
    before: int | None = None
    try:
        before = k8s.deployment_get(cluster=cluster, namespace=service.namespace, name=service.name).replicas
        scale = k8s.deployment_scale(
            cluster=cluster, namespace=service.namespace, name=service.name, replicas=wanted, dry_run=dry_run
        )
    except k8s.K8sError as exc:
        logger.warning("scale %s/%s/%s → %s failed: %s", cluster.name, service.namespace, service.name, wanted, exc)
        result = TargetResult(
            **base, kind=OperationKind.SCALE, ok=False, before_replicas=before, error=exc.message, dry_run=dry_run
        )
        _record(
            actor=actor,
            service=service,
            action="microservice.scale",
            result=result,
            before={"replicas": before},
            after={"replicas": wanted},
        )
        return result
    logger.info("scale %s/%s/%s %s → %s", cluster.name, service.namespace, service.name, before, scale.replicas)
    result = TargetResult(
        **base,
        kind=OperationKind.SCALE,
        ok=True,
        before_replicas=before,
        after_replicas=scale.replicas,
        message=_("scaled from %(before)s to %(after)s") % {"before": before, "after": scale.replicas},
        dry_run=dry_run,
    )
    _record(
        actor=actor,
        service=service,
        action="microservice.scale",
        result=result,
        before={"replicas": before},
        after={"replicas": scale.replicas},
    )
    return result


def microservice_restart(*, actor: Actor, service: Microservice, dry_run: bool = False) -> TargetResult:
    """Roll the Deployment's pods like ``kubectl rollout restart``; failures are returned and audited."""
    operation_permission_check(actor=actor, kind=OperationKind.RESTART)
    cluster = service.cluster
    base = {"service_id": service.pk, "cluster": cluster.name, "namespace": service.namespace, "name": service.name}
    try:
        deployment = k8s.deployment_restart(
            cluster=cluster, namespace=service.namespace, name=service.name, dry_run=dry_run
        )
    except k8s.K8sError as exc:
        logger.warning("restart %s/%s/%s failed: %s", cluster.name, service.namespace, service.name, exc)
        result = TargetResult(**base, kind=OperationKind.RESTART, ok=False, error=exc.message, dry_run=dry_run)
        _record(actor=actor, service=service, action="microservice.restart", result=result, before=None, after=None)
        return result
    logger.info("restart %s/%s/%s at %s", cluster.name, service.namespace, service.name, deployment.restarted_at)
    result = TargetResult(
        **base,
        kind=OperationKind.RESTART,
        ok=True,
        before_replicas=deployment.replicas,
        after_replicas=deployment.replicas,
        message=_("restarted at %(at)s") % {"at": deployment.restarted_at},
        dry_run=dry_run,
    )
    _record(
        actor=actor,
        service=service,
        action="microservice.restart",
        result=result,
        before={"replicas": deployment.replicas},
        after={"replicas": deployment.replicas, "restarted_at": deployment.restarted_at},
    )
    return result


def _save_committed(*, actor: Actor, service: Microservice, data: Mapping[str, Any]) -> Microservice:
    # microservice_update is atomic: called outside a transaction, its commit happens on return.
    saved = microservice_update(actor=actor, service=service, data=data)
    saved.refresh_from_db()
    return saved


def microservice_save_and_scale(
    *, actor: Actor, service: Microservice, data: Mapping[str, Any], replicas: int | None = None
) -> TargetResult:
    """Save the control row (committed first, so an admission webhook sees it), then scale.

    Without ``replicas`` the saved row's effective replicas are used. Must not be called inside
    a transaction: the save has to be visible to the webhook before the scale reaches Kubernetes.
    """
    operation_permission_check(actor=actor, kind=OperationKind.SCALE)
    replicas_validate(replicas)
    saved = _save_committed(actor=actor, service=service, data=data)
    return microservice_scale(actor=actor, service=saved, replicas=replicas)


def microservice_save_and_restart(*, actor: Actor, service: Microservice, data: Mapping[str, Any]) -> TargetResult:
    """Save the control row (committed first), then restart so new pods get the table's values."""
    operation_permission_check(actor=actor, kind=OperationKind.RESTART)
    saved = _save_committed(actor=actor, service=service, data=data)
    return microservice_restart(actor=actor, service=saved)


def operation_target_run(
    *, actor: Actor, kind: str, service: Microservice, replicas: int | None = None, dry_run: bool = False
) -> TargetResult:
    """Run one target of a batch; a bad replica count becomes a failed result instead of an exception."""
    try:
        if kind == OperationKind.SCALE:
            return microservice_scale(actor=actor, service=service, replicas=replicas, dry_run=dry_run)
        return microservice_restart(actor=actor, service=service, dry_run=dry_run)
    except ValidationError as exc:
        message = "; ".join(str(m) for m in exc.messages)
        result = TargetResult(
            service_id=service.pk,
            cluster=service.cluster.name,
            namespace=service.namespace,
            name=service.name,
            kind=kind,
            ok=False,
            error=message,
            dry_run=dry_run,
        )
        _record(actor=actor, service=service, action=f"microservice.{kind}", result=result, before=None, after=None)
        return result


def operation_batch_run(
    *,
    actor: Actor,
    kind: str,
    services: Sequence[Microservice],
    replicas: int | None = None,
    interval_seconds: float = 0,
    dry_run: bool = False,
    skip: Callable[[Microservice], TargetResult | None] | None = None,
    on_result: Callable[[TargetResult], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> BatchResult:
    """Run ``kind`` on each service in order, sleeping ``interval_seconds`` between targets (not after the last).

    One failure does not stop the rest. ``skip`` may return an earlier result for a target already
    handled (a resumed run), which is then neither executed again nor waited for; ``on_result`` is
    called after each executed target (to persist progress).
    """
    operation_permission_check(actor=actor, kind=kind)
    replicas_validate(replicas)
    results: list[TargetResult] = []
    acted = False
    for service in services:
        earlier = skip(service) if skip is not None else None
        if earlier is not None:
            results.append(earlier)
            continue
        if acted and interval_seconds > 0:
            sleep(interval_seconds)
        result = operation_target_run(actor=actor, kind=kind, service=service, replicas=replicas, dry_run=dry_run)
        acted = True
        results.append(result)
        if on_result is not None:
            on_result(result)
    return BatchResult(kind=kind, results=tuple(results))

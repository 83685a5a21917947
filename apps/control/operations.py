"""Scale and restart microservices, one by one or in batches (DESIGN §7).

Every Kubernetes call happens outside any database transaction: "save & scale" commits the save
first, then scales. Each target's outcome is written as an audit event (which queues the
notifications of subscribed channels) and returned as a ``TargetResult``; Kubernetes errors become
readable messages, never exceptions escaping a batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import jsonpatch
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.scopes import scope_has_perm, scope_sees
from apps.audit.models import AuditResult, AuditSource
from apps.audit.services import Actor, audit_event_record
from apps.control import k8s
from apps.control.choices import AdmissionMode
from apps.control.models import MAX_REPLICAS, Microservice, OperationKind
from apps.control.onboarding import cluster_contact_record
from apps.control.services import microservice_update

logger = logging.getLogger(__name__)

KIND_PERMISSIONS = {
    OperationKind.SCALE: "control.scale_microservice",
    OperationKind.RESTART: "control.restart_microservice",
    # A resize changes running pods' resources, and its fallback restarts them: a restart's permission.
    OperationKind.RESIZE: "control.restart_microservice",
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
    # Why it failed, for the API's status code: not_found (404), conflict (409: changed meanwhile, or
    # admission stored another count), forbidden, invalid, unavailable (502), invalid_request.
    error_kind: str = ""
    dry_run: bool = False
    temporary: bool = False
    # A resize's report per pod: {"pod", "state" (done, in_progress, deferred, infeasible, rejected), "detail"}.
    pods: list[dict[str, str]] = field(default_factory=list)
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


def operation_permission_check(*, actor: Actor, kind: str, targets: Iterable[Microservice] = ()) -> None:
    """A person (admin or API) needs the kind's permission; the scheduler acts on a checked creation.

    A scoped user (``apps.accounts.scopes``) needs it on each target's scope: a target they cannot see
    is "not found" (``Http404``, as for a missing one, so its name does not leak), one they see with too
    low a role is refused.
    """
    if actor.source not in (AuditSource.ADMIN, AuditSource.API):
        return
    perm = KIND_PERMISSIONS[OperationKind(kind)]
    if actor.user is None or not actor.user.has_perm(perm):
        raise PermissionDenied(_("You may not %(kind)s microservices.") % {"kind": OperationKind(kind).label})
    for target in targets:
        where = {"cluster": target.cluster.name, "namespace": target.namespace}
        if not scope_sees(actor.user, **where):
            raise Http404(_("No such microservice."))
        if not scope_has_perm(actor.user, perm, **where):
            raise PermissionDenied(
                _("You may not %(kind)s %(service)s.") % {"kind": OperationKind(kind).label, "service": target}
            )


def replicas_validate(replicas: int | None) -> None:
    if replicas is not None and not 0 <= replicas <= MAX_REPLICAS:
        raise ValidationError({"replicas": _("Replicas must be between 0 and %(max)s.") % {"max": MAX_REPLICAS}})


def _target_replicas(microservice: Microservice, replicas: int | None) -> int:
    if replicas is not None:
        return replicas
    effective = microservice.effective_replicas
    if effective is None:
        raise ValidationError(
            {
                "replicas": _(
                    "%(service)s has no effective replicas (no specified, recommended or measured pod count): "
                    "give the replicas."
                )
                % {"service": microservice}
            }
        )
    return effective


ERROR_KINDS: tuple[tuple[type[k8s.K8sError], str], ...] = (
    (k8s.K8sNotFound, "not_found"),
    (k8s.K8sConflict, "conflict"),
    (k8s.K8sForbidden, "forbidden"),
    (k8s.K8sInvalid, "invalid"),
)


def error_kind(exc: k8s.K8sError) -> str:
    for kind, label in ERROR_KINDS:
        if isinstance(exc, kind):
            return label
    return "unavailable"


def _overridden_message(*, wanted: int, stored: int, warnings: tuple[str, ...]) -> str:
    """Why the API server stored another replica count than KubeDoor sent, naming who changed it."""
    mine = [w for w in warnings if w.startswith("kubedoor")]
    if mine:
        who = _("KubeDoor's admission webhook rewrote it (%(warnings)s)") % {"warnings": "; ".join(mine)}
    elif warnings:
        who = _("an admission webhook changed it (%(warnings)s)") % {"warnings": "; ".join(warnings)}
    else:
        who = _("an admission webhook or controller changed it (no warning was returned)")
    return _("asked for %(wanted)s replicas but the API server stored %(stored)s: %(who)s") % {
        "wanted": wanted,
        "stored": stored,
        "who": who,
    }


def _target(microservice: Microservice) -> dict[str, Any]:
    """The fields of a ``TargetResult`` that name its target."""
    return {
        "service_id": microservice.pk,
        "cluster": microservice.cluster.name,
        "namespace": microservice.namespace,
        "name": microservice.name,
    }


def _record(
    *, actor: Actor, microservice: Microservice, action: str, result: TargetResult, before: Any, after: Any
) -> None:
    outcome = (
        AuditResult.DRY_RUN if result.dry_run and result.ok else (AuditResult.OK if result.ok else AuditResult.ERROR)
    )
    with transaction.atomic():
        audit_event_record(
            actor=actor,
            action=action,
            cluster=microservice.cluster.name,
            namespace=microservice.namespace,
            name=microservice.name,
            before=before,
            after=after,
            result=outcome,
            message=result.error or result.message,
        )


def _table_set_replicas(*, actor: Actor, microservice: Microservice, replicas: int) -> Microservice:
    """A persistent scale: the specified pods become ``replicas`` (audited, committed on return)."""
    if microservice.replicas_specified == replicas:
        return microservice
    saved = microservice_update(actor=actor, microservice=microservice, data={"replicas_specified": replicas})
    saved.refresh_from_db()
    return saved


def microservice_scale(
    *,
    actor: Actor,
    microservice: Microservice,
    replicas: int | None = None,
    temporary: bool = False,
    dry_run: bool = False,
) -> TargetResult:
    """Scale one Deployment through its ``scale`` subresource to ``replicas`` or the row's effective replicas.

    Persistent by default: a given ``replicas`` first becomes the row's specified pods (audited and
    committed, so admission and the next deploy keep it), then the scale is sent. ``temporary`` leaves
    the table alone; the webhook lets KubeDoor's own scale through, and the next deploy or restart
    applies the table again. The stored replica count is read back from the API server's answer: when
    admission (or anyone) stored another count, the target fails and the message says who changed it.

    Raises ``ValidationError`` (nothing sent) when no replica count can be found or it is out of
    range, ``PermissionDenied`` for a person without the scale permission. A Kubernetes failure is
    returned as a failed ``TargetResult`` (and audited), not raised. Must not run inside a transaction.
    """
    operation_permission_check(actor=actor, kind=OperationKind.SCALE, targets=[microservice])
    replicas_validate(replicas)
    wanted = _target_replicas(microservice, replicas)
    cluster = microservice.cluster
    base = _target(microservice) | {"kind": OperationKind.SCALE, "dry_run": dry_run, "temporary": temporary}
    before: int | None = None

    def finish(result: TargetResult, stored: int) -> TargetResult:
        after = {"replicas": stored, "temporary": temporary}
        _record(
            actor=actor,
            microservice=microservice,
            action="microservice.scale",
            result=result,
            before={"replicas": before},
            after=after,
        )
        return result

    try:
        before = k8s.deployment_get(cluster=cluster, namespace=microservice.namespace, name=microservice.name).replicas
        if replicas is not None and not temporary and not dry_run:
            microservice = _table_set_replicas(actor=actor, microservice=microservice, replicas=replicas)
        scale = k8s.deployment_scale(
            cluster=cluster, namespace=microservice.namespace, name=microservice.name, replicas=wanted, dry_run=dry_run
        )
    except k8s.K8sError as exc:
        logger.warning(
            "scale %s/%s/%s → %s failed: %s", cluster.name, microservice.namespace, microservice.name, wanted, exc
        )
        failed = TargetResult(**base, ok=False, before_replicas=before, error=exc.message, error_kind=error_kind(exc))
        return finish(failed, wanted)
    cluster_contact_record(cluster=cluster)
    if scale.replicas != wanted:
        error = _overridden_message(wanted=wanted, stored=scale.replicas, warnings=scale.warnings)
        logger.warning(
            "scale %s/%s/%s → %s: %s", cluster.name, microservice.namespace, microservice.name, wanted, error
        )
        overridden = TargetResult(
            **base, ok=False, before_replicas=before, after_replicas=scale.replicas, error=error, error_kind="conflict"
        )
        return finish(overridden, scale.replicas)
    logger.info(
        "scale %s/%s/%s %s → %s", cluster.name, microservice.namespace, microservice.name, before, scale.replicas
    )
    message = _("scaled from %(before)s to %(after)s") % {"before": before, "after": scale.replicas}
    if temporary:
        message += " " + _("(temporary: the next deploy or restart applies the control table again)")
    done = TargetResult(**base, ok=True, before_replicas=before, after_replicas=scale.replicas, message=message)
    return finish(done, scale.replicas)


RESTART_ATTEMPTS = 3


class AdmissionPreview(Protocol):
    """What the webhook would answer for ``deployment`` (an UPDATE from ``old_deployment``) in ``mode``:
    a mapping with at least ``patched`` (the Deployment as admitted) and ``warnings``."""

    def __call__(self, *, cluster: Any, deployment: Any, old_deployment: Any, mode: str) -> Mapping[str, Any]: ...


# Control never imports the webhook (docs/ARCHITECTURE.md): the webhook app hands its preview to the
# restart when Django starts (``apps.webhook.apps.WebhookConfig.ready``).
_admission_previews: list[AdmissionPreview] = []


def restart_admission_preview_set(preview: AdmissionPreview) -> None:
    """Use ``preview`` for the restarts that apply the control table (admission in ``enforce``)."""
    _admission_previews[:] = [preview]


def _admission_preview() -> AdmissionPreview:
    if not _admission_previews:
        raise RuntimeError("no admission preview is set: is apps.webhook in INSTALLED_APPS?")
    return _admission_previews[0]


def _restart_with_table(*, cluster: Any, microservice: Microservice, dry_run: bool) -> tuple[k8s.Deployment, list[str]]:
    """A rolling restart whose patch also carries what admission would set (enforce mode).

    The values come from the control row as the database holds it now, through the same decision the
    webhook runs; the webhook lets KubeDoor's own writes through, so a "save & restart" takes effect
    even before the webhook's snapshot has seen the save. A ``test`` of the resourceVersion makes the
    patch apply only to the object it was computed from; a concurrent change is retried.
    """
    last: k8s.K8sError | None = None
    for _attempt in range(RESTART_ATTEMPTS):
        current = k8s.deployment_object_get(cluster=cluster, namespace=microservice.namespace, name=microservice.name)
        restarted = jsonpatch.apply_patch(current, k8s.restart_operations(current, at=timezone.now()))
        preview = _admission_preview()(cluster=cluster, deployment=restarted, old_deployment=current, mode="enforce")
        operations = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": current["metadata"].get("resourceVersion")},
            *jsonpatch.make_patch(current, preview["patched"]).patch,
        ]
        try:
            deployment = k8s.deployment_json_patch(
                cluster=cluster,
                namespace=microservice.namespace,
                name=microservice.name,
                operations=operations,
                dry_run=dry_run,
            )
        except (k8s.K8sConflict, k8s.K8sInvalid) as exc:  # changed since it was read
            last = exc
            continue
        return deployment, list(preview["warnings"])
    assert last is not None
    raise last


class ContainerResources(Protocol):
    """The controlled container of Deployment ``namespace/name`` and the cpu/memory requests and limits
    admission would give it over ``containers`` (a running pod's), or ``None`` when it is missing."""

    def __call__(
        self, *, cluster: Any, namespace: str, name: str, containers: list[dict[str, Any]]
    ) -> tuple[str, dict[str, str], dict[str, str]] | None: ...


# Handed over by the webhook app like the preview (``apps.webhook.apps.WebhookConfig.ready``).
_container_resources: list[ContainerResources] = []


def table_resources_set(resources: ContainerResources) -> None:
    """Use ``resources`` for what an in-place resize sends (the webhook's own rule)."""
    _container_resources[:] = [resources]


def table_resources_for(
    *, microservice: Microservice, containers: list[dict[str, Any]]
) -> tuple[str, dict[str, str], dict[str, str]] | None:
    """The controlled container and the cpu/memory requests and limits admission would give it over
    ``containers`` (what an in-place resize sends); ``None`` when that container is missing."""
    if not _container_resources:
        raise RuntimeError("no admission rule for container resources is set: is apps.webhook in INSTALLED_APPS?")
    return _container_resources[0](
        cluster=microservice.cluster, namespace=microservice.namespace, name=microservice.name, containers=containers
    )


def microservice_restart(*, actor: Actor, microservice: Microservice, dry_run: bool = False) -> TargetResult:
    """Roll the Deployment's pods like ``kubectl rollout restart``; failures are returned and audited.

    With admission in ``enforce`` the restart also applies the control table (replicas, requests and
    limits of the controlled container): that is how saved values take effect.
    """
    operation_permission_check(actor=actor, kind=OperationKind.RESTART, targets=[microservice])
    cluster = microservice.cluster
    base = _target(microservice)
    applied: list[str] = []
    try:
        if cluster.admission_mode == AdmissionMode.ENFORCE:
            deployment, applied = _restart_with_table(cluster=cluster, microservice=microservice, dry_run=dry_run)
        else:
            deployment = k8s.deployment_restart(
                cluster=cluster, namespace=microservice.namespace, name=microservice.name, dry_run=dry_run
            )
    except k8s.K8sError as exc:
        logger.warning("restart %s/%s/%s failed: %s", cluster.name, microservice.namespace, microservice.name, exc)
        result = TargetResult(
            **base, kind=OperationKind.RESTART, ok=False, error=exc.message, error_kind=error_kind(exc), dry_run=dry_run
        )
        _record(
            actor=actor,
            microservice=microservice,
            action="microservice.restart",
            result=result,
            before=None,
            after=None,
        )
        return result
    cluster_contact_record(cluster=cluster)
    logger.info(
        "restart %s/%s/%s at %s", cluster.name, microservice.namespace, microservice.name, deployment.restarted_at
    )
    result = TargetResult(
        **base,
        kind=OperationKind.RESTART,
        ok=True,
        before_replicas=deployment.replicas,
        after_replicas=deployment.replicas,
        message=_("restarted at %(at)s") % {"at": deployment.restarted_at},
        dry_run=dry_run,
    )
    after: dict[str, Any] = {"replicas": deployment.replicas, "restarted_at": deployment.restarted_at}
    if applied:
        after["control_table"] = applied
    _record(
        actor=actor,
        microservice=microservice,
        action="microservice.restart",
        result=result,
        before={"replicas": deployment.replicas},
        after=after,
    )
    return result


def _save_committed(*, actor: Actor, microservice: Microservice, data: Mapping[str, Any]) -> Microservice:
    # microservice_update is atomic: called outside a transaction, its commit happens on return.
    saved = microservice_update(actor=actor, microservice=microservice, data=data)
    saved.refresh_from_db()
    return saved


def microservice_save_and_scale(
    *, actor: Actor, microservice: Microservice, data: Mapping[str, Any], replicas: int | None = None
) -> TargetResult:
    """Save the control row (committed first, so an admission webhook sees it), then scale.

    Without ``replicas`` the saved row's effective replicas are used. Must not be called inside
    a transaction: the save has to be visible to the webhook before the scale reaches Kubernetes.
    """
    operation_permission_check(actor=actor, kind=OperationKind.SCALE, targets=[microservice])
    replicas_validate(replicas)
    saved = _save_committed(actor=actor, microservice=microservice, data=data)
    return microservice_scale(actor=actor, microservice=saved, replicas=replicas)


def microservice_save_and_restart(*, actor: Actor, microservice: Microservice, data: Mapping[str, Any]) -> TargetResult:
    """Save the control row (committed first), then restart so new pods get the table's values."""
    operation_permission_check(actor=actor, kind=OperationKind.RESTART, targets=[microservice])
    saved = _save_committed(actor=actor, microservice=microservice, data=data)
    return microservice_restart(actor=actor, microservice=saved)


def operation_target_run(
    *,
    actor: Actor,
    kind: str,
    microservice: Microservice,
    replicas: int | None = None,
    temporary: bool = False,
    restart_fallback: bool = False,
    dry_run: bool = False,
) -> TargetResult:
    """Run one target of a batch; a bad replica count becomes a failed result instead of an exception."""
    try:
        if kind == OperationKind.RESIZE:
            from apps.control.resize import microservice_resize  # resize builds on this module

            return microservice_resize(
                actor=actor, microservice=microservice, restart_fallback=restart_fallback, dry_run=dry_run
            )
        if kind == OperationKind.SCALE:
            return microservice_scale(
                actor=actor, microservice=microservice, replicas=replicas, temporary=temporary, dry_run=dry_run
            )
        return microservice_restart(actor=actor, microservice=microservice, dry_run=dry_run)
    except ValidationError as exc:
        message = "; ".join(str(m) for m in exc.messages)
        result = TargetResult(
            **_target(microservice),
            kind=kind,
            ok=False,
            error=message,
            error_kind="invalid_request",
            dry_run=dry_run,
        )
        _record(
            actor=actor,
            microservice=microservice,
            action=f"microservice.{kind}",
            result=result,
            before=None,
            after=None,
        )
        return result


def operation_batch_run(
    *,
    actor: Actor,
    kind: str,
    microservices: Sequence[Microservice],
    replicas: int | None = None,
    temporary: bool = False,
    restart_fallback: bool = False,
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
    operation_permission_check(actor=actor, kind=kind, targets=microservices)
    replicas_validate(replicas)
    results: list[TargetResult] = []
    acted = False
    for microservice in microservices:
        earlier = skip(microservice) if skip is not None else None
        if earlier is not None:
            results.append(earlier)
            continue
        if acted and interval_seconds > 0:
            sleep(interval_seconds)
        result = operation_target_run(
            actor=actor,
            kind=kind,
            microservice=microservice,
            replicas=replicas,
            temporary=temporary,
            restart_fallback=restart_fallback,
            dry_run=dry_run,
        )
        acted = True
        results.append(result)
        if on_result is not None:
            on_result(result)
    return BatchResult(kind=kind, results=tuple(results))

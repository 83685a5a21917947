"""In-place resize of a Deployment's running pods (DESIGN §7, Kubernetes 1.35+).

Each running pod of the Deployment gets the table's requests and limits for the controlled container
through its ``resize`` subresource: no rollout, the pods keep running. The Deployment's template is not
touched, so the next deploy (or restart) applies the table through admission. The pods are read back
(one list call per poll) until each is done or infeasible, or the wait is over; the result reports
every pod as ``done``, ``in_progress``, ``deferred``, ``infeasible`` or ``rejected`` (the API server
refused the patch, e.g. the pod's QoS class would change). With ``restart_fallback`` an infeasible,
rejected or deferred-too-long pod makes the Deployment roll instead (``microservice_restart``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _

from apps.audit.services import Actor
from apps.control import k8s
from apps.control.models import Microservice, OperationKind
from apps.control.operations import (
    TargetResult,
    _record,
    error_kind,
    microservice_restart,
    operation_permission_check,
    table_resources_for,
)
from apps.control.quantities import same_quantity

logger = logging.getLogger(__name__)

RESIZE_SINCE = (1, 35)
DONE = "done"
IN_PROGRESS = "in_progress"
DEFERRED = "deferred"
INFEASIBLE = "infeasible"
REJECTED = "rejected"
DRY_RUN = "dry_run"
NEEDS_FALLBACK = (DEFERRED, INFEASIBLE, REJECTED)


def _same(a: Any, b: Any) -> bool:
    """The API server writes quantities canonically ("0.25" becomes "250m"): compare amounts, not texts."""
    return a == b or same_quantity(a, b)


def _matches(current: Mapping[str, Mapping[str, str]], requests: Mapping[str, str], limits: Mapping[str, str]) -> bool:
    """Whether ``current`` (requests/limits) already holds every wanted cpu and memory value."""
    for part, wanted in (("requests", requests), ("limits", limits)):
        have = current.get(part) or {}
        if any(not _same(have.get(key), value) for key, value in wanted.items()):
            return False
    return True


def pod_resize_state(pod: k8s.Pod, *, container: str, requests: Mapping[str, str], limits: Mapping[str, str]) -> str:
    """What the kubelet made of a pod's resize, from its conditions and the resources it applied."""
    pending = pod.condition("PodResizePending")
    if pending is not None:
        return INFEASIBLE if pending.reason == "Infeasible" else DEFERRED
    if pod.condition("PodResizeInProgress") is not None:
        return IN_PROGRESS
    applied = pod.applied.get(container)
    if applied is not None and _matches(applied, requests, limits):
        return DONE
    return IN_PROGRESS


def _resources_of(pod: k8s.Pod, container: str) -> dict[str, dict[str, str]]:
    for item in pod.containers:
        if item.name == container:
            return {"requests": dict(item.requests), "limits": dict(item.limits)}
    return {"requests": {}, "limits": {}}


def _counts(states: Mapping[str, str]) -> str:
    labels = (
        (DONE, _("done")),
        (IN_PROGRESS, _("in progress")),
        (DEFERRED, _("deferred")),
        (INFEASIBLE, _("infeasible")),
        (REJECTED, _("rejected")),
    )
    return ", ".join(
        f"{sum(1 for s in states.values() if s == key)} {label}"
        for key, label in labels
        if any(s == key for s in states.values())
    )


def microservice_resize(
    *,
    actor: Actor,
    microservice: Microservice,
    restart_fallback: bool = False,
    dry_run: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> TargetResult:
    """Resize the running pods of one Deployment in place to the table's values; audited, never raised.

    Refused (a failed result with ``error_kind`` ``conflict``, the API's 409) on clusters below 1.35,
    and when the controlled container is not in the pods. Must not run inside a transaction.
    """
    operation_permission_check(actor=actor, kind=OperationKind.RESIZE, targets=[microservice])
    cluster = microservice.cluster
    base: dict[str, Any] = {
        "service_id": microservice.pk,
        "cluster": cluster.name,
        "namespace": microservice.namespace,
        "name": microservice.name,
        "kind": OperationKind.RESIZE,
        "dry_run": dry_run,
    }

    def refuse(message: str, kind: str) -> TargetResult:
        result = TargetResult(**base, ok=False, error=message, error_kind=kind)
        _record(
            actor=actor, microservice=microservice, action="microservice.resize", result=result, before=None, after=None
        )
        return result

    try:
        version = k8s.server_version_get(cluster=cluster)
        if not version.at_least(*RESIZE_SINCE):
            return refuse(
                _(
                    "cluster %(cluster)s runs Kubernetes %(version)s: in-place resize needs 1.35 or later; "
                    "use a restart instead"
                )
                % {"cluster": cluster.name, "version": version.git_version or f"{version.major}.{version.minor}"},
                "conflict",
            )
        pods = [
            p
            for p in k8s.deployment_pods_list(cluster=cluster, namespace=microservice.namespace, name=microservice.name)
            if p.phase == "Running" and not p.is_deleting
        ]
    except k8s.K8sError as exc:
        logger.warning("resize %s/%s/%s failed: %s", cluster.name, microservice.namespace, microservice.name, exc)
        return refuse(exc.message, error_kind(exc))
    if not pods:
        result = TargetResult(**base, ok=True, message=_("no running pods: nothing to resize"))
        _record(
            actor=actor, microservice=microservice, action="microservice.resize", result=result, before=None, after=None
        )
        return result
    containers = [
        {"name": c.name, "resources": {"requests": dict(c.requests), "limits": dict(c.limits)}}
        for c in pods[0].containers
    ]
    wanted = table_resources_for(microservice=microservice, containers=containers)
    if wanted is None:
        return refuse(
            _("%(service)s: the control table's container %(container)s is not in the pods; nothing resized")
            % {"service": microservice, "container": microservice.container or microservice.name},
            "conflict",
        )
    container, requests, limits = wanted
    states: dict[str, str] = {}
    details: dict[str, str] = {}
    before = {pod.name: _resources_of(pod, container) for pod in pods}
    for pod in pods:
        if _matches(before[pod.name], requests, limits) and pod_resize_state(
            pod, container=container, requests=requests, limits=limits
        ) in (DONE,):
            states[pod.name] = DONE
            continue
        try:
            resized = k8s.pod_resize(
                cluster=cluster,
                namespace=microservice.namespace,
                name=pod.name,
                container=container,
                requests=requests,
                limits=limits,
                dry_run=dry_run,
            )
        except (k8s.K8sInvalid, k8s.K8sForbidden, k8s.K8sNotFound, k8s.K8sConflict) as exc:
            states[pod.name] = REJECTED
            details[pod.name] = exc.message
            continue
        except k8s.K8sError as exc:
            return refuse(exc.message, error_kind(exc))
        states[pod.name] = (
            DRY_RUN if dry_run else pod_resize_state(resized, container=container, requests=requests, limits=limits)
        )
        pending = resized.condition("PodResizePending")
        if pending is not None and pending.message and not dry_run:
            details[pod.name] = pending.message
    if not dry_run:
        states, details = _wait(cluster, microservice, container, requests, limits, states, details, sleep)
    return _finish(
        actor=actor,
        microservice=microservice,
        base=base,
        container=container,
        requests=requests,
        limits=limits,
        before=before,
        states=states,
        details=details,
        restart_fallback=restart_fallback,
        dry_run=dry_run,
    )


def _wait(
    cluster: Any,
    microservice: Microservice,
    container: str,
    requests: Mapping[str, str],
    limits: Mapping[str, str],
    states: dict[str, str],
    details: dict[str, str],
    sleep: Callable[[float], None],
) -> tuple[dict[str, str], dict[str, str]]:
    """Read the pods back until every resized one is done or infeasible, or the wait is over."""
    poll = max(float(settings.KUBEDOOR_RESIZE_POLL_SECONDS), 0.0)
    wait = max(float(settings.KUBEDOOR_RESIZE_WAIT_SECONDS), 0.0)
    polls = math.ceil(wait / poll) if poll > 0 else 0
    settled = (DONE, INFEASIBLE, REJECTED)
    for _attempt in range(polls):
        if all(state in settled for state in states.values()):
            break
        sleep(poll)
        try:
            pods = k8s.deployment_pods_list(cluster=cluster, namespace=microservice.namespace, name=microservice.name)
        except k8s.K8sError as exc:
            logger.warning("resize %s/%s: pods not read back: %s", microservice.namespace, microservice.name, exc)
            continue
        by_name = {pod.name: pod for pod in pods}
        for name, state in list(states.items()):
            if state in settled:
                continue
            pod = by_name.get(name)
            if pod is None:  # replaced meanwhile (a rollout): its successor runs the template
                states[name] = DONE
                details[name] = _("the pod was replaced while resizing")
                continue
            states[name] = pod_resize_state(pod, container=container, requests=requests, limits=limits)
            pending = pod.condition("PodResizePending")
            if pending is not None and pending.message:
                details[name] = pending.message
    return states, details


def _finish(
    *,
    actor: Actor,
    microservice: Microservice,
    base: dict[str, Any],
    container: str,
    requests: Mapping[str, str],
    limits: Mapping[str, str],
    before: dict[str, Any],
    states: dict[str, str],
    details: dict[str, str],
    restart_fallback: bool,
    dry_run: bool,
) -> TargetResult:
    pods_report = [{"pod": name, "state": state, "detail": details.get(name, "")} for name, state in states.items()]
    stuck = sorted(name for name, state in states.items() if state in NEEDS_FALLBACK)
    message = _("resized in place (%(counts)s): the Deployment's template is unchanged, the next deploy applies "
                "the table through admission") % {"counts": _counts(states)}  # fmt: skip
    if dry_run:
        message = _("dry run: %(count)s pod(s) would be resized in place") % {"count": len(states)}
    ok = not stuck
    error = ""
    fallback: dict[str, Any] | None = None
    if stuck and restart_fallback and not dry_run:
        restart = microservice_restart(actor=actor, microservice=microservice)
        fallback = {"ok": restart.ok, "message": restart.message or restart.error}
        if restart.ok:
            ok = True
            message += " " + _("%(pods)s could not be resized: restarted instead (%(restart)s)") % {
                "pods": ", ".join(stuck),
                "restart": restart.message,
            }
        else:
            error = _("%(pods)s could not be resized and the restart fallback failed: %(error)s") % {
                "pods": ", ".join(stuck),
                "error": restart.error,
            }
    elif stuck:
        error = _("%(pods)s could not be resized in place (%(counts)s); ask for the restart fallback to roll them") % {
            "pods": ", ".join(stuck),
            "counts": _counts(states),
        }
    result = TargetResult(
        **base,
        ok=ok,
        message=message,
        error=error,
        error_kind="" if ok else "conflict",
        pods=pods_report,
    )
    after: dict[str, Any] = {
        "container": container,
        "requests": dict(requests),
        "limits": dict(limits),
        "pods": dict(states),
        "restart_fallback": restart_fallback,
    }
    if fallback is not None:
        after["fallback_restart"] = fallback
    _record(
        actor=actor,
        microservice=microservice,
        action="microservice.resize",
        result=result,
        before={"container": container, "pods": before},
        after=after,
    )
    logger.info(
        "resize %s/%s/%s: %s",
        microservice.cluster.name,
        microservice.namespace,
        microservice.name,
        _counts(states) or "no pods",
    )
    return result

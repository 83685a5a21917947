"""Pods of the stand-in's Deployments and their in-place ``resize`` subresource (Kubernetes 1.35 behaviour).

The ReplicaSet controller is instantaneous here: after every stored write of a Deployment its pods are
``spec.replicas`` running pods of the current pod template (a template change replaces them all, a
replica change adds or removes the last ones). Each pod carries the template's labels plus
``pod-template-hash``, the template's containers, and a status whose ``containerStatuses[].resources``
are what the kubelet applied.

A ``PATCH …/pods/<name>/resize`` changes only container resources (anything else, or a change of the
pod's QoS class, is 422 as on a real server), stores the new spec and then follows the pod's *resize
plan*: a list of states, each GET or list of the pod advancing one step, the last one staying:

- ``done``: the kubelet applied the resize (status resources = spec resources, no resize condition);
- ``in_progress``: condition ``PodResizeInProgress``, status resources still the old ones;
- ``deferred``: condition ``PodResizePending`` reason ``Deferred`` (the node lacks room now);
- ``infeasible``: condition ``PodResizePending`` reason ``Infeasible`` (the node can never fit it).

The default plan is ``["done"]``; ``K8sStandin.resize_plan(namespace, pod, *states)`` sets one pod's.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from tests.servers.k8s_standin import objects
from tests.servers.k8s_standin.objects import ApiError

RESIZE_STATES = ("done", "in_progress", "deferred", "infeasible")
RESIZE_MESSAGES = {
    "deferred": "Node didn't have enough resource: cpu, requested: 4000, used: 3500, capacity: 4000",
    "infeasible": "Node didn't have enough capacity: cpu, requested: 64000, capacity: 4000",
}


def template_hash(template: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    return "".join("bcdfghjklmnpqrstvwxz2456789"[int(c, 16) % 27] for c in digest[:10])


def _resources(container: dict[str, Any]) -> dict[str, Any]:
    resources = container.get("resources") or {}
    return {part: dict(resources[part]) for part in ("requests", "limits") if resources.get(part)}


def pod_for(deployment: dict[str, Any], index: int, *, uid: str, version: str) -> dict[str, Any]:
    meta = deployment["metadata"]
    template = deployment["spec"]["template"]
    hashed = template_hash(template)
    suffix = hashlib.sha256(f"{hashed}/{index}".encode()).hexdigest()
    name = f"{meta['name']}-{hashed}-{''.join('bcdfghjklmnpqrstvwxz2456789'[int(c, 16) % 27] for c in suffix[:5])}"
    labels = {**((template.get("metadata") or {}).get("labels") or {}), "pod-template-hash": hashed}
    spec = copy.deepcopy(template.get("spec") or {})
    spec.setdefault("nodeName", "node-1")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "uid": uid,
            "resourceVersion": version,
            "generation": 1,
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": f"{meta['name']}-{hashed}",
                    "uid": f"uid-rs-{meta['name']}-{hashed}",
                    "controller": True,
                }
            ],
            "creationTimestamp": objects.now_stamp(),
        },
        "spec": spec,
        "status": {"phase": "Running", "qosClass": qos_class(spec)},
    }
    _status_applied(pod)
    return pod


def qos_class(spec: dict[str, Any]) -> str:
    """Guaranteed, Burstable or BestEffort as the kubelet computes it from cpu and memory."""
    containers = list(spec.get("containers") or [])
    any_set = False
    guaranteed = True
    for container in containers:
        resources = _resources(container)
        requests, limits = resources.get("requests", {}), resources.get("limits", {})
        if any(key in requests or key in limits for key in ("cpu", "memory")):
            any_set = True
        for key in ("cpu", "memory"):
            limit = limits.get(key)
            request = requests.get(key, limit)
            if limit is None or objects.quantity(request) != objects.quantity(limit):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _status_applied(pod: dict[str, Any]) -> None:
    """The kubelet applied the spec: status resources follow it; no resize condition."""
    statuses = []
    for container in pod["spec"].get("containers") or []:
        resources = _resources(container)
        statuses.append(
            {
                "name": container["name"],
                "image": container.get("image", ""),
                "ready": True,
                "started": True,
                "restartCount": 0,
                "resources": copy.deepcopy(resources),
                "allocatedResources": dict(resources.get("requests", {})),
                "state": {"running": {"startedAt": pod["metadata"]["creationTimestamp"]}},
            }
        )
    pod["status"]["containerStatuses"] = statuses
    pod["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    pod["status"]["observedGeneration"] = pod["metadata"].get("generation", 1)


def resize_state_apply(pod: dict[str, Any], state: str) -> None:
    """Set the pod's status to one step of a resize plan."""
    if state == "done":
        _status_applied(pod)
        return
    pod["status"]["observedGeneration"] = pod["metadata"].get("generation", 1)
    conditions = [{"type": "Ready", "status": "True"}]
    now = objects.now_stamp()
    if state == "in_progress":
        conditions.append(
            {"type": "PodResizeInProgress", "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
        )
    elif state in ("deferred", "infeasible"):
        conditions.append(
            {
                "type": "PodResizePending",
                "status": "True",
                "reason": state.capitalize(),
                "message": RESIZE_MESSAGES[state],
                "lastProbeTime": None,
                "lastTransitionTime": now,
            }
        )
    else:
        raise ValueError(f"unknown resize state {state!r}; one of {RESIZE_STATES}")
    pod["status"]["conditions"] = conditions


def resize_patched(pod: dict[str, Any], body: Any, content_type: str) -> dict[str, Any]:
    """The pod after a ``resize`` patch, or :class:`ApiError` as the API server answers a bad one."""
    patched = objects.apply_patch(pod, body, content_type)
    before = copy.deepcopy(pod["spec"])
    after = copy.deepcopy(patched.get("spec") or {})
    for spec in (before, after):
        for container in spec.get("containers") or []:
            container.pop("resources", None)
            container.pop("resizePolicy", None)
    name = pod["metadata"]["name"]
    if before != after or patched.get("metadata") != pod["metadata"]:
        raise objects.invalid(
            "Pod",
            "",
            name,
            [("spec", "Forbidden", "only cpu and memory resources of containers may be changed by a resize")],
        )
    for container in (patched.get("spec") or {}).get("containers") or []:
        errors = objects._resource_errors(container.get("resources"), f"spec.containers[{container['name']}]")
        if errors:
            raise objects.invalid("Pod", "", name, errors)
    if qos_class(patched["spec"]) != qos_class(pod["spec"]):
        raise ApiError(
            422,
            f'Pod "{name}" is invalid: spec: Invalid value: "{qos_class(patched["spec"])}": '
            "Pod QOS Class may not change as a result of resizing",
            reason="Invalid",
        )
    patched["status"] = copy.deepcopy(pod["status"])
    return patched

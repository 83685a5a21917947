"""Drift: the controlled Deployments whose live replicas, requests or limits differ from what admission
would set now, each with the patch admission would send; and the nightly check that records their count.

A Deployment drifts when the webhook's own decision (``export.deployment_target``) has a patch for it
as it is stored: edited while admission was off or in audit, written past a failing webhook
(``failurePolicy: Ignore``), or older than the latest change of the control table.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction

from apps.audit.models import AuditResult
from apps.audit.services import Actor, AuditDraft, audit_events_record
from apps.control import k8s
from apps.control.models import Cluster
from apps.control.selectors import cluster_list
from apps.webhook.queue import DRIFT_CHECK_TASK
from apps.webhook.services.export import cluster_targets
from kubedoor_site.beat import Crontab, PeriodicTask, periodic_task_sync

logger = logging.getLogger(__name__)

DRIFT_CHECK_ACTION = "drift.check"
DRIFT_SCHEDULE_NAME = "kubedoor-drift-check"
# How many drifted Deployments an audit event names (the count is always complete).
AUDIT_NAMED_LIMIT = 100


def drift_list(*, cluster: Cluster, namespace: str | None = None, user: Any = None) -> dict[str, Any]:
    """Every controlled live Deployment of ``cluster`` that admission would change now, with the change.

    Raises ``k8s.K8sError`` when the cluster cannot be read.
    """
    export = cluster_targets(cluster=cluster, namespace=namespace, user=user)
    items = [
        {
            "namespace": target.namespace,
            "name": target.name,
            "container": target.container,
            "live": target.live,
            "wanted": target.wanted,
            "patch": target.patch,
            "strategic_patch": target.strategic_patch(),
            "warnings": target.warnings,
        }
        for target in export.targets
        if target.patch
    ]
    return {
        "cluster": cluster.name,
        "namespace": namespace or None,
        "checked": len(export.targets),
        "drifted": len(items),
        "items": items,
        "missing": export.missing,
    }


def drift_check(*, cluster: Cluster, actor: Actor) -> dict[str, Any]:
    """Find the drift of ``cluster`` and record its count as a ``drift.check`` audit event.

    Channels subscribed to ``drift.check`` are told when something drifted or the cluster could not be
    read; a clean check is recorded without notifying. Returns what was recorded (``after`` of the event).
    """
    try:
        found = drift_list(cluster=cluster)
    except k8s.K8sError as exc:
        logger.warning("drift check of %s failed: %s", cluster.name, exc.message)
        after: dict[str, Any] = {"error": exc.message}
        draft = AuditDraft.by(
            actor,
            action=DRIFT_CHECK_ACTION,
            cluster=cluster.name,
            after=after,
            result=AuditResult.ERROR,
            message=f"drift of {cluster.name} not checked: {exc.message}",
        )
    else:
        names = [f"{item['namespace']}/{item['name']}" for item in found["items"]]
        after = {
            "checked": found["checked"],
            "drifted": found["drifted"],
            "missing": len(found["missing"]),
            "deployments": names[:AUDIT_NAMED_LIMIT],
        }
        shown = ", ".join(names[:10]) + (" …" if len(names) > 10 else "")
        message = f"{found['drifted']} of {found['checked']} controlled Deployments of {cluster.name} drift"
        draft = AuditDraft.by(
            actor,
            action=DRIFT_CHECK_ACTION,
            cluster=cluster.name,
            after=after,
            message=f"{message}: {shown}" if names else message,
            notify=bool(names),
        )
        logger.info("drift check of %s: %s", cluster.name, message)
    with transaction.atomic():
        audit_events_record(drafts=[draft])
    return after


def drift_check_all(*, actor: Actor) -> dict[str, dict[str, Any]]:
    """The nightly check: every cluster with a control table, one audit event each."""
    results = {}
    for cluster in cluster_list().filter(microservices__isnull=False).distinct().order_by("name"):
        results[cluster.name] = drift_check(cluster=cluster, actor=actor)
    return results


def drift_schedule_sync(*, cron: str | None = None, time_zone: str | None = None) -> PeriodicTask | None:
    """Make beat's ``kubedoor-drift-check`` entry follow ``KUBEDOOR_DRIFT_CHECK_CRON`` (empty: no entry).

    Run when beat starts (``apps.webhook.apps``), so a changed setting takes effect with beat's restart.
    """
    text = settings.KUBEDOOR_DRIFT_CHECK_CRON if cron is None else cron
    fields = text.split()
    if text.strip() and len(fields) != 5:
        raise ValueError(f"KUBEDOOR_DRIFT_CHECK_CRON {text!r} must have five fields (minute hour day month weekday)")
    schedule = None
    if fields:
        minute, hour, day_of_month, month_of_year, day_of_week = fields
        schedule = Crontab(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month_of_year,
            day_of_week=day_of_week,
            time_zone=time_zone or settings.TIME_ZONE,
        )
    return periodic_task_sync(
        name=DRIFT_SCHEDULE_NAME,
        task=DRIFT_CHECK_TASK,
        schedule=schedule,
        description="Nightly drift check of every cluster (KUBEDOOR_DRIFT_CHECK_CRON)",
    )

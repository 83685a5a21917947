"""Prometheus metrics of the webhook process: decisions, latency, snapshot age, audit queue.

With several gunicorn workers set ``PROMETHEUS_MULTIPROC_DIR`` (an empty directory) so ``/metrics``
aggregates every worker; without it each process reports its own figures.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

ADMISSIONS = Counter(
    "kubedoor_webhook_admissions",
    "Admission reviews answered, by decision (allow, patch, deny, invalid).",
    ["decision"],
)
LATENCY = Histogram(
    "kubedoor_webhook_admission_seconds",
    "Time to answer one admission review, body parsing included.",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
SNAPSHOT_AGE = Gauge(
    "kubedoor_webhook_snapshot_age_seconds",
    "Seconds since the control snapshot was last loaded (-1: no snapshot yet).",
    multiprocess_mode="livemax",
)
AUDIT_DROPPED = Counter(
    "kubedoor_webhook_audit_dropped",
    "Admission audit events dropped because the queue was full or the database stayed unreachable.",
)
AUDIT_QUEUED = Gauge(
    "kubedoor_webhook_audit_queued_events",
    "Admission audit events waiting for the writer, over every worker, as each writer last took a batch.",
    multiprocess_mode="livesum",
)
AUDIT_WRITE = Histogram(
    "kubedoor_webhook_audit_write_seconds",
    "Time to write one batch of admission audit events (one transaction), successful writes only.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


_ADMISSIONS_BY_DECISION: dict[str, Any] = {}  # labelled children, looked up once per decision


def admission_observe(*, decision: str, seconds: float) -> None:
    child = _ADMISSIONS_BY_DECISION.get(decision)
    if child is None:
        child = _ADMISSIONS_BY_DECISION[decision] = ADMISSIONS.labels(decision)
    child.inc()
    LATENCY.observe(seconds)


def snapshot_age_set(age: float | None) -> None:
    SNAPSHOT_AGE.set(-1 if age is None else age)


def audit_dropped_inc(count: int = 1) -> None:
    AUDIT_DROPPED.inc(count)


def audit_batch_observe(*, queued: int, seconds: float | None = None) -> None:
    """A batch taken with ``queued`` events still waiting; ``seconds``: the time its write took."""
    AUDIT_QUEUED.set(queued)
    if seconds is not None:
        AUDIT_WRITE.observe(seconds)


def exposition() -> tuple[bytes, str]:
    """The text exposition of every metric, aggregated over workers in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST

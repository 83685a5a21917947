"""Demo daily peaks (issue 11 §7): 30 plausible days for the demo cluster, so every board has data.

The shape, per service, from its control row's pods and limits:

* a usual P95 per pod fixed per service (a share of its limits, ``_base``);
* a **weekly rhythm**: weekdays at full load (× 0.9–1.1), Saturdays × 0.7, Sundays × 0.55;
* one **incident day** (``INCIDENT_DAYS_AGO`` days before the last day): every service at × 1.6 CPU
  and × 1.15 memory — entered in the cluster's calendar as an excluded day, so it never sets requests;
* **OOM kills**: ``OOM_SERVICE`` runs its memory close to the limit and is killed on a few days
  (``oom_kills_for``: the count a collection would record; written only when the archive has such a
  column — see ``_oom_fields``);
* an **HPA-managed** service (``HPA_SERVICE``): its pods follow the load, 3 to 12;
* the **requests** the Deployments run with (the archive's ``request_*``) are generous — the limits
  × 0.5–0.9 — as in a cluster nobody has right-sized yet, so the waste board has something to show.

Values never exceed the limits (a P95 above the limit cannot be measured), and every figure comes
from one seeded random generator: the same seed writes the same rows.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Sequence
from typing import Protocol

from apps.metrics.store import PEAK_FIELDS, PeakRow, PeakStore

DEMO_DAYS = 30
INCIDENT_DAYS_AGO = 6
INCIDENT_REASON = "Incident (demo data): a retry storm tripled traffic"
OOM_SERVICE = ("payments", "ledger")
HPA_SERVICE = ("shop", "web")
WEEKDAY_FACTOR = {5: 0.7, 6: 0.55}  # Saturday, Sunday; weekdays 1.0


class DemoService(Protocol):
    """What the generator reads of a control row (a ``Microservice`` is one)."""

    namespace: str
    name: str
    container: str
    replicas_measured: int
    limit_cpu_m: int | None
    limit_mem_mib: int | None


def demo_days(*, last_day: datetime.date, days: int = DEMO_DAYS) -> list[datetime.date]:
    return [last_day - datetime.timedelta(days=days - 1 - offset) for offset in range(days)]


def incident_day(*, last_day: datetime.date) -> datetime.date:
    return last_day - datetime.timedelta(days=INCIDENT_DAYS_AGO)


def oom_kills_for(*, namespace: str, name: str, day: datetime.date, last_day: datetime.date) -> int:
    """OOM kills of a service on a day: the OOM service is killed on every fourth day and on the incident."""
    if (namespace, name) != OOM_SERVICE:
        return 0
    if day == incident_day(last_day=last_day):
        return 3
    return 1 if (last_day - day).days % 4 == 1 else 0


def _oom_fields(kills: int) -> dict[str, int]:
    """Hook for the OOM count column of the archive: written only when ``PeakRow`` has ``oom_kills``."""
    return {"oom_kills": kills} if "oom_kills" in PEAK_FIELDS else {}


def _capped(value: float, limit: int | None, scale: float) -> float:
    return value if limit is None else min(value, limit * scale * 0.97)


def demo_peak_rows(
    *, cluster: str, services: Sequence[DemoService], day: datetime.date, last_day: datetime.date, rng: random.Random
) -> list[PeakRow]:
    """One day's rows for every service (one container each)."""
    weekday = WEEKDAY_FACTOR.get(day.weekday(), 1.0)
    is_incident = day == incident_day(last_day=last_day)
    start = datetime.datetime.combine(day, datetime.time(10, 0), datetime.UTC)
    rows = []
    for service in services:
        key = (service.namespace, service.name)
        base_cpu, base_mem = _base(key, service.limit_cpu_m, service.limit_mem_mib)
        cpu_factor = weekday * rng.uniform(0.9, 1.1) * (1.6 if is_incident else 1.0)
        mem_factor = rng.uniform(0.92, 1.05) * (1.15 if is_incident else 1.0)
        pods = max(1, service.replicas_measured or 1)
        if key == HPA_SERVICE:  # the HPA follows the load: the pods change, the load per pod stays
            pods = max(3, min(12, round(6 * cpu_factor)))
            cpu_factor = rng.uniform(0.95, 1.05)
        if key == OOM_SERVICE and service.limit_mem_mib:
            base_mem = service.limit_mem_mib * 0.9
        cpu = round(_capped(base_cpu * cpu_factor, service.limit_cpu_m, 0.001), 4)
        mem = round(_capped(base_mem * mem_factor, service.limit_mem_mib, 1.0), 1)
        request_share = _request_share(key)
        rows.append(
            PeakRow(
                cluster=cluster,
                day=day,
                namespace=service.namespace,
                deployment=service.name,
                container=service.container or service.name,
                window_start=start,
                window_end=start + datetime.timedelta(minutes=90),
                pod_count=pods,
                p95_cpu_cores=cpu,
                p95_cpu_pct=round(cpu * 100_000 / service.limit_cpu_m, 2) if service.limit_cpu_m else None,
                p95_mem_mib=mem,
                p95_mem_pct=round(mem * 100 / service.limit_mem_mib, 2) if service.limit_mem_mib else None,
                request_cpu_m=int(service.limit_cpu_m * request_share) if service.limit_cpu_m else None,
                request_mem_mib=int(service.limit_mem_mib * request_share) if service.limit_mem_mib else None,
                limit_cpu_m=service.limit_cpu_m,
                limit_mem_mib=service.limit_mem_mib,
                quantile=0.95,
                aggregation="avg",
                step_seconds=30,
                collected_at=start + datetime.timedelta(hours=2),
                **_oom_fields(
                    oom_kills_for(namespace=service.namespace, name=service.name, day=day, last_day=last_day)
                ),
            )
        )
    return rows


def _base(key: tuple[str, str], limit_cpu_m: int | None, limit_mem_mib: int | None) -> tuple[float, float]:
    """A service's usual P95 per pod (cores, MiB), fixed per service: a share of its limits.

    Not read from the control row, which the refresh rewrites: running the command again writes the same days.
    """
    rng = random.Random("base/" + "/".join(key))
    cpu = (limit_cpu_m or 1000) / 1000 * rng.uniform(0.05, 0.55)
    mem = (limit_mem_mib or 1024) * rng.uniform(0.2, 0.7)
    return cpu, mem


def _request_share(key: tuple[str, str]) -> float:
    """The share of the limit a service requests: fixed per service (its Deployment's spec), 0.5–0.9."""
    return random.Random("/".join(key)).uniform(0.5, 0.9)


def demo_peaks_write(
    *, cluster: str, services: Sequence[DemoService], last_day: datetime.date, store: PeakStore, seed: int = 7
) -> int:
    """Write ``DEMO_DAYS`` days ending ``last_day`` through ``store`` (each day replaced); returns rows written."""
    rng = random.Random(seed)
    written = 0
    for day in demo_days(last_day=last_day):
        rows = demo_peak_rows(cluster=cluster, services=services, day=day, last_day=last_day, rng=rng)
        written += store.day_replace(cluster=cluster, day=day, rows=rows)
    return written

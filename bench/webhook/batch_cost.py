"""PostgreSQL's CPU per audit batch the webhook's writer sends, by batch size: what a transaction costs
and what an event costs.

    DATABASE_URL=postgres://…/kubedoor_wh .venv/bin/python bench/webhook/batch_cost.py [SIZES]

SIZES is a comma-separated list of batch sizes (default 1,10,50,350,350,50,10,1: each twice, the order
reversed, so a drift of the machine shows). Needs a database that run.py has migrated (it writes
audit events into it). For each size it queues webhook-shaped events in an ``AuditWriter`` and writes them
with the writer's own ``_write`` (one COPY and one transaction a batch, as the webhook does), ≈ 6 000
events per size (600 for sizes under 50), and reads the user + system time of its backend and of every
PostgreSQL process from /proc around them (same machine; the clock tick is 10 ms, so short runs are coarse).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kubedoor_site.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from run import postgres_cpu_seconds, process_cpu_seconds  # noqa: E402

from apps.webhook.audit_writer import AuditWriter  # noqa: E402

BEFORE = {"replicas": 3, "containers": {"app": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": 1}}}}
AFTER = {"replicas": 4, "containers": {"app": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2"}}}}


def main() -> None:
    if connection.vendor != "postgresql":
        sys.exit("set DATABASE_URL to the PostgreSQL database run.py migrated")
    sizes = [int(size) for size in (sys.argv[1] if len(sys.argv) > 1 else "1,10,50,350,350,50,10,1").split(",")]
    writer = AuditWriter(autostart=False)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
    for size in sizes:
        batches = max(1, (6000 if size >= 50 else 600) // size)
        backend_before, all_before, slowest = process_cpu_seconds(backend), postgres_cpu_seconds(), 0.0
        for _ in range(batches):
            for index in range(size):
                writer.submit(
                    action="admission.patch",
                    cluster="bench",
                    namespace=f"ns{index % 8}",
                    name=f"deploy-{index % 16}",
                    before=BEFORE,
                    after=AFTER,
                    message="UPDATE Deployment by alice: kubedoor: spec.replicas 3 -> 4 (control table)",
                )
            batch = writer._take(block=False)
            started = time.perf_counter()
            writer._write(batch)
            slowest = max(slowest, time.perf_counter() - started)
        backend_cpu = process_cpu_seconds(backend) - backend_before
        all_cpu = postgres_cpu_seconds() - all_before
        print(
            f"batch {size:4d} × {batches:4d}: backend {backend_cpu / batches * 1e3:6.2f} ms/batch "
            f"{backend_cpu / (batches * size) * 1e6:6.1f} µs/event · every PostgreSQL process "
            f"{all_cpu / batches * 1e3:6.2f} ms/batch · slowest write {slowest * 1e3:.1f} ms",
            flush=True,
        )


if __name__ == "__main__":
    main()

"""Benchmark: control-table refresh of 10 000 services on PostgreSQL (DESIGN §14: ≤ 3 s).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/kubedoor_bench python bench/refresh/run.py

Creates (or reuses) the database's schema with ``migrate``, then in a scratch cluster ``bench-refresh``:
N control rows and N × 10 days of archive rows (ORM store), and times ``control_table_refresh``:
1. every row changes (new statistics: N updates + N audit events),
2. nothing changes (a re-run),
3. new statistics again (every row changes once more),
4. a cold start with an empty control table (N rows registered, N discovery events).

``--rounds R`` repeats the four on the same data (the generator is seeded again each round) and prints the
median of each: the machine is shared, one round's wall time says little. The Python CPU time moves less.
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kubedoor_site.settings")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction

    call_command("migrate", verbosity=0)

    from apps.audit.models import AuditEvent
    from apps.audit.retention import PURGE_ON_SQL
    from apps.audit.services import Actor
    from apps.control.models import Cluster, Microservice
    from apps.metrics.models import DailyPeak
    from apps.metrics.refresh import control_table_refresh
    from apps.metrics.store import OrmStore

    name = "bench-refresh"
    Cluster.objects.filter(name=name).delete()
    DailyPeak.objects.filter(cluster=name).delete()
    cluster = Cluster.objects.create(name=name, lookback_days=args.days)
    today = datetime.date(2026, 3, 31)
    rng = random.Random(42)
    services = [(f"ns-{i % 50}", f"svc-{i}") for i in range(args.services)]

    def rows_create() -> None:
        # The scratch cluster's audit events of earlier rounds go too, so that every round starts alike
        # (raw SQL: the model refuses deletes; on PostgreSQL the append-only trigger lets a DELETE through
        # only with the purge setting, which this bench database may use as the purge command does).
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(PURGE_ON_SQL)
            cursor.execute(f"DELETE FROM {AuditEvent._meta.db_table} WHERE cluster = %s", [name])
        Microservice.objects.filter(cluster=cluster).delete()
        Microservice.objects.bulk_create(
            [
                Microservice(
                    cluster=cluster, namespace=ns, name=svc, limit_cpu_m=2000, limit_mem_mib=4096, replicas_measured=2
                )
                for ns, svc in services
            ],
            batch_size=2000,
        )

    def archive(scale: float) -> None:
        DailyPeak.objects.filter(cluster=name).delete()
        window = datetime.datetime(2026, 3, 1, 2, tzinfo=datetime.UTC)
        rows = []
        for offset in range(args.days):
            day = today - datetime.timedelta(days=offset)
            for ns, svc in services:
                rows.append(
                    DailyPeak(
                        cluster=name,
                        day=day,
                        namespace=ns,
                        deployment=svc,
                        container=svc,
                        window_start=window,
                        window_end=window,
                        pod_count=rng.randint(1, 5),
                        p95_cpu_cores=round(rng.uniform(0.01, 1.5) * scale, 6),
                        p95_cpu_pct=50.0,
                        p95_mem_mib=round(rng.uniform(50, 2000) * scale, 3),
                        p95_mem_pct=40.0,
                        request_cpu_m=100,
                        request_mem_mib=128,
                        limit_cpu_m=2000,
                        limit_mem_mib=4096,
                        quantile=0.95,
                        aggregation="avg",
                        step_seconds=30,
                        collected_at=window,
                    )
                )
        DailyPeak.objects.bulk_create(rows, batch_size=5000)

    actor = Actor.system("bench", source="system")
    store = OrmStore()
    figures: dict[str, list[tuple[float, float]]] = defaultdict(list)

    def timed(label: str) -> None:
        events_before = AuditEvent.objects.count()
        start, cpu = time.perf_counter(), time.process_time()
        result = control_table_refresh(cluster=cluster, store=store, today=today, actor=actor)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        events = AuditEvent.objects.count() - events_before
        print(
            f"{label}: {elapsed:.2f} s wall, {cpu:.2f} s CPU in Python  (added {result.added}, "
            f"updated {result.updated}, unchanged {result.unchanged}, vanished {result.vanished}; "
            f"{events} audit events; load average {os.getloadavg()[0]:.1f})"
        )
        figures[label].append((elapsed, cpu))

    for round_ in range(1, args.rounds + 1):
        t0 = time.perf_counter()
        rng.seed(42)
        rows_create()
        archive(1.0)
        print(
            f"round {round_} setup: {args.services} services, {args.services * args.days} archive rows "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        timed("refresh, every row changes")
        timed("refresh, nothing changes ")
        archive(1.1)
        timed("refresh, new statistics  ")
        Microservice.objects.filter(cluster=cluster).delete()
        timed("refresh, cold start      ")
    if args.rounds > 1:
        for label, runs in figures.items():
            wall = statistics.median(elapsed for elapsed, _ in runs)
            cpu = statistics.median(cpu for _, cpu in runs)
            print(f"median of {len(runs)} {label}: {wall:.2f} s wall, {cpu:.2f} s CPU in Python")
    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}")
    Cluster.objects.filter(name=name).delete()
    DailyPeak.objects.filter(cluster=name).delete()


if __name__ == "__main__":
    main()

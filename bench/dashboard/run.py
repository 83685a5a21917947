"""Benchmark: dashboard aggregates over 1 000 services × 365 days (DESIGN §14: ≤ 1 s ClickHouse, ≤ 3 s PostgreSQL).

Loads the same archive into Debian's ClickHouse 18.16 (started here on free loopback ports, like the
test fixture, data in a scratch directory) and into PostgreSQL (the ORM store), then times what one
dashboard page asks for: the summary (totals, namespace table, five top-10 boards, data span) and one
service's curves over the year. Every service has one container, every fifth a sidecar too
(438 000 rows). Prints each timing's best / median / worst over the repetitions, and the machine's
load average when the timing started (other work on the same cores shows up in the worst figures).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/kubedoor_bench .venv/bin/python bench/dashboard/run.py

Options: --services 1000 --days 365 --repeat 7 --keep (leave the PostgreSQL rows in place).
The PostgreSQL rows live under the cluster name ``bench-dashboard`` and are replaced on each run.
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/kubedoor_bench")
os.environ.setdefault("KUBEDOOR_VAR_DIR", "/tmp/kubedoor-bench-var")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kubedoor_site.settings")

CLUSTER = "bench-dashboard"
LAST_DAY = datetime.date(2026, 3, 31)


def ensure_database() -> None:
    """Create the PostgreSQL database named in DATABASE_URL when it does not exist yet."""
    import psycopg
    from django.conf import settings

    db = settings.DATABASES["default"]
    if "postgresql" not in db["ENGINE"]:
        return
    params = {"host": db["HOST"] or None, "port": db["PORT"] or None, "user": db["USER"] or None}
    with psycopg.connect(dbname="postgres", autocommit=True, **{k: v for k, v in params.items() if v}) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]).fetchone():
            conn.execute(f'CREATE DATABASE "{db["NAME"]}"')  # a name from our own settings


def make_rows(*, services: int, days: int) -> list:
    from apps.metrics.store import PeakRow

    rng = random.Random(2026)
    window = datetime.datetime(2026, 1, 1, 2, 0, tzinfo=datetime.UTC)
    rows = []
    shapes = []
    for i in range(services):
        containers = [f"svc-{i:04d}"] + (["istio-proxy"] if i % 5 == 0 else [])
        shapes.append(
            (f"ns-{i % 20:02d}", f"svc-{i:04d}", containers, rng.choice([500, 1000, 2000, 4000]), rng.randint(1, 12))
        )
    for offset in range(days):
        day = LAST_DAY - datetime.timedelta(days=days - 1 - offset)
        for namespace, name, containers, limit_cpu, base_pods in shapes:
            pods = max(1, base_pods + rng.choice([-1, 0, 0, 1]))
            for container in containers:
                sidecar = container == "istio-proxy"
                cpu = round(rng.uniform(0.01, 0.2) if sidecar else limit_cpu / 1000 * rng.uniform(0.05, 0.95), 4)
                mem = round(rng.uniform(40, 120) if sidecar else rng.uniform(100, 3500), 1)
                rows.append(
                    PeakRow(
                        cluster=CLUSTER,
                        day=day,
                        namespace=namespace,
                        deployment=name,
                        container=container,
                        window_start=window,
                        window_end=window,
                        pod_count=pods,
                        p95_cpu_cores=cpu,
                        p95_cpu_pct=None,
                        p95_mem_mib=mem,
                        p95_mem_pct=None,
                        request_cpu_m=100 if sidecar else limit_cpu // 4,
                        request_mem_mib=128 if sidecar else 1024,
                        limit_cpu_m=None if sidecar else limit_cpu,
                        limit_mem_mib=256 if sidecar else 4096,
                        quantile=0.95,
                        aggregation="avg",
                        step_seconds=30,
                        collected_at=window,
                    )
                )
    return rows


def timed(label: str, repeat: int, fn: Callable[[], object]) -> list[float]:
    fn()  # warm-up (connection, caches) not counted
    load = os.getloadavg()[0]
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    print(
        f"  {label:<44} best {min(times) * 1000:8.1f} ms   median {statistics.median(times) * 1000:8.1f} ms"
        f"   worst {max(times) * 1000:8.1f} ms   (load average {load:.1f} on {os.cpu_count()} CPUs)"
    )
    return times


def page(backend, *, day_from: datetime.date, day_to: datetime.date) -> Callable[[], object]:
    from apps.metrics import dashboard

    def run() -> object:
        summary = dashboard.dashboard_summary(cluster=CLUSTER, day_from=day_from, day_to=day_to, backend=backend)
        dashboard.dashboard_data_span(cluster=CLUSTER, backend=backend)
        assert summary.totals.services > 0
        return summary

    return run


def curves(backend, *, day_from: datetime.date, day_to: datetime.date) -> Callable[[], object]:
    from apps.metrics import dashboard

    def run() -> object:
        points = dashboard.dashboard_curves(
            cluster=CLUSTER, namespace="ns-07", deployment="svc-0007", day_from=day_from, day_to=day_to, backend=backend
        )
        assert points
        return points

    return run


def bench_clickhouse(rows: list, *, repeat: int, day_from: datetime.date, day_to: datetime.date) -> dict:
    from apps.metrics import clickhouse as ch
    from apps.metrics.clickhouse import ClickHouseDoor
    from apps.metrics.dashboard import ClickHouseDashboard
    from apps.metrics.store import ClickHouseStore
    from apps.metrics.store import _ch_values as ch_values
    from tests.servers import free_port, stop_process, wait_for_port
    from tests.servers.clickhouse import _write_config

    with tempfile.TemporaryDirectory(prefix="kd-bench-ch-") as scratch:
        root = Path(scratch)
        tcp, http, inter = free_port(), free_port(), free_port()
        config = _write_config(root, tcp_port=tcp, http_port=http, inter_port=inter)
        with (root / "server.out").open("w") as log:
            server = subprocess.Popen(
                ["/usr/sbin/clickhouse-server", f"--config-file={config}"], cwd=root, stdout=log, stderr=log
            )
            try:
                wait_for_port(tcp, process=server, timeout=30)
                admin = ClickHouseDoor.from_url(f"clickhouse://default@127.0.0.1:{tcp}/default")
                admin.execute("CREATE DATABASE IF NOT EXISTS kd_bench")
                admin.close()
                door = ClickHouseDoor.from_url(f"clickhouse://default@127.0.0.1:{tcp}/kd_bench")
                ClickHouseStore(door).ensure_schema()
                started = time.perf_counter()
                # A bulk load (the store's day_replace would do the same, one day per statement)
                for start in range(0, len(rows), 50_000):
                    door.insert(
                        ch.DAILY_PEAKS_INSERT_SQL,
                        ch.DAILY_PEAKS_COLUMNS,
                        [ch_values(row) for row in rows[start : start + 50_000]],
                    )
                door.execute("OPTIMIZE TABLE kubedoor_daily_peaks FINAL")  # no background merge during timing
                loaded = time.perf_counter() - started
                print(f"ClickHouse {door.server_version()}: {len(rows)} rows loaded in {loaded:.1f} s")
                backend = ClickHouseDashboard(door)
                result = {
                    "summary": timed(
                        "summary (totals, namespaces, top-10s, span)",
                        repeat,
                        page(backend, day_from=day_from, day_to=day_to),
                    ),
                    "curves": timed(
                        "curves of one service over the year", repeat, curves(backend, day_from=day_from, day_to=day_to)
                    ),
                }
                door.close()
                return result
            finally:
                stop_process(server, timeout=5)


def bench_postgres(rows: list, *, repeat: int, keep: bool, day_from: datetime.date, day_to: datetime.date) -> dict:
    from django.core.management import call_command
    from django.db import connection

    from apps.metrics.dashboard import OrmDashboard
    from apps.metrics.models import DailyPeak

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    DailyPeak.objects.filter(cluster=CLUSTER).delete()
    batch = 20_000
    for start in range(0, len(rows), batch):
        DailyPeak.objects.bulk_create([DailyPeak(**row.as_dict()) for row in rows[start : start + batch]])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE metrics_dailypeak")
        cursor.execute("SELECT version()")
        (version,) = cursor.fetchone()
    print(f"{version.split(' on ')[0]}: {len(rows)} rows loaded in {time.perf_counter() - started:.1f} s")
    backend = OrmDashboard()
    result = {
        "summary": timed(
            "summary (totals, namespaces, top-10s, span)", repeat, page(backend, day_from=day_from, day_to=day_to)
        ),
        "curves": timed(
            "curves of one service over the year", repeat, curves(backend, day_from=day_from, day_to=day_to)
        ),
    }
    if not keep:
        DailyPeak.objects.filter(cluster=CLUSTER).delete()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    import django

    ensure_database()
    django.setup()
    started = time.perf_counter()
    rows = make_rows(services=args.services, days=args.days)
    day_from = LAST_DAY - datetime.timedelta(days=args.days - 1)
    generated = time.perf_counter() - started
    print(f"{args.services} services × {args.days} days = {len(rows)} rows generated in {generated:.1f} s")
    print("ClickHouse 18.16 (Debian's server):")
    ch = bench_clickhouse(rows, repeat=args.repeat, day_from=day_from, day_to=LAST_DAY)
    print("PostgreSQL (ORM store):")
    pg = bench_postgres(rows, repeat=args.repeat, keep=args.keep, day_from=day_from, day_to=LAST_DAY)
    print("Targets (DESIGN §14): dashboard aggregates ≤ 1 s on ClickHouse, ≤ 3 s on PostgreSQL")
    for name, result, target in (("ClickHouse", ch, 1.0), ("PostgreSQL", pg, 3.0)):
        worst = max(result["summary"])
        verdict = "met" if worst <= target else "MISSED"
        print(f"  {name}: summary worst {worst * 1000:.0f} ms → {verdict} (≤ {target:.0f} s)")


if __name__ == "__main__":
    main()

"""Benchmark: the control-table API over HTTP with 10 000 microservices (DESIGN §14: p99 ≤ 50 ms).

Seeds a PostgreSQL database with 10 000 control rows in 20 namespaces of one cluster, serves the
project with gunicorn on loopback, and times filtered list requests of one page (100 rows) with a
token, sequentially and from 4 concurrent clients. Prints p50 / p99 / max and requests per second.

    .venv/bin/python bench/api/run.py [--rows 10000] [--requests 400]

Uses DATABASE_URL (default postgres://postgres@127.0.0.1:5432/kubedoor_bench, recreated).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/kubedoor_bench")
os.environ.setdefault("KUBEDOOR_VAR_DIR", "/tmp/kubedoor-bench-var")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kubedoor_site.settings")


def recreate_database() -> None:
    import psycopg
    from django.conf import settings

    name = settings.DATABASES["default"]["NAME"]
    admin = {
        k: v
        for k, v in {
            "host": settings.DATABASES["default"]["HOST"],
            "port": settings.DATABASES["default"]["PORT"],
            "user": settings.DATABASES["default"]["USER"],
            "password": settings.DATABASES["default"]["PASSWORD"],
        }.items()
        if v
    }
    with psycopg.connect(dbname="postgres", autocommit=True, **admin) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def seed(rows: int) -> str:
    import random

    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from apps.control.models import Cluster, Microservice
    from tests.factories import UserFactory

    call_command("migrate", verbosity=0)
    cluster = Cluster.objects.create(name="bench")
    rng = random.Random(1)
    Microservice.objects.bulk_create(
        (
            Microservice(
                cluster=cluster,
                namespace=f"ns-{i % 20:02d}",
                name=f"svc-{i:05d}",
                replicas_measured=rng.randint(1, 12),
                p95_cpu_pct=round(rng.uniform(1, 99), 1),
                p95_mem_pct=round(rng.uniform(1, 99), 1),
                request_cpu_m=rng.randint(10, 4000),
                request_mem_mib=rng.randint(16, 8192),
                limit_cpu_m=4000,
                limit_mem_mib=8192,
                is_present=rng.random() > 0.05,
            )
            for i in range(rows)
        ),
        batch_size=2000,
    )
    user = UserFactory(username="bench-viewer", role="viewer")
    return Token.objects.create(user=user).key


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    import django

    recreate_database()
    django.setup()
    token = seed(args.rows)
    port = 18_700
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "kubedoor_site.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(args.workers),
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        env=os.environ.copy(),
    )
    try:
        base = f"http://127.0.0.1:{port}/api/v1/microservices/"
        queries = [
            "?cluster=bench&namespace=ns-03&page_size=100",
            "?cluster=bench&present=true&page_size=100",
            "?cluster=bench&search=svc-01&page_size=100",
            "?cluster=bench&ordering=-p95_mem_pct&page_size=100",
            "?cluster=bench&namespace=ns-11&present=true&page=3&page_size=100",
        ]
        headers = {"Authorization": f"Token {token}"}
        with httpx.Client(headers=headers, timeout=10) as client:
            for _ in range(100):
                try:
                    client.get(base + queries[0])
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            for query in queries:  # warm-up and correctness
                response = client.get(base + query)
                response.raise_for_status()
                assert len(response.json()["results"]) == 100, query

            def timed(i: int, c: httpx.Client = client) -> float:
                started = time.perf_counter()
                response = c.get(base + queries[i % len(queries)])
                elapsed = time.perf_counter() - started
                if response.status_code != 200 or len(response.json()["results"]) != 100:
                    raise RuntimeError(f"bad response {response.status_code}")
                return elapsed * 1000

            sequential = [timed(i) for i in range(args.requests)]
        clients = [httpx.Client(headers=headers, timeout=10) for _ in range(4)]
        started = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            concurrent = list(pool.map(lambda i: timed(i, clients[i % 4]), range(args.requests)))
        wall = time.perf_counter() - started
        for c in clients:
            c.close()
    finally:
        server.terminate()
        server.wait(10)

    print(f"API list, {args.rows} microservices, filtered, page of 100, gunicorn {args.workers} workers, PostgreSQL")
    for label, values, rps in (
        ("1 client ", sequential, 1000 / statistics.mean(sequential)),
        ("4 clients", concurrent, args.requests / wall),
    ):
        print(
            f"  {label}: n={len(values)} p50={percentile(values, 0.5):.1f} ms  p99={percentile(values, 0.99):.1f} ms"
            f"  max={max(values):.1f} ms  {rps:.0f} req/s"
        )


if __name__ == "__main__":
    main()

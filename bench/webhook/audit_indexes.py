"""PostgreSQL's CPU per audit event loaded by COPY: the audit table's ten former indexes against its five.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/webhook/audit_indexes.py [PREFILL]

Creates a scratch database ``kubedoor_idx`` on that server with two tables shaped like
``audit_auditevent``: ``full9`` (named for the nine secondary indexes besides the primary key: ``at``,
``actor_id``, ``actor_name``, ``action``, ``cluster`` and the three ``varchar_pattern_ops`` copies,
(cluster, namespace, name)) and ``lean5`` (the primary key, ``at``, ``actor_name``, ``action``,
(cluster, namespace, name); migration audit 0007). Each gets PREFILL events (default 200 000), then
8 alternating rounds of 60 COPY batches × 350 webhook-shaped events, one transaction each, as the
webhook's writer sends them. Around each round it reads the backend's user + system time from
/proc/<pid>/stat (same machine) and prints µs per event. Drops the database at the end.
"""

import datetime
import json
import os
import sys

import psycopg
from run import process_cpu_seconds  # bench/webhook/run.py, beside this script

SERVER = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres").rsplit("/", 1)[0]
DSN = f"{SERVER}/kubedoor_idx"
BASE = """
CREATE TABLE {t} (id bigserial PRIMARY KEY, at timestamptz NOT NULL, actor_id integer NULL,
 actor_name varchar(150) NOT NULL, source varchar(8) NOT NULL, action varchar(64) NOT NULL,
 cluster varchar(63) NOT NULL, namespace varchar(63) NOT NULL, name varchar(253) NOT NULL,
 before jsonb NULL, after jsonb NULL, result varchar(8) NOT NULL, message text NOT NULL,
 request_id varchar(64) NOT NULL, remote_addr inet NULL);
CREATE INDEX {t}_at ON {t} (at);
CREATE INDEX {t}_obj ON {t} (cluster, namespace, name);
"""
FULL = """
CREATE INDEX {t}_actor_id ON {t} (actor_id);
CREATE INDEX {t}_actor ON {t} (actor_name);
CREATE INDEX {t}_actor_like ON {t} (actor_name varchar_pattern_ops);
CREATE INDEX {t}_action ON {t} (action);
CREATE INDEX {t}_action_like ON {t} (action varchar_pattern_ops);
CREATE INDEX {t}_cluster ON {t} (cluster);
CREATE INDEX {t}_cluster_like ON {t} (cluster varchar_pattern_ops);
"""
LEAN = """
CREATE INDEX {t}_actor ON {t} (actor_name);
CREATE INDEX {t}_action ON {t} (action);
"""
COLS = "at, actor_name, source, action, cluster, namespace, name, before, after, result, message, request_id"


def rows(n, k):
    now = datetime.datetime.now(datetime.UTC)
    for i in range(n):
        ns, dep = f"ns-{i % 8}", f"svc-{(i + k) % 16}"
        before = json.dumps(
            {
                "replicas": 5,
                "containers": {
                    "app": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
                },
            }
        )
        after = json.dumps(
            {
                "replicas": 3,
                "containers": {
                    "app": {
                        "requests": {"cpu": "200m", "memory": "384Mi"},
                        "limits": {"cpu": "800m", "memory": "768Mi"},
                    }
                },
            }
        )
        yield [now, "system:webhook", "webhook", "admission.patch", "bench", ns, dep, before, after, "ok", "", ""]


def run(conn, table, batches, size):
    pid = conn.execute("select pg_backend_pid()").fetchone()[0]
    c0 = process_cpu_seconds(pid)
    for b in range(batches):
        with conn.transaction():
            with conn.cursor().copy(f"COPY {table} ({COLS}) FROM STDIN") as copy:
                for r in rows(size, b):
                    copy.write_row(r)
    return (process_cpu_seconds(pid) - c0) / (batches * size) * 1e6


with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as c:
    c.execute("DROP DATABASE IF EXISTS kubedoor_idx")
    c.execute("CREATE DATABASE kubedoor_idx")
with psycopg.connect(DSN, autocommit=True) as conn:
    for t, extra in (("full9", FULL), ("lean5", LEAN)):
        conn.execute(BASE.format(t=t) + extra.format(t=t))
    prefill = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
    for t in ("full9", "lean5"):
        run(conn, t, prefill // 1000, 1000)
    for rnd in range(8):
        for t in ("full9", "lean5"):
            us = run(conn, t, 60, 350)
            print(f"round {rnd} {t}: {us:.1f} µs backend CPU per row", flush=True)
with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as c:
    c.execute("DROP DATABASE kubedoor_idx WITH (FORCE)")

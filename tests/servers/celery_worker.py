"""A real Celery worker (optionally with embedded beat) on Redis, against the test database.

Tests that use it must commit their data (``transactional_db``) so the worker's own
database connection sees it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from urllib.parse import quote

import pytest

from tests.servers import OUTPUT, REPO, stop_process


def _database_url() -> str:
    from django.db import connection

    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    auth = quote(s["USER"] or "")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"])
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def _broker_url() -> str:
    from django.conf import settings

    url = settings.CELERY_BROKER_URL
    if not url.startswith("redis://"):
        pytest.fail("the Celery end-to-end tests need CELERY_BROKER_URL=redis://… (set by `make test`)")
    return url


def _wait_ready(process: subprocess.Popen, log_path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"celery worker exited ({process.returncode}):\n{log_path.read_text()[-4000:]}")
        if " ready." in log_path.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise TimeoutError(f"celery worker not ready after {timeout} s:\n{log_path.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def celery_worker_factory(django_db_setup, django_db_blocker) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start workers on demand: ``celery_worker_factory(beat=True, extra_env={...})``; all stop at session end.

    ``flush=False`` keeps the broker's messages: a worker restarted after another was killed picks up
    the tasks the dead one left unacknowledged. ``queues`` (comma-separated) replaces the default queue:
    a test's own queue keeps the session's other workers from taking its tasks.
    """
    started: list[subprocess.Popen] = []
    OUTPUT.mkdir(exist_ok=True)

    def start(
        *,
        beat: bool = False,
        extra_env: dict[str, str] | None = None,
        name: str = "worker",
        flush: bool = True,
        queues: str = "",
    ) -> subprocess.Popen:
        import redis

        broker = _broker_url()
        if flush:
            redis.Redis.from_url(broker).flushdb()  # no message left from an earlier run
        env = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            "CELERY_BROKER_URL": broker,
            "DJANGO_SETTINGS_MODULE": "kubedoor_site.settings",
            **(extra_env or {}),
        }
        log_path = OUTPUT / f"celery-{name}-{len(started)}.log"
        args = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "kubedoor_site",
            "worker",
            "--loglevel",
            "INFO",
            "--pool",
            "threads",
            "--concurrency",
            "4",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"{name}-{os.getpid()}-{len(started)}@%h",
        ]
        if queues:
            args += ["--queues", queues]
        if beat:
            args += ["--beat", "--schedule", str(OUTPUT / f"beat-{os.getpid()}-{len(started)}")]
        log = log_path.open("w")
        process = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        started.append(process)
        _wait_ready(process, log_path)
        return process

    yield start
    for process in started:
        stop_process(process, timeout=15)


@pytest.fixture
def celery_worker(celery_worker_factory) -> subprocess.Popen:
    """A fresh worker (no beat) for one test."""
    process = celery_worker_factory()
    yield process
    stop_process(process, timeout=15)

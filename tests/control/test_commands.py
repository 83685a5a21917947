"""Management commands: the demo data, and every migration on SQLite."""

import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import call_command

from apps.control.models import Cluster, Microservice
from tests.servers import REPO

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_demo_loads_50_services_in_5_namespaces_idempotently():
    first = run("kubedoor_demo")
    second = run("kubedoor_demo")
    cluster = Cluster.objects.get(name="demo")
    assert cluster.display_name == "Demo cluster (sample data)"
    rows = Microservice.objects.filter(cluster=cluster)
    assert rows.count() == 50
    assert sorted(set(rows.values_list("namespace", flat=True))) == ["data", "logistics", "payments", "shop", "users"]
    assert "50 microservices added" in first
    assert "0 microservices added" in second
    for row in rows:
        assert row.replicas_measured >= 1
        assert 10 <= row.request_cpu_m <= row.limit_cpu_m
        assert 16 <= row.request_mem_mib <= row.limit_mem_mib
        assert 0 < row.p95_cpu_pct <= 100
        assert row.source_day is not None


def test_migrations_run_on_sqlite_and_create_the_roles(tmp_path):
    """Smoke run of every migration on the embedded default database (SQLite)."""
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'smoke.sqlite3'}",
        "KUBEDOOR_VAR_DIR": str(tmp_path),
        "CELERY_BROKER_URL": "filesystem://",
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    check = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django.contrib.auth.models import Group; "
            "print(sorted((g.name, g.permissions.count() > 0) for g in Group.objects.all()))",
        ],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.stdout.strip().splitlines()[-1] == "[('admin', True), ('operator', True), ('viewer', True)]"
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0

"""Management commands: the first admin (no default password) and the demo data."""

import re
import subprocess
import sys
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.authtoken.models import Token

from apps.control.models import Cluster, Microservice
from tests.services import REPO

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_admin_command_generates_and_prints_a_password_once(monkeypatch):
    monkeypatch.delenv("KUBEDOOR_ADMIN_PASSWORD", raising=False)
    # when
    output = run("kubedoor_admin", "--username", "root")
    # then
    password = re.search(r"^Password: (\S+)$", output, re.M).group(1)
    assert len(password) >= 20
    user = get_user_model().objects.get(username="root")
    assert user.is_superuser
    assert user.is_staff
    assert list(user.groups.values_list("name", flat=True)) == ["admin"]
    assert authenticate(username="root", password=password) == user


def test_admin_command_takes_the_password_from_the_environment_and_prints_a_token(monkeypatch):
    monkeypatch.setenv("KUBEDOOR_ADMIN_PASSWORD", "correct-horse-battery-staple")
    output = run("kubedoor_admin", "--username", "ops", "--token")
    assert "Password:" not in output
    token = re.search(r"^API token: (\w{40})$", output, re.M).group(1)
    assert Token.objects.get(key=token).user.username == "ops"
    assert authenticate(username="ops", password="correct-horse-battery-staple") is not None
    # running it again updates the same user and keeps the token
    output = run("kubedoor_admin", "--username", "ops", "--token")
    assert f"API token: {token}" in output
    assert get_user_model().objects.filter(username="ops").count() == 1


def test_admin_command_refuses_a_weak_password(monkeypatch):
    monkeypatch.setenv("KUBEDOOR_ADMIN_PASSWORD", "admin")
    with pytest.raises(CommandError, match="too weak"):
        run("kubedoor_admin", "--username", "weak")
    assert not get_user_model().objects.filter(username="weak").exists()


def test_if_none_creates_no_second_admin(monkeypatch):
    monkeypatch.delenv("KUBEDOOR_ADMIN_PASSWORD", raising=False)
    run("kubedoor_admin", "--username", "first")
    output = run("kubedoor_admin", "--username", "second", "--if-none")
    assert "An admin exists already" in output
    assert not get_user_model().objects.filter(username="second").exists()


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
        assert row.pod_count >= 1
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

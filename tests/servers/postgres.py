"""The test suite's PostgreSQL server (DATABASE_URL), for tests that need a connection or a database of
their own beside Django's: a second session, a scratch database to migrate."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg


def server_params(dbname: str = "postgres") -> dict[str, Any]:
    """``psycopg.connect`` keywords for database ``dbname`` on the server of Django's default database."""
    from django.conf import settings

    server = settings.DATABASES["default"]
    assert server["ENGINE"] == "django.db.backends.postgresql", "these tests need PostgreSQL (DATABASE_URL)"
    return {
        "host": server["HOST"] or "127.0.0.1",
        "port": server["PORT"] or 5432,
        "user": server["USER"],
        "password": server["PASSWORD"] or None,
        "dbname": dbname,
        "autocommit": True,
        "connect_timeout": 10,
    }


def new_database(prefix: str) -> tuple[str, str]:
    """An empty database named ``prefix`` and a random suffix: its name and its URL."""
    params = server_params()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(**params) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    password = f":{params['password']}" if params["password"] else ""
    return name, f"postgres://{params['user']}{password}@{params['host']}:{params['port']}/{name}"


def drop_database(name: str) -> None:
    with psycopg.connect(**server_params()) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

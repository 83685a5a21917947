"""``CLICKHOUSE_URL`` → Django database settings (pure parsing; imported by the settings module)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

CONNECT_TIMEOUT_SECONDS = 5
QUERY_TIMEOUT_SECONDS = 120


def clickhouse_database(url: str) -> dict[str, Any]:
    """Settings for ``clickhouse://user:password@host:9000/database`` (``clickhouses://`` for TLS).

    Query-string items become driver options (e.g. ``?send_receive_timeout=300``). Timeouts are
    always set: connecting 5 s, a statement 120 s. The alias is kept out of Django's test-database
    creation and migrations (``TEST.MIGRATE`` off; the router refuses migrations).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("clickhouse", "clickhouses"):
        raise ValueError("CLICKHOUSE_URL must look like clickhouse://user:password@host:9000/database")
    options: dict[str, Any] = {
        "connections_min": 1,
        "connections_max": 16,
        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "send_receive_timeout": QUERY_TIMEOUT_SECONDS,
        "sync_request_timeout": CONNECT_TIMEOUT_SECONDS,
    }
    if parts.scheme == "clickhouses":
        options["secure"] = True
    for key, value in parse_qsl(parts.query):
        options[key] = int(value) if value.isdigit() else value
    return {
        "ENGINE": "clickhouse_backend.backend",
        "NAME": (parts.path or "/default").lstrip("/") or "default",
        "USER": unquote(parts.username or "default"),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "localhost",
        "PORT": str(parts.port or 9000),
        "OPTIONS": options,
        "ATOMIC_REQUESTS": False,
        "AUTOCOMMIT": True,
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": False,
        "TIME_ZONE": None,
        "TEST": {"NAME": None, "MIGRATE": False, "CHARSET": None, "COLLATION": None, "MIRROR": None},
    }

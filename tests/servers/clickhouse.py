"""A real ClickHouse server (Debian's 18.16) on loopback, and an in-process current ClickHouse (chdb).

The server runs from a copy of the packaged config with its own ports and data directory. Tests
get a scratch database created and dropped through the project's own connection (never through
Django's test-database machinery, which cannot run against 18.16).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.servers import OUTPUT, free_port, require_binary, stop_process, wait_for_port

PACKAGED_CONFIG = Path("/etc/clickhouse-server")


@dataclass(frozen=True)
class ClickHouseServer:
    host: str
    tcp_port: int
    http_port: int

    def url(self, database: str = "default") -> str:
        return f"clickhouse://default@{self.host}:{self.tcp_port}/{database}"


def _write_config(root: Path, *, tcp_port: int, http_port: int, inter_port: int) -> Path:
    text = (PACKAGED_CONFIG / "config.xml").read_text()
    data = root / "data"
    logs = root / "log"
    for sub in (data, logs, data / "tmp", data / "user_files", data / "format_schemas"):
        sub.mkdir(parents=True, exist_ok=True)
    replacements = {
        r"<http_port>\d+</http_port>": f"<http_port>{http_port}</http_port>",
        r"<tcp_port>\d+</tcp_port>": f"<tcp_port>{tcp_port}</tcp_port>",
        r"<interserver_http_port>\d+</interserver_http_port>": (
            f"<interserver_http_port>{inter_port}</interserver_http_port>"
        ),
        r"<path>/var/lib/clickhouse/</path>": f"<path>{data}/</path>",
        r"<tmp_path>[^<]*</tmp_path>": f"<tmp_path>{data}/tmp/</tmp_path>",
        r"<user_files_path>[^<]*</user_files_path>": f"<user_files_path>{data}/user_files/</user_files_path>",
        r"<format_schema_path>[^<]*</format_schema_path>": (
            f"<format_schema_path>{data}/format_schemas/</format_schema_path>"
        ),
        r"<log>[^<]*</log>": f"<log>{logs}/server.log</log>",
        r"<errorlog>[^<]*</errorlog>": f"<errorlog>{logs}/server.err.log</errorlog>",
        r"<listen_host>::1</listen_host>": "",
    }
    for pattern, value in replacements.items():
        text = re.sub(pattern, value, text)
    config = root / "config.xml"
    config.write_text(text)
    shutil.copy(PACKAGED_CONFIG / "users.xml", root / "users.xml")
    return config


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory) -> Iterator[ClickHouseServer]:
    """Debian's clickhouse-server 18.16 on free loopback ports for the whole session."""
    binary = require_binary("/usr/sbin/clickhouse-server")
    root = tmp_path_factory.mktemp("clickhouse")
    tcp_port, http_port, inter_port = free_port(), free_port(), free_port()
    config = _write_config(root, tcp_port=tcp_port, http_port=http_port, inter_port=inter_port)
    OUTPUT.mkdir(exist_ok=True)
    log = (OUTPUT / "clickhouse-server.out").open("w")
    process = subprocess.Popen([binary, f"--config-file={config}"], cwd=root, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(tcp_port, process=process, timeout=30)
        yield ClickHouseServer(host="127.0.0.1", tcp_port=tcp_port, http_port=http_port)
    finally:
        stop_process(process, timeout=3)  # a scratch server: no need to wait for its graceful shutdown
        log.close()


@pytest.fixture
def clickhouse_url(clickhouse_server, django_db_blocker) -> Iterator[str]:
    """A fresh scratch database on the real server; dropped after the test.

    The connection is a django-clickhouse-backend wrapper of its own (not an alias of
    ``connections``), so Django's test-database setup never touches the 18.16 server; tests using
    it still need database access enabled (``db``), which pytest-django checks for every wrapper.
    """
    from apps.metrics.clickhouse import ClickHouseDoor

    name = f"kd_test_{uuid.uuid4().hex[:12]}"
    with django_db_blocker.unblock():
        admin = ClickHouseDoor.from_url(clickhouse_server.url("default"))
        admin.execute(f"CREATE DATABASE {name}")  # a generated identifier, not client input
    try:
        yield clickhouse_server.url(name)
    finally:
        with django_db_blocker.unblock():
            admin.execute(f"DROP DATABASE IF EXISTS {name}")
            admin.close()


class ChdbExecutor:
    """Runs the store's SQL on chdb (a current ClickHouse, in-process).

    Parameters are substituted client-side with clickhouse-driver's own escaping, exactly as
    clickhouse-driver does for the server, so the very same SQL text and parameters are used.
    """

    def __init__(self, path: Path) -> None:
        from chdb import session

        self._session = session.Session(str(path))
        self._session.query("CREATE DATABASE IF NOT EXISTS kd")
        self._session.query("USE kd")

    def _render(self, sql: str, params: Mapping[str, Any] | None) -> str:
        from clickhouse_backend.driver.escape import escape_params

        if not params:
            return sql
        return sql % escape_params(params, None)

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        import json

        out = self._session.query(self._render(sql, params), "JSONCompact")
        text = out.bytes().decode() if hasattr(out, "bytes") else str(out)
        if not text.strip():
            return []
        return [tuple(row) for row in json.loads(text)["data"]]

    def insert(self, sql: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> int:
        from clickhouse_backend.driver.escape import escape_param

        if not rows:
            return 0
        values = ",".join("(" + ",".join(str(escape_param(row[col], None)) for col in columns) + ")" for row in rows)
        self._session.query(f"{sql} {values}")
        return len(rows)

    def server_version(self) -> tuple[int, ...]:
        (version,) = self.execute("SELECT version()")[0]
        return tuple(int(part) for part in version.split(".")[:2])

    def close(self) -> None:
        self._session.close()


@pytest.fixture
def chdb_executor(tmp_path) -> Iterator[ChdbExecutor]:
    executor = ChdbExecutor(tmp_path / "chdb")
    try:
        yield executor
    finally:
        executor.close()

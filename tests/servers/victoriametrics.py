"""A real VictoriaMetrics (Debian's single-node 1.79) loaded with the same generated history as Prometheus.

The history's OpenMetrics lines (tests/servers/history.py, and the fleet's pods and nodes of
tests/servers/history_pods_nodes.py) go to ``/api/v1/import/prometheus`` as Prometheus text with
millisecond timestamps, one day per request; ``/internal/force_flush`` then makes them searchable at
once. The fleet adds about half a second to the session's start.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import OUTPUT, free_port, history_pods_nodes, require_binary, start_http_server, stop_process
from tests.servers.history import History, openmetrics_day
from tests.servers.prometheus import PrometheusServer, make_fleet

IMPORT_CHUNK_LINES = 50_000


def start_victoriametrics(data_dir: Path, *, log_path: Path) -> tuple[subprocess.Popen, str]:
    binary = require_binary("victoria-metrics")
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        binary,
        f"-storageDataPath={data_dir}",
        f"-httpListenAddr=127.0.0.1:{port}",
        "-retentionPeriod=100y",
        "-search.disableCache",  # every query evaluated afresh: the same work as on a cold day
        "-loggerLevel=WARN",
    ]
    return start_http_server(
        argv,
        port=port,
        log_path=log_path,
        name="VictoriaMetrics",
        ready=lambda url: httpx.get(f"{url}/health", timeout=1).text.strip() == "OK",
    )


def prometheus_text(lines: Iterable[str]) -> Iterator[bytes]:
    """OpenMetrics sample lines (seconds) as Prometheus text (milliseconds), in chunks of whole lines."""
    chunk: list[str] = []
    for line in lines:
        if line.startswith("#"):
            continue
        head, ts = line.rsplit(" ", 1)
        chunk.append(f"{head} {ts}000\n")
        if len(chunk) >= IMPORT_CHUNK_LINES:
            yield "".join(chunk).encode()
            chunk = []
    if chunk:
        yield "".join(chunk).encode()


def import_lines(url: str, lines: Iterable[str]) -> None:
    with httpx.Client(timeout=httpx.Timeout(600.0, connect=5.0)) as client:
        response = client.post(f"{url}/api/v1/import/prometheus", content=prometheus_text(lines))
        response.raise_for_status()


def flush(url: str) -> None:
    httpx.get(f"{url}/internal/force_flush", timeout=60).raise_for_status()


def import_history(url: str, history: History) -> None:
    """Every day of ``history`` into VictoriaMetrics, then flushed so queries see it."""
    for day in history.days:
        import_lines(url, openmetrics_day(history, day))
    flush(url)


def import_fleet(url: str, fleet: history_pods_nodes.FleetHistory) -> None:
    """Every day of the pods and nodes of the cluster "fleet", then flushed so queries see it."""
    for day in fleet.days:
        import_lines(url, history_pods_nodes.openmetrics_day(fleet, day))
    flush(url)


@pytest.fixture(scope="session")
def victoriametrics_server(tmp_path_factory, generated_histories) -> Iterator[PrometheusServer]:
    """VictoriaMetrics with the same generated days as ``prometheus_server``, the fleet's pods and nodes too."""
    root = tmp_path_factory.mktemp("victoriametrics")
    OUTPUT.mkdir(exist_ok=True)
    process, url = start_victoriametrics(root / "data", log_path=OUTPUT / "victoriametrics.log")
    try:
        prod, stage = generated_histories
        fleet = make_fleet(prod)
        import_history(url, prod)
        import_history(url, stage)
        import_fleet(url, fleet)
        yield PrometheusServer(url=url, prod=prod, stage=stage, fleet=fleet, backend="victoriametrics")
    finally:
        stop_process(process)

"""A real Prometheus (Debian's 2.42) loaded with generated history (tests/servers/history.py)."""

from __future__ import annotations

import dataclasses
import datetime
import subprocess
import zoneinfo
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import OUTPUT, free_port, history_pods_nodes, require_binary, start_http_server, stop_process
from tests.servers.history import Container, Deployment, History, build_tsdb, write_openmetrics

CLUSTER_LABEL = "k8s_cluster"
TIME_ZONE = "Asia/Shanghai"
WINDOW = (datetime.time(10, 0), datetime.time(11, 30))


def _c(name, cpu_base, cpu_peak, mem_base, mem_peak, req=(100, 128), lim=(1000, 1024)) -> Container:
    return Container(
        name=name,
        cpu_base=cpu_base,
        cpu_peak=cpu_peak,
        mem_base=mem_base,
        mem_peak=mem_peak,
        request_cpu_m=req[0],
        request_mem_mib=req[1],
        limit_cpu_m=lim[0],
        limit_mem_mib=lim[1],
    )


PROD_DEPLOYMENTS = (
    # app + sidecar, 3 pods and a 4th (surge) pod for minutes 5-25 of the window
    Deployment(
        "shop",
        "cart",
        3,
        (
            _c("cart", 0.10, 0.40, 200, 300, req=(250, 256), lim=(1000, 512)),
            _c("istio-proxy", 0.02, 0.05, 40, 60, req=(50, 64), lim=(200, 128)),
        ),
        surge=(5, 25),
    ),
    Deployment("shop", "web", 1, (_c("web", 0.05, 0.12, 100, 150, req=(100, 128), lim=(500, 256)),)),
    # five pods replaced by a rollout inside the peak window that raises the CPU limit (the pods' limits differ)
    Deployment(
        "shop",
        "search",
        5,
        (
            dataclasses.replace(
                _c("search", 0.2, 0.6, 500, 700, req=(500, 512), lim=(2000, 1024)), rollout_limit_cpu_m=2500
            ),
        ),
        rollout_minute=70,
    ),
    # no limits at all
    Deployment("pay", "api", 2, (_c("api", 0.08, 0.3, 256, 320, req=(200, 256), lim=(None, None)),)),
    # pods that do not follow <deployment>-<hash>-<suffix>: mapped through kube_pod_owner only
    Deployment(
        "pay",
        "queue-consumer",
        2,
        (_c("consumer", 0.03, 0.09, 64, 80, req=(50, 64), lim=(500, 256)),),
        pod_names=("worker-a", "worker-b"),
    ),
    # no owner series: mapped by the pod-name pattern
    Deployment(
        "ops", "legacy", 4, (_c("legacy", 0.01, 0.02, 30, 33, req=(10, 32), lim=(100, 64)),), owner_series=False
    ),
    # two containers, neither named like the Deployment
    Deployment(
        "ops",
        "batch",
        1,
        (
            _c("worker", 0.1, 0.3, 100, 120, req=(100, 128), lim=(1000, 512)),
            _c("log-shipper", 0.01, 0.05, 20, 25, req=(10, 32), lim=(100, 64)),
        ),
    ),
    # an excluded namespace: never collected
    Deployment("kube-system", "coredns", 2, (_c("coredns", 0.01, 0.02, 20, 22),)),
)
# Another cluster in the same Prometheus, told apart by the external label only.
STAGE_DEPLOYMENTS = (
    Deployment("shop", "cart", 1, (_c("cart", 0.5, 0.9, 400, 450),)),
    # a pod named like one of cart's (<deployment>-<hash>-<suffix>) that another Deployment owns: its
    # figures must stay out of cart's, whose name it bears
    Deployment("shop", "cart-canary", 1, (_c("cart", 0.05, 0.1, 100, 120),), pod_names=("cart-5f6d7c8b9-bcdfg",)),
)


def history_days(today: datetime.date | None = None) -> tuple[datetime.date, ...]:
    """Three days before "today" in the clusters' time zone: a run of the last N days counts back from
    the cluster's own date, which is a day ahead of UTC's from 16:00 UTC on."""
    today = today or datetime.datetime.now(zoneinfo.ZoneInfo(TIME_ZONE)).date()
    return tuple(today - datetime.timedelta(days=n) for n in (4, 3, 2))


@dataclasses.dataclass(frozen=True)
class PrometheusServer:
    """A metrics backend holding the generated histories (Prometheus, or VictoriaMetrics: ``backend``)."""

    url: str
    prod: History
    stage: History
    fleet: history_pods_nodes.FleetHistory | None = None  # the pods and nodes of the cluster "fleet"
    backend: str = "prometheus"

    @property
    def days(self) -> tuple[datetime.date, ...]:
        return self.prod.days


def make_histories(days: tuple[datetime.date, ...]) -> tuple[History, History]:
    factors = {days[0]: 1.0, days[1]: 2.0, days[2]: 1.25}  # the second day peaks clearly higher
    prod = History((CLUSTER_LABEL, "prod"), TIME_ZONE, days, WINDOW, PROD_DEPLOYMENTS, factors)
    stage = History((CLUSTER_LABEL, "stage"), TIME_ZONE, days, WINDOW, STAGE_DEPLOYMENTS, {})
    return prod, stage


def make_fleet(prod: History) -> history_pods_nodes.FleetHistory:
    """The pods and nodes of the cluster "fleet" on prod's days and day factors: every backend loads this one."""
    return history_pods_nodes.FleetHistory(TIME_ZONE, prod.days, WINDOW, dict(prod.day_factor))


def start_prometheus(data_dir: Path, *, log_path: Path) -> tuple[subprocess.Popen, str]:
    binary = require_binary("prometheus")
    port = free_port()
    config = data_dir.parent / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\nscrape_configs: []\n")
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir}",
        "--storage.tsdb.retention.time=100y",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    return start_http_server(
        argv,
        port=port,
        log_path=log_path,
        name="Prometheus",
        ready=lambda url: httpx.get(f"{url}/-/ready", timeout=1).status_code == 200,
    )


@pytest.fixture(scope="session")
def generated_histories() -> tuple[History, History]:
    """Three generated days for the clusters "prod" and "stage" (the same for every backend of the session)."""
    return make_histories(history_days())


@pytest.fixture(scope="session")
def prometheus_server(tmp_path_factory, generated_histories) -> Iterator[PrometheusServer]:
    """Prometheus with three generated days for the clusters "prod" and "stage"."""
    promtool = require_binary("promtool")
    root = tmp_path_factory.mktemp("prometheus")
    prod, stage = generated_histories
    files = write_openmetrics(prod, root / "openmetrics") + write_openmetrics(stage, root / "openmetrics")
    fleet = make_fleet(prod)
    files += history_pods_nodes.write_openmetrics(fleet, root / "openmetrics")
    build_tsdb(files, root / "data", promtool=promtool)
    OUTPUT.mkdir(exist_ok=True)
    process, url = start_prometheus(root / "data", log_path=OUTPUT / "prometheus.log")
    try:
        yield PrometheusServer(url=url, prod=prod, stage=stage, fleet=fleet)
    finally:
        stop_process(process)

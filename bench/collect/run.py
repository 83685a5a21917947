"""Benchmark: collection of 1 000 Deployments × 30 days from a real Prometheus (DESIGN §14: ≤ 60 s) and VictoriaMetrics.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/kubedoor_bench python bench/collect/run.py

Generates the history with the tests' own generator (tests/servers/history.py: OpenMetrics, one
file per day, ``promtool tsdb create-blocks-from openmetrics``) into ``--data`` (kept and reused on
the next run with the same parameters), starts Debian's Prometheus on it, and times
``manage.py collect_peaks --days 30`` in a child process: wall time and the child's peak RSS, at the
default concurrency and at concurrency 1, and a 10-day run to show memory does not grow with days.
With ``--backends prometheus,victoriametrics`` the same history is also imported into Debian's
VictoriaMetrics and every run is repeated there (a cluster with ``metrics_backend=victoriametrics``);
the backend's resident memory during each run is sampled and its peak printed.
Daily peaks go to the configured store (the default database unless CLICKHOUSE_URL is set).

With ``--feedback`` (the default) every pod also has the safety-feedback series of issue 11, written
the way tests/servers/history_feedback.py writes them (``container_oom_events_total``,
``container_cpu_cfs_periods_total``, ``container_cpu_cfs_throttled_periods_total``; ``feedback_spec``:
a few containers OOM-killed, some throttled), in the same day's file, so the collection's two feedback
queries read what production gives them. ``--feedback-queries on,off`` times each run with the code as
it is (``on``) and with the feedback queries switched off in the child (``off``: bench/collect/no_feedback.py,
``promql.FEEDBACK_STATISTICS = ()``, nothing else changed), alternated (``--repeat`` rounds, the order
reversed every other round) so both meet the same load.

``--pods-nodes on,off`` times each run with the cluster's pod and node figures collected (``on``, the
default: six more queries a day) and left out (``off``: ``Cluster.collect_pods_nodes``), alternated like
the feedback queries, so the pod/node statistics' extra cost is measured under the same load; queued
runs follow the first of them.

``--workers 1,2`` also times the same collection queued to N Celery worker processes (per-day chunks,
``apps/metrics/collection_chunks.py``; needs ``CELERY_BROKER_URL=redis://…``): from the start to the
run done, and each worker's peak RSS. ``--runs ''`` skips the one-process runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kubedoor_site.settings")

from tests.servers.history import Container, Deployment, History, build_tsdb, openmetrics_day  # noqa: E402
from tests.servers.prometheus import start_prometheus  # noqa: E402

try:  # the code before issue 11 had no safety-feedback history
    from tests.servers.history_feedback import FeedbackSpec, openmetrics_feedback_day  # noqa: E402
except ImportError:  # pragma: no cover
    FeedbackSpec = None  # type: ignore[assignment,misc]

try:  # the code before issue 14 had no VictoriaMetrics service
    from tests.servers.victoriametrics import flush, import_lines, start_victoriametrics  # noqa: E402
except ImportError:  # pragma: no cover
    start_victoriametrics = None  # type: ignore[assignment]

CLUSTER = "bench-collect"


def deployments(count: int) -> tuple[Deployment, ...]:
    result = []
    for i in range(count):
        cpu = 0.05 + (i % 17) * 0.03
        mem = 100 + (i % 23) * 20
        container = Container(f"app-{i}", cpu, cpu * 3, mem, mem * 1.4, 100, 128, 2000, 2048)
        result.append(Deployment(f"ns-{i % 20}", f"app-{i}", 1 + i % 2, (container,)))
    return tuple(result)


def feedback_spec(history: History) -> FeedbackSpec:
    """The safety feedback of the bench history: a few containers OOM-killed, some throttled.

    Every 100th Deployment (10 of 1 000) has one OOM kill on every fourth day, shifted per Deployment
    (≈ 2.5 kills a day over the fleet); every 8th (125 of 1 000) is throttled every day, 2–30 % of its
    CFS periods, varying by day. Every other container has the three counters too, at 0 kills and
    0 throttled periods, as cAdvisor reports them.
    """
    oom_kills: dict[tuple[str, str, str, datetime.date], int] = {}
    throttled: dict[tuple[str, str, str, datetime.date], float] = {}
    for i, dep in enumerate(history.deployments):
        for container in dep.containers:
            for n, day in enumerate(history.days):
                key = (dep.namespace, dep.name, container.name, day)
                if i % 100 == 0 and (n + i // 100) % 4 == 0:
                    oom_kills[key] = 1
                if i % 8 == 3:
                    throttled[key] = round(0.02 + (i // 8 + n) % 15 * 0.02, 2)
    return FeedbackSpec(oom_kills=oom_kills, throttled=throttled)


def day_lines(history: History, spec: FeedbackSpec | None, day: datetime.date) -> Iterator[str]:
    """One day's OpenMetrics lines: the usage history, then (with ``spec``) the feedback families."""
    if spec is None:
        yield from openmetrics_day(history, day)
        return
    yield from (line for line in openmetrics_day(history, day) if line != "# EOF")
    yield from openmetrics_feedback_day(history, spec, day)


def plan(days: int, data: Path) -> tuple[tuple[datetime.date, ...], tuple[datetime.time, datetime.time]]:
    """Days ending today with a 90-minute window that has already ended (UTC); an earlier build of
    today is reused when it fits."""
    now = datetime.datetime.now(datetime.UTC)
    marker = data / "kubedoor-bench.json"
    if marker.exists():
        spec = json.loads(marker.read_text())
        built = tuple(datetime.date.fromisoformat(d) for d in spec["days"])
        window = tuple(datetime.time.fromisoformat(t) for t in spec["window"])
        if len(built) == days and built[-1] == now.date() and window[1] < now.time():
            return built, (window[0], window[1])
    end = (now - datetime.timedelta(minutes=30)).replace(second=0, microsecond=0)
    end = end.replace(minute=end.minute - end.minute % 30)
    start = end - datetime.timedelta(minutes=90)
    if start.date() != now.date() or end.date() != now.date():
        raise SystemExit("run the benchmark after 02:30 UTC (the window must end today, after midnight)")
    today = now.date()
    return tuple(today - datetime.timedelta(days=n) for n in range(days - 1, -1, -1)), (start.time(), end.time())


def build(history: History, data: Path, *, feedback: FeedbackSpec | None = None, parallel: int = 2) -> float:
    marker = data / "kubedoor-bench.json"
    spec = {
        "days": [d.isoformat() for d in history.days],
        "window": [t.isoformat() for t in history.window],
        "deployments": len(history.deployments),
        "feedback": feedback is not None,
    }
    if marker.exists() and json.loads(marker.read_text()) == spec:
        print(f"history: reusing {data}")
        return 0.0
    shutil.rmtree(data, ignore_errors=True)
    (data / "tsdb").mkdir(parents=True)
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="kd-om-"))

    def one(day: datetime.date) -> None:
        path = scratch / f"{day.isoformat()}.om"
        with path.open("w") as out:
            out.writelines(line + "\n" for line in day_lines(history, feedback, day))
        build_tsdb([path], data / "tsdb", parallel=1)
        path.unlink()

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(one, history.days))
    shutil.rmtree(scratch, ignore_errors=True)
    marker.write_text(json.dumps(spec))
    elapsed = time.perf_counter() - started
    extra = " with the safety-feedback series" if feedback is not None else ""
    print(f"history: {len(history.deployments)} Deployments × {len(history.days)} days{extra} built in {elapsed:.0f} s")
    return elapsed


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (/proc/<pid>/stat), NaN once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class BackendMemory:
    """The peak resident memory (MiB) of a backend process while a run goes, sampled every 0.2 s, and the
    CPU seconds it used meanwhile (``cpu``)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self.cpu = float("nan")
        self._cpu_start = float("nan")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            try:
                status = Path(f"/proc/{self.pid}/status").read_text()
            except OSError:
                return
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    self.peak = max(self.peak, int(line.split()[1]) / 1024)

    def __enter__(self) -> BackendMemory:
        self._cpu_start = cpu_seconds(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.cpu = cpu_seconds(self.pid) - self._cpu_start


def load_victoriametrics(
    history: History, data: Path, *, feedback: FeedbackSpec | None = None, parallel: int = 2
) -> tuple[subprocess.Popen, str]:
    """Start VictoriaMetrics on a scratch directory and import the history (two days at a time)."""
    if start_victoriametrics is None:
        raise SystemExit("this tree has no tests/servers/victoriametrics.py")
    vm_dir = data / "victoriametrics"
    marker = vm_dir / "kubedoor-bench.json"
    spec = (data / "kubedoor-bench.json").read_text()
    if marker.exists() and marker.read_text() == spec:
        print(f"victoriametrics: reusing {vm_dir}")
        return start_victoriametrics(vm_dir / "data", log_path=data / "victoriametrics.log")
    shutil.rmtree(vm_dir, ignore_errors=True)
    process, url = start_victoriametrics(vm_dir / "data", log_path=data / "victoriametrics.log")
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(lambda day: import_lines(url, day_lines(history, feedback, day)), history.days))
    flush(url)
    time.sleep(2)
    marker.write_text(spec)
    print(f"victoriametrics: {len(history.days)} days imported in {time.perf_counter() - started:.0f} s")
    return process, url


# What the image sets for every process (deploy/Dockerfile), unless the caller's environment says otherwise.
IMAGE_ENV = {"MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2")}
LAST_CPU: list[float] = []  # the CPU seconds (user + system) of the last ``measured`` command


def measured(args: list[str]) -> tuple[float, float, str]:
    """Run a command in a child; wall seconds, the child's peak RSS (MiB), its output (its CPU: ``LAST_CPU``)."""
    wrapper = (
        "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
        "sys.stdout.write(r.stdout + r.stderr[-2000:]); u = resource.getrusage(resource.RUSAGE_CHILDREN);"
        "print('MAXRSS', u.ru_maxrss, u.ru_utime + u.ru_stime); sys.exit(r.returncode)"
    )
    started = time.perf_counter()
    env = {**os.environ, **IMAGE_ENV}
    result = subprocess.run([sys.executable, "-c", wrapper, *args], capture_output=True, text=True, cwd=REPO, env=env)
    elapsed = time.perf_counter() - started
    lines = result.stdout.strip().splitlines()
    last = lines[-1].split() if lines and lines[-1].startswith("MAXRSS") else ["MAXRSS", "nan", "nan"]
    rss = float(last[1]) / 1024
    LAST_CPU[:] = [float(last[2])]
    if result.returncode != 0:
        raise SystemExit(f"command failed: {' '.join(args)}\n{result.stdout}\n{result.stderr}")
    return elapsed, rss, "\n".join(lines[:-1])


def worker_start(index: int, *, queue: str, slots: int, threads: int, log_dir: Path) -> subprocess.Popen:
    """A Celery worker process consuming only the bench's queue."""
    env = {
        **os.environ,
        "KUBEDOOR_COLLECTION_QUEUE": queue,
        "KUBEDOOR_COLLECTION_BACKEND_SLOTS": str(slots),
        "KUBEDOOR_LOG_LEVEL": "WARNING",
        **IMAGE_ENV,
    }
    log = (log_dir / f"worker-{index}.log").open("w")
    args = [sys.executable, "-m", "celery", "-A", "kubedoor_site", "worker", "--pool", "threads"]
    args += ["--concurrency", str(threads), "--queues", queue, "--without-gossip", "--without-mingle"]
    args += ["--without-heartbeat", "-n", f"bench-{index}-{os.getpid()}@%h", "--loglevel", "WARNING"]
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def queued_run(cluster_name: str, *, days: int, workers: int, slots: int, threads: int, log_dir: Path) -> None:
    """Time a collection queued to ``workers`` worker processes, from the start to the run done."""
    from django.conf import settings

    from apps.audit.services import Actor
    from apps.control.models import Cluster
    from apps.metrics import services

    queue = f"bench-collect-{os.getpid()}"
    settings.KUBEDOOR_COLLECTION_QUEUE = queue
    processes = [worker_start(i, queue=queue, slots=slots, threads=threads, log_dir=log_dir) for i in range(workers)]
    try:
        time.sleep(8)  # the workers connect (a worker that is late only takes fewer chunks)
        load = os.getloadavg()[0]
        cluster = Cluster.objects.get(name=cluster_name)
        started = time.perf_counter()
        run = services.collection_start(cluster=cluster, days=days, actor=Actor.system("bench"))
        while run.state not in ("done", "failed"):
            time.sleep(0.5)
            run.refresh_from_db()
        elapsed = time.perf_counter() - started
        rss = [peak_rss_mib(p.pid) for p in processes]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)
    print(
        f"queued --days {days} on {workers} worker process(es) × {threads} threads, {slots} backend slots:"
        f" {elapsed:.1f} s wall, {run.state}, {run.rows_written} rows, peak RSS per worker"
        f" {', '.join(f'{r:.0f}' for r in rss)} MiB, load {load:.1f}"
    )
    if run.state != "done":
        print(f"    errors: {run.errors}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--data", default=str(Path(tempfile.gettempdir()) / "kubedoor-bench-collect"))
    parser.add_argument(
        "--runs",
        default="4:30,1:30,4:10",
        help="concurrency:days of each measured run (default: 30 days at 4 and at 1, then 10 days at 4)",
    )
    parser.add_argument("--backends", default="prometheus,victoriametrics")
    parser.add_argument("--workers", default="", help="worker process counts of queued runs, e.g. 1,2 (Redis broker)")
    parser.add_argument("--slots", type=int, default=2, help="backend slots (chunks querying Prometheus at once)")
    parser.add_argument("--threads", type=int, default=2, help="threads per worker process")
    parser.add_argument(
        "--feedback",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write the safety-feedback series (OOM events, CFS periods) beside the usage history",
    )
    parser.add_argument(
        "--feedback-queries",
        default="on",
        help="on: the code as it is; off: the feedback queries switched off in the child; on,off: both, alternated",
    )
    parser.add_argument(
        "--pods-nodes",
        default="on",
        help="on: the cluster collects pod and node figures; off: it leaves them out; on,off: both, alternated",
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds of each run (with several modes)")
    parser.add_argument("--warmup", action="store_true", help="one uncounted run on each backend before the others")
    args = parser.parse_args()

    if args.feedback and FeedbackSpec is None:
        raise SystemExit("this tree has no tests/servers/history_feedback.py: run with --no-feedback")
    modes = [mode for mode in args.feedback_queries.split(",") if mode]
    if not modes or set(modes) - {"on", "off"}:
        raise SystemExit("--feedback-queries takes on, off or on,off")
    pods_nodes = [mode for mode in args.pods_nodes.split(",") if mode]
    if not pods_nodes or set(pods_nodes) - {"on", "off"}:
        raise SystemExit("--pods-nodes takes on, off or on,off")
    days, window = plan(args.days, Path(args.data))
    history = History(("k8s_cluster", CLUSTER), "UTC", days, window, deployments(args.deployments), margin_minutes=3)
    spec = feedback_spec(history) if args.feedback else None
    if spec is not None:
        print(
            f"safety feedback: {len(spec.oom_kills)} OOM kills over {len(days)} days,"
            f" {len(spec.throttled)} throttled container-days"
        )
    data = Path(args.data)
    build(history, data, feedback=spec)

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    runs = [(f"concurrency {c}", int(d), int(c)) for c, d in (item.split(":") for item in args.runs.split(",") if item)]
    for backend in args.backends.split(","):
        if backend == "prometheus":
            process, url = start_prometheus(data / "tsdb", log_path=data / "prometheus.log")
        else:
            process, url = load_victoriametrics(history, data, feedback=spec)
        try:
            name = measure_backend(
                backend,
                url,
                process.pid,
                window,
                runs,
                days=args.days,
                modes=modes,
                pods_nodes=pods_nodes,
                repeat=args.repeat,
                warmup=args.warmup,
            )
            for workers in (int(n) for n in args.workers.split(",") if n):
                queued_run(name, days=args.days, workers=workers, slots=args.slots, threads=args.threads, log_dir=data)
        finally:
            process.terminate()
            process.wait(timeout=20)


def measure_backend(
    backend: str,
    url: str,
    pid: int,
    window: tuple[datetime.time, datetime.time],
    runs: list,
    *,
    days: int,
    modes: list[str] | None = None,
    pods_nodes: list[str] | None = None,
    repeat: int = 1,
    warmup: bool = False,
) -> str:
    """Register the bench cluster on ``backend``, time the one-process runs, and return the cluster's name.

    ``modes``: ``on`` runs ``manage.py collect_peaks``, ``off`` the same command with the safety-feedback
    queries switched off (bench/collect/no_feedback.py); ``pods_nodes``: ``on``/``off`` for the cluster's
    ``collect_pods_nodes``; every combination is a mode. Each run is repeated ``repeat`` times, the
    modes alternated and their order reversed every other round (on, off, off, on, …). The cluster is
    left with the first ``pods_nodes`` setting (queued runs use it).
    """
    from apps.control.models import Cluster

    feedback_modes = modes or ["on"]
    pods_modes = pods_nodes or ["on"]
    modes = [f"{f}/{p}" for f in feedback_modes for p in pods_modes]
    name = CLUSTER if backend == "prometheus" else f"{CLUSTER}-vm"
    Cluster.objects.filter(name=name).delete()
    options = {"metrics_backend": backend} if hasattr(Cluster, "metrics_backend") else {}
    Cluster.objects.create(
        name=name,
        prometheus_url=url,
        prometheus_label_key="k8s_cluster",
        prometheus_label_value=CLUSTER,
        time_zone="UTC",
        peak_start=window[0],
        peak_end=window[1],
        lookback_days=10,
        **options,
    )
    arguments = ["collect_peaks", "--cluster", name, "--no-progress"]
    commands = {
        "on": [sys.executable, "manage.py", *arguments],
        "off": [sys.executable, str(Path(__file__).with_name("no_feedback.py")), *arguments],
    }
    has_switch = hasattr(Cluster, "collect_pods_nodes")
    if pods_modes != ["on"] and not has_switch:
        raise SystemExit("this tree has no Cluster.collect_pods_nodes: run with --pods-nodes on")

    def command(mode: str) -> list[str]:
        feedback, pods = mode.split("/")
        if has_switch:
            Cluster.objects.filter(name=name).update(collect_pods_nodes=pods == "on")
        return commands[feedback]

    def described(mode: str) -> str:
        feedback, pods = mode.split("/")
        parts = [] if feedback_modes == ["on"] else [f"feedback queries {feedback}"]
        parts += [] if pods_modes == ["on"] else [f"pods and nodes {pods}"]
        return ", ".join(parts)

    figures = []
    for label, n_days, concurrency in runs:
        if warmup:
            load = os.getloadavg()[0]
            elapsed, rss, _ = measured([*command(modes[0]), "--days", str(n_days), "--concurrency", str(concurrency)])
            print(
                f"{backend}: warm-up collect_peaks --days {n_days} ({label}, {described(modes[0]) or 'as is'},"
                " not counted):"
                f" {elapsed:.1f} s wall, peak RSS {rss:.0f} MiB, load {load:.1f}",
                flush=True,
            )
        for round_ in range(repeat):
            for mode in modes if round_ % 2 == 0 else modes[::-1]:
                load = os.getloadavg()[0]
                with BackendMemory(pid) as memory:
                    elapsed, rss, output = measured(
                        [*command(mode), "--days", str(n_days), "--concurrency", str(concurrency)]
                    )
                figures.append((label, n_days, mode, elapsed, rss))
                feedback = f", {described(mode)}" if described(mode) else ""
                print(
                    f"{backend}: collect_peaks --days {n_days} ({label}{feedback}): {elapsed:.1f} s wall,"
                    f" peak RSS {rss:.0f} MiB, {backend} peak RSS {memory.peak:.0f} MiB, load {load:.1f};"
                    f" CPU: collect_peaks {LAST_CPU[0]:.1f} s, {backend} {memory.cpu:.1f} s",
                    flush=True,
                )
                print(f"    {output.splitlines()[-1] if output else ''}", flush=True)
    if len(modes) > 1:
        for label, n_days, _ in runs:
            parts = []
            for mode in modes:
                walls = sorted(f[3] for f in figures if f[:3] == (label, n_days, mode))
                rsses = [f[4] for f in figures if f[:3] == (label, n_days, mode)]
                parts.append(
                    f"{described(mode)}: wall {', '.join(f'{w:.1f}' for w in walls)} s,"
                    f" peak RSS max {max(rsses):.0f} MiB"
                )
            print(f"{backend}: --days {n_days} ({label}): " + "; ".join(parts))
    command(modes[0])  # queued runs collect as the first mode does
    by_label = {(label, n_days): elapsed for label, n_days, mode, elapsed, _ in figures if mode == modes[0]}
    if ("concurrency 4", days) in by_label and ("concurrency 1", days) in by_label:
        ratio = by_label[("concurrency 1", days)] / by_label[("concurrency 4", days)]
        print(f"{backend}: concurrency 4 vs 1: {ratio:.2f}× faster")
    return name


if __name__ == "__main__":
    main()

"""Benchmark of the admission webhook process against a bare-WSGI floor (DESIGN §14).

    .venv/bin/python bench/webhook/run.py            # full run: 5 s warm-up + 4 rounds × 5 s per level and target
    .venv/bin/python bench/webhook/run.py --quick    # 2 s warm-up + 2 rounds × 3 s per level and target
    .venv/bin/python bench/webhook/run.py --connections 16 --rounds 8 --seconds 80   # 8 rounds × 10 s

Needs DATABASE_URL (PostgreSQL; the script migrates it and writes a cluster named "bench" with 128
control rows) and Debian's ``wrk``. Every target runs under gunicorn with the webhook's own config
(apps/webhook/gunicorn_conf.py) and the same worker settings, on loopback:

- ``floor``: bench/webhook/floor.py, a bare WSGI callable that parses the body and returns a fixed patch;
- ``webhook``: the real webhook process (apps.webhook.wsgi): the DRF view AdmissionReviewView under
  Django's handler, answering from its snapshot;
- ``webhook-db-down``: the same, reaching PostgreSQL through a TCP proxy that is cut after warm-up,
  so the database is unreachable while it is measured (PostgreSQL itself keeps running);
- ``floor-tls`` / ``webhook-tls``: both over TLS (a trustme certificate) with keep-alive.

A target may name another gunicorn worker class after a slash (``floor/gthread``, ``webhook/gthread``:
gunicorn's own worker; ``webhook-db-down/apps.webhook.worker.InlineWorker``) and another checkout after an
at sign (``webhook@/path/to/checkout``), so that either is measured in the same rounds; such a target is
compared with ``floor/<class>`` where the run has it, else with ``floor``.

The load is wrk with bench/webhook/reviews.lua: ≈10 KB UPDATE reviews that change the image, rotating
over 8 namespaces × 16 Deployments in kubectl, Helm and Argo CD shapes, plus CREATE and scale reviews.
Every answer is checked (HTTP 200, allowed, a JSONPatch); each body is built so the webhook patches it.
At each load level the targets take turns in rounds (4 × 5 s): requests add up over the rounds, p50 and
p99 are the medians of the rounds', max is the overall max. Every round is printed too, with each
gunicorn worker's share of the reviews it answered in that round (webhook: the per-process counter
files of PROMETHEUS_MULTIPROC_DIR; floor: the 8-byte counters of floor.py) and the workers' CPU time per
review (user + system time of the master's children, all their threads, from /proc, around the round),
and the database-stopped round beside the normal one of the same round. Results print as Markdown for
bench/README.md. bench/webhook/cpu.py breaks a review's CPU down in-process, without HTTP.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import selectors
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

from tests.webhook.reviews.make_reviews import (  # noqa: E402
    ARGO,
    HELM,
    KUBECTL,
    container,
    deployment,
    review,
    scale,
    with_status,
)

NAMESPACES = [f"team-{i}" for i in range(8)]
NAMES = [f"svc-{i:02d}" for i in range(16)]
OLD_RES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


# --- data ------------------------------------------------------------------------------------------


# The bench cluster and its rows: every Deployment is controlled and every review gets a patch.
CLUSTER_FIELDS = {"admission_mode": "enforce", "excluded_namespaces": ["kube-system", "kubedoor"]}
ROW_FIELDS = {
    "replicas_measured": 4,
    "replicas_specified": 3,
    "request_cpu_m": 250,
    "request_mem_mib": 256,
    "limit_cpu_m": 1000,
    "limit_mem_mib": 1024,
}


def bench_microservices(cluster: Any) -> list[Any]:
    """The control rows of the bench cluster, one per namespace and name (Django set up first)."""
    from apps.control.models import Microservice

    return [
        Microservice(cluster=cluster, namespace=namespace, name=name, **ROW_FIELDS)
        for namespace in NAMESPACES
        for name in NAMES
    ]


def seed_database() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kubedoor_site.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import OperationalError

    from apps.control.models import Cluster, Microservice

    try:
        call_command("migrate", verbosity=0)
    except OperationalError as exc:
        sys.exit(f"cannot migrate DATABASE_URL's database (create it first, e.g. createdb): {exc}")
    cluster, _ = Cluster.objects.update_or_create(name="bench", defaults=CLUSTER_FIELDS)
    Microservice.objects.filter(cluster=cluster).delete()
    Microservice.objects.bulk_create(bench_microservices(cluster))
    from django.db import connections

    connections.close_all()


def write_bodies(folder: Path) -> Path:
    """The request bodies (one file each) and the list wrk reads; every one of them gets a patch."""
    rng = random.Random(42)
    files: list[Path] = []
    styles = [("kubectl", KUBECTL), ("helm", HELM), ("argocd", ARGO)]
    n = 0
    for namespace in NAMESPACES:
        for name in NAMES:
            style, user = styles[n % 3]
            containers_new = [
                container(name, f"registry.example.com/{namespace}/{name}:2.{n}.1", resources=OLD_RES, env=14),
                container("log-shipper", "fluent/fluent-bit:3.1", resources=OLD_RES, port=2020, env=4),
            ]
            containers_old = json.loads(json.dumps(containers_new))
            containers_old[0]["image"] = f"registry.example.com/{namespace}/{name}:2.{n}.0"
            new = deployment(name, namespace, containers_new, style=style, replicas=3)
            old = with_status(deployment(name, namespace, containers_old, style=style, replicas=3))
            bodies = [review("UPDATE", new, old=old, uid=f"u-{n:04d}", user=user)]
            if n % 8 == 0:
                create = deployment(name, namespace, json.loads(json.dumps(containers_old)), style=style, replicas=2)
                bodies.append(review("CREATE", create, uid=f"c-{n:04d}", user=user))
            if n % 8 == 4:
                wanted = rng.choice([1, 2, 5, 8])
                bodies.append(
                    review(
                        "UPDATE",
                        scale(name, namespace, wanted, status_replicas=3),
                        old=scale(name, namespace, 3, status_replicas=3),
                        uid=f"s-{n:04d}",
                        # kubectl, not the HPA controller: the webhook lets the HPA's scale writes through
                        # unchanged, and every body here must be one it patches.
                        user=KUBECTL,
                        sub_resource="scale",
                    )
                )
            for body in bodies:
                path = folder / f"body-{len(files):04d}.json"
                path.write_text(json.dumps(body, separators=(",", ":")))
                files.append(path)
            n += 1
    rng.shuffle(files)
    listing = folder / "bodies.txt"
    listing.write_text("".join(f"{p}\n" for p in files))
    return listing


# --- a TCP proxy to PostgreSQL that can be cut -------------------------------------------------------


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to PostgreSQL until ``cut()``: then every connection is reset and new
    ones are refused, which is what the webhook sees when the database host goes away."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.selector = selectors.DefaultSelector()
        self.pairs: dict[socket.socket, socket.socket] = {}
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.listener.setblocking(False)
        self.selector.register(self.listener, selectors.EVENT_READ)
        while self.running:
            for key, _ in self.selector.select(timeout=0.2):
                sock = key.fileobj
                if sock is self.listener:
                    client, _ = self.listener.accept()
                    upstream = socket.create_connection(self.target)
                    self.pairs[client], self.pairs[upstream] = upstream, client
                    self.selector.register(client, selectors.EVENT_READ)
                    self.selector.register(upstream, selectors.EVENT_READ)
                    continue
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                peer = self.pairs.get(sock)
                if not data or peer is None:
                    self._close(sock)
                    continue
                try:
                    peer.sendall(data)
                except OSError:
                    self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        peer = self.pairs.pop(sock, None)
        for s in (sock, peer):
            if s is None:
                continue
            self.pairs.pop(s, None)
            try:
                self.selector.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()

    def cut(self) -> None:
        self.running = False
        self.thread.join(timeout=5)
        for sock in list(self.pairs):
            if sock.fileno() == -1:
                continue  # closed with its peer already
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
            self._close(sock)
        self.listener.close()


# --- servers and load ------------------------------------------------------------------------------


class Server:
    def __init__(
        self,
        *,
        app: str,
        env: dict[str, str],
        tls: tuple[Path, Path] | None,
        args: argparse.Namespace,
        checkout: Path | None = None,
        worker_class: str = "",
    ):
        self.port = free_port()
        self.scheme = "https" if tls else "http"
        env = (
            os.environ
            | env
            | {"KUBEDOOR_WEBHOOK_WORKERS": str(args.workers), "KUBEDOOR_WEBHOOK_THREADS": str(args.threads)}
        )
        if worker_class := worker_class or args.worker_class:  # otherwise the config's
            env["KUBEDOOR_WEBHOOK_WORKER_CLASS"] = worker_class
        self.app = app
        self.count_dir = tempfile.mkdtemp(prefix="kd-bench-prom-")
        env["PROMETHEUS_MULTIPROC_DIR"] = env["KD_BENCH_COUNT_DIR"] = self.count_dir
        env["KUBEDOOR_LOG_LEVEL"] = "WARNING"
        if tls:
            env |= {"KUBEDOOR_WEBHOOK_TLS_CERT": str(tls[0]), "KUBEDOOR_WEBHOOK_TLS_KEY": str(tls[1])}
        else:
            env |= {"KUBEDOOR_WEBHOOK_TLS_CERT": "", "KUBEDOOR_WEBHOOK_TLS_KEY": ""}
        command = [sys.executable, "-m", "gunicorn", "-c", "python:apps.webhook.gunicorn_conf"]
        command += ["--bind", f"127.0.0.1:{self.port}", "--log-level", "warning"]
        if app.startswith("floor"):
            command += ["--pythonpath", str(HERE)]
        self.log = tempfile.NamedTemporaryFile(prefix="kd-bench-gunicorn-", suffix=".log", delete=False)
        cwd = checkout or REPO  # another checkout's webhook: ``webhook@DIR``
        self.process = subprocess.Popen([*command, app], cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.process)
        self.base = f"{self.scheme}://127.0.0.1:{self.port}"
        # The master listens before its workers have loaded the app: wait for a worker to answer.
        deadline = time.monotonic() + 120
        while True:
            try:
                self.get("/healthz")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.5)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base + path, verify=False, timeout=10)

    def worker_counts(self) -> dict[str, float]:
        """Reviews answered so far by each worker process (by pid), read from the files they keep."""
        counts: dict[str, float] = {}
        if self.app.startswith("floor"):
            for path in glob.glob(os.path.join(self.count_dir, "floor_*.bin")):
                pid = Path(path).stem.removeprefix("floor_")
                counts[pid] = float(struct.unpack("q", Path(path).read_bytes()[:8])[0])
            return counts
        from prometheus_client.mmap_dict import MmapedDict

        for path in glob.glob(os.path.join(self.count_dir, "counter_*.db")):
            pid = Path(path).stem.removeprefix("counter_")
            for key, value, _timestamp, _pos in MmapedDict.read_all_values_from_file(path):
                if json.loads(key)[1] == "kubedoor_webhook_admissions_total":
                    counts[pid] = counts.get(pid, 0.0) + value
        return counts

    def cpu_seconds(self) -> float:
        """User + system CPU time so far of the gunicorn workers (the master's children), all threads."""
        total = 0
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # exited meanwhile
            if int(fields[1]) == self.process.pid:  # ppid
                total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
        return total / CLOCK_TICKS

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of one process (all its threads), from /proc (same machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def postgres_cpu_seconds() -> float:
    """User + system CPU time so far of every PostgreSQL process on the machine (its backends, WAL
    writer, checkpointer …): what the audit writes cost the database, on the same cores as the workers.
    A backend that exits during a round takes its time with it, so this is a lower bound."""
    total = 0
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            head, _, rest = Path(stat).read_text().rpartition(")")
        except OSError:
            continue
        if head.partition("(")[2].startswith("postgres"):
            fields = rest.split()
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def wrk(server: Server, *, connections: int, seconds: float, listing: Path, path: str) -> dict:
    before = server.worker_counts()
    cpu_before, pg_before = server.cpu_seconds(), postgres_cpu_seconds()
    result = _wrk(server, connections=connections, seconds=seconds, listing=listing, path=path)
    cpu_after, pg_after = server.cpu_seconds(), postgres_cpu_seconds()
    after = server.worker_counts()
    # The workers' CPU per answered review: what bounds the throughput of a CPU-bound server, and far
    # less sensitive to other jobs on the machine than reviews/s.
    result["cpu_us"] = (cpu_after - cpu_before) / max(1, result["requests"]) * 1e6
    result["pg_cpu_us"] = (pg_after - pg_before) / max(1, result["requests"]) * 1e6
    result["by_pid"] = {pid: after[pid] - before.get(pid, 0.0) for pid in after}
    result["workers"] = sorted(result["by_pid"].values(), reverse=True)
    return result


def target_parts(target: str) -> tuple[str, str, str]:
    """``webhook-db-down/gthread@/path/to/checkout`` → (``webhook-db-down``, ``gthread``, ``/path/to/checkout``);
    the worker class and the checkout may be left out (empty: the config's class, this checkout)."""
    head, _, checkout = target.partition("@")
    kind, _, worker_class = head.partition("/")
    return kind, worker_class, checkout


def shares(workers: list[float]) -> str:
    """Each worker's share of a round's reviews, largest first: "52/48" (%)."""
    total = sum(workers)
    return "/".join(f"{100 * n / total:.0f}" for n in workers) if total else "-"


def _wrk(server: Server, *, connections: int, seconds: float, listing: Path, path: str) -> dict:
    threads = 1 if connections < 16 else 2
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(seconds)}s", "--timeout", "10s"]
    command += ["-s", str(HERE / "reviews.lua"), server.base + path]
    env = os.environ | {"BODY_LIST": str(listing), "MUTATE_PATH": path}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line.removeprefix("RESULT "))
            result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
            if done.stderr.strip():
                result["stderr"] = done.stderr.strip()[:600]
            return result
    raise RuntimeError(f"wrk failed: {done.stdout}\n{done.stderr}")


def merge(slices: list[dict]) -> dict:
    """One figure from a level's slices: counts add up; p50/p99 are the slices' medians; max is the max."""
    merged: dict = {key: sum(r[key] for r in slices) for key in slices[0] if isinstance(slices[0][key], int)}
    merged["rps"] = merged["requests"] / (merged["duration_us"] / 1e6)
    for key in ("p50_us", "p99_us"):
        merged[key] = statistics.median(r[key] for r in slices)
    merged["max_us"] = max(r["max_us"] for r in slices)
    merged["cpu_us"] = statistics.median(r["cpu_us"] for r in slices)
    merged["pg_cpu_us"] = statistics.median(r["pg_cpu_us"] for r in slices)
    by_pid: dict[str, float] = {}
    for r in slices:
        for pid, n in r["by_pid"].items():
            by_pid[pid] = by_pid.get(pid, 0.0) + n
    merged["workers"] = sorted(by_pid.values(), reverse=True)
    merged["rounds"] = slices
    return merged


def show(target: str, connections: int, r: dict) -> None:
    errors = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["status_errors"] + r["timeouts"]
    print(
        f"  {target:<16} c={connections:>3}: {r['rps']:8.0f} reviews/s  p50 {r['p50_us'] / 1000:7.2f} ms  "
        f"p99 {r['p99_us'] / 1000:7.2f} ms  max {r['max_us'] / 1000:7.2f} ms  ok {r['ok']}  bad {r['bad']}  "
        f"errors {errors}  CPU {r['cpu_us']:.0f} + PostgreSQL {r['pg_cpu_us']:.0f} µs/review  "
        f"workers {shares(r['workers'])}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 s warm-up and 6 s per level")
    parser.add_argument("--rounds", type=int, default=0, help="slices per level and target (default 4, quick 2)")
    parser.add_argument(
        "--seconds",
        type=int,
        default=0,
        help="measured seconds per level and target, split into the rounds (default 20, quick 6)",
    )
    parser.add_argument("--connections", default="1,16,64")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (production default: 2)")
    parser.add_argument(
        "--worker-class", default="", help="gunicorn worker class of every target (default: the config's)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--targets", default="floor,webhook,webhook-db-down,floor-tls,webhook-tls", help="comma-separated subset"
    )
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"load average at the start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1, 5, 15 min)", flush=True)
    args.connections = [int(c) for c in args.connections.split(",")]
    args.warmup, args.duration = (2, 6) if args.quick else (5, 20)
    args.duration = args.seconds or args.duration
    args.rounds = args.rounds or (2 if args.quick else 4)
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk)")
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("set DATABASE_URL to a PostgreSQL database the benchmark may migrate and write")

    seed_database()
    folder = Path(tempfile.mkdtemp(prefix="kd-bench-bodies-"))
    listing = write_bodies(folder)
    sizes = [p.stat().st_size for p in folder.glob("body-*.json")]
    print(f"{len(sizes)} bodies, {min(sizes)}-{max(sizes)} bytes (mean {sum(sizes) // len(sizes)})", flush=True)

    import trustme

    ca = trustme.CA()
    cert, key = folder / "tls.crt", folder / "tls.key"
    leaf = ca.issue_cert("127.0.0.1")
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))

    from django.conf import settings

    db = settings.DATABASES["default"]
    targets = args.targets.split(",")
    servers: dict[str, Server] = {}
    proxies: dict[str, CuttableProxy] = {}  # per webhook-db-down target
    all_results: dict[str, dict] = {target: {} for target in targets}
    try:
        for target in targets:
            kind, worker_class, checkout = target_parts(target)
            tls = (cert, key) if kind.endswith("-tls") else None
            app = "floor:application" if kind.startswith("floor") else "apps.webhook.wsgi:application"
            env: dict[str, str] = {}
            if kind == "webhook-db-down":
                proxy = proxies[target] = CuttableProxy((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)))
                env["DATABASE_URL"] = f"postgres://{db['USER']}@127.0.0.1:{proxy.port}/{db['NAME']}"
            where = Path(checkout) if checkout else None
            servers[target] = Server(app=app, env=env, tls=tls, args=args, checkout=where, worker_class=worker_class)
            if app.startswith("apps."):
                ready = servers[target].get("/readyz").json()
                assert ready["snapshot"] == "loaded", ready
        # Levels outermost; within a level the targets take turns in short slices, so that the background
        # load of a shared machine, which drifts over minutes, falls on all of them alike.
        for connections in args.connections:
            for target in targets:
                server = servers[target]
                wrk(server, connections=connections, seconds=args.warmup, listing=listing, path="/mutate/bench")
                proxy = proxies.get(target)
                if proxy is not None and proxy.running:
                    proxy.cut()
                    time.sleep(2.5)
                    ready = server.get("/readyz").json()
                    print(f"  database cut for {target}; readyz: {ready}", flush=True)
                    assert ready["store_error"], "the webhook did not notice the database going away"
            slices: dict[str, list[dict]] = {target: [] for target in targets}
            for _ in range(args.rounds):
                for target in targets:
                    seconds = max(1, args.duration // args.rounds)
                    slices[target].append(
                        wrk(
                            servers[target],
                            connections=connections,
                            seconds=seconds,
                            listing=listing,
                            path="/mutate/bench",
                        )
                    )
            for target in targets:
                all_results[target][connections] = merge(slices[target])
                show(target, connections, all_results[target][connections])
        for target, server in servers.items():
            if target.startswith("webhook"):
                counts = [ln for ln in server.get("/metrics").text.splitlines() if ln.startswith("kubedoor_webhook_a")]
                print(f"  {target}: " + "; ".join(c for c in counts if "bucket" not in c and "created" not in c))
    finally:
        for server in servers.values():
            server.stop()
        for proxy in proxies.values():
            if proxy.running:
                proxy.cut()

    load = os.getloadavg()
    print(f"\nload average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1, 5, 15 min)")
    print(
        "\n| target | connections | reviews/s | p50 ms | p99 ms | max ms | CPU µs/review | PostgreSQL CPU µs/review "
        "| answers checked | bad | worker shares % |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for target, results in all_results.items():
        for connections, r in results.items():
            print(
                f"| {target} | {connections} | {r['rps']:.0f} | {r['p50_us'] / 1000:.2f} | {r['p99_us'] / 1000:.2f} "
                f"| {r['max_us'] / 1000:.2f} | {r['cpu_us']:.0f} | {r['pg_cpu_us']:.0f} | {r['ok'] + r['bad']} "
                f"| {r['bad']} "
                f"| {shares(r['workers'])} |"
            )
    print("\nEvery round (targets take turns within a round; worker shares of that round's reviews, largest first):\n")
    print("| connections | round | " + " | ".join(f"{t} reviews/s · p99 ms · CPU µs · shares" for t in targets) + " |")
    print("|---|---|" + "---|" * len(targets))
    for c in args.connections:
        for index in range(args.rounds):
            cells = []
            for target in targets:
                r = all_results[target][c]["rounds"][index]
                cells.append(f"{r['rps']:.0f} · {r['p99_us'] / 1000:.1f} · {r['cpu_us']:.0f} · {shares(r['workers'])}")
            print(f"| {c} | {index + 1} | " + " | ".join(cells) + " |")
    if "webhook" in all_results and "webhook-db-down" in all_results:
        print("\nDatabase stopped vs running, round by round (target: p99 within 1.25x):\n")
        print("| connections | round | webhook p99 ms | webhook-db-down p99 ms | ratio |")
        print("|---|---|---|---|---|")
        for c in args.connections:
            for index in range(args.rounds):
                up = all_results["webhook"][c]["rounds"][index]["p99_us"]
                down = all_results["webhook-db-down"][c]["rounds"][index]["p99_us"]
                print(f"| {c} | {index + 1} | {up / 1000:.1f} | {down / 1000:.1f} | {down / up:.2f} |")
    if "floor" in all_results and "webhook" in all_results:
        print(
            "\n| connections | webhook/floor reviews/s (≥ 0.6) | webhook/floor p99 (≤ 1.5) "
            "| floor/webhook CPU per review | db-down/webhook p99 (≤ 1.25) | TLS webhook/floor reviews/s "
            "| TLS webhook/floor p99 |"
        )
        print("|---|---|---|---|---|---|---|")
        for c in args.connections:
            f, w = all_results["floor"][c], all_results["webhook"][c]
            down = all_results.get("webhook-db-down", {}).get(c)
            ft, wt = all_results.get("floor-tls", {}).get(c), all_results.get("webhook-tls", {}).get(c)
            ratio = f"{down['p99_us'] / w['p99_us']:.2f}" if down else "-"
            tls_rps = f"{wt['rps'] / ft['rps']:.2f}" if ft and wt else "-"
            tls_p99 = f"{wt['p99_us'] / ft['p99_us']:.2f}" if ft and wt else "-"
            rps, p99 = w["rps"] / f["rps"], w["p99_us"] / f["p99_us"]
            cpu = f["cpu_us"] / w["cpu_us"]
            print(f"| {c} | {rps:.2f} | {p99:.2f} | {cpu:.2f} | {ratio} | {tls_rps} | {tls_p99} |")
    # Targets of another checkout or worker class, but for the floors they are compared with.
    others = [t for t in all_results if t != target_parts(t)[0] and not t.startswith("floor/")]
    if "floor" in all_results and others:
        print("\nOther checkouts and worker classes against the floor (reviews/s ratio · p99 ratio):\n")
        print("| connections | " + " | ".join(others) + " |")
        print("|---|" + "---|" * len(others))
        for c in args.connections:
            cells = []
            for t in others:
                # Against the floor under the same worker class where the run has one (floor/gthread).
                f = all_results.get(f"floor/{target_parts(t)[1]}", all_results["floor"])[c]
                r = all_results[t][c]
                cells.append(f"{r['rps'] / f['rps']:.2f} · {r['p99_us'] / f['p99_us']:.2f}")
            print(f"| {c} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

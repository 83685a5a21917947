"""CPU per review of each thread of the gunicorn workers, floor and webhook, under wrk.

    DATABASE_URL=postgres://… .venv/bin/python bench/webhook/threads.py                 # 1 connection, 4 × 5 s
    DATABASE_URL=postgres://… .venv/bin/python bench/webhook/threads.py --connections 16 --rounds 6

The same servers as bench/webhook/run.py (its ``Server``: gunicorn with the webhook's config, 2
workers; the webhook answers from its snapshot of the ``bench`` cluster and writes its audit events to
PostgreSQL), the same bodies and wrk script. The targets take turns in rounds; around each round the
script reads the user + system time of every thread of every worker from /proc/<pid>/task/<tid>/stat
and divides by the round's reviews. Threads are named by their role: gunicorn's main loop is the
worker's first thread; the others by the names py-spy reports for them (``ThreadPoolExecutor-…`` is
the request thread, ``kubedoor-audit-writer`` and ``kubedoor-snapshot`` the webhook's background
threads). Without py-spy they show by thread id. Minimum and median over the rounds, per role.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402
from run import CLOCK_TICKS, Server, _wrk, seed_database, write_bodies  # noqa: E402

ROLES = {"ThreadPoolExecutor": "request thread", "MainThread": "main loop"}


def worker_pids(server: Server) -> list[int]:
    pids = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == server.process.pid:
            pids.append(int(Path(stat).parent.name))
    return sorted(pids)


def thread_names(pid: int) -> dict[int, str]:
    """tid → role, from ``py-spy dump`` (the Python thread names); {} without py-spy."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return {}
    done = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True, check=False)
    names: dict[int, str] = {}
    for match in re.finditer(r'^Thread (0x[0-9A-Fa-f]+|\d+) \([^)]*\): "([^"]+)"', done.stdout, re.M):
        tid = int(match.group(1), 0)
        name = match.group(2)
        for prefix, role in ROLES.items():
            if name.startswith(prefix):
                name = role
        names[tid] = name
    return names


def thread_seconds(pids: list[int]) -> dict[tuple[int, int], float]:
    times: dict[tuple[int, int], float] = {}
    for pid in pids:
        for stat in glob.glob(f"/proc/{pid}/task/[0-9]*/stat"):
            try:
                fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            times[(pid, int(Path(stat).parent.name))] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=5, help="per round and target")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", default="", help="gunicorn worker class (default: the config's)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--targets", default="floor,webhook")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("set DATABASE_URL to a PostgreSQL database the benchmark may migrate and write")
    seed_database()
    listing = write_bodies(Path(tempfile.mkdtemp(prefix="kd-bench-bodies-")))
    servers: dict[str, Server] = {}
    figures: dict[str, dict[str, list[float]]] = {}
    load = os.getloadavg()
    print(f"load average at the start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    try:
        for target in args.targets.split(","):
            app = "floor:application" if target.startswith("floor") else "apps.webhook.wsgi:application"
            checkout = target.partition("@")[2]
            own, run.REPO = run.REPO, Path(checkout) if checkout else run.REPO  # the server's working directory
            try:
                servers[target] = Server(app=app, env={}, tls=None, args=args)
            finally:
                run.REPO = own
            figures[target] = {}
        for server in servers.values():  # warm-up: every thread started, caches filled
            _wrk(server, connections=args.connections, seconds=3, listing=listing, path="/mutate/bench")
        names: dict[int, str] = {}
        for server in servers.values():
            for pid in worker_pids(server):
                names |= thread_names(pid)
                names.setdefault(pid, "main loop")
        for index in range(args.rounds):
            for target, server in servers.items():
                pids = worker_pids(server)
                before = thread_seconds(pids)
                result = _wrk(
                    server, connections=args.connections, seconds=args.seconds, listing=listing, path="/mutate/bench"
                )
                after = thread_seconds(pids)
                for pid in pids:  # threads started since (a worker's first patch starts its audit writer)
                    if any(key[0] == pid and key[1] not in names for key in after):
                        names |= thread_names(pid)
                reviews = max(1, result["requests"])
                roles: dict[str, float] = {}
                for key, seconds in after.items():
                    role = names.get(key[1], f"thread {key[1]}")
                    roles[role] = roles.get(role, 0.0) + (seconds - before.get(key, 0.0)) / reviews * 1e6
                roles["all threads"] = sum(roles.values())
                roles["reviews/s"] = result["requests"] / (result["duration_us"] / 1e6)
                if result["bad"]:
                    sys.exit(f"{target}: {result['bad']} bad answers")
                for role, value in roles.items():
                    figures[target].setdefault(role, []).append(value)
                print(f"round {index + 1} {target}: " + "  ".join(f"{r} {v:.0f}" for r, v in roles.items()), flush=True)
    finally:
        for server in servers.values():
            server.stop()
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n")
    print(f"| µs per review (CPU), {args.connections} connection(s) | thread | min | median |")
    print("|---|---|---|---|")
    for target, roles in figures.items():
        for role, values in roles.items():
            print(f"| {target} | {role} | {min(values):.0f} | {statistics.median(values):.0f} |")


if __name__ == "__main__":
    main()

"""Benchmark: each day's queries of two (or more) versions of apps/metrics/promql.py, alternated on one backend.

    python bench/collect/ab.py --url http://127.0.0.1:9090 --before /path/to/old/apps/metrics/promql.py --ends …
    python bench/collect/ab.py --data /tmp/kubedoor-bench-collect --days 3 --backend victoriametrics \\
        --before no-feedback=/tmp/promql-1b999db.py --before 105d075^=/tmp/promql-105d075^.py

On a shared machine the load moves between runs; alternating the versions' queries (before, after,
before, after…) for the same days on the same running backend compares them under the same load (the
versions' order is rotated every round). Prints the median time of every query of each version, each
version's sum per day, and the difference of each ``--before`` from the current code.

``--before`` may be repeated, each ``NAME=PATH`` (a bare PATH is named "before"). With ``--data`` (the
directory of bench/collect/run.py) the script starts the backend on that history itself and takes the
window ends of its last ``--days`` days, instead of ``--url`` and ``--ends``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kubedoor_site.settings")

from apps.metrics import promql  # noqa: E402
from apps.metrics.prometheus import PrometheusClient  # noqa: E402


def load(path: str, name: str = "promql_before"):  # noqa: ANN201 - a module
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def version_queries(module, *, label: str, window: int, backend: str) -> dict[str, str]:  # noqa: ANN001
    """A promql.py version's day queries; versions from before issue 14 take no backend (one text for all)."""
    options = {"label_key": "k8s_cluster", "label_value": label, "window_seconds": window}
    if "backend" in {field.name for field in dataclasses.fields(module.QuerySettings)}:
        options["backend"] = backend
    return module.day_queries(module.QuerySettings(**options))


def bench_backend(data: Path, backend: str, days: int) -> tuple[subprocess.Popen, str, list[datetime.datetime], int]:
    """Start ``backend`` on bench/collect/run.py's history in ``data``; the last ``days`` window ends."""
    from tests.servers.prometheus import start_prometheus

    spec = json.loads((data / "kubedoor-bench.json").read_text())
    start, end = (datetime.time.fromisoformat(t) for t in spec["window"])
    window = int(
        (
            datetime.datetime.combine(datetime.date(2000, 1, 1), end)
            - datetime.datetime.combine(datetime.date(2000, 1, 1), start)
        ).total_seconds()
    )
    ends = [
        datetime.datetime.combine(datetime.date.fromisoformat(day), end, datetime.UTC) for day in spec["days"][-days:]
    ]
    if backend == "prometheus":
        process, url = start_prometheus(data / "tsdb", log_path=data / "prometheus-ab.log")
    else:
        from tests.servers.victoriametrics import start_victoriametrics

        vm_dir = data / "victoriametrics"
        if not (vm_dir / "kubedoor-bench.json").exists():
            raise SystemExit(f"{vm_dir}: no imported history (run bench/collect/run.py with victoriametrics first)")
        process, url = start_victoriametrics(vm_dir / "data", log_path=data / "victoriametrics-ab.log")
    return process, url, ends, window


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url")
    parser.add_argument("--data", help="bench/collect/run.py's --data: start the backend on its history")
    parser.add_argument("--days", type=int, default=3, help="with --data: the last N days of the history")
    parser.add_argument(
        "--before", required=True, action="append", help="NAME=PATH (or PATH) of a promql.py; repeatable"
    )
    parser.add_argument("--backend", default="prometheus")
    parser.add_argument("--label", default="bench-collect")
    parser.add_argument("--ends", help="comma-separated window ends (ISO, UTC)")
    parser.add_argument("--window", type=int, default=5400)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    process: subprocess.Popen | None = None
    if args.data:
        process, url, ends, window = bench_backend(Path(args.data), args.backend, args.days)
    else:
        if not args.url or not args.ends:
            raise SystemExit("give --data, or --url and --ends")
        url, window = args.url, args.window
        ends = [datetime.datetime.fromisoformat(end).replace(tzinfo=datetime.UTC) for end in args.ends.split(",")]
    versions: dict[str, dict[str, str]] = {}
    for index, item in enumerate(args.before):
        name, _, path = item.rpartition("=") if "=" in item else ("before", "", item)
        module = load(path, f"promql_before_{index}")
        versions[name] = version_queries(module, label=args.label, window=window, backend=args.backend)
    versions["after"] = version_queries(promql, label=args.label, window=window, backend=args.backend)
    load_start = os.getloadavg()[0]
    times: dict[tuple[str, str], list[float]] = {}
    order = list(versions)
    try:
        with PrometheusClient(url) as client:
            for round_ in range(args.rounds):
                for end in ends:
                    rotated = order[round_ % len(order) :] + order[: round_ % len(order)]
                    for version in rotated:
                        for name, text in versions[version].items():
                            began = time.perf_counter()
                            client.query(text, at=end)
                            times.setdefault((version, name), []).append(time.perf_counter() - began)
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=20)
    print(
        f"{args.backend}, {len(ends)} days × {args.rounds} rounds,"
        f" load {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    )
    sums = {}
    for version in order:
        medians = {name: statistics.median(values) for (v, name), values in times.items() if v == version}
        sums[version] = sum(medians.values())
        print(f"{version}: {sums[version]:.2f} s per day (sum of medians, {len(medians)} requests)")
        for name, value in medians.items():
            print(f"    {name:<16} {value:6.3f} s")
    for version in order[:-1]:
        print(f"after − {version}: {sums['after'] - sums[version]:+.2f} s per day")


if __name__ == "__main__":
    main()

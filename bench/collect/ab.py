"""Benchmark: each day's queries of two versions of apps/metrics/promql.py, alternated on one backend.

    python bench/collect/ab.py --url http://127.0.0.1:9090 --before /path/to/old/apps/metrics/promql.py

On a shared machine the load moves between runs; alternating the two versions' queries (before,
after, before, after…) for the same days on the same running backend compares them under the same
load. Prints the median time of every query of each version and each version's sum per day.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kubedoor_site.settings")

from apps.metrics import promql  # noqa: E402
from apps.metrics.prometheus import PrometheusClient  # noqa: E402


def load(path: str):  # noqa: ANN201 - a module
    spec = importlib.util.spec_from_file_location("promql_before", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--before", required=True, help="the promql.py to compare with")
    parser.add_argument("--backend", default="prometheus")
    parser.add_argument("--label", default="bench-collect")
    parser.add_argument("--ends", required=True, help="comma-separated window ends (ISO, UTC)")
    parser.add_argument("--window", type=int, default=5400)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    old = load(args.before)
    before = old.day_queries(
        old.QuerySettings(label_key="k8s_cluster", label_value=args.label, window_seconds=args.window)
    )
    settings = promql.QuerySettings(
        label_key="k8s_cluster", label_value=args.label, window_seconds=args.window, backend=args.backend
    )
    after = promql.day_queries(settings)
    times: dict[tuple[str, str], list[float]] = {}
    ends = [datetime.datetime.fromisoformat(end).replace(tzinfo=datetime.UTC) for end in args.ends.split(",")]
    with PrometheusClient(args.url) as client:
        for _ in range(args.rounds):
            for end in ends:
                for version, queries in (("before", before), ("after", after)):
                    for name, text in queries.items():
                        began = time.perf_counter()
                        client.query(text, at=end)
                        times.setdefault((version, name), []).append(time.perf_counter() - began)
    print(f"{args.backend}, {len(ends)} days × {args.rounds} rounds, load {os.getloadavg()[0]:.1f} at the end")
    for version in ("before", "after"):
        medians = {name: statistics.median(values) for (v, name), values in times.items() if v == version}
        print(f"{version}: {sum(medians.values()):.2f} s per day (sum of medians)")
        for name, value in medians.items():
            print(f"    {name:<16} {value:6.3f} s")


if __name__ == "__main__":
    main()

"""Benchmark: the time of each statistic's query, one at a time, on Prometheus and VictoriaMetrics.

    python bench/collect/queries.py --deployments 1000 --days 2 --rounds 3

Builds the bench/collect history (``run.deployments``: 1 000 Deployments, 1–2 pods each) for a few
days, loads it into Debian's Prometheus (TSDB blocks) and VictoriaMetrics (import), and times every
query text ``apps.metrics.promql.day_queries`` gives for one day, sequentially, ``--rounds`` times per
day and backend; prints the median per query. This is the per-statistic view of bench/collect/run.py
(which times the whole collection). With ``--feedback`` (the default) the history carries the
safety-feedback series (``run.feedback_spec``), so the two feedback queries answer what they would in
production.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(REPO), str(HERE)]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kubedoor_site.settings")

import run  # noqa: E402  (bench/collect/run.py: the same history)

from apps.metrics import promql  # noqa: E402
from apps.metrics.prometheus import PrometheusClient  # noqa: E402
from tests.servers import stop_process  # noqa: E402
from tests.servers.history import History  # noqa: E402
from tests.servers.prometheus import start_prometheus  # noqa: E402
from tests.servers.victoriametrics import flush, import_lines, start_victoriametrics  # noqa: E402


def day_queries(settings: promql.QuerySettings, backend: str) -> dict[str, str]:
    if "backend" in {field.name for field in dataclasses.fields(settings)}:
        return promql.day_queries(dataclasses.replace(settings, backend=backend))  # type: ignore[call-arg]
    return promql.day_queries(settings)  # the code before issue 14: one text for every backend


def timed(url: str, backend: str, history: History, rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}
    with PrometheusClient(url) as client:
        for day in history.days:
            start, end = history.window_bounds(day)
            settings = promql.QuerySettings(
                label_key="k8s_cluster",
                label_value=run.CLUSTER,
                window_seconds=int((end - start).total_seconds()),
            )
            for name, text in day_queries(settings, backend).items():
                for _ in range(rounds):
                    began = time.perf_counter()
                    samples = client.query(text, at=end)
                    times.setdefault(name, []).append(time.perf_counter() - began)
                    if not samples:
                        raise SystemExit(f"{backend}: {name} answered nothing on {day}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", default=str(Path(tempfile.gettempdir()) / "kubedoor-bench-queries"))
    parser.add_argument("--backends", default="prometheus,victoriametrics")
    parser.add_argument("--feedback", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()

    import django

    django.setup()
    data = Path(args.data)
    days, window = run.plan(args.days, data)
    history = History(
        ("k8s_cluster", run.CLUSTER), "UTC", days, window, run.deployments(args.deployments), margin_minutes=3
    )
    spec = run.feedback_spec(history) if args.feedback else None
    run.build(history, data, feedback=spec)
    results: dict[str, dict[str, list[float]]] = {}
    for backend in args.backends.split(","):
        if backend == "prometheus":
            process, url = start_prometheus(data / "tsdb", log_path=data / "prometheus.log")
        else:
            vm_dir = Path(tempfile.mkdtemp(prefix="kd-bench-vm-"))
            process, url = start_victoriametrics(vm_dir / "data", log_path=vm_dir / "vm.log")
            began = time.perf_counter()
            for day in history.days:
                import_lines(url, run.day_lines(history, spec, day))
            flush(url)
            time.sleep(2)
            print(f"victoriametrics: imported in {time.perf_counter() - began:.0f} s")
        try:
            results[backend] = timed(url, backend, history, args.rounds)
        finally:
            stop_process(process)
    load = os.getloadavg()[0]
    print(f"{args.deployments} Deployments, {len(days)} days × {args.rounds} rounds, load {load:.1f} at the end")
    for backend, times in results.items():
        total = sum(statistics.median(values) for values in times.values())
        print(f"{backend}: {total:.2f} s per day (sum of medians)")
        for name, values in times.items():
            print(
                f"    {name:<18} median {statistics.median(values):6.3f} s"
                f"  (min {min(values):.3f}, max {max(values):.3f})"
            )


if __name__ == "__main__":
    main()

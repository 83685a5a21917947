"""One day's collection: its queries (apps/metrics/promql.py), and their answers merged into rows.

The day's fixed requests run concurrently, at most ``concurrency`` at a time. They attribute pods to
Deployments by name; where the owners' mapping (the ``pods`` request) disagrees with a name, the
Deployments concerned are asked again by their owners (``promql.owner_queries``) and those answers
replace the names'. Then, only when some Deployment's pods have different limits, one more request per
resource computes its %-of-limit statistic pod by pod. Every other %-of-limit value is derived here from
the P95 and the shared limit.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any

from django.utils import timezone

from apps.metrics import peaks, promql
from apps.metrics.prometheus import PrometheusClient, Sample
from apps.metrics.store import PeakRow

ROUNDING = {
    "p95_cpu_cores": 6,
    "p95_mem_mib": 3,
    "p95_cpu_pct": 3,
    "p95_mem_pct": 3,
    "throttled_pct": 3,
}
INTEGER_STATISTICS = ("request_cpu_m", "request_mem_mib", "limit_cpu_m", "limit_mem_mib", "pod_count", "oom_kills")
# A resource's statistics: the field prefix of its requests and limits, the scale from the series'
# unit (cores, bytes), and the P95 it is a percentage of (with that P95's scale back to the unit).
RESOURCES = {
    "cpu": ("cpu_m", 1000, "p95_cpu_cores", 1.0),
    "memory": ("mem_mib", 1 / promql.MIB, "p95_mem_mib", float(promql.MIB)),
}

ContainerKey = tuple[str, str, str]  # namespace, deployment, container


def _round(statistic: str, value: float) -> float | int:
    if statistic in INTEGER_STATISTICS:
        return peaks.round_clean(value)
    return peaks.round_clean(value, ROUNDING[statistic])


def split_results(results: dict[str, list[Sample]]) -> dict[str, list[Sample]]:
    """Answers by statistic: a request that carried several (``union``) is split by ``STATISTIC_LABEL``."""
    split: dict[str, list[Sample]] = defaultdict(list)
    for name, samples in results.items():
        if name == "resources":
            split[name].extend(samples)
            continue
        for sample in samples:
            split[sample.labels.get(promql.STATISTIC_LABEL, name)].append(sample)
    return split


class DayResources:
    """The ``resources`` answer of one day, per (namespace, deployment, container)."""

    def __init__(self, samples: list[Sample]) -> None:
        self.values: dict[ContainerKey, dict[str, float]] = defaultdict(dict)  # e.g. "request_cpu_m": cores
        self.limits: dict[tuple[ContainerKey, str], dict[str, float]] = defaultdict(dict)  # pod → its limit
        self.running: dict[ContainerKey, set[str]] = defaultdict(set)
        self.pods: dict[ContainerKey, set[str]] = defaultdict(set)
        for sample in samples:
            labels = sample.labels
            key = (labels.get("namespace", ""), labels.get("deployment", ""), labels.get("container", ""))
            if not all(key) or key[2] == "POD":
                continue
            pod = labels.get("pod", "")
            part = labels.get(promql.STATISTIC_LABEL, "")
            self.pods[key].add(pod)
            if part == "running":
                self.running[key].add(pod)
                continue
            resource = labels.get("resource", "")
            if resource not in RESOURCES:
                continue
            if part == "limit":
                self.limits[(key, resource)][pod] = sample.value
            if part in ("request", "limit"):
                field = f"{part}_{RESOURCES[resource][0]}"
                current = self.values[key].get(field)
                self.values[key][field] = sample.value if current is None else max(current, sample.value)

    def shared_limit(self, key: ContainerKey, resource: str) -> float | None:
        """The one limit every running pod of the container has; None when no pod has a limit.

        Raises ``LookupError`` when the pods' limits differ (or some running pod has none, or the
        limit is 0): the percentage must then be computed pod by pod.
        """
        limits = self.limits.get((key, resource), {})
        if not limits:
            return None
        values = set(limits.values())
        if set(limits) != self.running.get(key, set()) or len(values) != 1 or min(values) <= 0:
            raise LookupError(key)
        return values.pop()


def _statistic_values(split: dict[str, list[Sample]]) -> dict[ContainerKey, dict[str, float]]:
    values: dict[ContainerKey, dict[str, float]] = defaultdict(dict)
    for statistic in ("p95_cpu_cores", "p95_mem_mib", "p95_cpu_pct", "p95_mem_pct"):
        for sample in split.get(statistic, []):
            key = (
                sample.labels.get("namespace", ""),
                sample.labels.get("deployment", ""),
                sample.labels.get("container", ""),
            )
            if all(key) and key[2] != "POD":
                values[key][statistic] = sample.value
    return values


def mixed_limits(resources: DayResources) -> dict[str, list[ContainerKey]]:
    """Per resource, the containers whose pods' limits differ (their percentage needs its own query)."""
    mixed: dict[str, list[ContainerKey]] = {}
    keys = sorted({key for key, _ in resources.limits})
    for resource in RESOURCES:
        for key in keys:
            try:
                resources.shared_limit(key, resource)
            except LookupError:
                mixed.setdefault(resource, []).append(key)
    return mixed


def pct_queries(settings: promql.QuerySettings, resources: DayResources) -> dict[str, tuple[str, list[ContainerKey]]]:
    """The per-pod %-of-limit queries a day needs: statistic → (query text, the containers it answers)."""
    queries = {}
    for resource, keys in mixed_limits(resources).items():
        namespaces = sorted({key[0] for key in keys})
        pods = sorted({pod for key in keys for pod in resources.pods[key]})
        kind = "cpu" if resource == "cpu" else "mem"
        text = promql.usage_pct_query(settings, kind, namespaces=namespaces, pods=pods)
        queries[promql.PERCENT_STATISTICS[resource]] = (text, keys)
    return queries


def rows_from_results(
    *,
    cluster: str,
    window: peaks.Window,
    settings: promql.QuerySettings,
    results: dict[str, list[Sample]],
    collected_at: datetime.datetime,
    pct_keys: dict[str, list[ContainerKey]] | None = None,
) -> list[PeakRow]:
    """Merge one day's answers into rows per (namespace, deployment, container).

    ``pct_keys``: the containers whose %-of-limit statistic was queried pod by pod (``results``
    then holds it under its statistic); every other percentage is the P95 over the shared limit.
    """
    split = split_results(results)
    resources = DayResources(split.get("resources", []))
    measured = _statistic_values(split)
    pods: dict[tuple[str, str], int] = {}
    for sample in split.get("pod_count", []):
        namespace, deployment = sample.labels.get("namespace", ""), sample.labels.get("deployment", "")
        if namespace and deployment:
            pods[(namespace, deployment)] = round(sample.value)
    queried = {promql.PERCENT_STATISTICS[r]: set(keys) for r, keys in (pct_keys or {}).items()}
    feedback = _feedback_from_results(split)
    rows = []
    for key in sorted(set(measured) | set(resources.values)):
        stats: dict[str, Any] = {}
        for statistic in ("p95_cpu_cores", "p95_mem_mib"):
            if statistic in measured[key]:
                stats[statistic] = _round(statistic, measured[key][statistic])
        for resource, (unit, scale, p95_statistic, p95_scale) in RESOURCES.items():
            for family in ("request", "limit"):
                raw = resources.values[key].get(f"{family}_{unit}")
                if raw is not None:
                    stats[f"{family}_{unit}"] = _round(f"{family}_{unit}", raw * scale)
            pct_statistic = promql.PERCENT_STATISTICS[resource]
            if key in queried.get(pct_statistic, set()):
                value = measured[key].get(pct_statistic)
            else:
                try:
                    limit = resources.shared_limit(key, resource)
                except LookupError:
                    limit = None  # mixed limits, not queried: left unmeasured rather than guessed
                p95 = measured[key].get(p95_statistic)
                value = None if limit is None or p95 is None else p95 * p95_scale / limit * 100
            if value is not None:
                stats[pct_statistic] = _round(pct_statistic, value)
        namespace, deployment, container = key
        rows.append(
            PeakRow(
                cluster=cluster,
                day=window.day,
                namespace=namespace,
                deployment=deployment,
                container=container,
                window_start=window.start,
                window_end=window.end,
                pod_count=pods.get((namespace, deployment)),
                p95_cpu_cores=stats.get("p95_cpu_cores"),
                p95_cpu_pct=stats.get("p95_cpu_pct"),
                p95_mem_mib=stats.get("p95_mem_mib"),
                p95_mem_pct=stats.get("p95_mem_pct"),
                request_cpu_m=stats.get("request_cpu_m"),
                request_mem_mib=stats.get("request_mem_mib"),
                limit_cpu_m=stats.get("limit_cpu_m"),
                limit_mem_mib=stats.get("limit_mem_mib"),
                quantile=settings.quantile,
                aggregation=settings.aggregation,
                step_seconds=settings.step_seconds,
                collected_at=collected_at,
                **feedback.get(key, {}),
            )
        )
    return rows


def _feedback_from_results(results: dict[str, list[Sample]]) -> dict[ContainerKey, dict[str, Any]]:
    """OOM kills and throttling per container (issue 11); they only annotate rows the usage statistics made."""
    feedback: dict[ContainerKey, dict[str, Any]] = {}
    for statistic in promql.FEEDBACK_STATISTICS:
        for sample in results.get(statistic, []):
            labels = sample.labels
            key = (labels.get("namespace", ""), labels.get("deployment", ""), labels.get("container", ""))
            if all(key) and sample.value == sample.value:  # NaN: no periods at all
                feedback.setdefault(key, {})[statistic] = _round(statistic, sample.value)
    return feedback


def by_owners(
    results: dict[str, list[Sample]], answers: dict[str, list[Sample]], misnamed: set[tuple[str, str]]
) -> dict[str, list[Sample]]:
    """The day's answers with the ``misnamed`` Deployments' statistics taken from ``answers`` (by owners).

    Everything the names attributed to those Deployments is dropped; of ``answers`` (restricted to
    their pods, or not restricted at all) only those Deployments' rows are kept.
    """

    def owned(sample: Sample) -> bool:
        return (sample.labels.get("namespace", ""), sample.labels.get("deployment", "")) in misnamed

    merged: dict[str, list[Sample]] = {}
    for name, samples in results.items():
        merged[name] = [sample for sample in samples if not owned(sample)]
    for name, samples in answers.items():
        merged.setdefault(name, []).extend(sample for sample in samples if owned(sample))
    return merged


def _query_all(
    client: PrometheusClient,
    queries: dict[str, str],
    *,
    at: datetime.datetime,
    concurrency: int,
    on_query_done: Callable[[str], None],
) -> dict[str, list[Sample]]:
    """Every query at ``at``, at most ``concurrency`` at a time; the first failure cancels the rest."""
    results: dict[str, list[Sample]] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(queries))), thread_name_prefix="promql") as pool:
        futures = {pool.submit(client.query, text, at=at): name for name, text in queries.items()}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                error = future.exception()
                if error is not None:
                    for other in pending:
                        other.cancel()
                    raise error
                results[futures[future]] = future.result()
                on_query_done(futures[future])
    return results


def collect_day(
    *,
    client: PrometheusClient,
    cluster: str,
    window: peaks.Window,
    settings: promql.QuerySettings,
    concurrency: int,
    on_query_done: Callable[[str], None],
) -> list[PeakRow]:
    """Query one day's statistics and merge them into rows; the first failure stops the day.

    ``on_query_done`` is called once per request of ``promql.day_queries`` (the run's progress);
    the owners' and the per-pod %-of-limit requests some days need are not counted.
    """
    results = _query_all(
        client, promql.day_queries(settings), at=window.end, concurrency=concurrency, on_query_done=on_query_done
    )
    mapping = [
        (sample.labels.get("namespace", ""), sample.labels.get("pod", ""), sample.labels.get("deployment", ""))
        for sample in results.pop("pods", [])
    ]
    misnamed = promql.misnamed(mapping)
    if misnamed:
        pods = [pod for namespace, pod, deployment in mapping if (namespace, deployment) in misnamed]
        answers = _query_all(
            client,
            promql.owner_queries(settings, [namespace for namespace, _ in misnamed], pods),
            at=window.end,
            concurrency=concurrency,
            on_query_done=lambda _: None,
        )
        results = by_owners(results, answers, misnamed)
    extra = pct_queries(settings, DayResources(split_results(results).get("resources", [])))
    if extra:
        answers = _query_all(
            client,
            {name: text for name, (text, _) in extra.items()},
            at=window.end,
            concurrency=concurrency,
            on_query_done=lambda _: None,
        )
        results.update(answers)
    return rows_from_results(
        cluster=cluster,
        window=window,
        settings=settings,
        results=results,
        collected_at=timezone.now(),
        pct_keys={resource_of(name): keys for name, (_, keys) in extra.items()},
    )


def resource_of(statistic: str) -> str:
    return next(resource for resource, name in promql.PERCENT_STATISTICS.items() if name == statistic)

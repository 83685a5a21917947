"""The recommender: one Deployment's source-day figures and settings in, its numbers and their reasons out.

A pure module (no database, no clock, no network): ``apps.metrics.refresh`` feeds it from the daily
archive and hands the result to ``apps.control.measurements``, which writes it in bulk. Every number
comes with the reasons that made it (``Reason``: a code and its parameters, JSON-ready), stored on the
control row as its ``explanation`` and rendered translated where it is shown
(``apps.control.explanation``). The rules (README "Recommendations"):

Recommended pods (``replicas_recommend``), from the source day's CPU use relative to the pod's CPU limit:
``ceil(pods × p95_cpu_pct / target_cpu_pct)``, then at least ``min_replicas``, never below 2 for a
service that ran 2 or more pods unless ``allow_single_replica``, never above today's pods unless
``allow_scale_up``. None (with the reason) for an HPA-managed service, one without a CPU limit, or
without a measured ``p95_cpu_pct``. Memory is a guard: at or above ``target_mem_pct`` the
recommendation is today's pods.

Requests (``recommend``): ``max(ceil(p95 × (1 + headroom)), floor)`` as DESIGN §5.4; then the safety
feedback of the lookback: an OOM kill raises the memory request by ``oom_bump`` (× factor, at least
``oom_bump_min_mib`` more, the VPA rule) and never lets it go below the row's current one; a request
is lowered by at most ``max_change_pct`` % of the current one per refresh (raising is never clamped);
then capped at the row's limit. CPU throttling above ``throttle_threshold_pct`` is flagged and
blocks any CPU-limit decrease (a refresh never lowers a limit; the flag says the limit is too low).
A service with fewer than ``min_days`` days of data in the lookback gets no numbers at all
(``is_sufficient`` false): refresh leaves its row as it is and says why.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from apps.metrics.peaks import ceil_clean

# Reason codes (apps.control.explanation renders each; tests/metrics/test_recommender.py checks that).
SOURCE_DAY = "source_day"  # day, rule ("service" | "cluster" | "service_fallback"), pods
EXCLUDED_DAYS_SKIPPED = "excluded_days_skipped"  # days: the excluded dates left out of the source-day choice
INSUFFICIENT_DATA = "insufficient_data"  # days, min_days
REQUEST_CPU = "request_cpu"  # p95_cpu_cores, headroom_pct, request_cpu_m
REQUEST_MEM = "request_mem"  # p95_mem_mib, headroom_pct, request_mem_mib
FLOOR_CPU = "floor_cpu"  # min_cpu_m
FLOOR_MEM = "floor_mem"  # min_mem_mib
OOM_BUMP = "oom_bump"  # oom_kills, factor, min_mib, before, after
OOM_NO_DECREASE = "oom_no_decrease"  # request_mem_mib (kept)
CLAMP_CPU = "clamp_cpu"  # current, wanted, after, max_change_pct
CLAMP_MEM = "clamp_mem"
CAPPED_CPU = "capped_cpu"  # limit
CAPPED_MEM = "capped_mem"
CPU_THROTTLED = "cpu_throttled"  # throttled_pct, threshold_pct
# Added by apps.control.measurements when the row keeps a request a person set: request_cpu_m / request_mem_mib
CPU_BY_HAND = "request_cpu_by_hand"
MEM_BY_HAND = "request_mem_by_hand"
REPLICAS_FORMULA = "replicas_formula"  # pods, p95_cpu_pct, target_cpu_pct, replicas
REPLICAS_MIN = "replicas_min"  # min_replicas
REPLICAS_KEEP_TWO = "replicas_keep_two"
REPLICAS_NO_SCALE_UP = "replicas_no_scale_up"  # pods
REPLICAS_MEMORY_GUARD = "replicas_memory_guard"  # p95_mem_pct, target_mem_pct, pods
REPLICAS_HPA = "replicas_hpa"
REPLICAS_NO_CPU_LIMIT = "replicas_no_cpu_limit"
REPLICAS_NO_CPU_PCT = "replicas_no_cpu_pct"
REPLICAS_NO_PODS = "replicas_no_pods"

REASON_CODES = (
    SOURCE_DAY,
    EXCLUDED_DAYS_SKIPPED,
    INSUFFICIENT_DATA,
    REQUEST_CPU,
    REQUEST_MEM,
    FLOOR_CPU,
    FLOOR_MEM,
    OOM_BUMP,
    OOM_NO_DECREASE,
    CLAMP_CPU,
    CLAMP_MEM,
    CAPPED_CPU,
    CAPPED_MEM,
    CPU_THROTTLED,
    CPU_BY_HAND,
    MEM_BY_HAND,
    REPLICAS_FORMULA,
    REPLICAS_MIN,
    REPLICAS_KEEP_TWO,
    REPLICAS_NO_SCALE_UP,
    REPLICAS_MEMORY_GUARD,
    REPLICAS_HPA,
    REPLICAS_NO_CPU_LIMIT,
    REPLICAS_NO_CPU_PCT,
    REPLICAS_NO_PODS,
)


@dataclasses.dataclass(frozen=True)
class Reason:
    """One step behind a number: a code (``REASON_CODES``) and its parameters (JSON values only)."""

    code: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"code": self.code, "params": dict(self.params)}


@dataclasses.dataclass(frozen=True)
class RecommendationSettings:
    """The settings in force for one service: the cluster's, each replaced by the service's override if set."""

    target_cpu_pct: float = 70.0
    target_mem_pct: float = 80.0
    min_replicas: int = 1
    allow_single_replica: bool = False
    allow_scale_up: bool = False
    cpu_headroom: float = 0.0
    mem_headroom: float = 0.0
    min_cpu_m: int = 10
    min_mem_mib: int = 16
    oom_bump: float = 1.2
    oom_bump_min_mib: int = 100
    throttle_threshold_pct: float = 10.0
    max_change_pct: float = 50.0
    min_days: int = 3


@dataclasses.dataclass(frozen=True)
class SourceDay:
    """The controlled container's figures on the source day, and why that day was chosen."""

    day: datetime.date
    rule: str  # "service", "cluster" or "service_fallback" (cluster mode, the service absent that day)
    pod_count: int
    p95_cpu_cores: float | None
    p95_cpu_pct: float | None
    p95_mem_mib: float | None
    p95_mem_pct: float | None


@dataclasses.dataclass(frozen=True)
class Lookback:
    """What the whole lookback says of the service: days with data, OOM kills, worst throttling."""

    days_with_data: int
    oom_kills: int = 0
    throttled_pct: float | None = None  # the highest day's share of throttled CPU periods
    excluded_days: tuple[datetime.date, ...] = ()  # left out of the source-day choice


@dataclasses.dataclass(frozen=True)
class CurrentRow:
    """The control row as it stands (``None``: not set, or no row yet)."""

    request_cpu_m: int | None = None
    request_mem_mib: int | None = None
    limit_cpu_m: int | None = None
    limit_mem_mib: int | None = None
    is_hpa_managed: bool = False


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """The numbers for one row and the reasons behind them.

    ``is_sufficient`` false: too few days of data; the numbers are ``None`` and the row must not change.
    """

    is_sufficient: bool
    replicas: int | None = None
    request_cpu_m: int | None = None
    request_cpu_capped: bool = False
    request_mem_mib: int | None = None
    request_mem_capped: bool = False
    is_throttled: bool = False
    is_oom_killed: bool = False
    reasons: tuple[Reason, ...] = ()

    def explanation(self) -> dict[str, Any]:
        """The JSON stored on the control row."""
        return {"reasons": [reason.as_json() for reason in self.reasons]}


def _num(value: float) -> float:
    """Figures in reasons are rounded for reading; the numbers themselves are not."""
    return round(value, 3)


def replicas_recommend(
    *, source: SourceDay, limit_cpu_m: int | None, is_hpa_managed: bool, settings: RecommendationSettings
) -> tuple[int | None, list[Reason]]:
    """Recommended pods for the source day, or ``None`` with the reason there is none."""
    if is_hpa_managed:
        return None, [Reason(REPLICAS_HPA)]
    if limit_cpu_m is None:
        return None, [Reason(REPLICAS_NO_CPU_LIMIT)]
    if source.p95_cpu_pct is None:
        return None, [Reason(REPLICAS_NO_CPU_PCT)]
    pods = source.pod_count
    if pods <= 0:
        return None, [Reason(REPLICAS_NO_PODS)]
    if source.p95_mem_pct is not None and source.p95_mem_pct >= settings.target_mem_pct:
        guard = {"p95_mem_pct": _num(source.p95_mem_pct), "target_mem_pct": settings.target_mem_pct, "pods": pods}
        return pods, [Reason(REPLICAS_MEMORY_GUARD, guard)]
    replicas = ceil_clean(pods * source.p95_cpu_pct / settings.target_cpu_pct)
    reasons = [
        Reason(
            REPLICAS_FORMULA,
            {
                "pods": pods,
                "p95_cpu_pct": _num(source.p95_cpu_pct),
                "target_cpu_pct": settings.target_cpu_pct,
                "replicas": replicas,
            },
        )
    ]
    if replicas < settings.min_replicas:
        replicas = settings.min_replicas
        reasons.append(Reason(REPLICAS_MIN, {"min_replicas": settings.min_replicas}))
    if pods >= 2 and replicas < 2 and not settings.allow_single_replica:
        replicas = 2
        reasons.append(Reason(REPLICAS_KEEP_TWO))
    if replicas > pods and not settings.allow_scale_up:
        replicas = pods
        reasons.append(Reason(REPLICAS_NO_SCALE_UP, {"pods": pods}))
    return replicas, reasons


def _clamped(*, wanted: int, current: int | None, max_change_pct: float, code: str, reasons: list[Reason]) -> int:
    """A decrease below ``current`` by more than ``max_change_pct`` % stops at that bound; increases pass."""
    if current is None or wanted >= current:
        return wanted
    bound = ceil_clean(current * (1 - max_change_pct / 100))
    if wanted >= bound:
        return wanted
    reasons.append(
        Reason(code, {"current": current, "wanted": wanted, "after": bound, "max_change_pct": max_change_pct})
    )
    return bound


def _capped(*, request: int, limit: int | None, code: str, reasons: list[Reason]) -> tuple[int, bool]:
    if limit is not None and request > limit:
        reasons.append(Reason(code, {"limit": limit}))
        return limit, True
    return request, False


def recommend(
    *, source: SourceDay, lookback: Lookback, row: CurrentRow, settings: RecommendationSettings
) -> Recommendation:
    """The control row's measured numbers from its source day and lookback, with their reasons."""
    reasons: list[Reason] = []
    if lookback.excluded_days:
        days = [day.isoformat() for day in sorted(lookback.excluded_days)]
        reasons.append(Reason(EXCLUDED_DAYS_SKIPPED, {"days": days}))
    if lookback.days_with_data < settings.min_days:
        reasons.append(Reason(INSUFFICIENT_DATA, {"days": lookback.days_with_data, "min_days": settings.min_days}))
        return Recommendation(is_sufficient=False, reasons=tuple(reasons))
    reasons.append(Reason(SOURCE_DAY, {"day": source.day.isoformat(), "rule": source.rule, "pods": source.pod_count}))

    cpu: int | None = None
    cpu_capped = False
    if source.p95_cpu_cores is not None:
        wanted = ceil_clean(source.p95_cpu_cores * 1000 * (1 + settings.cpu_headroom))
        reasons.append(
            Reason(
                REQUEST_CPU,
                {
                    "p95_cpu_cores": _num(source.p95_cpu_cores),
                    "headroom_pct": _num(settings.cpu_headroom * 100),
                    "request_cpu_m": wanted,
                },
            )
        )
        if wanted < settings.min_cpu_m:
            wanted = settings.min_cpu_m
            reasons.append(Reason(FLOOR_CPU, {"min_cpu_m": settings.min_cpu_m}))
        wanted = _clamped(
            wanted=wanted,
            current=row.request_cpu_m,
            max_change_pct=settings.max_change_pct,
            code=CLAMP_CPU,
            reasons=reasons,
        )
        cpu, cpu_capped = _capped(request=wanted, limit=row.limit_cpu_m, code=CAPPED_CPU, reasons=reasons)

    mem: int | None = None
    mem_capped = False
    is_oom_killed = lookback.oom_kills > 0
    if source.p95_mem_mib is not None:
        wanted = ceil_clean(source.p95_mem_mib * (1 + settings.mem_headroom))
        reasons.append(
            Reason(
                REQUEST_MEM,
                {
                    "p95_mem_mib": _num(source.p95_mem_mib),
                    "headroom_pct": _num(settings.mem_headroom * 100),
                    "request_mem_mib": wanted,
                },
            )
        )
        if wanted < settings.min_mem_mib:
            wanted = settings.min_mem_mib
            reasons.append(Reason(FLOOR_MEM, {"min_mem_mib": settings.min_mem_mib}))
        if is_oom_killed:
            bumped = max(ceil_clean(wanted * settings.oom_bump), wanted + settings.oom_bump_min_mib)
            reasons.append(
                Reason(
                    OOM_BUMP,
                    {
                        "oom_kills": lookback.oom_kills,
                        "factor": settings.oom_bump,
                        "min_mib": settings.oom_bump_min_mib,
                        "before": wanted,
                        "after": bumped,
                    },
                )
            )
            wanted = bumped
            if row.request_mem_mib is not None and wanted < row.request_mem_mib:
                wanted = row.request_mem_mib
                reasons.append(Reason(OOM_NO_DECREASE, {"request_mem_mib": wanted}))
        else:
            wanted = _clamped(
                wanted=wanted,
                current=row.request_mem_mib,
                max_change_pct=settings.max_change_pct,
                code=CLAMP_MEM,
                reasons=reasons,
            )
        mem, mem_capped = _capped(request=wanted, limit=row.limit_mem_mib, code=CAPPED_MEM, reasons=reasons)

    is_throttled = lookback.throttled_pct is not None and lookback.throttled_pct > settings.throttle_threshold_pct
    if is_throttled:
        assert lookback.throttled_pct is not None
        reasons.append(
            Reason(
                CPU_THROTTLED,
                {"throttled_pct": _num(lookback.throttled_pct), "threshold_pct": settings.throttle_threshold_pct},
            )
        )

    replicas, replica_reasons = replicas_recommend(
        source=source, limit_cpu_m=row.limit_cpu_m, is_hpa_managed=row.is_hpa_managed, settings=settings
    )
    reasons.extend(replica_reasons)
    return Recommendation(
        is_sufficient=True,
        replicas=replicas,
        request_cpu_m=cpu,
        request_cpu_capped=cpu_capped,
        request_mem_mib=mem,
        request_mem_capped=mem_capped,
        is_throttled=is_throttled,
        is_oom_killed=is_oom_killed,
        reasons=tuple(reasons),
    )

"""A control row's explanation rendered for people: each reason code as a translated sentence.

The refresh stores the reasons behind a row's numbers as JSON (``{"reasons": [{"code", "params"}]}``,
made by ``apps.metrics.recommender``); the change form, the curves page and the API render them here,
in the language of the request. An unknown code (a newer release's) is shown as its code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils.translation import gettext_lazy

# code → sentence with the reason's parameters; "source_day" has one sentence per rule.
TEMPLATES: dict[str, Any] = {
    "source_day": {
        "service": gettext_lazy("Source day %(day)s: the service's busiest day in the lookback (%(pods)s pods)."),
        "cluster": gettext_lazy("Source day %(day)s: the cluster's busiest day in the lookback (%(pods)s pods)."),
        "service_fallback": gettext_lazy(
            "Source day %(day)s: the service's own busiest day, as it was absent on the cluster's busiest day "
            "(%(pods)s pods)."
        ),
    },
    "excluded_days_skipped": gettext_lazy("Excluded days left out of the source-day choice: %(days)s."),
    "insufficient_data": gettext_lazy(
        "Insufficient data: %(days)s day(s) with data in the lookback, %(min_days)s needed; the row was not changed."
    ),
    "request_cpu": gettext_lazy(
        "CPU request %(request_cpu_m)s m = P95 CPU %(p95_cpu_cores)s cores × 1000 × (1 + %(headroom_pct)s %% headroom)."
    ),
    "request_mem": gettext_lazy(
        "Memory request %(request_mem_mib)s MiB = P95 memory %(p95_mem_mib)s MiB × (1 + %(headroom_pct)s %% headroom)."
    ),
    "floor_cpu": gettext_lazy("CPU request raised to the floor of %(min_cpu_m)s m."),
    "floor_mem": gettext_lazy("Memory request raised to the floor of %(min_mem_mib)s MiB."),
    "oom_bump": gettext_lazy(
        "%(oom_kills)s OOM kill(s) in the lookback: memory request raised from %(before)s to %(after)s MiB "
        "(× %(factor)s, at least +%(min_mib)s MiB)."
    ),
    "oom_no_decrease": gettext_lazy(
        "After an OOM kill the memory request is never lowered: kept at %(request_mem_mib)s MiB."
    ),
    "clamp_cpu": gettext_lazy(
        "CPU request lowered from %(current)s m to %(after)s m instead of %(wanted)s m: one refresh lowers a "
        "request by at most %(max_change_pct)s %%."
    ),
    "clamp_mem": gettext_lazy(
        "Memory request lowered from %(current)s MiB to %(after)s MiB instead of %(wanted)s MiB: one refresh "
        "lowers a request by at most %(max_change_pct)s %%."
    ),
    "capped_cpu": gettext_lazy("CPU request capped at the limit of %(limit)s m."),
    "capped_mem": gettext_lazy("Memory request capped at the limit of %(limit)s MiB."),
    "cpu_throttled": gettext_lazy(
        "CPU throttled in %(throttled_pct)s %% of periods (above %(threshold_pct)s %%): the CPU limit is too low "
        "and must not be lowered."
    ),
    "request_cpu_by_hand": gettext_lazy("The CPU request %(request_cpu_m)s m was set by hand and is kept."),
    "request_mem_by_hand": gettext_lazy("The memory request %(request_mem_mib)s MiB was set by hand and is kept."),
    "replicas_formula": gettext_lazy(
        "Recommended pods %(replicas)s = ceil(%(pods)s pods × P95 CPU %(p95_cpu_pct)s %% "
        "÷ target %(target_cpu_pct)s %%)."
    ),
    "replicas_min": gettext_lazy("Recommended pods raised to the minimum of %(min_replicas)s."),
    "replicas_keep_two": gettext_lazy(
        "Recommended pods kept at 2: the service ran 2 or more pods and a single pod is not allowed."
    ),
    "replicas_no_scale_up": gettext_lazy(
        "Recommended pods capped at today's %(pods)s: recommending more pods is not allowed."
    ),
    "replicas_memory_guard": gettext_lazy(
        "Recommended pods = today's %(pods)s: P95 memory %(p95_mem_pct)s %% is at or above %(target_mem_pct)s %% "
        "(memory per pod rarely shrinks when pods are consolidated)."
    ),
    "replicas_hpa": gettext_lazy("No recommended pods: an HPA decides the replicas."),
    "replicas_no_cpu_limit": gettext_lazy("No recommended pods: the container has no CPU limit."),
    "replicas_no_cpu_pct": gettext_lazy("No recommended pods: no P95 CPU %% of the limit was measured."),
    "replicas_no_pods": gettext_lazy("No recommended pods: no ready pods were measured."),
}


def _shown(value: Any) -> Any:
    """A parameter as read: 70.0 as 70, lists joined."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list | tuple):
        return ", ".join(str(_shown(item)) for item in value)
    return value


def reason_render(reason: Mapping[str, Any]) -> str:
    """One reason as a sentence in the active language."""
    code = str(reason.get("code", ""))
    params = {key: _shown(value) for key, value in (reason.get("params") or {}).items()}
    template = TEMPLATES.get(code)
    if isinstance(template, dict):
        template = template.get(params.get("rule", ""))
    if template is None:
        return code
    try:
        return str(template) % params
    except (KeyError, TypeError, ValueError):  # a reason stored by another release with other parameters
        return code


def explanation_render(explanation: Mapping[str, Any] | None) -> list[str]:
    """Every reason of a stored explanation as a sentence, in order."""
    return [reason_render(reason) for reason in (explanation or {}).get("reasons", [])]


def explanation_api(explanation: Mapping[str, Any] | None) -> dict[str, Any]:
    """The API's ``explanation``: the structured reasons and their sentences in the request's language."""
    reasons = list((explanation or {}).get("reasons", []))
    return {"reasons": reasons, "text": [reason_render(reason) for reason in reasons]}

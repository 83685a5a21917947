"""The recommender as a pure function: a table of cases written from the formulas, each guard with its near miss."""

from __future__ import annotations

import dataclasses
import datetime

import pytest
from django.utils import translation

from apps.control.explanation import TEMPLATES, explanation_api, reason_render
from apps.metrics import recommender as r

DAY = datetime.date(2026, 3, 9)
DEFAULTS = r.RecommendationSettings()


def source(**fields) -> r.SourceDay:
    values = {
        "day": DAY,
        "rule": "service",
        "pod_count": 4,
        "p95_cpu_cores": 0.25,
        "p95_cpu_pct": 25.0,
        "p95_mem_mib": 300.0,
        "p95_mem_pct": 29.297,
    }
    return r.SourceDay(**(values | fields))


def settings(**fields) -> r.RecommendationSettings:
    return dataclasses.replace(DEFAULTS, **fields)


def test_the_defaults_are_the_documented_ones():
    assert DEFAULTS == r.RecommendationSettings(
        target_cpu_pct=70.0,
        target_mem_pct=80.0,
        min_replicas=1,
        allow_single_replica=False,
        allow_scale_up=False,
        cpu_headroom=0.0,
        mem_headroom=0.0,
        min_cpu_m=10,
        min_mem_mib=16,
        oom_bump=1.2,
        oom_bump_min_mib=100,
        throttle_threshold_pct=10.0,
        max_change_pct=50.0,
        min_days=3,
    )


@pytest.mark.parametrize(
    ("figures", "overrides", "limit", "hpa", "expected", "codes"),
    [
        # ceil(4 × 35 / 70) = 2 exactly; 35.1 % tips it to 3
        ({"p95_cpu_pct": 35.0}, {}, 1000, False, 2, ["replicas_formula"]),
        ({"p95_cpu_pct": 35.1}, {}, 1000, False, 3, ["replicas_formula"]),
        # the target is a setting: 4 × 35 / 50 = 2.8 → 3
        ({"p95_cpu_pct": 35.0}, {"target_cpu_pct": 50.0}, 1000, False, 3, ["replicas_formula"]),
        # never below 2 for a service that ran ≥ 2 pods …
        ({"pod_count": 3, "p95_cpu_pct": 10.0}, {}, 1000, False, 2, ["replicas_formula", "replicas_keep_two"]),
        # … unless a single pod is allowed
        ({"pod_count": 3, "p95_cpu_pct": 10.0}, {"allow_single_replica": True}, 1000, False, 1, ["replicas_formula"]),
        # a service that ran 1 pod stays at 1
        ({"pod_count": 1, "p95_cpu_pct": 10.0}, {}, 1000, False, 1, ["replicas_formula"]),
        # at least min_replicas …
        (
            {"pod_count": 6, "p95_cpu_pct": 10.0},
            {"min_replicas": 3},
            1000,
            False,
            3,
            ["replicas_formula", "replicas_min"],
        ),
        # … but never above today's pods unless scale-up is allowed
        (
            {"pod_count": 2, "p95_cpu_pct": 10.0},
            {"min_replicas": 3},
            1000,
            False,
            2,
            ["replicas_formula", "replicas_min", "replicas_no_scale_up"],
        ),
        ({"pod_count": 2, "p95_cpu_pct": 90.0}, {}, 1000, False, 2, ["replicas_formula", "replicas_no_scale_up"]),
        ({"pod_count": 2, "p95_cpu_pct": 90.0}, {"allow_scale_up": True}, 1000, False, 3, ["replicas_formula"]),
        # memory is a guard: at the target (80 %) today's pods; just below it the formula
        ({"p95_cpu_pct": 10.0, "p95_mem_pct": 80.0}, {}, 1000, False, 4, ["replicas_memory_guard"]),
        ({"p95_cpu_pct": 10.0, "p95_mem_pct": 79.9}, {}, 1000, False, 2, ["replicas_formula", "replicas_keep_two"]),
        # no recommendation, and why
        ({}, {}, 1000, True, None, ["replicas_hpa"]),
        ({}, {}, None, False, None, ["replicas_no_cpu_limit"]),
        ({"p95_cpu_pct": None}, {}, 1000, False, None, ["replicas_no_cpu_pct"]),
        ({"pod_count": 0}, {}, 1000, False, None, ["replicas_no_pods"]),
    ],
)
def test_recommended_pods(figures, overrides, limit, hpa, expected, codes):
    replicas, reasons = r.replicas_recommend(
        source=source(**figures), limit_cpu_m=limit, is_hpa_managed=hpa, settings=settings(**overrides)
    )
    assert replicas == expected
    assert [reason.code for reason in reasons] == codes


def test_the_formula_reason_carries_its_figures():
    _, reasons = r.replicas_recommend(
        source=source(pod_count=6, p95_cpu_pct=12.3456), limit_cpu_m=1000, is_hpa_managed=False, settings=DEFAULTS
    )
    assert reasons[0] == r.Reason(
        "replicas_formula", {"pods": 6, "p95_cpu_pct": 12.346, "target_cpu_pct": 70.0, "replicas": 2}
    )


def recommend(*, figures=None, lookback=None, row=None, **overrides) -> r.Recommendation:
    return r.recommend(
        source=source(**(figures or {})),
        lookback=lookback or r.Lookback(days_with_data=3),
        row=row or r.CurrentRow(limit_cpu_m=1000, limit_mem_mib=2048),
        settings=settings(**overrides),
    )


@pytest.mark.parametrize(
    ("figures", "row", "overrides", "expected_cpu", "codes"),
    [
        # ceil(0.25 × 1000 × 1.2) = 300
        ({}, {}, {"cpu_headroom": 0.2}, 300, []),
        # the floor: 5 m → 10 m
        ({"p95_cpu_cores": 0.005}, {}, {}, 10, ["floor_cpu"]),
        # lowering from 1000 m: at most 50 % → 500, not 250
        ({}, {"request_cpu_m": 1000}, {}, 500, ["clamp_cpu"]),
        # from 500 m the 50 % bound is 250: exactly reached, no clamp
        ({}, {"request_cpu_m": 500}, {}, 250, []),
        # max_change_pct 80: from 1000 m at most down to 200
        ({}, {"request_cpu_m": 1000}, {"max_change_pct": 80.0}, 250, []),
        # raising is never clamped
        ({}, {"request_cpu_m": 100}, {}, 250, []),
        # capped at the limit
        ({"p95_cpu_cores": 1.5}, {}, {}, 1000, ["capped_cpu"]),
    ],
)
def test_cpu_request(figures, row, overrides, expected_cpu, codes):
    result = recommend(
        figures=figures, row=r.CurrentRow(**({"limit_cpu_m": 1000, "limit_mem_mib": 2048} | row)), **overrides
    )
    assert result.request_cpu_m == expected_cpu
    assert result.request_cpu_capped == ("capped_cpu" in codes)
    optional = {"floor_cpu", "clamp_cpu", "capped_cpu"}
    assert [reason.code for reason in result.reasons if reason.code in optional] == codes


@pytest.mark.parametrize(
    ("mem", "oom_kills", "current", "limit", "expected_mem", "codes"),
    [
        (300.0, 0, None, 2048, 300, []),
        # OOM: 300 × 1.2 = 360 < 300 + 100: the +100 MiB wins
        (300.0, 1, None, 2048, 400, ["oom_bump"]),
        # OOM: 1000 × 1.2 = 1200 > 1100: the factor wins
        (1000.0, 2, None, 2048, 1200, ["oom_bump"]),
        # OOM: never lower than the row's current request (1500), and no clamp
        (1000.0, 1, 1500, 2048, 1500, ["oom_bump", "oom_no_decrease"]),
        # without an OOM kill the same fall is clamped at 50 %: 1500 → 750 at most, 1000 is within
        (1000.0, 0, 1500, 2048, 1000, []),
        (500.0, 0, 1500, 2048, 750, ["clamp_mem"]),
        # the bump is capped at the limit
        (1000.0, 1, None, 1024, 1024, ["oom_bump", "capped_mem"]),
    ],
)
def test_memory_request_with_oom_feedback(mem, oom_kills, current, limit, expected_mem, codes):
    result = recommend(
        figures={"p95_mem_mib": mem},
        lookback=r.Lookback(days_with_data=5, oom_kills=oom_kills),
        row=r.CurrentRow(request_mem_mib=current, limit_cpu_m=1000, limit_mem_mib=limit),
    )
    assert result.request_mem_mib == expected_mem
    assert result.is_oom_killed == (oom_kills > 0)
    optional = {"oom_bump", "oom_no_decrease", "clamp_mem", "capped_mem"}
    assert [reason.code for reason in result.reasons if reason.code in optional] == codes


def test_the_oom_bump_reason_says_how():
    result = recommend(figures={"p95_mem_mib": 300.0}, lookback=r.Lookback(days_with_data=3, oom_kills=2))
    bump = next(reason for reason in result.reasons if reason.code == "oom_bump")
    assert bump.params == {"oom_kills": 2, "factor": 1.2, "min_mib": 100, "before": 300, "after": 400}


@pytest.mark.parametrize(("throttled", "flagged"), [(None, False), (10.0, False), (10.001, True), (35.0, True)])
def test_throttling_above_the_threshold_is_flagged(throttled, flagged):
    result = recommend(lookback=r.Lookback(days_with_data=3, throttled_pct=throttled))
    assert result.is_throttled is flagged
    assert ("cpu_throttled" in [reason.code for reason in result.reasons]) is flagged


@pytest.mark.parametrize(("days", "sufficient"), [(2, False), (3, True)])
def test_too_few_days_of_data_give_no_numbers(days, sufficient):
    result = recommend(lookback=r.Lookback(days_with_data=days, oom_kills=1))
    assert result.is_sufficient is sufficient
    if not sufficient:
        assert result == r.Recommendation(
            is_sufficient=False, reasons=(r.Reason("insufficient_data", {"days": 2, "min_days": 3}),)
        )
    else:
        assert (result.request_cpu_m, result.request_mem_mib, result.replicas) == (250, 400, 2)


def test_a_whole_explanation_in_order():
    result = r.recommend(
        source=source(rule="cluster", p95_cpu_cores=0.1, p95_mem_mib=900.0, p95_mem_pct=43.945, p95_cpu_pct=10.0),
        lookback=r.Lookback(
            days_with_data=7,
            oom_kills=1,
            throttled_pct=12.5,
            excluded_days=(datetime.date(2026, 3, 5), datetime.date(2026, 3, 4)),
        ),
        row=r.CurrentRow(request_cpu_m=400, request_mem_mib=1000, limit_cpu_m=1000, limit_mem_mib=2048),
        settings=DEFAULTS,
    )
    assert (result.request_cpu_m, result.request_mem_mib, result.replicas) == (200, 1080, 2)
    assert result.explanation() == {
        "reasons": [
            {"code": "excluded_days_skipped", "params": {"days": ["2026-03-04", "2026-03-05"]}},
            {"code": "source_day", "params": {"day": "2026-03-09", "rule": "cluster", "pods": 4}},
            {"code": "request_cpu", "params": {"p95_cpu_cores": 0.1, "headroom_pct": 0.0, "request_cpu_m": 100}},
            {"code": "clamp_cpu", "params": {"current": 400, "wanted": 100, "after": 200, "max_change_pct": 50.0}},
            {"code": "request_mem", "params": {"p95_mem_mib": 900.0, "headroom_pct": 0.0, "request_mem_mib": 900}},
            {
                "code": "oom_bump",
                "params": {"oom_kills": 1, "factor": 1.2, "min_mib": 100, "before": 900, "after": 1080},
            },
            {"code": "cpu_throttled", "params": {"throttled_pct": 12.5, "threshold_pct": 10.0}},
            {
                "code": "replicas_formula",
                "params": {"pods": 4, "p95_cpu_pct": 10.0, "target_cpu_pct": 70.0, "replicas": 1},
            },
            {"code": "replicas_keep_two", "params": {}},
        ]
    }


SAMPLE_PARAMS = {
    "source_day": {"day": "2026-03-09", "rule": "service", "pods": 4},
    "excluded_days_skipped": {"days": ["2026-03-04", "2026-03-05"]},
    "insufficient_data": {"days": 2, "min_days": 3},
    "request_cpu": {"p95_cpu_cores": 0.25, "headroom_pct": 20.0, "request_cpu_m": 300},
    "request_mem": {"p95_mem_mib": 300.0, "headroom_pct": 0.0, "request_mem_mib": 300},
    "floor_cpu": {"min_cpu_m": 10},
    "floor_mem": {"min_mem_mib": 16},
    "oom_bump": {"oom_kills": 1, "factor": 1.2, "min_mib": 100, "before": 300, "after": 400},
    "oom_no_decrease": {"request_mem_mib": 1500},
    "clamp_cpu": {"current": 1000, "wanted": 250, "after": 500, "max_change_pct": 50.0},
    "clamp_mem": {"current": 1500, "wanted": 500, "after": 750, "max_change_pct": 50.0},
    "capped_cpu": {"limit": 1000},
    "capped_mem": {"limit": 1024},
    "cpu_throttled": {"throttled_pct": 12.5, "threshold_pct": 10.0},
    "request_cpu_by_hand": {"request_cpu_m": 333},
    "request_mem_by_hand": {"request_mem_mib": 512},
    "replicas_formula": {"pods": 4, "p95_cpu_pct": 35.0, "target_cpu_pct": 70.0, "replicas": 2},
    "replicas_min": {"min_replicas": 3},
    "replicas_keep_two": {},
    "replicas_no_scale_up": {"pods": 2},
    "replicas_memory_guard": {"p95_mem_pct": 85.0, "target_mem_pct": 80.0, "pods": 4},
    "replicas_hpa": {},
    "replicas_no_cpu_limit": {},
    "replicas_no_cpu_pct": {},
    "replicas_no_pods": {},
}


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_every_reason_code_renders_as_a_sentence(language):
    assert set(SAMPLE_PARAMS) == set(r.REASON_CODES) == set(TEMPLATES)
    with translation.override(language):
        for code, params in SAMPLE_PARAMS.items():
            text = reason_render({"code": code, "params": params})
            assert text != code
            assert "%(" not in text
            if language == "zh-hans":
                assert any("\u4e00" <= char <= "\u9fff" for char in text), text


def test_rendered_figures_read_naturally_and_an_unknown_code_shows_as_itself():
    with translation.override("en"):
        assert reason_render({"code": "replicas_formula", "params": SAMPLE_PARAMS["replicas_formula"]}) == (
            "Recommended pods 2 = ceil(4 pods × P95 CPU 35 % ÷ target 70 %)."
        )
        assert explanation_api({"reasons": [{"code": "from_the_future", "params": {}}]}) == {
            "reasons": [{"code": "from_the_future", "params": {}}],
            "text": ["from_the_future"],
        }

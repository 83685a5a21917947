"""Stored figures do not depend on the order the metrics backend summed its series in."""

from __future__ import annotations

import pytest

from apps.metrics import peaks
from apps.metrics.daily import _round


@pytest.mark.parametrize("noise", [-3e-13, 0.0, 3e-13])
def test_a_tie_rounds_the_same_whatever_the_summing_noise(noise):
    # 160.9375 is exact in binary: a backend summing per-pod shares in another order returns it a few
    # ulps either side (seen as 160.937 on one run and 160.938 on the next before this rounding).
    assert peaks.round_clean(160.9375 + noise, 3) == 160.938
    assert _round("p95_mem_pct", 160.9375 + noise) == 160.938
    assert _round("pod_count", 2.5 + noise) == 2


def test_real_differences_below_the_stored_digits_still_count():
    assert peaks.round_clean(160.9374, 3) == 160.937
    assert peaks.round_clean(160.93751, 3) == 160.938
    assert _round("request_cpu_m", 880.0000000000006) == 880

"""Kubernetes resource quantities ("250m", "0.25", "512Mi", "1e3"): pure helpers the admission decision
and the in-place resize share (the API server writes quantities canonically, so they are compared as
amounts, never as texts)."""

from __future__ import annotations

import functools
from decimal import Decimal, InvalidOperation
from typing import Any

_SUFFIXES = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}


def parse_quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity ("250m", "1.5", "512Mi", "1e3") as a Decimal; None when unreadable."""
    if isinstance(value, str):
        return _parse_quantity_text(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    return None


@functools.lru_cache(maxsize=4096)
def _parse_quantity_text(value: str) -> Decimal | None:
    text = value.strip()
    for suffix in ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E"):
        if text.endswith(suffix):
            number, multiplier = text[: -len(suffix)], _SUFFIXES[suffix]
            break
    else:
        number, multiplier = text, _SUFFIXES[""]
    try:
        parsed = Decimal(number)
    except InvalidOperation:
        return None
    if not parsed.is_finite():
        return None
    return parsed * multiplier


def same_quantity(a: Any, b: Any) -> bool:
    """ "0.25" and "250m" are the same CPU; rewriting one into the other would only churn rollouts."""
    qa, qb = parse_quantity(a), parse_quantity(b)
    return qa is not None and qa == qb


def cpu_text(millicores: int) -> str:
    return f"{millicores}m"


def mem_text(mebibytes: int) -> str:
    return f"{mebibytes}Mi"

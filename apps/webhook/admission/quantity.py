"""RFC 6901 JSON pointers, and the Kubernetes quantities of ``apps.control.quantities`` (pure helpers of the
decision)."""

from __future__ import annotations

from apps.control.quantities import cpu_text, mem_text, parse_quantity, same_quantity

__all__ = ["cpu_text", "mem_text", "parse_quantity", "pointer", "same_quantity"]


def pointer(*segments: str | int) -> str:
    """An RFC 6901 JSON pointer: "~" becomes "~0" and "/" becomes "~1" in every segment."""
    return "".join(["/" + _escaped(str(segment)) for segment in segments])


def _escaped(segment: str) -> str:
    if "~" in segment or "/" in segment:
        return segment.replace("~", "~0").replace("/", "~1")
    return segment

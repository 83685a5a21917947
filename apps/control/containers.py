"""Which container of a Deployment its control row controls: one pure rule, no Django.

Collection (``apps.metrics.refresh``: whose statistics fill the row) and admission
(``apps.webhook.admission``: whose resources are patched) both ask this question; they answer it
here so the two can never pick different containers (DESIGN §4.2, §5.4, §6.2 step 8).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def controlled_container(
    *,
    configured: str,
    deployment: str,
    names: Sequence[str],
    p95_cpu: Mapping[str, float | None] | None = None,
) -> tuple[str | None, bool]:
    """The controlled container's name among ``names`` (in the pod spec's order), and whether to write it.

    The row's ``configured`` container when set (``None`` when ``names`` has no container of that
    name); else the container named like the Deployment; else the only container; else, when the
    containers' P95 CPU of the source day is known (``p95_cpu``, collection), the busiest (ties go to
    the greater name), whose name must then be written into the row (the second value) so that
    admission patches the same container; else (admission, a row collection has not filled yet) the
    first container. ``None`` when there is no container.
    """
    if configured:
        return (configured if configured in names else None), False
    if deployment in names:
        return deployment, False
    if not names:
        return None, False
    if len(names) == 1 or p95_cpu is None:
        return names[0], False
    busiest = max(names, key=lambda name: (cpu if (cpu := p95_cpu.get(name)) is not None else -1.0, name))
    return busiest, True

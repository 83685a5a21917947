"""Which namespaces of a cluster KubeDoor controls: one pure rule, no Django.

The cluster model (collection, refresh, import) and the admission decision (its snapshot's
``ClusterSettings``) both ask this question; they answer it here so the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Collection


def namespace_is_controlled(*, namespace: str, namespaces: Collection[str], excluded: Collection[str]) -> bool:
    """An excluded namespace never is; otherwise every namespace is when ``namespaces`` is empty, else
    only the ones it lists (an exclusion wins over a listing)."""
    if namespace in excluded:
        return False
    return not namespaces or namespace in namespaces

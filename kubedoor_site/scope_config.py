"""``KUBEDOOR_GROUP_SCOPES``: directory groups → scoped roles, parsed once by the settings module.

The text is ``group=role@cluster[:namespace,namespace…]`` items separated by ``;`` — e.g.
``team-a=operator@prod:shop,payments;team-b=viewer@staging``. A group may appear in several items
(one per cluster). The groups are the Django groups LDAP and OIDC logins mirror by name.
"""

from __future__ import annotations

import re
from typing import NamedTuple

ROLE_NAMES = ("viewer", "operator", "admin")  # apps.accounts.roles.ROLES (settings import no app)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class ConfiguredScope(NamedTuple):
    group: str
    role: str
    cluster: str
    namespaces: tuple[str, ...]


def group_scopes_parse(text: str) -> tuple[ConfiguredScope, ...]:
    """Parse ``KUBEDOOR_GROUP_SCOPES``; ``ValueError`` naming the bad item and what is wrong with it."""
    scopes: list[ConfiguredScope] = []
    seen: set[tuple[str, str]] = set()
    for item in filter(None, (part.strip() for part in text.split(";"))):
        group, equals, rest = item.partition("=")
        group = group.strip()
        if not equals or not group:
            raise ValueError(f"KUBEDOOR_GROUP_SCOPES: {item!r} is not group=role@cluster[:namespace,…]")
        role, at, where = rest.partition("@")
        role = role.strip()
        if role not in ROLE_NAMES:
            raise ValueError(f"KUBEDOOR_GROUP_SCOPES: {item!r}: the role must be one of {', '.join(ROLE_NAMES)}")
        cluster, _, namespace_text = where.partition(":")
        cluster = cluster.strip()
        if not at or not _DNS_LABEL.match(cluster):
            raise ValueError(f"KUBEDOOR_GROUP_SCOPES: {item!r}: give a cluster name after @")
        namespaces = tuple(sorted({ns.strip() for ns in namespace_text.split(",") if ns.strip()}))
        bad = [ns for ns in namespaces if not _DNS_LABEL.match(ns)]
        if bad:
            raise ValueError(f"KUBEDOOR_GROUP_SCOPES: {item!r}: {', '.join(bad)} is not a namespace name")
        if (group, cluster) in seen:
            raise ValueError(f"KUBEDOOR_GROUP_SCOPES: group {group!r} has two items for cluster {cluster!r}")
        seen.add((group, cluster))
        scopes.append(ConfiguredScope(group=group, role=role, cluster=cluster, namespaces=namespaces))
    return tuple(scopes)

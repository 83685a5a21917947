"""django-auth-ldap settings built from ``AUTH_LDAP_*`` variables (DESIGN §10).

A function rather than inline settings so the tests build LDAP settings exactly as
production does, pointed at their own slapd.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ROLE_VARIABLES = (
    ("viewer", "AUTH_LDAP_VIEWER_GROUP_DN"),
    ("operator", "AUTH_LDAP_OPERATOR_GROUP_DN"),
    ("admin", "AUTH_LDAP_ADMIN_GROUP_DN"),
)


def ldap_settings(env: Mapping[str, str], *, base_backends: list[str]) -> dict[str, Any]:
    """Settings for LDAP login; empty (LDAP off) when ``AUTH_LDAP_SERVER_URI`` is empty."""
    uri = env.get("AUTH_LDAP_SERVER_URI", "")
    if not uri:
        return {"AUTH_LDAP_SERVER_URI": "", "AUTHENTICATION_BACKENDS": list(base_backends)}

    import ldap
    from django_auth_ldap.config import GroupOfNamesType, LDAPGroupQuery, LDAPSearch

    for required in ("AUTH_LDAP_USER_SEARCH_BASE", "AUTH_LDAP_GROUP_SEARCH_BASE"):
        if not env.get(required):
            raise ValueError(f"{required} must be set when AUTH_LDAP_SERVER_URI is set")
    role_groups = {role: env[var] for role, var in ROLE_VARIABLES if env.get(var)}
    if not role_groups and not env.get("KUBEDOOR_GROUP_SCOPES"):
        raise ValueError(
            "Set at least one of AUTH_LDAP_VIEWER/OPERATOR/ADMIN_GROUP_DN (or KUBEDOOR_GROUP_SCOPES): "
            "nobody could log in"
        )
    any_role = None
    for dn in role_groups.values():
        any_role = LDAPGroupQuery(dn) if any_role is None else any_role | LDAPGroupQuery(dn)

    return {
        "AUTH_LDAP_SERVER_URI": uri,
        "AUTH_LDAP_BIND_DN": env.get("AUTH_LDAP_BIND_DN", ""),
        "AUTH_LDAP_BIND_PASSWORD": env.get("AUTH_LDAP_BIND_PASSWORD", ""),
        "AUTH_LDAP_START_TLS": env.get("AUTH_LDAP_START_TLS", "").lower() in {"1", "true", "yes", "on"},
        "AUTH_LDAP_USER_SEARCH": LDAPSearch(
            env["AUTH_LDAP_USER_SEARCH_BASE"],
            ldap.SCOPE_SUBTREE,
            env.get("AUTH_LDAP_USER_FILTER") or "(uid=%(user)s)",
        ),
        "AUTH_LDAP_GROUP_SEARCH": LDAPSearch(
            env["AUTH_LDAP_GROUP_SEARCH_BASE"],
            ldap.SCOPE_SUBTREE,
            env.get("AUTH_LDAP_GROUP_FILTER") or "(objectClass=groupOfNames)",
        ),
        "AUTH_LDAP_GROUP_TYPE": GroupOfNamesType(name_attr="cn"),
        # Mirror every LDAP group into Django except the role groups, which are assigned from the
        # role mapping by DN (apps.accounts.ldap), never by LDAP group name.
        "AUTH_LDAP_MIRROR_GROUPS_EXCEPT": [role for role, _ in ROLE_VARIABLES],
        "AUTH_LDAP_USER_ATTR_MAP": {"first_name": "givenName", "last_name": "sn", "email": "mail"},
        "AUTH_LDAP_ROLE_GROUPS": role_groups,
        # A user in no role group and no group with a scope cannot log in at all: checked by
        # apps.accounts.ldap (scopes are by group name, so no DN query can say it here).
        "AUTH_LDAP_USER_FLAGS_BY_GROUP": {"is_staff": any_role} if any_role is not None else {},
        "AUTH_LDAP_ALWAYS_UPDATE_USER": True,
        "AUTH_LDAP_CONNECTION_OPTIONS": {ldap.OPT_NETWORK_TIMEOUT: 5, ldap.OPT_TIMEOUT: 10},
        "AUTHENTICATION_BACKENDS": ["apps.accounts.ldap.RoleLDAPBackend", *base_backends],
    }

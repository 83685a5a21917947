"""OpenID Connect settings from ``OIDC_*`` environment variables; off when ``OIDC_RP_CLIENT_ID`` is empty."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ROLE_NAMES = ("viewer", "operator", "admin")  # apps.accounts.roles.ROLES (settings import no app)
REQUIRED = (
    "OIDC_RP_CLIENT_SECRET",
    "OIDC_OP_AUTHORIZATION_ENDPOINT",
    "OIDC_OP_TOKEN_ENDPOINT",
    "OIDC_OP_USER_ENDPOINT",
    "OIDC_OP_JWKS_ENDPOINT",
)


def group_roles_parse(text: str) -> dict[str, str]:
    """``team-a:operator,platform:admin`` → ``{"team-a": "operator", "platform": "admin"}``."""
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        group, _, role = item.rpartition(":")
        if not group or role not in ROLE_NAMES:
            raise ValueError(f"OIDC_GROUP_ROLES: {item!r} is not group:role with a role of {', '.join(ROLE_NAMES)}")
        mapping[group] = role
    return mapping


def oidc_settings(env: Mapping[str, str], *, backends: list[str]) -> dict[str, Any]:
    """Settings for mozilla-django-oidc and KubeDoor's role mapping; ``KUBEDOOR_OIDC_ENABLED`` False when unset."""
    client_id = env.get("OIDC_RP_CLIENT_ID", "")
    if not client_id:
        return {"KUBEDOOR_OIDC_ENABLED": False, "AUTHENTICATION_BACKENDS": list(backends)}
    missing = [name for name in REQUIRED if not env.get(name)]
    if missing:
        raise ValueError(f"{', '.join(missing)} must be set when OIDC_RP_CLIENT_ID is set")
    group_roles = group_roles_parse(env.get("OIDC_GROUP_ROLES", ""))
    if not group_roles and not env.get("KUBEDOOR_GROUP_SCOPES"):
        raise ValueError(
            "Set OIDC_GROUP_ROLES (e.g. team-a:operator) or KUBEDOOR_GROUP_SCOPES: nobody could log in with SSO"
        )
    return {
        "KUBEDOOR_OIDC_ENABLED": True,
        "OIDC_RP_CLIENT_ID": client_id,
        "OIDC_RP_CLIENT_SECRET": env["OIDC_RP_CLIENT_SECRET"],
        "OIDC_OP_AUTHORIZATION_ENDPOINT": env["OIDC_OP_AUTHORIZATION_ENDPOINT"],
        "OIDC_OP_TOKEN_ENDPOINT": env["OIDC_OP_TOKEN_ENDPOINT"],
        "OIDC_OP_USER_ENDPOINT": env["OIDC_OP_USER_ENDPOINT"],
        "OIDC_OP_JWKS_ENDPOINT": env["OIDC_OP_JWKS_ENDPOINT"],
        "OIDC_RP_SIGN_ALGO": env.get("OIDC_RP_SIGN_ALGO") or "RS256",
        "OIDC_RP_SCOPES": env.get("OIDC_RP_SCOPES") or "openid email profile",
        "OIDC_USERNAME_CLAIM": env.get("OIDC_USERNAME_CLAIM") or "preferred_username",
        "OIDC_GROUPS_CLAIM": env.get("OIDC_GROUPS_CLAIM") or "groups",
        "OIDC_GROUP_ROLES": group_roles,
        "OIDC_TIMEOUT": float(env.get("OIDC_TIMEOUT") or 10),
        # Match the ID token's "kid" to a key of the JWKS; off only for a provider with one signing key
        # whose tokens carry no key id (the signature is verified either way).
        "OIDC_VERIFY_KID": env.get("OIDC_VERIFY_KID", "true").lower() not in {"0", "false", "no", "off"},
        "OIDC_AUTHENTICATION_CALLBACK_URL": "oidc-callback",
        "LOGIN_REDIRECT_URL": "/admin/",
        "LOGIN_REDIRECT_URL_FAILURE": "/admin/login/?sso=failed",
        "AUTHENTICATION_BACKENDS": [*backends, "apps.accounts.oidc.RoleOIDCBackend"],
    }

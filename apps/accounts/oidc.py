"""Single sign-on with OpenID Connect (issue 13 §3), next to LDAP and local users.

mozilla-django-oidc runs the authorization-code flow; this backend decides who the user is and
what role they get: the username comes from ``OIDC_USERNAME_CLAIM`` (``preferred_username``), and
on every login the groups claim (``OIDC_GROUPS_CLAIM``) is mapped to the KubeDoor role groups by
``OIDC_GROUP_ROLES`` (``team-a:operator,platform:admin``), and every group of the claim is
mirrored as a Django group of the same name (as LDAP groups are); the ``KUBEDOOR_GROUP_SCOPES``
scopes of those groups are brought up to date. A user in no mapped group whose groups hold no
scope cannot log in, as with LDAP. A local account with a password of its own is never taken over by
an SSO login of the same name. Each login is an audit event carrying the source address.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.http import Http404, HttpRequest, HttpResponse
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from apps.accounts.roles import ROLES
from apps.accounts.scope_services import configured_clusters_exist, group_scopes_config_sync, groups_have_scopes
from apps.accounts.scopes import user_scopes_forget
from apps.audit.services import Actor, login_record

logger = logging.getLogger(__name__)


def _setting(name: str, default: str) -> str:
    return str(getattr(settings, name, "") or default)


def oidc_enabled() -> bool:
    return bool(getattr(settings, "KUBEDOOR_OIDC_ENABLED", False))


def roles_for_groups(groups: Any) -> list[str]:
    """The KubeDoor roles the groups claim grants through ``OIDC_GROUP_ROLES``, in ROLES order."""
    if isinstance(groups, str):
        groups = [groups]
    names = {str(group) for group in groups or []}
    mapping: dict[str, str] = getattr(settings, "OIDC_GROUP_ROLES", {})
    granted = {role for group, role in mapping.items() if group in names}
    return [role for role in ROLES if role in granted]


def _groups_scoped(groups: list[str]) -> bool:
    """Whether the groups hold a scope, from the admin or from ``KUBEDOOR_GROUP_SCOPES``."""
    return configured_clusters_exist(groups) or groups_have_scopes(groups)


class RoleOIDCBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend with KubeDoor's user names, role mapping and login audit."""

    def _username(self, claims: dict[str, Any]) -> str:
        return str(claims.get(_setting("OIDC_USERNAME_CLAIM", "preferred_username")) or "")

    def _groups(self, claims: dict[str, Any]) -> list[str]:
        value = claims.get(_setting("OIDC_GROUPS_CLAIM", "groups")) or []
        return [str(group) for group in ([value] if isinstance(value, str) else value)]

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        username = self._username(claims)
        if not username:
            logger.warning("OIDC login refused: no %s claim", _setting("OIDC_USERNAME_CLAIM", "preferred_username"))
            return False
        groups = self._groups(claims)
        if not roles_for_groups(groups) and not _groups_scoped(groups):
            logger.warning("OIDC login of %s refused: no group of OIDC_GROUP_ROLES or with a scope", username)
            return False
        return True

    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:
        return self.UserModel.objects.filter(username=self._username(claims))

    def create_user(self, claims: dict[str, Any]) -> Any:
        user = self.UserModel.objects.create_user(self._username(claims), email=claims.get("email") or "")
        user.set_unusable_password()  # signs in through the provider only
        return self.update_user(user, claims)

    def update_user(self, user: Any, claims: dict[str, Any]) -> Any:
        if user.has_usable_password():
            logger.warning("OIDC login of %s refused: a local account of that name exists", user.username)
            return None
        groups = self._groups(claims)
        roles = roles_for_groups(groups)
        user.email = claims.get("email") or user.email
        user.first_name = str(claims.get("given_name") or user.first_name)[:150]
        user.last_name = str(claims.get("family_name") or user.last_name)[:150]
        user.is_staff = True
        user.save()
        # Role groups exactly as mapped; the claim's groups mirrored by name (never a role's name).
        mirrored = [Group.objects.get_or_create(name=name[:150])[0] for name in groups if name not in ROLES]
        user.groups.set([*Group.objects.filter(name__in=roles), *mirrored])
        group_scopes_config_sync(actor=Actor.system("oidc", on_behalf_of=user), group_names=groups)
        user_scopes_forget(user)
        self._record_login(user, roles=roles, groups=groups)
        return user

    def _record_login(self, user: Any, *, roles: list[str], groups: list[str]) -> None:
        login_record(
            request=getattr(self, "request", None),
            backend="oidc",
            username=user.get_username(),
            user=user,
            details={"roles": roles, "groups": groups},
        )


def sso_login(request: HttpRequest) -> HttpResponse:
    """Start the authorization-code flow at the provider; 404 when OIDC is not configured."""
    if not oidc_enabled():
        raise Http404
    return OIDCAuthenticationRequestView.as_view()(request)


def sso_callback(request: HttpRequest) -> HttpResponse:
    """The provider's redirect back: code → tokens → user (RoleOIDCBackend); 404 when not configured."""
    if not oidc_enabled():
        raise Http404
    return OIDCAuthenticationCallbackView.as_view()(request)

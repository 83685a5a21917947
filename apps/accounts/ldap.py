"""LDAP login with role mapping by group DN (DESIGN §10) and scopes by group name (issue 13 §2).

django-auth-ldap mirrors the user's LDAP groups by name and sets ``is_staff`` for members of
any role group; this backend then puts the user in exactly the KubeDoor role groups
(``viewer``, ``operator``, ``admin``) whose configured DNs the user belongs to, and brings the
``KUBEDOOR_GROUP_SCOPES`` scopes of the user's mirrored groups up to date. A user in no role group
whose groups hold no scope is refused; one whose groups hold scopes logs in as a scoped user
(``is_staff``, so the admin opens; what they see is decided by ``apps.accounts.scopes``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django_auth_ldap.backend import LDAPBackend, _LDAPUser

from apps.accounts.roles import ROLES
from apps.accounts.scope_services import group_scopes_config_sync, groups_have_scopes
from apps.accounts.scopes import user_scopes_forget
from apps.audit.models import AuditSource
from apps.audit.services import Actor


class RoleLDAPBackend(LDAPBackend):
    def authenticate_ldap_user(self, ldap_user: _LDAPUser, password: str) -> Any:
        user = super().authenticate_ldap_user(ldap_user, password)
        if user is None:
            return None
        member_of = {dn.lower() for dn in ldap_user.group_dns}
        role_names = [
            role for role, dn in getattr(settings, "AUTH_LDAP_ROLE_GROUPS", {}).items() if dn.lower() in member_of
        ]
        group_names = [name for name in ldap_user.group_names if name not in ROLES]
        group_scopes_config_sync(
            actor=Actor.system("ldap", source=AuditSource.SYSTEM, on_behalf_of=user), group_names=group_names
        )
        scoped = not role_names and groups_have_scopes(group_names)
        if not role_names and not scoped:
            return None
        roles = Group.objects.filter(name__in=role_names)
        user.groups.remove(*Group.objects.filter(name__in=ROLES).exclude(name__in=role_names))
        user.groups.add(*roles)
        if scoped and not user.is_staff:
            user.is_staff = True
            user.save(update_fields=["is_staff"])
        user_scopes_forget(user)
        return user

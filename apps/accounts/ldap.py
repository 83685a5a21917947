"""LDAP login with role mapping by group DN (DESIGN §10).

django-auth-ldap mirrors the user's LDAP groups by name and sets ``is_staff`` for members of
any role group; this backend then puts the user in exactly the KubeDoor role groups
(``viewer``, ``operator``, ``admin``) whose configured DNs the user belongs to.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django_auth_ldap.backend import LDAPBackend, _LDAPUser

from apps.accounts.roles import ROLES


class RoleLDAPBackend(LDAPBackend):
    def authenticate_ldap_user(self, ldap_user: _LDAPUser, password: str) -> Any:
        user = super().authenticate_ldap_user(ldap_user, password)
        if user is None:
            return None
        member_of = {dn.lower() for dn in ldap_user.group_dns}
        role_names = [
            role for role, dn in getattr(settings, "AUTH_LDAP_ROLE_GROUPS", {}).items() if dn.lower() in member_of
        ]
        if not role_names:
            return None
        roles = Group.objects.filter(name__in=role_names)
        user.groups.remove(*Group.objects.filter(name__in=ROLES).exclude(name__in=role_names))
        user.groups.add(*roles)
        return user

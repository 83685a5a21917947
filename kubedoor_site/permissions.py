"""API permissions: the same Django model permissions the admin uses, reads included.

DRF's ``DjangoModelPermissions`` lets any authenticated user read; KubeDoor requires the
``view_*`` permission for reads too, so a user with no role sees nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework import permissions

if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView


class RolePermissions(permissions.DjangoModelPermissions):
    perms_map = {
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "POST": ["%(app_label)s.add_%(model_name)s"],
        "PUT": ["%(app_label)s.change_%(model_name)s"],
        "PATCH": ["%(app_label)s.change_%(model_name)s"],
        "DELETE": ["%(app_label)s.delete_%(model_name)s"],
    }


def has_perms(*perms: str) -> type[permissions.BasePermission]:
    """A permission class requiring an authenticated user holding every one of ``perms``.

    For endpoints that are not plain CRUD on one model (actions such as scale, aggregates).
    """

    class _HasPerms(permissions.BasePermission):
        def has_permission(self, request: Request, view: APIView) -> bool:
            user = request.user
            return bool(user and user.is_authenticated and user.has_perms(perms))

    _HasPerms.__name__ = "HasPerms(" + ", ".join(perms) + ")"
    return _HasPerms

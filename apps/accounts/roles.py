"""The three roles of DESIGN §10 as Django groups, and the permissions each holds.

The admin and the API both check these Django permissions, so one table decides both.
``roles_sync`` is run by data migrations (and again whenever a later migration adds models):
permissions that do not exist yet are skipped, so an app added later calls it again. The
migrations that ran it before this module moved here import it through ``apps.control.roles``.
"""

from __future__ import annotations

from typing import Any

VIEWER = "viewer"
OPERATOR = "operator"
ADMIN = "admin"
ROLES = (VIEWER, OPERATOR, ADMIN)

_VIEWER_PERMS = (
    "control.view_cluster",
    "control.view_microservice",
    "control.view_scheduledoperation",
    "control.view_excludedday",
    "metrics.view_dailypeak",
    "metrics.view_collectionrun",
    "audit.view_auditevent",
    "audit.view_notificationchannel",
)
_OPERATOR_PERMS = (
    *_VIEWER_PERMS,
    "control.change_microservice",
    "control.scale_microservice",
    "control.restart_microservice",
    "control.add_scheduledoperation",
    "control.change_scheduledoperation",
    "control.delete_scheduledoperation",
    "control.add_excludedday",
    "control.change_excludedday",
    "control.delete_excludedday",
    "metrics.add_collectionrun",
)
# What concerns the whole installation rather than one cluster's rows: no group scope grants these
# (apps.accounts.scopes), only the global admin role (and the viewer's read of notification channels).
INSTALLATION_PERMS = (
    "control.add_cluster",
    "control.change_cluster",
    "control.delete_cluster",
    "control.change_admission_mode",
    "control.add_microservice",
    "control.delete_microservice",
    "audit.view_notificationchannel",
    "audit.add_notificationchannel",
    "audit.change_notificationchannel",
    "audit.delete_notificationchannel",
    "django_celery_beat.view_periodictask",
    "auth.view_user",
    "auth.view_group",
    "authtoken.view_tokenproxy",
    "metrics.view_importrun",
    "metrics.add_importrun",
    "axes.view_accessattempt",  # login lockouts: admins unlock them
    "axes.delete_accessattempt",
    "accounts.view_groupscope",  # who sees which clusters and namespaces: admins decide
    "accounts.add_groupscope",
    "accounts.change_groupscope",
    "accounts.delete_groupscope",
)
_ADMIN_PERMS = (
    *_OPERATOR_PERMS,
    "control.change_microservice_requests",
    *(name for name in INSTALLATION_PERMS if name not in _OPERATOR_PERMS),
)

ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {VIEWER: _VIEWER_PERMS, OPERATOR: _OPERATOR_PERMS, ADMIN: _ADMIN_PERMS}


def roles_sync(apps: Any, schema_editor: Any = None) -> None:
    """Create the role groups and set their permissions exactly (usable as a RunPython)."""
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, names in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for dotted in names:
            app_label, codename = dotted.split(".", 1)
            wanted.extend(Permission.objects.filter(content_type__app_label=app_label, codename=codename))
        group.permissions.set(wanted)

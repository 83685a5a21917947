"""The project's own app configs: Django's admin with KubeDoor's AdminSite as ``admin.site``."""

from django.contrib.admin.apps import AdminConfig


class KubeDoorAdminConfig(AdminConfig):
    """``django.contrib.admin`` whose default site (``admin.site``) is :class:`KubeDoorAdminSite`."""

    default_site = "kubedoor_site.admin_site.KubeDoorAdminSite"

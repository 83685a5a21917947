from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ControlConfig(AppConfig):
    name = "apps.control"
    label = "control"
    verbose_name = _("Control table")

    def ready(self) -> None:
        # Notifications tell an event's time in its cluster's time zone; the audit app asks through this.
        from apps.audit.services import cluster_time_zone_resolver_set
        from apps.control.selectors import cluster_time_zone_get

        cluster_time_zone_resolver_set(cluster_time_zone_get)

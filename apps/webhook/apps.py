from typing import Any

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


def _drift_schedule_on_beat_start(**kwargs: Any) -> None:
    """Beat (standalone or embedded in a worker) writes its drift entry from the setting as it starts."""
    from apps.webhook.services.drift import drift_schedule_sync

    drift_schedule_sync()


class WebhookConfig(AppConfig):
    name = "apps.webhook"
    label = "webhook"
    verbose_name = _("Admission webhook")

    def ready(self) -> None:
        # A restart in enforce mode applies what admission would set; control may not import the
        # webhook, so the webhook hands it the preview (the same decision the endpoint runs).
        from apps.control.operations import restart_admission_preview_set, table_resources_set
        from apps.webhook.services import admission_container_resources, admission_preview

        restart_admission_preview_set(admission_preview)
        table_resources_set(admission_container_resources)

        from celery.signals import beat_init

        beat_init.connect(_drift_schedule_on_beat_start, dispatch_uid="kubedoor-drift-schedule")

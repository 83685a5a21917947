from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WebhookConfig(AppConfig):
    name = "apps.webhook"
    label = "webhook"
    verbose_name = _("Admission webhook")

    def ready(self) -> None:
        # A restart in enforce mode applies what admission would set; control may not import the
        # webhook, so the webhook hands it the preview (the same decision the endpoint runs).
        from apps.control.operations import restart_admission_preview_set
        from apps.webhook.services import admission_preview

        restart_admission_preview_set(admission_preview)

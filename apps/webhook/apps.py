from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WebhookConfig(AppConfig):
    name = "apps.webhook"
    label = "webhook"
    verbose_name = _("Admission webhook")

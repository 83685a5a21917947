"""Per-user data of KubeDoor's own (users and groups are Django's)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class UserPreference(models.Model):
    """Per-user settings of the UI. An empty language follows the browser's Accept-Language.

    The table keeps the name it had when the model lived in the control app, so moving the model
    moved no data (migration accounts 0001 only takes it over in Django's state).
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="kubedoor_preference", verbose_name=_("user")
    )
    language = models.CharField(
        _("language"), max_length=16, blank=True, choices=[("", _("as the browser asks")), *settings.LANGUAGES]
    )

    class Meta:
        db_table = "control_userpreference"
        verbose_name = _("user preference")
        verbose_name_plural = _("user preferences")

    def __str__(self) -> str:
        return f"{self.user} ({self.language or 'browser'})"

"""Per-user UI preferences: the language chosen by the user, else the browser's (issue 6)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from apps.accounts.models import UserPreference

SESSION_KEY = "kubedoor_language"


def user_language_get(*, user: Any) -> str:
    """The user's chosen language code, or "" to follow the browser."""
    preference = UserPreference.objects.filter(user=user).only("language").first()
    return preference.language if preference is not None else ""


def user_language_set(*, user: Any, language: str) -> str:
    """Store the user's language ("" = follow the browser); raises ValidationError for an unknown code."""
    if language and language not in dict(settings.LANGUAGES):
        raise ValidationError({"language": _("Unknown language %(code)s.") % {"code": language}})
    UserPreference.objects.update_or_create(user=user, defaults={"language": language})
    return language

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    """Identity: the role groups, LDAP login with role mapping, and per-user UI preferences."""

    name = "apps.accounts"
    label = "accounts"
    verbose_name = _("Accounts")

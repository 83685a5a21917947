from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    """Identity: the role groups and their scopes, LDAP and OIDC login with role mapping, per-user UI preferences."""

    name = "apps.accounts"
    label = "accounts"
    verbose_name = _("Accounts")

    def ready(self) -> None:
        from apps.accounts.scopes import audit_event_scope_filter
        from apps.audit.visibility import audit_visibility_install

        # The audit app imports no other app: it asks the filter installed here (apps.audit.visibility).
        audit_visibility_install(audit_event_scope_filter)

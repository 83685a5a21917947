"""Per-user data of KubeDoor's own (users and groups are Django's)."""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.accounts.roles import ROLES


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


DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # a namespace name (the control app checks the same)


class GroupScope(models.Model):
    """A group's role on one cluster, optionally limited to some of its namespaces (issue 13 §2).

    A member of the group whose only access comes from scopes sees and acts on exactly the rows of
    their scopes (``apps.accounts.scopes``); members of a global role group (``viewer``, ``operator``,
    ``admin``) and superusers keep everything. ``namespaces`` empty = the whole cluster. Scopes made
    from ``KUBEDOOR_GROUP_SCOPES`` are marked ``from_config`` and rewritten on each directory login;
    scopes made in the admin are never touched by a login.
    """

    group = models.ForeignKey(
        "auth.Group", on_delete=models.CASCADE, related_name="kubedoor_scopes", verbose_name=_("group")
    )
    role = models.CharField(
        _("role"),
        max_length=16,
        choices=[("viewer", _("viewer")), ("operator", _("operator")), ("admin", _("admin"))],
    )
    cluster = models.ForeignKey(
        "control.Cluster", on_delete=models.CASCADE, related_name="group_scopes", verbose_name=_("cluster")
    )
    namespaces = models.JSONField(
        _("namespaces"),
        default=list,
        blank=True,
        help_text=_('A JSON list, e.g. ["shop", "payments"]; [] for the whole cluster.'),
    )
    from_config = models.BooleanField(
        _("from configuration"),
        default=False,
        help_text=_("Made from KUBEDOOR_GROUP_SCOPES and kept in sync with it on every LDAP or OIDC login."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["group__name", "cluster__name", "role"]
        verbose_name = _("group scope")
        verbose_name_plural = _("group scopes")

    def __str__(self) -> str:
        where = self.cluster.name + (":" + ",".join(self.namespaces) if self.namespaces else "")
        return f"{self.group.name} = {self.role}@{where}"

    def clean(self) -> None:
        if self.group_id is not None and self.group.name in ROLES:
            raise ValidationError({"group": _("A role group already reaches every cluster: choose another group.")})
        namespaces = self.namespaces
        if not isinstance(namespaces, list) or not all(isinstance(item, str) for item in namespaces):
            raise ValidationError({"namespaces": _("Enter a list of namespace names.")})
        bad = [item for item in namespaces if not DNS_LABEL.match(item)]
        if bad:
            raise ValidationError({"namespaces": _("Not a namespace name: %(names)s.") % {"names": ", ".join(bad)}})

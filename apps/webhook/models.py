"""The webhook app has no tables of its own; ``Admission`` gives the admin its "Admission" page."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from apps.control.models import Cluster


class Admission(Cluster):
    """A cluster seen from the admission side (DESIGN §8): its mode switch and registration state.

    A proxy of ``Cluster`` without permissions of its own: viewing needs ``control.view_cluster`` and
    switching needs ``control.change_admission_mode``.
    """

    class Meta:
        proxy = True
        default_permissions = ()
        verbose_name = _("admission")
        verbose_name_plural = _("admission")

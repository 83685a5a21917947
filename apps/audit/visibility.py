"""Which audit events a user may read: a filter the accounts app installs (issue 13 §2).

The audit app sits below every other app and imports none of them, yet who may see which events
(scoped roles) is decided in ``apps.accounts.scopes``. So the audit faces (admin changelist and
export, API list and export) ask ``audit_events_visible`` and the accounts app installs its
filter once, in ``AccountsConfig.ready``. Without an installed filter every event is visible,
which is what global roles see anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet

from apps.audit.models import AuditEvent

EventFilter = Callable[[Any, QuerySet[AuditEvent]], QuerySet[AuditEvent]]
_filter: EventFilter | None = None


def audit_visibility_install(event_filter: EventFilter) -> None:
    """Install the filter (called by ``apps.accounts`` at startup; a second call replaces the first)."""
    global _filter
    _filter = event_filter


def audit_events_visible(user: Any, events: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
    """``events`` as ``user`` may read them."""
    return events if _filter is None else _filter(user, events)

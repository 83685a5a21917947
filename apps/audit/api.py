"""Read-only API over the audit trail."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import django_filters
from django.http import StreamingHttpResponse
from django.utils.translation import gettext as _
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

from apps.audit.export import EXPORT_FORMATS, audit_events_export_response
from apps.audit.models import AUDIT_EVENT_SUBJECT_FIELDS, AuditEvent
from apps.audit.visibility import audit_events_visible


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            *AUDIT_EVENT_SUBJECT_FIELDS,
            "before",
            "after",
            "result",
            "message",
            "request_id",
            "remote_addr",
        ]
        read_only_fields = fields


class AuditEventFilter(django_filters.FilterSet):
    action = django_filters.CharFilter()
    actor = django_filters.CharFilter(field_name="actor_name")
    cluster = django_filters.CharFilter()
    namespace = django_filters.CharFilter()
    name = django_filters.CharFilter()
    result = django_filters.ChoiceFilter(choices=AuditEvent._meta.get_field("result").choices)
    since = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["action", "actor", "cluster", "namespace", "name", "result", "since", "until"]


class _FormatIsAParameter(DefaultContentNegotiation):
    """The export's ``?format=csv|jsonl`` names the file's format, not a renderer: errors answer JSON."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    """Audit events, newest first. There is no way to change or delete one."""

    queryset = AuditEvent.objects.all()
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    search_fields = ["message", "name"]
    ordering_fields = ["at", "action", "actor_name"]

    def get_queryset(self) -> Any:
        return audit_events_visible(self.request.user, AuditEvent.objects.all())

    @action(detail=False, methods=["get"], url_path="export", content_negotiation_class=_FormatIsAParameter)
    def export(self, request: Request, *args: Any, **kwargs: Any) -> StreamingHttpResponse:
        """The filtered events (the list's filters, search and all), oldest first, streamed as
        ``format=csv`` or ``format=jsonl``."""
        fmt = request.query_params.get("format", "csv")
        if fmt not in EXPORT_FORMATS:
            message = _("Unknown export format %(format)s: use csv or jsonl.") % {"format": fmt}
            raise ValidationError({"format": message})
        return audit_events_export_response(queryset=self.filter_queryset(self.get_queryset()), fmt=fmt)

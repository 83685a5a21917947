"""Read-only API over the audit trail."""

from __future__ import annotations

import django_filters
from rest_framework import serializers, viewsets

from apps.audit.models import AUDIT_EVENT_SUBJECT_FIELDS, AuditEvent


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


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    """Audit events, newest first. There is no way to change or delete one."""

    queryset = AuditEvent.objects.all()
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    search_fields = ["message", "name"]
    ordering_fields = ["at", "action", "actor_name"]

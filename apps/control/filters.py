from __future__ import annotations

from typing import Any

import django_filters
from rest_framework.filters import OrderingFilter

from apps.control.models import Microservice


class MicroserviceFilter(django_filters.FilterSet):
    cluster = django_filters.CharFilter(field_name="cluster__name")
    namespace = django_filters.CharFilter()
    present = django_filters.BooleanFilter(field_name="is_present")
    hpa_managed = django_filters.BooleanFilter(method="filter_hpa_managed", label="HPA-managed")

    def filter_hpa_managed(self, queryset: Any, name: str, value: bool | None) -> Any:
        if value is None:
            return queryset
        return queryset.exclude(hpa_name="") if value else queryset.filter(hpa_name="")

    class Meta:
        model = Microservice
        fields = ["cluster", "namespace", "present", "hpa_managed", "replicas_mode"]


class AliasOrderingFilter(OrderingFilter):
    """DRF's ordering, also taking the view's ``ordering_aliases`` (an old field name → its field)."""

    def remove_invalid_fields(self, queryset: Any, fields: Any, view: Any, request: Any) -> list[str]:
        aliases: dict[str, str] = getattr(view, "ordering_aliases", {})
        named = [
            ("-" if term.startswith("-") else "") + aliases.get(term.lstrip("-"), term.lstrip("-")) for term in fields
        ]
        return super().remove_invalid_fields(queryset, named, view, request)

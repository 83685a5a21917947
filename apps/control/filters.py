from __future__ import annotations

import django_filters

from apps.control.models import Microservice


class MicroserviceFilter(django_filters.FilterSet):
    cluster = django_filters.CharFilter(field_name="cluster__name")
    namespace = django_filters.CharFilter()
    present = django_filters.BooleanFilter(field_name="is_present")

    class Meta:
        model = Microservice
        fields = ["cluster", "namespace", "present", "replicas_mode"]

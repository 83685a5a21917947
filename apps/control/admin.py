"""The admin UI of the control table and clusters (DESIGN §8). Writes go through the services."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db.models import F, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from apps.accounts.roles import OPERATOR
from apps.accounts.scopes import (
    ScopedAdminMixin,
    ScopedClusterNameListFilter,
    ScopedRelatedFieldListFilter,
    scope_filter,
    scope_has_perm,
)
from apps.audit.services import Actor
from apps.control import excluded_days, selectors, services
from apps.control.admin_onboarding import ClusterOnboardingMixin
from apps.control.admin_operations import MicroserviceOperationsMixin
from apps.control.explanation import explanation_render
from apps.control.models import Cluster, ExcludedDay, Microservice

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


@admin.display(description=_("curves"))
def curves_link(obj: Microservice) -> str:
    """A control-table column: the service's daily curves over its cluster's lookback.

    The dashboard page belongs to the metrics app; it is reached by its URL name, not by import.
    """
    query = urlencode({"cluster": obj.cluster.name, "namespace": obj.namespace, "deployment": obj.name})
    url = reverse("admin:metrics_dashboard_curves") + "?" + query
    return format_html('<a class="kd-curves-link" href="{}">{}</a>', url, _("curves"))


class NamespaceFilter(admin.SimpleListFilter):
    """Namespaces present in the control table (of the selected cluster, when one is)."""

    title = _("namespace")
    parameter_name = "namespace"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        cluster_id = request.GET.get("cluster__id__exact")
        cluster = Cluster.objects.filter(pk=cluster_id).first() if cluster_id and cluster_id.isdigit() else None
        return [(ns, ns) for ns in selectors.namespace_list(cluster=cluster, user=request.user)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Microservice]) -> QuerySet[Microservice]:
        if self.value():
            return queryset.filter(namespace=self.value())
        return queryset


class HpaManagedFilter(admin.SimpleListFilter):
    """Whether an HPA targets the Deployment (found by the last collection)."""

    title = _("HPA-managed")
    parameter_name = "hpa_managed"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, StrOrPromise]]:
        return [("yes", _("Yes")), ("no", _("No"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Microservice]) -> QuerySet[Microservice]:
        if self.value() == "yes":
            return queryset.exclude(hpa_name="")
        if self.value() == "no":
            return queryset.filter(hpa_name="")
        return queryset


class NullsLastChangeList(ChangeList):
    """Sorts measured columns with unmeasured (empty) rows last in both directions.

    The ordering stays a plain field name for Django (so the sorted column is marked), and is
    turned into a nulls-last expression only for the query.
    """

    nullable_fields = frozenset(
        {
            "p95_cpu_pct",
            "p95_mem_pct",
            "replicas_specified",
            "replicas_recommended",
            "source_day",
            "request_cpu_m",
            "limit_cpu_m",
            "request_mem_mib",
            "limit_mem_mib",
        }
    )

    def get_ordering(self, request: HttpRequest, queryset: QuerySet[Microservice]) -> list[Any]:
        ordering = []
        for field in super().get_ordering(request, queryset):
            if isinstance(field, str) and (name := field.lstrip("-")) in self.nullable_fields:
                expression = F(name)
                field = expression.desc(nulls_last=True) if field.startswith("-") else expression.asc(nulls_last=True)
            ordering.append(field)
        return ordering


# Fields operators may edit; admins may edit every field of MICROSERVICE_EDITABLE_FIELDS.
OPERATOR_EDITABLE_FIELDS = ("replicas_specified", "limit_cpu_m", "limit_mem_mib")
MEASURED_FIELDS = (
    "replicas_initial",
    "replicas_measured",
    "p95_cpu_pct",
    "p95_mem_pct",
    "p95_cpu_cores",
    "p95_mem_mib",
    "request_capped",
    "source_day",
    "hpa_name",
    "is_present",
    "created_at",
    "updated_at",
    "updated_by",
    "explanation_display",
)


@admin.register(Microservice)
class MicroserviceAdmin(ScopedAdminMixin, MicroserviceOperationsMixin, admin.ModelAdmin):
    change_list_template = "admin/control/microservice/change_list.html"
    list_display = [
        "namespace",
        "name",
        "replicas_measured",
        "replicas_specified",
        "replicas_recommended",
        "p95_cpu_pct_display",
        "request_cpu_m",
        "limit_cpu_m",
        "p95_mem_pct_display",
        "request_mem_mib",
        "limit_mem_mib",
        "source_day",
        "hpa_display",
        "is_present",
        curves_link,
    ]
    list_display_links = ["name"]
    list_filter = [
        ("cluster", ScopedRelatedFieldListFilter),
        NamespaceFilter,
        "is_present",
        HpaManagedFilter,
        "replicas_mode",
    ]
    search_fields = ["namespace", "name"]
    list_per_page = 100
    list_select_related = ["cluster"]
    ordering = ["-p95_cpu_pct", "namespace", "name"]
    fieldsets = [
        (None, {"fields": ["cluster", "namespace", "name", "container", "replicas_mode", "hpa_name"]}),
        (
            _("Replicas"),
            {"fields": ["replicas_initial", "replicas_measured", "replicas_specified", "replicas_recommended"]},
        ),
        (
            _("Resources"),
            {"fields": ["request_cpu_m", "limit_cpu_m", "request_mem_mib", "limit_mem_mib", "request_capped"]},
        ),
        (
            _("Source day"),
            {"fields": ["source_day", "p95_cpu_cores", "p95_cpu_pct", "p95_mem_mib", "p95_mem_pct", "is_present"]},
        ),
        (_("Why these numbers"), {"fields": ["explanation_display"]}),
        (
            _("Overrides of the cluster's headroom and floors"),
            {"classes": ["collapse"], "fields": ["cpu_headroom", "mem_headroom", "min_cpu_m", "min_mem_mib"]},
        ),
        (
            _("Overrides of the cluster's recommendation settings"),
            {
                "classes": ["collapse"],
                "fields": [
                    "target_cpu_pct",
                    "target_mem_pct",
                    "min_replicas",
                    "allow_single_replica",
                    "allow_scale_up",
                ],
            },
        ),
        (_("History"), {"fields": ["created_at", "updated_at", "updated_by"]}),
    ]

    actions = [*MicroserviceOperationsMixin.actions, "accept_recommendation_action"]

    @admin.display(description=_("explanation"))
    def explanation_display(self, obj: Microservice) -> str:
        lines = explanation_render(obj.explanation)
        if not lines:
            return "—"
        return format_html(
            '<ul class="kd-explanation">{}</ul>', format_html_join("", "<li>{}</li>", ((line,) for line in lines))
        )

    @admin.action(description=_("Accept the recommended pods as specified pods"), permissions=["change"])
    def accept_recommendation_action(self, request: HttpRequest, queryset: QuerySet[Microservice]) -> None:
        queryset = scope_filter(request.user, queryset, role=OPERATOR)  # the rows they may change
        result = services.microservice_recommendation_accept(actor=Actor.for_admin(request), microservices=queryset)
        if result.accepted:
            self.message_user(
                request,
                ngettext(
                    "%(count)d row now specifies its recommended pods: %(names)s.",
                    "%(count)d rows now specify their recommended pods: %(names)s.",
                    len(result.accepted),
                )
                % {"count": len(result.accepted), "names": ", ".join(result.accepted[:20])},
                messages.SUCCESS,
            )
        if result.skipped:
            self.message_user(
                request,
                gettext("Left alone (no recommendation, or already specified so): %(names)s.")
                % {"names": ", ".join(result.skipped[:20])},
                messages.WARNING,
            )

    @admin.display(description=_("HPA"), ordering="hpa_name")
    def hpa_display(self, obj: Microservice) -> str:
        return obj.hpa_name or "—"

    @admin.display(description=_("P95 CPU %"), ordering="p95_cpu_pct")
    def p95_cpu_pct_display(self, obj: Microservice) -> str:
        return "—" if obj.p95_cpu_pct is None else f"{obj.p95_cpu_pct:.1f}"

    @admin.display(description=_("P95 memory %"), ordering="p95_mem_pct")
    def p95_mem_pct_display(self, obj: Microservice) -> str:
        return "—" if obj.p95_mem_pct is None else f"{obj.p95_mem_pct:.1f}"

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return NullsLastChangeList

    def get_readonly_fields(self, request: HttpRequest, obj: Microservice | None = None) -> list[str]:
        readonly = list(MEASURED_FIELDS)
        if obj is not None:
            readonly += ["cluster", "namespace", "name"]
        may_change_requests = (
            scope_has_perm(
                request.user, "control.change_microservice_requests", cluster=obj.cluster.name, namespace=obj.namespace
            )
            if obj is not None
            else request.user.has_perm("control.change_microservice_requests")
        )
        if not may_change_requests:
            editable = set(OPERATOR_EDITABLE_FIELDS)
            readonly += [field for field in services.MICROSERVICE_EDITABLE_FIELDS if field not in editable]
        return readonly

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        clusters = scope_filter(request.user, selectors.cluster_list(), cluster="name", namespace=None)
        extra_context = {**(extra_context or {}), "clusters": list(clusters)}
        return super().changelist_view(request, extra_context=extra_context)

    def save_model(self, request: HttpRequest, obj: Microservice, form: forms.ModelForm, change: bool) -> None:
        editable = set(services.MICROSERVICE_EDITABLE_FIELDS)
        data = {field: form.cleaned_data[field] for field in form.changed_data if field in editable}
        # Readonly fields are not in the form, so an operator cannot reach a request field here;
        # the service checks it again and would answer 403.
        if change:
            saved = services.microservice_update(actor=Actor.for_admin(request), microservice=obj, data=data)
        else:
            saved = services.microservice_create(
                actor=Actor.for_admin(request), cluster=obj.cluster, namespace=obj.namespace, name=obj.name, **data
            )
        obj.pk = saved.pk

    def delete_model(self, request: HttpRequest, obj: Microservice) -> None:
        services.microservice_delete(actor=Actor.for_admin(request), microservice=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Microservice]) -> None:
        for microservice in queryset.select_related("cluster"):
            services.microservice_delete(actor=Actor.for_admin(request), microservice=microservice)


class ClusterAdminForm(forms.ModelForm):
    """Secrets are never rendered back; leaving one empty keeps the stored value."""

    kubeconfig = forms.CharField(
        label=_("kubeconfig (secret)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": _("unchanged when empty")}),
    )
    prometheus_token = forms.CharField(
        label=_("Prometheus bearer token (secret)"),
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"placeholder": _("unchanged when empty")}),
    )
    namespaces = forms.JSONField(
        label=_("controlled namespaces"),
        required=False,
        help_text=_('A JSON list, e.g. ["shop", "payments"]; [] for all.'),
    )
    excluded_namespaces = forms.JSONField(label=_("excluded namespaces"), required=False)

    class Meta:
        model = Cluster
        fields = [  # every editable field; the mode and engine change only through the admission switch
            f.name
            for f in Cluster._meta.fields
            if f.editable and f.name not in {"id", "admission_mode", "admission_engine", "created_at", "updated_at"}
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["kubeconfig"] = ""
            self.initial["prometheus_token"] = ""

    def clean_namespaces(self) -> list[str]:
        return self.cleaned_data.get("namespaces") or []

    def clean_excluded_namespaces(self) -> list[str]:
        return self.cleaned_data.get("excluded_namespaces") or []

    def _post_clean(self) -> None:
        # Keep stored secrets when the field was left empty.
        for field in services.CLUSTER_SECRET_FIELDS:
            if self.instance.pk and not self.cleaned_data.get(field):
                self.cleaned_data[field] = getattr(Cluster.objects.get(pk=self.instance.pk), field)
        super()._post_clean()  # type: ignore[misc]  # private Django API, missing from django-stubs


@admin.register(Cluster)
class ClusterAdmin(ScopedAdminMixin, ClusterOnboardingMixin, admin.ModelAdmin):
    scope_cluster = "name"
    scope_namespace = None

    form = ClusterAdminForm
    list_display = [
        "name",
        "display_name",
        "connection_state",
        "kubernetes_version",
        "admission_mode",
        "time_zone",
        "peak_window",
        "lookback_days",
    ]
    search_fields = ["name", "display_name"]
    readonly_fields = [
        "admission_mode",
        "admission_engine",
        "excluded_days_link",
        "created_at",
        "updated_at",
        "connection_state",
        "connection_detail",
        "kubernetes_version",
        "last_success_at",
        "connection_checked_at",
    ]
    fieldsets = [
        (None, {"fields": ["name", "display_name", "time_zone"]}),
        (
            _("Connection"),
            {
                "fields": [
                    "connection_state",
                    "kubernetes_version",
                    "last_success_at",
                    "connection_checked_at",
                    "connection_detail",
                ]
            },
        ),
        (_("Kubernetes API"), {"fields": ["in_cluster", "kubeconfig_path", "kube_context", "kubeconfig"]}),
        (
            _("Prometheus"),
            {
                "fields": [
                    "prometheus_url",
                    "prometheus_token",
                    "prometheus_label_key",
                    "prometheus_label_value",
                    "metrics_backend",
                ]
            },
        ),
        (_("Namespaces"), {"fields": ["namespaces", "excluded_namespaces"]}),
        (
            _("Peak window and statistic"),
            {
                "fields": [
                    "peak_start",
                    "peak_end",
                    "lookback_days",
                    "peak_quantile",
                    "peak_aggregation",
                    "peak_step_seconds",
                    "collect_pods_nodes",
                    "collect_enabled",
                    "collect_at",
                ]
            },
        ),
        (
            _("Control table"),
            {
                "fields": [
                    "peak_day_mode",
                    "cpu_headroom",
                    "mem_headroom",
                    "min_cpu_m",
                    "min_mem_mib",
                    "auto_register_new",
                ]
            },
        ),
        (
            _("Recommended pods"),
            {
                "fields": [
                    "apply_recommended_replicas",
                    "target_cpu_pct",
                    "target_mem_pct",
                    "min_replicas",
                    "allow_single_replica",
                    "allow_scale_up",
                ]
            },
        ),
        (
            _("Safety feedback"),
            {"fields": ["oom_bump", "oom_bump_min_mib", "throttle_threshold_pct", "max_change_pct", "min_days"]},
        ),
        (
            _("Admission"),
            {
                "fields": [
                    "admission_mode",
                    "admission_engine",
                    "allow_unmanaged",
                    "on_store_error",
                    "failure_policy",
                    "webhook_timeout_seconds",
                    "webhook_url",
                    "webhook_ca_bundle",
                    "webhook_service",
                    "webhook_service_port",
                ]
            },
        ),
        (_("Waste and money"), {"fields": ["price_cpu_core_hour", "price_mem_gib_hour"]}),
        (_("Excluded days"), {"fields": ["excluded_days_link"]}),
        (_("History"), {"fields": ["created_at", "updated_at"]}),
    ]

    @admin.display(description=_("excluded days"))
    def excluded_days_link(self, obj: Cluster) -> str:
        if obj.pk is None:
            return "—"
        url = reverse("admin:control_excludedday_changelist") + "?" + urlencode({"cluster__name": obj.name})
        count = obj.excluded_days.count()
        return format_html('<a href="{}">{}</a>', url, _("%(count)d in the calendar") % {"count": count})

    @admin.display(description=_("peak window"))
    def peak_window(self, obj: Cluster) -> str:
        return f"{obj.peak_start:%H:%M}–{obj.peak_end:%H:%M}"

    def get_readonly_fields(self, request: HttpRequest, obj: Cluster | None = None) -> list[str]:
        readonly = list(super().get_readonly_fields(request, obj))
        return [*readonly, "name"] if obj is not None else readonly

    def get_fieldsets(self, request: HttpRequest, obj: Cluster | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if self.has_change_permission(request, obj):
            return fieldsets
        # Read-only viewers never see secrets, not even whether they are set.
        secret = set(services.CLUSTER_SECRET_FIELDS)
        return [
            (title, {**opts, "fields": [f for f in opts["fields"] if f not in secret]}) for title, opts in fieldsets
        ]

    def save_model(self, request: HttpRequest, obj: Cluster, form: forms.ModelForm, change: bool) -> None:
        if change:
            data = {field: form.cleaned_data[field] for field in form.changed_data if field in form.cleaned_data}
            saved = services.cluster_update(actor=Actor.for_admin(request), cluster=obj, data=data)
        else:
            fields = {f: v for f, v in form.cleaned_data.items() if f in {fld.name for fld in Cluster._meta.fields}}
            saved = services.cluster_create(actor=Actor.for_admin(request), **fields)
        obj.pk = saved.pk

    def delete_model(self, request: HttpRequest, obj: Cluster) -> None:
        services.cluster_delete(actor=Actor.for_admin(request), cluster=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Cluster]) -> None:
        for cluster in queryset:
            services.cluster_delete(actor=Actor.for_admin(request), cluster=cluster)


@admin.register(ExcludedDay)
class ExcludedDayAdmin(ScopedAdminMixin, admin.ModelAdmin):
    """The clusters' calendars of excluded days; writes go through ``apps.control.excluded_days`` (audited)."""

    scope_namespace = None

    list_display = ["cluster", "start", "end", "reason", "created_by", "created_at"]
    list_filter = [("cluster__name", ScopedClusterNameListFilter)]
    search_fields = ["reason"]
    date_hierarchy = "start"
    fields = ["cluster", "start", "end", "reason", "created_by", "created_at"]
    readonly_fields = ["created_by", "created_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: ExcludedDay | None = None) -> list[str]:
        readonly = list(super().get_readonly_fields(request, obj))
        return [*readonly, "cluster"] if obj is not None else readonly

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "cluster":
            # a scoped operator adds days to the clusters they hold whole, as operator
            clusters = scope_filter(request.user, Cluster.objects.all(), cluster="name", namespace=None)
            kwargs["queryset"] = clusters.filter(
                pk__in=[
                    c.pk for c in clusters if scope_has_perm(request.user, "control.add_excludedday", cluster=c.name)
                ]
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)
        name = request.GET.get("cluster__name")
        if name:
            cluster = Cluster.objects.filter(name=name).first()
            if cluster is not None:
                initial["cluster"] = str(cluster.pk)
        return initial

    def save_model(self, request: HttpRequest, obj: ExcludedDay, form: forms.ModelForm, change: bool) -> None:
        actor = Actor.for_admin(request)
        if change:
            data = {
                field: form.cleaned_data[field] for field in form.changed_data if field in excluded_days.EDITABLE_FIELDS
            }
            saved = excluded_days.excluded_day_update(actor=actor, excluded=obj, data=data)
        else:
            data = form.cleaned_data
            saved = excluded_days.excluded_day_create(
                actor=actor, cluster=data["cluster"], start=data["start"], end=data.get("end"), reason=data["reason"]
            )
        obj.pk = saved.pk

    def delete_model(self, request: HttpRequest, obj: ExcludedDay) -> None:
        excluded_days.excluded_day_delete(actor=Actor.for_admin(request), excluded=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ExcludedDay]) -> None:
        for excluded in queryset.select_related("cluster"):
            excluded_days.excluded_day_delete(actor=Actor.for_admin(request), excluded=excluded)

"""Admin pages of the metrics app (DESIGN §8): "Collect & update" with its run history, and Daily peaks.

Both are thin: starting a collection calls ``services.collection_start``; the archive is read through
``selectors.peak_list`` so it shows whichever store holds the peaks (ClickHouse or the database).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Page, Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.accounts.scopes import ScopedAdminMixin, ScopedRelatedFieldListFilter, scope_cluster_filter
from apps.audit.services import Actor
from apps.control.models import Cluster
from apps.metrics import selectors, services
from apps.metrics.models import (
    ACTIVE_STATES,
    COLLECTION_RUN_OUTCOME_FIELDS,
    CollectionChunk,
    CollectionRun,
    DailyPeak,
)
from apps.metrics.store import PeakRow
from kubedoor_site.admin_read_only import ReadOnlyModelAdmin

PEAKS_PER_PAGE = 100


class CollectForm(forms.Form):
    cluster = forms.ModelChoiceField(
        label=_("cluster"), queryset=Cluster.objects.order_by("name"), to_field_name="name", empty_label=None
    )
    days = forms.IntegerField(label=_("days"), min_value=1, max_value=services.MAX_DAYS, initial=10)

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["cluster"]
        assert isinstance(field, forms.ModelChoiceField)
        # a scoped user collects the clusters they hold whole as operator
        field.queryset = scope_cluster_filter(user, Cluster.objects.order_by("name"), perm="metrics.add_collectionrun")


class CollectionChunkInline(admin.TabularInline):
    """A queued run's chunks (read-only): which days each holds, its state, retries and last error."""

    model = CollectionChunk
    fields = (
        "index",
        "days",
        "state",
        "attempts",
        "progress_done",
        "rows_written",
        "heartbeat_at",
        "finished_at",
        "error",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("metrics.view_collectionrun")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(CollectionRun)
class CollectionRunAdmin(ScopedAdminMixin, admin.ModelAdmin):
    """Run history (read-only); "add" is the Collect & update page; a run's page shows live progress."""

    scope_namespace = None

    inlines = (CollectionChunkInline,)

    list_display = (
        "id",
        "cluster",
        "days",
        "state",
        "progress",
        "rows_written",
        "services_added",
        "services_updated",
        "services_vanished",
        "error_summary",
        "requested_by",
        "created_at",
        "finished_at",
    )
    list_filter = ("state", ("cluster", ScopedRelatedFieldListFilter))
    list_select_related = ("cluster",)
    change_form_template = "admin/metrics/collectionrun/change_form.html"
    readonly_fields = ("cluster", "days", "concurrency", "state", "progress", *COLLECTION_RUN_OUTCOME_FIELDS)
    fields = readonly_fields

    @admin.display(description=_("progress"))
    def progress(self, obj: CollectionRun) -> str:
        return f"{obj.progress_done}/{obj.progress_total} ({obj.progress_pct} %)"

    @admin.display(description=_("errors"))
    def error_summary(self, obj: CollectionRun) -> str:
        return "; ".join(obj.errors)[:200]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = CollectForm(request.POST or None, user=request.user)
        if request.method == "POST" and form.is_valid():
            try:
                run = services.collection_start(
                    cluster=form.cleaned_data["cluster"], days=form.cleaned_data["days"], actor=Actor.for_admin(request)
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, _("Collection #%(run)s started.") % {"run": run.pk})
                return HttpResponseRedirect(reverse("admin:metrics_collectionrun_change", args=[run.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Collect & update"),
            "form": form,
            "opts": self.model._meta,
            "recent": self.get_queryset(request).order_by("-created_at", "-id")[:10],
            "history_url": reverse("admin:metrics_collectionrun_changelist"),
        }
        return TemplateResponse(request, "admin/metrics/collectionrun/collect.html", context)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        run = self.get_queryset(request).filter(pk=object_id).first() if object_id.isdigit() else None
        extra = dict(extra_context or {})
        if run is not None:
            extra.update(
                run=run,
                is_active=run.state in ACTIVE_STATES,
                status_url=reverse("api:collection-detail", args=[run.pk]),
                statistic_queries=list(run.queries.items()),
            )
        return super().change_view(request, object_id, form_url, extra)


class PeakFilterForm(forms.Form):
    cluster = forms.ModelChoiceField(
        label=_("cluster"), queryset=Cluster.objects.order_by("name"), to_field_name="name", empty_label=None
    )
    day = forms.DateField(label=_("day"), widget=forms.DateInput(attrs={"type": "date"}))
    namespace = forms.CharField(label=_("namespace"), required=False, max_length=63)
    deployment = forms.CharField(label=_("deployment"), required=False, max_length=253)

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["cluster"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = scope_cluster_filter(user, Cluster.objects.order_by("name"))


@admin.register(DailyPeak)
class DailyPeakAdmin(ReadOnlyModelAdmin):
    """The archive by date and cluster, read through the configured store (read-only)."""

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        first_cluster = scope_cluster_filter(request.user, Cluster.objects.order_by("name")).first()
        yesterday = timezone.localdate() - datetime.timedelta(days=1)
        data = {
            "cluster": request.GET.get("cluster") or (first_cluster.name if first_cluster else ""),
            "day": request.GET.get("day") or yesterday.isoformat(),
            "namespace": request.GET.get("namespace", ""),
            "deployment": request.GET.get("deployment", ""),
        }
        form = PeakFilterForm(data, user=request.user)
        page: Page[PeakRow] | None = None
        day = None
        if form.is_valid():
            day = form.cleaned_data["day"]
            rows = selectors.peak_list(
                cluster=form.cleaned_data["cluster"].name,
                day_from=day,
                day_to=day,
                namespace=form.cleaned_data["namespace"],
                deployment=form.cleaned_data["deployment"],
                user=request.user,
            )
            # PeakPage counts and slices like a sequence, which is all the paginator uses.
            page = Paginator(cast("Sequence[PeakRow]", rows), PEAKS_PER_PAGE).get_page(request.GET.get("page"))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Daily peaks"),
            "opts": self.model._meta,
            "form": form,
            "page": page,
            "day": day,
            "query": {k: v for k, v in data.items() if k != "day"},
            "previous_day": (day - datetime.timedelta(days=1)).isoformat() if day else "",
            "next_day": (day + datetime.timedelta(days=1)).isoformat() if day else "",
        }
        return TemplateResponse(request, "admin/metrics/dailypeak/by_date.html", context)


from apps.metrics import import_admin  # noqa: E402, F401  (registers "Import from KubeDoor")

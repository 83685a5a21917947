"""Export of audit events as CSV or JSON Lines, streamed (one chunk of rows read at a time).

Used by the admin's export button and the API's ``/audit-events/export/``, both with the filters
of their list. CSV cells that a spreadsheet would run as a formula (starting with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return) are prefixed with ``'`` (OWASP's CSV injection advice);
JSON Lines keep the values as they are.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from apps.audit.models import AuditEvent

EXPORT_FIELDS = (
    "id",
    "at",
    "actor_name",
    "source",
    "action",
    "cluster",
    "namespace",
    "name",
    "result",
    "message",
    "before",
    "after",
    "request_id",
    "remote_addr",
)
EXPORT_FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/jsonl; charset=utf-8"}
CHUNK_SIZE = 1000
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _record(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "at": event["at"].isoformat()}


def csv_safe(value: str) -> str:
    """A cell a spreadsheet shows as text: a leading formula character gets a ``'`` in front."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
    return csv_safe(str(value))


class _Line:
    """A file-like object whose ``write`` returns the text (csv.writer writes one row at a time)."""

    def write(self, value: str) -> str:
        return value


def _rows(queryset: QuerySet[AuditEvent]) -> Iterator[dict[str, Any]]:
    for event in queryset.order_by("at", "id").values(*EXPORT_FIELDS).iterator(chunk_size=CHUNK_SIZE):
        yield _record(event)


def audit_events_csv(queryset: QuerySet[AuditEvent]) -> Iterator[str]:
    writer = csv.writer(_Line())
    yield writer.writerow(EXPORT_FIELDS)
    for row in _rows(queryset):
        yield writer.writerow([_csv_cell(row[field]) for field in EXPORT_FIELDS])


def audit_events_jsonl(queryset: QuerySet[AuditEvent]) -> Iterator[str]:
    for row in _rows(queryset):
        yield json.dumps(row, ensure_ascii=False, separators=(",", ":"), cls=DjangoJSONEncoder) + "\n"


def audit_events_export_response(*, queryset: QuerySet[AuditEvent], fmt: str) -> StreamingHttpResponse:
    """The streamed download of ``queryset`` (oldest first) in ``fmt`` (``csv`` or ``jsonl``)."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: use csv or jsonl")
    rows = audit_events_csv(queryset) if fmt == "csv" else audit_events_jsonl(queryset)
    response = StreamingHttpResponse(rows, content_type=EXPORT_FORMATS[fmt])
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="kubedoor-audit-{stamp}.{fmt}"'
    return response

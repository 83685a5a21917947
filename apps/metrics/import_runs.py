"""Imports from KubeDoor started from the admin: an upload of its tables, or its ClickHouse, run on a worker.

The upload format is ClickHouse's own ``JSONEachRow`` — one JSON object per line, what
``SELECT * FROM kubedoor.k8s_res_control FORMAT JSONEachRow`` prints — one file per table:
``k8s_res_control`` (required), ``k8s_resources`` and KubeDoor 1.x's ``k8s_agent_status``
(optional). Files are checked line by line when uploaded (a bad line is refused with its file and
number) and kept, parsed, on the run until the worker takes them.

A ClickHouse password is never stored: it is encrypted (Fernet, with a key derived from
``SECRET_KEY``) into the task message only, and neither the run, the audit log nor the page shows it.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.audit.models import AuditResult, AuditSource
from apps.audit.services import Actor, audit_event_record
from apps.control.models import Cluster
from apps.metrics.clickhouse import ClickHouseDoor, ClickHouseError
from apps.metrics.importer import AGENT_STATUS_COLUMNS, ClickHouseSource, Progress, kubedoor_import
from apps.metrics.models import CollectionState, ImportRun, ImportSource
from apps.metrics.queue import import_run_enqueue
from apps.metrics.store import peak_store

logger = logging.getLogger(__name__)

CONTROL_TABLE = "k8s_res_control"
RESOURCES_TABLE = "k8s_resources"
AGENT_STATUS_TABLE = "k8s_agent_status"
# The columns an upload's lines must carry (others, like 0.2's QPS columns, are ignored); pod_count_ai
# may be missing (-1) in early 0.2 exports.
CONTROL_COLUMNS = (
    "env",
    "namespace",
    "deployment",
    "pod_count_init",
    "pod_count",
    "pod_count_manual",
    "p95_pod_cpu_pct",
    "p95_pod_mem_pct",
    "request_cpu_m",
    "request_mem_mb",
    "limit_cpu_m",
    "limit_mem_mb",
    "update",
)
RESOURCE_COLUMNS = (
    "date",
    "env",
    "namespace",
    "deployment",
    "pod_count",
    "p95_pod_load",
    "p95_pod_cpu_pct",
    "p95_pod_wss_mb",
    "p95_pod_wss_pct",
    "request_pod_cpu_m",
    "request_pod_mem_mb",
    "limit_pod_cpu_m",
    "limit_pod_mem_mb",
)
_TEXT_COLUMNS = {"env", "namespace", "deployment", "update", "date", "peak_hours", "admission_namespace"}
PASSWORD_TOKEN_TTL_SECONDS = 24 * 3600


class ImportFileError(ValidationError):
    """An uploaded file that is not the documented format; the message names the file and line."""


@dataclasses.dataclass(frozen=True)
class ClickHouseConnection:
    """Where the old KubeDoor ClickHouse is: ``url`` is ``clickhouse://host:port`` without credentials."""

    url: str
    database: str
    user: str
    password: str = dataclasses.field(repr=False)

    @property
    def label(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{self.user}@{parts.hostname}:{parts.port or 9000}/{self.database}"

    def full_url(self, password: str) -> str:
        parts = urlsplit(self.url)
        auth = quote(self.user, safe="") + (":" + quote(password, safe="") if password else "")
        return f"{parts.scheme}://{auth}@{parts.hostname}:{parts.port or 9000}/{quote(self.database, safe='')}"


def clickhouse_connection_check(*, url: str, database: str, user: str, password: str) -> ClickHouseConnection:
    """Validate the form's connection details (credentials belong in their own fields, not in the URL)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("clickhouse", "clickhouses") or not parts.hostname:
        raise ValidationError({"clickhouse_url": _("Use clickhouse://host:9000 (clickhouses:// for TLS).")})
    if parts.username or parts.password:
        raise ValidationError({"clickhouse_url": _("Put the user and password in their own fields, not in the URL.")})
    if parts.path.strip("/") or parts.query:
        raise ValidationError({"clickhouse_url": _("Give the database in its own field; the URL is host and port.")})
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError as exc:
        raise ValidationError({"clickhouse_url": _("The port is not a number from 1 to 65535.")}) from exc
    return ClickHouseConnection(
        url=f"{parts.scheme}://{parts.netloc}", database=database.strip(), user=user.strip(), password=password
    )


# --- uploads ----------------------------------------------------------------------------------------


def _number(value: Any) -> float:
    """JSONEachRow writes numbers bare, 64-bit integers quoted, and Bool as true/false."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return float(value)
    raise ValueError(value)


def upload_parse(*, table: str, name: str, lines: Iterable[bytes]) -> list[dict[str, Any]]:
    """Parse one JSONEachRow file of ``table``; raise ``ImportFileError`` naming ``name`` and the line."""
    required = {CONTROL_TABLE: CONTROL_COLUMNS, RESOURCES_TABLE: RESOURCE_COLUMNS, AGENT_STATUS_TABLE: ("env",)}[table]
    optional = {CONTROL_TABLE: ("pod_count_ai",), RESOURCES_TABLE: (), AGENT_STATUS_TABLE: AGENT_STATUS_COLUMNS[1:]}
    rows: list[dict[str, Any]] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue

        def fail(message: str, *, line: int = number) -> ImportFileError:
            return ImportFileError(
                _("%(file)s, line %(line)s: %(message)s") % {"file": name, "line": line, "message": message}
            )

        try:
            item = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise fail(_("not a JSON object (%(error)s)") % {"error": exc}) from exc
        if not isinstance(item, dict):
            raise fail(_("not a JSON object"))
        missing = [column for column in required if column not in item]
        if missing:
            raise fail(_("missing column %(columns)s") % {"columns": ", ".join(missing)})
        row: dict[str, Any] = {}
        for column in (*required, *(c for c in optional[table] if c in item)):
            value = item[column]
            if column in _TEXT_COLUMNS:
                if not isinstance(value, str):
                    raise fail(_("column %(column)s is not text") % {"column": column})
                row[column] = value
                continue
            try:
                row[column] = _number(value)
            except ValueError as exc:
                raise fail(
                    _("column %(column)s is not a number: %(value)r") % {"column": column, "value": value}
                ) from exc
        rows.append(row)
    return rows


class UploadSource:
    """Uploaded tables, aggregated as the ``KUBEDOOR_*_SQL`` constants aggregate them in ClickHouse."""

    def __init__(self, tables: Mapping[str, list[dict[str, Any]]]) -> None:
        self.tables = tables

    def _rows(self, table: str, env: str) -> list[dict[str, Any]]:
        return [row for row in self.tables.get(table, []) if row["env"] in (env, "")]

    def control_rows(self, *, env: str) -> list[tuple]:
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for row in self._rows(CONTROL_TABLE, env):
            key = (row["namespace"], row["deployment"])
            # argMax(…, update): the latest row wins ("YYYY-MM-DD hh:mm:ss" sorts as text); a tie, the later line.
            if key not in latest or row["update"] >= latest[key]["update"]:
                latest[key] = row
        return [
            (
                namespace,
                deployment,
                row["pod_count_init"],
                row["pod_count"],
                row["pod_count_manual"],
                row.get("pod_count_ai", -1),
                *(row[column] for column in CONTROL_COLUMNS[6:12]),
            )
            for (namespace, deployment), row in sorted(latest.items())
        ]

    def resource_rows(self, *, env: str) -> list[tuple]:
        columns = (
            "pod_count",
            "p95_pod_load",
            "p95_pod_cpu_pct",
            "p95_pod_wss_mb",
            "p95_pod_wss_pct",
            "request_pod_cpu_m",
            "request_pod_mem_mb",
            "limit_pod_cpu_m",
            "limit_pod_mem_mb",
        )
        peaks: dict[tuple[str, str, str], list[Any]] = {}
        for row in self._rows(RESOURCES_TABLE, env):
            key = (row["date"][:10], row["namespace"], row["deployment"])
            values = [*(row[c] for c in columns), row["date"]]
            peaks[key] = values if key not in peaks else [max(a, b) for a, b in zip(peaks[key], values, strict=True)]
        return [(day, namespace, deployment, *values) for (day, namespace, deployment), values in sorted(peaks.items())]

    def agent_status(self, *, env: str) -> dict[str, Any] | None:
        rows = [row for row in self.tables.get(AGENT_STATUS_TABLE, []) if row["env"] == env]
        return rows[0] if rows else None


# --- the run ----------------------------------------------------------------------------------------


def _fernet() -> Fernet:
    digest = hashlib.sha256(b"kubedoor.import-run.password:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def import_run_start(
    *,
    cluster: Cluster,
    env: str,
    actor: Actor,
    upload: Mapping[str, list[dict[str, Any]]] | None = None,
    upload_label: str = "",
    connection: ClickHouseConnection | None = None,
) -> ImportRun:
    """Record an import (from ``upload`` or ``connection``), audit it, and queue it after commit."""
    if (upload is None) == (connection is None):
        raise ValidationError(_("Give either the uploaded tables or the ClickHouse connection."))
    with transaction.atomic():
        run = ImportRun.objects.create(
            cluster=cluster,
            env=env or cluster.name,
            source=ImportSource.UPLOAD if upload is not None else ImportSource.CLICKHOUSE,
            source_label=upload_label if connection is None else connection.label,
            upload=dict(upload or {}),
            requested_by=actor.name,
        )
        audit_event_record(
            actor=actor,
            action="kubedoor.import_run.start",
            cluster=cluster.name,
            after={"run": run.pk, "env": run.env, "source": run.source, "read_from": run.source_label},
        )
        password_token = ""
        if connection is not None:
            password_token = _fernet().encrypt(connection.password.encode()).decode() if connection.password else ""
            # The URL without the password; the worker adds it back from the encrypted token.
            url = connection.full_url("")
        else:
            url = ""
        transaction.on_commit(lambda: import_run_enqueue(run_id=run.pk, clickhouse_url=url, password=password_token))
    return run


def _progress_save(run_id: int) -> Progress:
    def save(done: int, total: int) -> None:
        ImportRun.objects.filter(pk=run_id).update(progress_done=done, rows_read=total)

    return save


def import_run_execute(*, run_id: int, clickhouse_url: str = "", password: str = "") -> ImportRun:
    """Run a recorded import on a worker; a run already finished is left alone (re-delivery is harmless)."""
    run = ImportRun.objects.select_related("cluster").get(pk=run_id)
    if run.state in (CollectionState.DONE, CollectionState.FAILED):
        return run
    run.state, run.started_at = CollectionState.RUNNING, timezone.now()
    run.save(update_fields=["state", "started_at"])
    user = get_user_model().objects.filter(username=run.requested_by).first()
    actor = Actor.system(f"import #{run.pk}", source=AuditSource.TASK, on_behalf_of=user)
    door = None
    try:
        if run.source == ImportSource.UPLOAD:
            source: Any = UploadSource(run.upload)
        else:
            secret = _fernet().decrypt(password, ttl=PASSWORD_TOKEN_TTL_SECONDS).decode() if password else ""
            door = ClickHouseDoor.from_url(_with_password(clickhouse_url, secret))
            source = ClickHouseSource(door)
        store = peak_store()
        store.ensure_schema()
        result = kubedoor_import(
            cluster=run.cluster, source=source, store=store, actor=actor, env=run.env, progress=_progress_save(run.pk)
        )
    except (ClickHouseError, ValidationError, InvalidToken, KeyError, ValueError) as exc:
        message = _("the ClickHouse password could not be read back") if isinstance(exc, InvalidToken) else str(exc)
        logger.warning("import #%s into %s failed: %s", run.pk, run.cluster.name, message)
        return _fail(run, actor=actor, message=message)
    except Exception as exc:
        logger.exception("import #%s into %s failed", run.pk, run.cluster.name)
        _fail(run, actor=actor, message=f"{exc.__class__.__name__}: {exc}")
        raise
    finally:
        if door is not None:
            door.close()
    run.refresh_from_db()
    run.state, run.finished_at, run.upload = CollectionState.DONE, timezone.now(), {}
    run.rows_written = result.rows_written + result.created + result.updated
    run.progress_done = run.rows_read = result.rows_read
    run.result = result.summary()
    run.save()
    logger.info("import #%s into %s done: %s rows read", run.pk, run.cluster.name, result.rows_read)
    return run


def _fail(run: ImportRun, *, actor: Actor, message: str) -> ImportRun:
    """End a run as failed, drop its uploaded rows, and put the failure on record."""
    run.refresh_from_db()
    run.state, run.finished_at, run.error, run.upload = CollectionState.FAILED, timezone.now(), message, {}
    run.save(update_fields=["state", "finished_at", "error", "upload"])
    audit_event_record(
        actor=actor,
        action="kubedoor.import_run.fail",
        cluster=run.cluster.name,
        after={"run": run.pk, "error": message},
        result=AuditResult.ERROR,
        message=message,
    )
    return run


def _with_password(url: str, password: str) -> str:
    if not password:
        return url
    parts = urlsplit(url)
    user = parts.netloc.split("@", 1)[0]
    host = parts.netloc.split("@", 1)[1]
    return parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}").geturl()

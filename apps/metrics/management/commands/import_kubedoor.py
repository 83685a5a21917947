"""``manage.py import_kubedoor --clickhouse-url URL --cluster NAME [--env ENV]``: migrate from KubeDoor 0.2/1.x.

The admin's "Import from KubeDoor" page does the same from an upload or connection details, on a worker.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.audit.models import AuditSource
from apps.audit.services import Actor
from apps.control.models import Cluster
from apps.metrics.clickhouse import ClickHouseDoor, ClickHouseError
from apps.metrics.importer import ClickHouseSource, kubedoor_import
from apps.metrics.store import peak_store


class Command(BaseCommand):
    help = "Import KubeDoor 0.2's k8s_res_control (control table) and k8s_resources (archive); idempotent."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--clickhouse-url", required=True, help="clickhouse://user:password@host:9000/kubedoor")
        parser.add_argument("--cluster", required=True, help="the KubeDoor cluster to import into")
        parser.add_argument("--env", default=None, help="KubeDoor 0.2's env value (default: the cluster's name)")

    def handle(self, *args: Any, **options: Any) -> None:
        cluster = Cluster.objects.filter(name=options["cluster"]).first()
        if cluster is None:
            raise CommandError(f"No cluster named {options['cluster']!r}.")
        source = ClickHouseDoor.from_url(options["clickhouse_url"])
        try:
            store = peak_store()
            store.ensure_schema()
            result = kubedoor_import(
                cluster=cluster,
                source=ClickHouseSource(source),
                store=store,
                actor=Actor.system("import_kubedoor", source=AuditSource.SYSTEM),
                env=options["env"],
            )
        except ClickHouseError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            source.close()
        self.stdout.write(
            f"control table: {result.created} created, {result.updated} updated, {result.unchanged} unchanged\n"
            f"archive: {result.rows_written} rows in {len(result.days_written)} days"
            f" ({len(result.days_kept)} days kept: already collected by KubeDoor)"
        )
        if result.settings_imported or result.settings_not_imported:
            self.stdout.write(
                f"KubeDoor 1.x settings: imported {result.settings_imported},"
                f" not imported {result.settings_not_imported}"
            )

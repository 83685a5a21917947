"""``manage.py collect_peaks --cluster NAME --days N``: a collection run in this process, with a progress bar."""

from __future__ import annotations

import sys
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from apps.audit.models import AuditSource
from apps.audit.services import Actor
from apps.control.models import Cluster
from apps.metrics import services


class Command(BaseCommand):
    help = "Collect the last N days of peak-window statistics synchronously, then refresh the control table."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--cluster", required=True)
        parser.add_argument("--days", type=int, default=2)
        parser.add_argument("--concurrency", type=int, default=services.DEFAULT_CONCURRENCY)
        parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")

    def handle(self, *args: Any, **options: Any) -> None:
        cluster = Cluster.objects.filter(name=options["cluster"]).first()
        if cluster is None:
            raise CommandError(f"No cluster named {options['cluster']!r}.")
        actor = Actor.system("collect_peaks", source=AuditSource.SYSTEM)
        try:
            run = services.collection_start(
                cluster=cluster,
                days=options["days"],
                concurrency=options["concurrency"],
                actor=actor,
                enqueue=False,
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        bar = tqdm(
            total=run.progress_total,
            unit="query",
            desc=f"{cluster.name} ×{options['days']}d",
            file=sys.stderr,
            disable=options["no_progress"],
        )

        def progress(done: int, total: int) -> None:
            if bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        try:
            run = services.collection_run(run_id=run.pk, on_progress=progress)
        finally:
            bar.close()
        self.stdout.write(
            f"run #{run.pk} {run.state}: {len(run.days_collected)} days collected"
            f" ({', '.join(run.skipped_days) or 'none'} skipped), {run.rows_written} rows written;"
            f" control table: {run.services_added} added, {run.services_updated} updated,"
            f" {run.services_vanished} vanished, {len(run.unmanaged)} seen unmanaged"
        )
        if run.state != "done":
            raise CommandError("; ".join(run.errors) or "the collection failed")

"""``manage.py kubedoor_demo_pods_nodes``: the demo cluster's sample pod and node figures (run by kubedoor_demo)."""

from __future__ import annotations

import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.control.models import Cluster
from apps.metrics.pod_node_demo import pod_node_demo_write
from apps.metrics.selectors import cluster_today


class Command(BaseCommand):
    help = "Write 30 days of sample pod and node figures (ending yesterday) for the demo cluster. Idempotent."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--cluster", default="demo")
        parser.add_argument("--days", type=int, default=30)
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, *args: Any, cluster: str, days: int, seed: int, **options: Any) -> None:
        target = Cluster.objects.filter(name=cluster).first()
        if target is None:
            raise CommandError(f"No cluster named {cluster!r}: run kubedoor_demo first.")
        last_day = cluster_today(target) - datetime.timedelta(days=1)
        pods, nodes = pod_node_demo_write(cluster=target, last_day=last_day, days=days, seed=seed)
        self.stdout.write(self.style.SUCCESS(f"Demo cluster {cluster!r}: {pods} pod and {nodes} node figures written."))

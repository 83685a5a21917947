"""Load a clearly labelled demo cluster so a new installation shows a populated UI.

The cluster and its control rows, then 30 days of daily peaks (``apps.metrics.demo``: a weekly rhythm,
an incident day entered as an excluded day, a service with OOM kills, an HPA-managed one) and a
refresh of the control table from them — the dashboard, the curves, the waste board and the
recommendations all have data. It lives in the metrics app because it writes the daily-peak archive.
"""

from __future__ import annotations

import datetime
import random
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils import timezone

from apps.audit.services import Actor
from apps.control import excluded_days, services
from apps.control.models import Cluster, Microservice
from apps.metrics import demo
from apps.metrics.refresh import control_table_refresh
from apps.metrics.selectors import cluster_today
from apps.metrics.store import peak_store

DEMO_CLUSTER = "demo"
# Plausible on-demand cloud prices (per CPU core-hour, per memory GiB-hour) so the waste board shows money.
DEMO_PRICE_CPU_CORE_HOUR = 0.031
DEMO_PRICE_MEM_GIB_HOUR = 0.0042
NAMESPACES = {
    "shop": ["web", "cart", "checkout", "catalog", "search", "recommend", "reviews", "pricing", "images", "gateway"],
    "payments": ["api", "ledger", "risk", "refunds", "invoices", "wallet", "fx-rates", "settlement", "notify", "audit"],
    "users": ["accounts", "auth", "profile", "sessions", "avatars", "preferences", "consent", "sso", "mfa", "admin"],
    "logistics": [
        "orders",
        "shipping",
        "tracking",
        "warehouse",
        "returns",
        "routing",
        "labels",
        "carriers",
        "eta",
        "stock",
    ],
    "data": [
        "ingest",
        "etl",
        "reports",
        "metrics-api",
        "exporter",
        "scheduler",
        "feature-store",
        "dwh-sync",
        "alerts",
        "kpi",
    ],
}


class Command(BaseCommand):
    help = (
        "Load the demo cluster 'demo' (50 microservices in 5 namespaces) with 30 days of daily peaks, "
        "then refresh its control table. Idempotent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, *args: Any, seed: int, **options: Any) -> None:
        rng = random.Random(seed)
        actor = Actor.system()
        today = timezone.localdate()
        with transaction.atomic():
            cluster = Cluster.objects.filter(name=DEMO_CLUSTER).first() or services.cluster_create(
                actor=actor,
                name=DEMO_CLUSTER,
                display_name="Demo cluster (sample data)",
                namespaces=list(NAMESPACES),
                collect_enabled=False,
                price_cpu_core_hour=DEMO_PRICE_CPU_CORE_HOUR,
                price_mem_gib_hour=DEMO_PRICE_MEM_GIB_HOUR,
                # one refresh reaches the data's figures (no day-to-day clamp), so the demo is idempotent
                max_change_pct=100,
            )
            created = 0
            for namespace, names in NAMESPACES.items():
                for name in names:
                    if Microservice.objects.filter(cluster=cluster, namespace=namespace, name=name).exists():
                        continue
                    pods = rng.choice([1, 2, 2, 3, 3, 4, 6, 8, 12])
                    limit_cpu = rng.choice([500, 1000, 2000, 4000])
                    limit_mem = rng.choice([512, 1024, 2048, 4096])
                    cpu_cores = round(limit_cpu / 1000 * rng.uniform(0.05, 0.9), 3)
                    mem_mib = round(limit_mem * rng.uniform(0.2, 0.85), 1)
                    services.microservice_create(
                        actor=actor,
                        cluster=cluster,
                        namespace=namespace,
                        name=name,
                        container=name,
                        replicas_initial=pods,
                        replicas_measured=pods,
                        request_cpu_m=max(10, int(cpu_cores * 1000)),
                        request_mem_mib=max(16, int(mem_mib)),
                        limit_cpu_m=limit_cpu,
                        limit_mem_mib=limit_mem,
                    )
                    hpa_name = name if (namespace, name) == demo.HPA_SERVICE else ""
                    Microservice.objects.filter(cluster=cluster, namespace=namespace, name=name).update(
                        p95_cpu_cores=cpu_cores,
                        p95_cpu_pct=round(cpu_cores * 1000 / limit_cpu * 100, 1),
                        p95_mem_mib=mem_mib,
                        p95_mem_pct=round(mem_mib / limit_mem * 100, 1),
                        source_day=today - datetime.timedelta(days=rng.randint(1, 9)),
                        hpa_name=hpa_name,
                    )
                    created += 1
            last_day = cluster_today(cluster) - datetime.timedelta(days=1)
            incident = demo.incident_day(last_day=last_day)
            if not excluded_days.excluded_day_list(cluster=cluster).filter(start__lte=incident, end__gte=incident):
                excluded_days.excluded_day_create(
                    actor=actor, cluster=cluster, start=incident, reason=demo.INCIDENT_REASON
                )
        rows = Microservice.objects.filter(cluster=cluster).order_by("namespace", "name")
        written = demo.demo_peaks_write(
            cluster=cluster.name, services=list(rows), last_day=last_day, store=peak_store()
        )
        # the same lookback as a collection's refresh (ending today) and the dashboard's default range
        control_table_refresh(cluster=cluster, store=peak_store(), today=cluster_today(cluster), actor=actor)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo cluster {DEMO_CLUSTER!r}: {created} microservices added, "
                f"{written} daily peaks over {demo.DEMO_DAYS} days, {incident} excluded (incident)."
            )
        )
        # The pod curves' and node board's figures.
        call_command("kubedoor_demo_pods_nodes", cluster=DEMO_CLUSTER, seed=seed, stdout=self.stdout)

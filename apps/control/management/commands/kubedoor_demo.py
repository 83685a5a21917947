"""Load a clearly labelled demo cluster so a new installation shows a populated UI."""

from __future__ import annotations

import datetime
import random
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils import timezone

from apps.audit.services import Actor
from apps.control import services
from apps.control.models import Cluster, Microservice

DEMO_CLUSTER = "demo"
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
    help = "Load the demo cluster 'demo' (50 microservices in 5 namespaces, sample values). Idempotent."

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
                    Microservice.objects.filter(cluster=cluster, namespace=namespace, name=name).update(
                        p95_cpu_cores=cpu_cores,
                        p95_cpu_pct=round(cpu_cores * 1000 / limit_cpu * 100, 1),
                        p95_mem_mib=mem_mib,
                        p95_mem_pct=round(mem_mib / limit_mem * 100, 1),
                        source_day=today - datetime.timedelta(days=rng.randint(1, 9)),
                    )
                    created += 1
        self.stdout.write(self.style.SUCCESS(f"Demo cluster {DEMO_CLUSTER!r}: {created} microservices added."))
        # The metrics app writes the pod curves' and node board's figures; called by name, since control
        # never imports metrics (docs/ARCHITECTURE.md).
        call_command("kubedoor_demo_pods_nodes", cluster=DEMO_CLUSTER, seed=seed, stdout=self.stdout)

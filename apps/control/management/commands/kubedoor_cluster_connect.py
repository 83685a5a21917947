"""``manage.py kubedoor_cluster_connect NAME --server URL --from-secret FILE``: connect and check a cluster."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.audit.models import AuditSource
from apps.audit.services import Actor
from apps.control import onboarding
from apps.control.models import Cluster


class Command(BaseCommand):
    help = (
        "Store the kubeconfig made from the token Secret of the remote cluster NAME (as `kubectl get secret "
        "-o yaml` prints it; '-' reads standard input), then check the connection and every permission."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name", help="the KubeDoor cluster's name")
        parser.add_argument("--server", help="the API server URL, e.g. https://10.0.0.1:6443")
        parser.add_argument("--from-secret", dest="secret", help="the Secret as YAML or JSON; '-' = stdin")
        parser.add_argument("--check-only", action="store_true", help="check the stored connection, change nothing")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        cluster = Cluster.objects.filter(name=options["name"]).first()
        if cluster is None:
            raise CommandError(f"No cluster named {options['name']!r}.")
        if options["check_only"]:
            report = onboarding.cluster_connection_check(cluster=cluster)
        else:
            if not options["server"] or not options["secret"]:
                raise CommandError("--server and --from-secret are required (or --check-only).")
            try:
                text = sys.stdin.read() if options["secret"] == "-" else Path(options["secret"]).read_text()
            except OSError as exc:
                raise CommandError(f"Cannot read {options['secret']}: {exc.strerror or exc}") from exc
            actor = Actor.system("kubedoor_cluster_connect", source=AuditSource.SYSTEM)
            try:
                _, report = onboarding.cluster_connect(
                    actor=actor, cluster=cluster, server=options["server"], secret_text=text
                )
            except ValidationError as exc:
                raise CommandError(f"cluster {cluster.name}: " + "; ".join(exc.messages)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        else:
            self.stdout.write(
                f"cluster {report.cluster}: {report.state}" + (f", {report.version}" if report.version else "")
            )
            if report.error:
                self.stdout.write(f"  error: {report.error}")
            for label in report.missing:
                self.stdout.write(f"  missing: {label}")
        if report.state != "ok":
            raise CommandError(f"cluster {report.cluster}: the connection is {report.state}")

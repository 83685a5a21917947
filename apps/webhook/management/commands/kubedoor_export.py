"""``manage.py kubedoor_export CLUSTER [--format kustomize|json] [--layout tar|stream] [--namespace NS]
[--output PATH]``: the GitOps export of a cluster, to a file or standard output."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.control import k8s
from apps.control.selectors import cluster_list
from apps.webhook import services
from apps.webhook.services.export import FORMATS, LAYOUTS


class Command(BaseCommand):
    help = (
        "Export what KubeDoor's admission would set on a cluster's controlled Deployments: kustomize patches "
        "(a tar.gz, or one YAML stream) or JSON. Reads the cluster; changes nothing."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("cluster")
        parser.add_argument("--format", choices=FORMATS, default="kustomize")
        parser.add_argument("--layout", choices=LAYOUTS, default="tar", help="kustomize only: tar.gz or YAML stream")
        parser.add_argument("--namespace", default="", help="only this namespace")
        parser.add_argument("--output", default="", help="file to write (default: standard output)")

    def handle(self, *args: Any, **options: Any) -> None:
        cluster = cluster_list().filter(name=options["cluster"]).first()
        if cluster is None:
            raise CommandError(f"No cluster named {options['cluster']!r}.")
        try:
            result = services.cluster_export(
                cluster=cluster,
                format=options["format"],
                layout=options["layout"],
                namespace=options["namespace"] or None,
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        except k8s.K8sError as exc:
            raise CommandError(exc.message) from exc
        if isinstance(result, dict):
            data = (json.dumps(result, indent=2, ensure_ascii=False) + "\n").encode()
        elif isinstance(result, str):
            data = result.encode()
        else:
            data = result
        if options["output"]:
            Path(options["output"]).write_bytes(data)
            self.stderr.write(f"wrote {len(data)} bytes to {options['output']}")
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()

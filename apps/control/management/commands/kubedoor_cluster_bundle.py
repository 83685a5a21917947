"""``manage.py kubedoor_cluster_bundle NAME``: the manifests to apply in the remote cluster NAME."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.control import onboarding
from apps.control.models import Cluster


class Command(BaseCommand):
    help = (
        "Print the Namespace, ServiceAccount, least-privilege ClusterRole and binding, and token Secret that "
        "let KubeDoor manage the cluster NAME; apply them there with `kubectl apply -f -`."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name", help="the KubeDoor cluster's name")
        parser.add_argument("--namespace", default=onboarding.BUNDLE_NAMESPACE, help="namespace of the ServiceAccount")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"]
        if not Cluster.objects.filter(name=name).exists():
            raise CommandError(f"No cluster named {name!r}: add it in the admin first.")
        self.stdout.write(onboarding.bundle_yaml(cluster_name=name, namespace=options["namespace"]), ending="")

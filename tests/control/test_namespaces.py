"""Which namespaces a cluster controls: the one rule (apps/control/namespaces.py) and its two callers."""

from __future__ import annotations

import pytest

from apps.control.models import Cluster
from apps.control.namespaces import namespace_is_controlled
from apps.webhook.snapshot import cluster_settings_from

CASES = [
    # namespace, controlled namespaces, excluded namespaces, controlled?
    ("shop", [], ["kube-system", "kubedoor"], True),
    ("kube-system", [], ["kube-system", "kubedoor"], False),
    ("shop", ["shop", "blog"], [], True),
    ("wiki", ["shop", "blog"], [], False),
    ("shop", ["shop"], ["shop"], False),  # an exclusion wins over a listing
    ("shop", [], [], True),
]


@pytest.mark.parametrize(("namespace", "namespaces", "excluded", "controlled"), CASES)
def test_namespace_is_controlled(namespace, namespaces, excluded, controlled):
    assert namespace_is_controlled(namespace=namespace, namespaces=namespaces, excluded=excluded) is controlled


@pytest.mark.parametrize(("namespace", "namespaces", "excluded", "controlled"), CASES)
def test_the_cluster_and_the_admission_decision_agree(namespace, namespaces, excluded, controlled):
    cluster = Cluster(name="prod", namespaces=namespaces, excluded_namespaces=excluded)
    assert cluster.is_namespace_controlled(namespace) is controlled
    assert cluster_settings_from(cluster).is_namespace_controlled(namespace) is controlled

"""Fixtures shared by the control tests."""

from __future__ import annotations

import pytest

from tests.factories import MicroserviceFactory


@pytest.fixture
def targets(k8s_standin, k8s_cluster):
    """Two Deployments in the Kubernetes stand-in and their control rows, shop/a and shop/b, in that order."""
    for name in ("a", "b"):
        k8s_standin.add_deployment("shop", name, replicas=1)
    return [
        MicroserviceFactory(cluster=k8s_cluster, namespace="shop", name=name, replicas_measured=3)
        for name in ("a", "b")
    ]

"""The effective-replicas rule of DESIGN §4.2, in its one place."""

import pytest

from apps.control.models import Cluster, Microservice, effective_replicas


@pytest.mark.parametrize(
    ("manual", "ai", "measured", "expected"),
    [
        (5, 3, 2, 5),  # specified pod wins
        (0, 3, 2, 0),  # 0 specified on purpose parks the service
        (None, 3, 2, 3),  # then the recommendation
        (None, 0, 2, 0),  # a recommendation of 0 is a value too
        (None, None, 2, 2),  # then today's pods
        (None, None, 0, None),  # nothing measured: never force 0 replicas
        (None, None, None, None),
    ],
)
def test_effective_replicas_priority(manual, ai, measured, expected):
    assert effective_replicas(manual=manual, ai=ai, measured=measured, apply_recommended=True) == expected


@pytest.mark.parametrize(
    ("manual", "ai", "measured", "expected"),
    [
        (5, 3, 2, 5),  # specified pod still wins
        (None, 3, 2, 2),  # the recommendation is skipped: today's pods
        (None, 0, 2, 2),
        (None, 3, 0, None),  # nothing measured, the recommendation not applied: leave the Deployment's
    ],
)
def test_a_cluster_that_does_not_apply_recommendations_skips_them(manual, ai, measured, expected):
    assert effective_replicas(manual=manual, ai=ai, measured=measured, apply_recommended=False) == expected


def test_the_model_uses_the_same_rule_with_its_clusters_setting():
    cluster = Cluster(name="prod")
    assert cluster.apply_recommended_replicas is False  # off by default
    row = Microservice(cluster=cluster, replicas_measured=0, replicas_specified=None, replicas_recommended=None)
    assert row.effective_replicas is None
    row.replicas_recommended = 4
    assert row.effective_replicas is None
    cluster.apply_recommended_replicas = True
    assert row.effective_replicas == 4

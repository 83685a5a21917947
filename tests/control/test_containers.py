"""Which container a control row controls: the one rule (apps/control/containers.py) and its two callers."""

from __future__ import annotations

import pytest

from apps.control.containers import controlled_container
from apps.webhook import admission
from tests.webhook.conftest import load_case

CASES = [
    # configured, Deployment, containers in the pod spec's order, P95 CPU (None: admission), controlled, write it?
    ("app", "cart", ["sidecar", "app", "cart"], None, "app", False),  # the row's container wins
    ("app", "cart", ["sidecar", "app", "cart"], {"sidecar": 0.9, "app": 0.1, "cart": 0.2}, "app", False),
    ("gone", "cart", ["sidecar", "cart"], None, None, False),  # the set container is absent: none
    ("gone", "cart", ["sidecar", "cart"], {"sidecar": 0.9, "cart": 0.2}, None, False),
    ("", "cart", ["sidecar", "cart"], None, "cart", False),  # else the one named like the Deployment
    ("", "cart", ["sidecar", "cart"], {"sidecar": 0.9, "cart": 0.2}, "cart", False),
    ("", "cart", ["worker"], None, "worker", False),  # else the only container
    ("", "cart", ["worker"], {"worker": 0.1}, "worker", False),
    ("", "cart", ["sidecar", "worker"], None, "sidecar", False),  # admission: else the first
    ("", "cart", ["sidecar", "worker"], {"sidecar": 0.2, "worker": 0.7}, "worker", True),  # collection: busiest
    ("", "cart", ["worker", "sidecar"], {"sidecar": 0.7, "worker": 0.2}, "sidecar", True),
    ("", "cart", ["a", "b"], {"a": 0.5, "b": 0.5}, "b", True),  # a tie goes to the greater name
    ("", "cart", ["a", "b"], {"a": None, "b": 0.0}, "b", True),  # unmeasured counts below zero
    ("", "cart", [], None, None, False),  # no container at all
    ("", "cart", [], {}, None, False),
]


@pytest.mark.parametrize(("configured", "deployment", "names", "p95_cpu", "controlled", "written"), CASES)
def test_controlled_container(configured, deployment, names, p95_cpu, controlled, written):
    assert controlled_container(configured=configured, deployment=deployment, names=names, p95_cpu=p95_cpu) == (
        controlled,
        written,
    )


@pytest.mark.parametrize(
    ("configured", "deployment", "names", "p95_cpu", "controlled", "written"),
    [case for case in CASES if case[3] is None and case[2]],
)
def test_admission_patches_the_controlled_container(configured, deployment, names, p95_cpu, controlled, written):
    # given: a CREATE from the review corpus, of shop/<deployment>, each container asking 100m
    document = load_case("create-only-requests")[0]
    request = document["request"]
    request["namespace"], request["name"] = "shop", deployment
    request["object"]["metadata"].update(namespace="shop", name=deployment)
    request["object"]["spec"]["template"]["spec"]["containers"] = [
        {"name": name, "image": "app:1", "resources": {"requests": {"cpu": "100m"}}} for name in names
    ]
    review = admission.parse_review(document)
    row = admission.ControlRow(namespace="shop", name=deployment, container=configured, request_cpu_m=250)

    # when
    decision = admission.decide(review=review, row=row, cluster=admission.ClusterSettings(name="prod"))

    # then: exactly the controlled container's request is patched, or none when it is absent
    patched = [op["path"] for op in decision.patch if op["path"].endswith("/requests/cpu")]
    index = None if controlled is None else names.index(controlled)
    expected = [] if index is None else [f"/spec/template/spec/containers/{index}/resources/requests/cpu"]
    assert patched == expected

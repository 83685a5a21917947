"""Garbage bodies never make the admission view answer 5xx (hypothesis)."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import ClusterFactory, MicroserviceFactory
from tests.webhook.conftest import load_case

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=30,
)
SEEDS = [
    load_case(name)[0]
    for name in ("kubectl-update-image", "scale-kubectl", "helm-upgrade-sidecar-first", "v1beta1-update-image")
]


@pytest.fixture
def prod(db, webhook_state):
    cluster = ClusterFactory(name="prod", admission_mode="enforce")
    for name in ("cart", "checkout"):
        MicroserviceFactory(cluster=cluster, namespace="shop", name=name, replicas_specified=3)
    webhook_state.holder.refresh()
    return cluster


def _post(client, body: bytes):
    response = client.post("/mutate/prod", data=body, content_type="application/json")
    assert response.status_code < 500
    assert response.status_code in (200, 400)
    answer = response.json()
    if response.status_code == 200:
        assert answer["kind"] == "AdmissionReview"
        assert isinstance(answer["response"]["uid"], str)
        assert isinstance(answer["response"]["allowed"], bool)
    else:
        assert answer["detail"].startswith("Expected an AdmissionReview")
    return response


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


def _replace(doc, path, value):
    if not path:
        return value
    target = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return doc


@FUZZ
@given(body=st.binary(max_size=2000))
def test_random_bytes(client, prod, webhook_process, body):
    _post(client, body)


@FUZZ
@given(value=JSON)
def test_random_json(client, prod, webhook_process, value):
    _post(client, json.dumps(value).encode())


@FUZZ
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_truncated_reviews(client, prod, webhook_process, seed, data):
    text = json.dumps(seed).encode()
    cut = data.draw(st.integers(min_value=0, max_value=len(text) - 1))
    assert _post(client, text[:cut]).status_code == 400


@FUZZ
@given(seed=st.sampled_from(SEEDS), data=st.data(), value=JSON)
def test_reviews_with_a_wrong_value_anywhere(client, prod, webhook_process, seed, data, value):
    doc = copy.deepcopy(seed)
    path = data.draw(st.sampled_from(list(_paths(doc))))
    _post(client, json.dumps(_replace(doc, path, value)).encode())


@FUZZ
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_reviews_with_a_key_missing_anywhere(client, prod, webhook_process, seed, data):
    doc = copy.deepcopy(seed)
    paths = [p for p in _paths(doc) if p and isinstance(p[-1], str)]
    path = data.draw(st.sampled_from(paths))
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    del parent[path[-1]]
    response = _post(client, json.dumps(doc).encode())
    if path == ("request", "uid"):
        assert response.status_code == 400
        assert "request.uid must be a non-empty string" in response.json()["detail"]


def test_huge_review_is_answered(client, prod, webhook_process):
    # a Deployment with 2 000 containers and 1 MB of annotations: large but legal, answered normally
    doc = copy.deepcopy(SEEDS[0])
    spec = doc["request"]["object"]["spec"]["template"]["spec"]
    spec["containers"] += [{"name": f"c{i}", "image": "busybox"} for i in range(2000)]
    doc["request"]["object"]["metadata"]["annotations"]["big"] = "x" * 1_000_000
    response = _post(client, json.dumps(doc).encode())
    assert response.status_code == 200
    assert response.json()["response"]["patchType"] == "JSONPatch"


def test_deeply_nested_json_is_a_400(client, prod, webhook_process):
    _post(client, b"[" * 100_000 + b"]" * 100_000)

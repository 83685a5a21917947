"""The pure parts of apps/webhook/admission.py: parsing, quantities, pointers, mode handling."""

from __future__ import annotations

import copy
import json
from decimal import Decimal

import jsonpointer
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from apps.webhook.admission import (
    AdmissionParseError,
    ClusterSettings,
    ControlRow,
    decide,
    parse_quantity,
    parse_review,
    pointer,
    response_body,
)
from apps.webhook.admission.review import json_loads
from tests.webhook.conftest import load_case

ROW = ControlRow(namespace="shop", name="cart", replicas=3, request_cpu_m=250, request_mem_mib=256)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("250m", Decimal("0.25")),
        ("0.25", Decimal("0.25")),
        ("1", Decimal(1)),
        (2, Decimal(2)),
        ("512Mi", Decimal(512 * 2**20)),
        ("1Gi", Decimal(2**30)),
        ("1G", Decimal(10**9)),
        ("1e3", Decimal(1000)),
        ("2E", Decimal(2 * 10**18)),
        ("100k", Decimal(100_000)),
        ("250000000n", Decimal("0.25")),  # the kubelet reports CPU in nano- and microcores
        ("250000u", Decimal("0.25")),
        ("lots", None),
        (None, None),
        (True, None),
        ("NaN", None),
    ],
)
def test_parse_quantity(text, value):
    assert parse_quantity(text) == value


def test_pointer_escapes_tilde_and_slash_per_rfc6901():
    doc = {"limits": {"example.com/gpu": "1", "a~b/c": "2", "plain": "3"}}
    assert pointer("limits", "example.com/gpu") == "/limits/example.com~1gpu"
    assert pointer("limits", "a~b/c") == "/limits/a~0b~1c"
    assert pointer("spec", "containers", 0) == "/spec/containers/0"
    for key in doc["limits"]:
        assert jsonpointer.resolve_pointer(doc, pointer("limits", key)) == doc["limits"][key]


def test_mode_off_allows_unchanged_even_for_unmanaged():
    review = parse_review(json.dumps(load_case("unmanaged-create-denied")[0]))
    decision = decide(review=review, row=None, cluster=ClusterSettings(name="prod", admission_mode="off"))
    assert (decision.allowed, decision.patch, decision.warnings, decision.audit_action) == (True, [], [], None)


def test_delete_and_connect_operations_pass():
    doc = load_case("kubectl-create-no-resources")[0]
    doc["request"]["operation"] = "DELETE"
    decision = decide(review=parse_review(doc), row=ROW, cluster=ClusterSettings(name="prod"))
    assert (decision.allowed, decision.patch, decision.warnings) == (True, [], [])


def test_scale_of_a_replicaset_passes():
    doc = load_case("scale-kubectl")[0]
    doc["request"]["resource"]["resource"] = "replicasets"
    decision = decide(review=parse_review(doc), row=ROW, cluster=ClusterSettings(name="prod"))
    assert (decision.allowed, decision.patch) == (True, [])


def test_response_echoes_uid_and_version_and_encodes_patch():
    doc = load_case("kubectl-create-no-resources")[0]
    doc["apiVersion"] = "admission.k8s.io/v1beta1"
    review = parse_review(doc)
    body = response_body(review=review, decision=decide(review=review, row=ROW, cluster=ClusterSettings(name="prod")))
    assert body["apiVersion"] == "admission.k8s.io/v1beta1"
    assert body["response"]["uid"] == "c0000001-0000-4000-8000-000000000001"
    assert body["response"]["patchType"] == "JSONPatch"


def test_request_equal_limit_after_row_limit_below_deployment_request():
    # given a row that only sets limits, below the Deployment's own requests
    doc = load_case("create-only-requests")[0]
    doc["request"]["object"]["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "2", "memory": "2Gi"}
    }
    row = ControlRow(namespace="shop", name="search", limit_cpu_m=500, limit_mem_mib=512)
    # when
    decision = decide(review=parse_review(doc), row=row, cluster=ClusterSettings(name="prod"))
    # then the requests are lowered to the limits
    base = "/spec/template/spec/containers/0/resources"
    assert decision.patch == [
        {"op": "replace", "path": f"{base}/requests/cpu", "value": "500m"},
        {"op": "replace", "path": f"{base}/requests/memory", "value": "512Mi"},
        {"op": "add", "path": f"{base}/limits", "value": {}},
        {"op": "add", "path": f"{base}/limits/cpu", "value": "500m"},
        {"op": "add", "path": f"{base}/limits/memory", "value": "512Mi"},
    ]
    assert "kubedoor: container search requests.cpu 2 lowered to the limit 500m" in decision.warnings
    assert "kubedoor: container search requests.memory 2Gi lowered to the limit 512Mi" in decision.warnings


def test_replicas_zero_is_enforced_when_specified():
    doc = load_case("scale-kubectl")[0]
    row = ControlRow(namespace="shop", name="cart", replicas=0)
    decision = decide(review=parse_review(doc), row=row, cluster=ClusterSettings(name="prod"))
    assert decision.patch == [{"op": "replace", "path": "/spec/replicas", "value": 0}]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.update(kind="Pod"), "the body is not an AdmissionReview"),
        (lambda d: d.update(apiVersion="admission.k8s.io/v2"), "the body is not an AdmissionReview"),
        (lambda d: d.pop("request"), "request must be an object"),
        (lambda d: d["request"].pop("uid"), "request.uid must be a non-empty string"),
        (lambda d: d["request"].update(uid=7), "request.uid must be a non-empty string"),
        (lambda d: d["request"].update(kind="Deployment"), "request.kind must be an object"),
        (lambda d: d["request"].update(operation=None), "request.operation must be a string"),
        (lambda d: d["request"].update(dryRun="yes"), "request.dryRun must be a boolean"),
        (lambda d: d["request"].update(object=[]), "request.object must be an object"),
        (
            lambda d: d["request"]["object"]["spec"]["template"]["spec"].update(containers={}),
            "request.object.spec.template.spec.containers must be a list",
        ),
        (
            lambda d: d["request"]["object"]["spec"].update(replicas="3"),
            "request.object.spec.replicas must be an integer",
        ),
        (
            lambda d: d["request"]["object"]["spec"]["template"]["spec"]["containers"][0].update(resources=[]),
            "request.object.spec.template.spec.containers[0].resources must be an object",
        ),
    ],
)
def test_parse_rejects_what_is_not_a_review(mutate, reason):
    doc = copy.deepcopy(load_case("kubectl-create-no-resources")[0])
    mutate(doc)
    with pytest.raises(AdmissionParseError) as excinfo:
        parse_review(json.dumps(doc))
    assert str(excinfo.value).startswith(reason)


def test_parse_rejects_non_json():
    with pytest.raises(AdmissionParseError, match="the body is not JSON"):
        parse_review(b'{"apiVersion": ')


# --- json_loads: orjson where it agrees with the standard library, the standard library elsewhere ----

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()  # NaN and ±Infinity included: json.dumps writes them as literals orjson refuses
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=30,
)


def _outcome(loads, text):
    """The value (repr: 1 and 1.0 differ, NaN equals NaN) or the exception (type and message)."""
    try:
        return "value", repr(loads(text))
    except (ValueError, RecursionError) as exc:
        return type(exc).__name__, str(exc)


@settings(max_examples=300, deadline=None)
@given(value=JSON_VALUES, compact=st.booleans())
def test_json_loads_gives_what_the_standard_library_gives_for_json(value, compact):
    text = json.dumps(value, separators=(",", ":") if compact else None, ensure_ascii=False).encode()
    assert _outcome(json_loads, text) == _outcome(json.loads, text)


def _within_64_bits(value):
    if isinstance(value, int) and not isinstance(value, bool):
        return -(2**63) <= value < 2**64
    if isinstance(value, list):
        return all(_within_64_bits(item) for item in value)
    if isinstance(value, dict):
        return all(_within_64_bits(item) for item in value.values())
    return True


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=200) | st.text(max_size=60).map(str.encode))
def test_json_loads_gives_what_the_standard_library_gives_for_any_bytes(body):
    try:
        assume(_within_64_bits(json.loads(body)))  # see test_json_loads_reads_integers_beyond_64_bits_as_floats
    except (ValueError, RecursionError):
        pass
    assert _outcome(json_loads, body) == _outcome(json.loads, body)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"NaN",
        b"[Infinity, -Infinity]",
        b"1e400",
        b'"\\ud800"',  # a lone surrogate
        b"\xef\xbb\xbf{}",  # a byte order mark
        '{"a": 1}'.encode("utf-16"),
        b"[1,]",
        b'{"a": 1} x',
        b"[" * 1030 + b"]" * 1030,  # deeper than orjson's limit: the standard library's RecursionError
        b"[" * 100_000 + b"]" * 100_000,
        json.dumps(load_case("kubectl-update-image")[0]).encode(),
    ],
)
def test_json_loads_falls_back_to_the_standard_library_where_orjson_refuses(body):
    assert _outcome(json_loads, body) == _outcome(json.loads, body)


def test_json_loads_reads_integers_beyond_64_bits_as_floats():
    # the one documented difference; the API server never sends such a number (Go's int64 fields)
    assert json_loads(b"[18446744073709551615, -9223372036854775808]") == [2**64 - 1, -(2**63)]
    assert json_loads(b"18446744073709551616") == 1.8446744073709552e19
    assert isinstance(json_loads(b"18446744073709551616"), float)
    assert json.loads(b"18446744073709551616") == 2**64

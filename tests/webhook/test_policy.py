"""The webhook-less engine's objects (apps/webhook/policy.py): schema-valid, and patching exactly as the webhook.

Parity: the MutatingAdmissionPolicy's CEL (evaluated with cel-python, tests/servers/k8s_standin/policies.py)
and the ValidatingAdmissionPolicy run on every review of the benchmark corpus (bench/webhook builds 160
bodies; here with the benchmark's rows and with rows varied per Deployment) and of the review corpus
(tests/webhook/reviews/), and their result is compared with the webhook's decision on the same review:
the same allowed/denied answer, the same denial text, the same patched object. The documented exceptions
(README, "Webhook-less enforcement") are the only cases left out, each by an explicit rule below.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import jsonpatch
import kubernetes_validate
import pytest

from apps.webhook import admission, policy
from apps.webhook.admission import ClusterSettings, ControlRow
from tests.servers import REPO
from tests.servers.k8s_standin import policies
from tests.webhook.conftest import case_names, load_case

OWN = ("system:serviceaccount:kubedoor:kubedoor",)
EXCLUDED = ("kube-system", "kubedoor")


def _bench_run_module() -> Any:
    spec = importlib.util.spec_from_file_location("bench_webhook_run", REPO / "bench" / "webhook" / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> Any:
    return _bench_run_module()


@pytest.fixture(scope="module")
def bench_reviews(bench, tmp_path_factory) -> list[dict[str, Any]]:
    listing = bench.write_bodies(tmp_path_factory.mktemp("bench-bodies"))
    return [json.loads(Path(line).read_text()) for line in listing.read_text().split()]


def engine(
    cluster: ClusterSettings, *, failure_policy: str = "Fail", api_version: str = "admissionregistration.k8s.io/v1"
) -> dict[str, dict[str, Any]]:
    built = policy.policy_objects(
        cluster_name=cluster.name,
        api_version=api_version,
        excluded_namespaces=sorted(cluster.excluded_namespaces),
        namespaces=sorted(cluster.namespaces),
        own_usernames=sorted(cluster.own_usernames),
        failure_policy=failure_policy,
        allow_unmanaged=cluster.allow_unmanaged,
    )
    return {obj["kind"]: obj for obj in built}


def by_policy(
    objects: dict[str, dict[str, Any]], request: dict[str, Any], rows: list[ControlRow], cluster_name: str
) -> tuple[bool, str, dict[str, Any] | None]:
    """What the API server does with ``request`` under the engine: (allowed, denial message, patched)."""
    namespace = request.get("namespace", "")
    in_namespace = [row for row in rows if row.namespace == namespace]
    params = (
        {policy.object_name(cluster_name): policy.params_config_map(
            cluster_name=cluster_name, namespace=namespace, rows=in_namespace)}
        if in_namespace
        else {}
    )  # fmt: skip
    if "ValidatingAdmissionPolicy" in objects:
        verdict = policies.validate(
            policy=objects["ValidatingAdmissionPolicy"],
            binding=objects["ValidatingAdmissionPolicyBinding"],
            request=request,
            params_by_name=params,
        )
        if not verdict.allowed:
            return False, verdict.message, None
    outcome = policies.mutate(
        policy=objects["MutatingAdmissionPolicy"],
        binding=objects["MutatingAdmissionPolicyBinding"],
        request=request,
        params_by_name=params,
    )
    return True, "", outcome.patched if outcome.matched else request.get("object")


def by_webhook(
    document: dict[str, Any], rows: list[ControlRow], cluster: ClusterSettings
) -> tuple[bool, str, dict[str, Any] | None]:
    review = admission.parse_review(document)
    row = next((r for r in rows if (r.namespace, r.name) == (review.namespace, review.name)), None)
    decision = admission.decide(review=review, row=row, cluster=cluster)
    if not decision.allowed:
        return False, decision.message, None
    obj = document["request"].get("object")
    return True, "", jsonpatch.apply_patch(obj, decision.patch) if decision.patch else obj


def compare(document: dict[str, Any], rows: list[ControlRow], cluster: ClusterSettings) -> list[str]:
    """The differences between the webhook's and the policy's handling of one review (empty: none)."""
    request = document["request"]
    webhook = by_webhook(document, rows, cluster)
    engine_result = by_policy(engine(cluster), request, rows, cluster.name)
    where = f"{request.get('operation')} {request.get('namespace')}/{request.get('name')} ({request.get('uid')})"
    differences = []
    if webhook[0] != engine_result[0]:
        differences.append(f"{where}: webhook allowed={webhook[0]}, policy allowed={engine_result[0]}")
    elif not webhook[0] and webhook[1] != engine_result[1]:
        differences.append(f"{where}: denial text differs: {webhook[1]!r} != {engine_result[1]!r}")
    elif webhook[2] != engine_result[2]:
        patch = jsonpatch.make_patch(webhook[2], engine_result[2]).patch
        differences.append(f"{where}: patched objects differ (webhook -> policy): {patch}")
    return differences


def bench_rows(bench) -> list[ControlRow]:
    """The benchmark's control rows (bench/webhook/run.py seed_database), as the snapshot holds them."""
    return [
        ControlRow(
            namespace=namespace,
            name=name,
            replicas=3,
            request_cpu_m=250,
            request_mem_mib=256,
            limit_cpu_m=1000,
            limit_mem_mib=1024,
        )
        for namespace in bench.NAMESPACES
        for name in bench.NAMES
    ]


def varied_rows(bench) -> list[ControlRow]:
    """Every shape of row the decision tells apart, one per Deployment in turn (one in 8 unregistered)."""
    rows = []
    for index, (namespace, name) in enumerate((ns, n) for ns in bench.NAMESPACES for n in bench.NAMES):
        shape = index % 8
        base: dict[str, Any] = {"namespace": namespace, "name": name, "replicas": 1 + index % 5}
        if shape == 0:
            rows.append(ControlRow(**base, hpa_managed=True, request_cpu_m=300, limit_mem_mib=640))
        elif shape == 1:
            rows.append(ControlRow(**base | {"replicas_mode": "ignore"}, request_mem_mib=200))
        elif shape == 2:
            rows.append(ControlRow(**base, container="log-shipper", request_cpu_m=50, limit_cpu_m=75))
        elif shape == 3:
            rows.append(ControlRow(**base, request_cpu_m=2000, limit_cpu_m=1000, request_mem_mib=64))
        elif shape == 4:
            rows.append(ControlRow(**base, container="missing", request_cpu_m=10))
        elif shape == 5:
            rows.append(ControlRow(**base | {"replicas": None}, limit_mem_mib=128))
        elif shape == 6:
            rows.append(ControlRow(**base, request_cpu_m=100, request_mem_mib=128, limit_cpu_m=500, limit_mem_mib=512))
        # shape 7: not in the control table
    return rows


def cluster_settings(**fields: Any) -> ClusterSettings:
    values: dict[str, Any] = {
        "name": "bench",
        "admission_mode": "enforce",
        "excluded_namespaces": frozenset(EXCLUDED),
        "own_usernames": frozenset(OWN),
    }
    return ClusterSettings(**(values | fields))


# --- the objects ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "api_version"),
    [
        ("1.34", "admissionregistration.k8s.io/v1beta1"),
        ("1.35", "admissionregistration.k8s.io/v1beta1"),
        ("1.36", "admissionregistration.k8s.io/v1"),
        ("1.37", "admissionregistration.k8s.io/v1"),
    ],
)
def test_every_object_validates_strictly_for_the_versions_that_serve_it(version, api_version):
    major, minor = (int(part) for part in version.split("."))
    assert policy.mutating_api_version(major, minor) == api_version
    built = policy.policy_objects(
        cluster_name="prod",
        api_version=api_version,
        excluded_namespaces=EXCLUDED,
        namespaces=["shop"],
        own_usernames=OWN,
        failure_policy="Ignore",
        allow_unmanaged=False,
    )
    assert [(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in built] == [
        (api_version, "MutatingAdmissionPolicy", "kubedoor-prod"),
        (api_version, "MutatingAdmissionPolicyBinding", "kubedoor-prod"),
        ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy", "kubedoor-prod"),
        ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding", "kubedoor-prod"),
    ]
    rows = [ControlRow("shop", "cart", replicas=2)]
    params = policy.params_config_map(cluster_name="prod", namespace="shop", rows=rows)
    for obj in [*built, params]:
        kubernetes_validate.validate(obj, version, strict=True)
    mutating = built[0]["spec"]
    assert mutating["paramKind"] == {"apiVersion": "v1", "kind": "ConfigMap"}
    assert mutating["matchConstraints"]["namespaceSelector"] == {
        "matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", "kubedoor"]},
            {"key": "kubedoor-ignore", "operator": "DoesNotExist"},
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["shop"]},
        ]
    }
    assert built[1]["spec"]["paramRef"] == {"name": "kubedoor-prod", "parameterNotFoundAction": "Allow"}
    assert built[3]["spec"]["paramRef"] == {"name": "kubedoor-prod", "parameterNotFoundAction": "Deny"}
    assert built[3]["spec"]["validationActions"] == ["Deny"]


def test_allow_unmanaged_leaves_out_the_validating_policy():
    built = policy.policy_objects(
        cluster_name="prod",
        api_version="admissionregistration.k8s.io/v1",
        excluded_namespaces=EXCLUDED,
        namespaces=[],
        own_usernames=OWN,
        failure_policy="Fail",
        allow_unmanaged=True,
    )
    assert [o["kind"] for o in built] == ["MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"]


def test_params_hold_exactly_what_the_table_asks():
    rows = [
        ControlRow("shop", "cart", replicas=3, request_cpu_m=250, request_mem_mib=256, limit_cpu_m=1000),
        ControlRow("shop", "api.v2", container="app", replicas=4, hpa_managed=True, limit_mem_mib=1024),
        ControlRow("shop", "batch", replicas=0, replicas_mode="ignore"),
        ControlRow("shop", "idle", replicas=0),
    ]
    assert policy.params_data(rows) == {
        "api.v2_container": "app",
        "api.v2_limit_memory": "1024Mi",
        "api.v2_managed": "1",
        "batch_managed": "1",
        "cart_limit_cpu": "1000m",
        "cart_managed": "1",
        "cart_replicas": "3",
        "cart_request_cpu": "250m",
        "cart_request_memory": "256Mi",
        "idle_managed": "1",
        "idle_replicas": "0",
    }


# --- parity ---------------------------------------------------------------------------------------


def test_the_benchmark_corpus_is_patched_alike_with_the_benchmark_rows(bench, bench_reviews):
    assert len(bench_reviews) == 160
    rows = bench_rows(bench)
    differences = [d for document in bench_reviews for d in compare(document, rows, cluster_settings())]
    assert differences == []
    # and it is not vacuous: every review is patched
    patched = [by_webhook(doc, rows, cluster_settings())[2] != doc["request"]["object"] for doc in bench_reviews]
    assert all(patched)


def test_the_benchmark_corpus_is_patched_and_refused_alike_with_varied_rows(bench, bench_reviews):
    rows = varied_rows(bench)
    differences = [d for document in bench_reviews for d in compare(document, rows, cluster_settings())]
    assert differences == []
    answers = [by_webhook(document, rows, cluster_settings()) for document in bench_reviews]
    # the 16 UPDATE reviews of the 16 unregistered Deployments (their CREATE and scale reviews fall on others)
    assert sum(1 for allowed, _, _ in answers if not allowed) == 16
    assert sum(1 for (allowed, _, obj), d in zip(answers, bench_reviews, strict=True)
               if allowed and obj != d["request"]["object"]) > 100  # fmt: skip


def test_allow_unmanaged_lets_unregistered_deployments_through_unchanged_alike(bench, bench_reviews):
    rows = varied_rows(bench)
    settings = cluster_settings(allow_unmanaged=True)
    assert [d for document in bench_reviews for d in compare(document, rows, settings)] == []


# The review corpus' cases the policy engine does not serve, by the rule that leaves each out:
# audit mode (a policy cannot only warn: the engine refuses audit) and control data unavailable (the
# parameters live in the cluster: there is no store to lose).
def _exception(setup: dict[str, Any]) -> str | None:
    cluster = setup.get("cluster", {})
    if cluster.get("admission_mode", "enforce") != "enforce":
        return "admission mode " + cluster["admission_mode"]
    if not setup.get("store_available", True):
        return "control data unavailable"
    return None


REVIEW_CASES = [name for name in case_names() if _exception(load_case(name)[1]["setup"]) is None]


def test_the_review_corpus_leaves_out_only_documented_exceptions():
    left_out = sorted({_exception(load_case(name)[1]["setup"]) for name in case_names()} - {None})
    assert left_out == ["admission mode audit", "control data unavailable"]
    assert len(REVIEW_CASES) > 25


def _corpus_rows(setup: dict[str, Any]) -> list[ControlRow]:
    from apps.control.models import effective_replicas

    rows = [ControlRow("shop", "unrelated", replicas=9)]
    row = setup["row"]
    if row is not None:
        rows.append(
            ControlRow(
                namespace=setup.get("namespace", "shop"),
                name=setup.get("name", "cart"),
                container=row.get("container", ""),
                replicas=effective_replicas(
                    manual=row.get("replicas_specified"),
                    ai=row.get("replicas_recommended"),
                    measured=row.get("replicas_measured", 0),
                    apply_recommended=bool(setup.get("cluster", {}).get("apply_recommended_replicas")),
                ),
                replicas_mode=row.get("replicas_mode", "enforce"),
                request_cpu_m=row.get("request_cpu_m"),
                request_mem_mib=row.get("request_mem_mib"),
                limit_cpu_m=row.get("limit_cpu_m"),
                limit_mem_mib=row.get("limit_mem_mib"),
                hpa_managed=bool(row.get("hpa_name")),
            )
        )
    return rows


@pytest.mark.parametrize("case", REVIEW_CASES)
def test_the_review_corpus_is_handled_alike(case):
    document, expected = load_case(case)
    setup = expected["setup"]
    fields = dict(setup.get("cluster", {}))
    fields.pop("admission_mode", None)
    fields.pop("on_store_error", None)
    for key in ("namespaces", "excluded_namespaces"):
        if key in fields:
            fields[key] = frozenset(fields[key])
    cluster = cluster_settings(name="prod", **fields)
    assert compare(document, _corpus_rows(setup), cluster) == []

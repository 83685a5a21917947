"""Onboarding a remote cluster (issue 13 §1): the bundle, the connection made from its Secret, the check."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator

import kubernetes_validate
import pytest
import trustme
import yaml
from django.core.management import CommandError, call_command

from apps.audit.models import AuditEvent
from apps.control import k8s
from apps.control.choices import ConnectionState
from apps.control.models import Cluster
from apps.control.rbac import RBAC_REQUIREMENTS
from tests.deploy.manifests import EXPECTED_RULES_BASE, K8S_VERSION
from tests.factories import ClusterFactory
from tests.servers.k8s_standin import ACCESS_REVIEW_PATH, K8sStandin

SSAR_PATH = ACCESS_REVIEW_PATH
MWC = "admissionregistration.k8s.io"


@pytest.fixture
def two_standins() -> Iterator[tuple[K8sStandin, K8sStandin]]:
    """Two remote clusters: one on 1.30, one on 1.27."""
    new, old = K8sStandin(git_version="v1.30.2").start(), K8sStandin(git_version="v1.27.9").start()
    yield new, old
    new.stop()
    old.stop()
    k8s.clients_clear()


def _secret(*, token: str, ca_pem: str, as_json: bool = False) -> str:
    """The token Secret as `kubectl -n kubedoor get secret kubedoor-token -o yaml|json` prints it."""
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/service-account-token",
        "metadata": {"name": "kubedoor-token", "namespace": "kubedoor"},
        "data": {
            "token": base64.b64encode(token.encode()).decode(),
            "ca.crt": base64.b64encode(ca_pem.encode()).decode(),
            "namespace": base64.b64encode(b"kubedoor").decode(),
        },
    }
    return json.dumps(secret) if as_json else yaml.safe_dump(secret)


def _bundle(name: str) -> list[dict]:
    out = io.StringIO()
    call_command("kubedoor_cluster_bundle", name, stdout=out)
    return [doc for doc in yaml.safe_load_all(out.getvalue()) if doc]


def test_bundle_is_valid_and_grants_exactly_the_declared_permissions(db):
    # given
    ClusterFactory(name="edge")
    # when
    documents = _bundle("edge")
    # then: every object validates strictly against Kubernetes 1.30
    for document in documents:
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)
    kinds = [(d["kind"], d["metadata"]["name"]) for d in documents]
    assert kinds == [
        ("Namespace", "kubedoor"),
        ("ServiceAccount", "kubedoor"),
        ("ClusterRole", "kubedoor-edge"),
        ("ClusterRoleBinding", "kubedoor-edge"),
        ("Secret", "kubedoor-token"),
    ]
    role, binding, secret = documents[2], documents[3], documents[4]
    flattened = {
        (group, resource, verb, tuple(rule.get("resourceNames", ())))
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    # ... the role is the RBAC test's list, the named verbs limited to this cluster's configuration
    named = {
        (group, resource, verb, ("kubedoor-edge",))
        for group, resource in (
            (MWC, "mutatingwebhookconfigurations"),
            (MWC, "mutatingadmissionpolicies"),
            (MWC, "mutatingadmissionpolicybindings"),
            (MWC, "validatingadmissionpolicies"),
            (MWC, "validatingadmissionpolicybindings"),
            ("", "configmaps"),
        )
        for verb in ("get", "update", "delete")
    }
    assert flattened == EXPECTED_RULES_BASE | named
    assert {rule[:3] for rule in flattened} == {p.key for p in RBAC_REQUIREMENTS}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kubedoor", "namespace": "kubedoor"}]
    assert binding["roleRef"]["name"] == "kubedoor-edge"
    assert secret["type"] == "kubernetes.io/service-account-token"
    assert secret["metadata"]["annotations"] == {"kubernetes.io/service-account.name": "kubedoor"}


def test_bundle_of_an_unknown_cluster_is_refused_by_name(db):
    with pytest.raises(CommandError, match="No cluster named 'nowhere'"):
        _bundle("nowhere")


def test_connect_and_check_two_clusters_naming_each_missing_permission(db, two_standins, tmp_path):
    # given: two remote clusters whose token Secrets were read back; the old one's role lacks two verbs
    new, old = two_standins
    ca = trustme.CA()
    ca_pem = ca.cert_pem.bytes().decode()
    new.users["token-new"] = ("system:serviceaccount:kubedoor:kubedoor", ["system:authenticated"])
    old.users["token-old"] = ("system:serviceaccount:kubedoor:kubedoor", ["system:authenticated"])
    everything_but = {
        (p.group, p.resource, p.verb, "kubedoor-east" if p.named else "")
        for p in RBAC_REQUIREMENTS
        if (p.resource, p.verb) not in {("deployments/scale", "patch"), ("mutatingwebhookconfigurations", "delete")}
    }
    old.permissions["token-old"] = everything_but
    # the new cluster grants its named verbs on its own configuration only
    new.permissions["token-new"] = {
        (p.group, p.resource, p.verb, "kubedoor-west" if p.named else "") for p in RBAC_REQUIREMENTS
    }
    west, east = ClusterFactory(name="west"), ClusterFactory(name="east")
    (tmp_path / "west.yaml").write_text(_secret(token="token-new", ca_pem=ca_pem))
    (tmp_path / "east.json").write_text(_secret(token="token-old", ca_pem=ca_pem, as_json=True))

    # when
    out = io.StringIO()
    call_command(
        "kubedoor_cluster_connect",
        "west",
        "--server",
        new.url,
        "--from-secret",
        str(tmp_path / "west.yaml"),
        stdout=out,
    )
    with pytest.raises(CommandError, match="cluster east: the connection is incomplete"):
        call_command(
            "kubedoor_cluster_connect",
            "east",
            "--server",
            old.url,
            "--from-secret",
            str(tmp_path / "east.json"),
            stdout=out,
        )

    # then: each cluster is reached with its own token and CA, and its version is stored
    west.refresh_from_db()
    east.refresh_from_db()
    assert (west.connection_state, west.kubernetes_version, west.connection_detail) == (
        ConnectionState.OK,
        "v1.30.2",
        "",
    )
    assert (east.connection_state, east.kubernetes_version) == (ConnectionState.INCOMPLETE, "v1.27.9")
    assert east.connection_detail == (
        "Missing: patch deployments.apps/scale; "
        "delete mutatingwebhookconfigurations.admissionregistration.k8s.io kubedoor-east"
    )
    assert west.last_success_at is not None
    assert west.connection_checked_at == west.last_success_at
    stored = yaml.safe_load(east.kubeconfig)
    assert stored["clusters"][0]["cluster"] == {
        "server": old.url,
        "certificate-authority-data": base64.b64encode(ca_pem.encode()).decode(),
    }
    assert stored["users"][0]["user"] == {"token": "token-old"}
    lines = out.getvalue().splitlines()
    assert "cluster west: ok, v1.30.2" in lines
    assert "  missing: patch deployments.apps/scale" in lines
    assert "  missing: delete mutatingwebhookconfigurations.admissionregistration.k8s.io kubedoor-east" in lines
    # ... one review per declared permission, sent by the cluster's own token, the named ones by name
    reviews = old.calls("POST", SSAR_PATH)
    assert len(reviews) == len(RBAC_REQUIREMENTS) == 32
    assert {r.headers["authorization"] for r in reviews} == {"Bearer token-old"}
    scale = [
        r.body["spec"]["resourceAttributes"] for r in reviews if r.body["spec"]["resourceAttributes"].get("subresource")
    ]
    assert scale == [
        {"group": "apps", "resource": "deployments", "subresource": "scale", "verb": "patch"},
        {"group": "", "resource": "pods", "subresource": "resize", "verb": "patch"},
    ]
    assert not new.calls("POST", SSAR_PATH)[0].headers["authorization"].endswith("token-old")
    # ... and the kubeconfig change is audited without the secret
    event = AuditEvent.objects.get(action="cluster.update", cluster="east")
    assert event.after["kubeconfig"] == "<set>"
    assert "token-old" not in json.dumps(event.after) + json.dumps(event.before)


def test_connect_refuses_a_secret_without_token_and_changes_nothing(db, two_standins, tmp_path):
    # given: a Secret the token controller has not filled yet
    new, _ = two_standins
    cluster = ClusterFactory(name="west", kubeconfig="")
    empty = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "kubedoor-token"}, "data": {}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(empty))
    # when / then
    with pytest.raises(CommandError, match=r"cluster west: The Secret kubedoor-token has no token, ca.crt yet"):
        call_command("kubedoor_cluster_connect", "west", "--server", new.url, "--from-secret", str(tmp_path / "s.yaml"))
    cluster.refresh_from_db()
    assert cluster.kubeconfig == ""
    assert cluster.connection_state == ConnectionState.UNKNOWN
    assert new.requests == []
    assert not AuditEvent.objects.filter(action="cluster.update").exists()


def test_check_of_an_unreachable_cluster_stores_failed_with_the_reason(db, two_standins):
    # given: a stored connection to a stand-in that has stopped
    new, _ = two_standins
    from tests.servers.k8s_standin import standin_cluster

    cluster = standin_cluster(new, name="gone")
    new.stop()
    # when
    with pytest.raises(CommandError, match="cluster gone: the connection is failed"):
        call_command("kubedoor_cluster_connect", "gone", "--check-only", stdout=io.StringIO())
    # then
    cluster.refresh_from_db()
    assert cluster.connection_state == ConnectionState.FAILED
    assert "cluster gone: server version: cannot connect to the API server" in cluster.connection_detail
    assert cluster.last_success_at is None
    assert Cluster.objects.get(name="gone").kubernetes_version == ""


def test_admin_downloads_the_bundle_and_connects_through_the_form(db, client, admin_user, two_standins):
    # given
    new, _ = two_standins
    new.users["token-form"] = ("system:serviceaccount:kubedoor:kubedoor", ["system:authenticated"])
    new.permissions["token-form"] = {("", "namespaces", "list", "")}
    cluster = ClusterFactory(name="north")
    client.force_login(admin_user)
    change = client.get(f"/admin/control/cluster/{cluster.pk}/change/")
    assert f'href="/admin/control/cluster/{cluster.pk}/bundle/"' in change.content.decode()
    # when: the bundle is downloaded
    bundle = client.get(f"/admin/control/cluster/{cluster.pk}/bundle/")
    # then: the same text as the command's
    assert bundle.status_code == 200
    assert bundle["Content-Disposition"] == 'attachment; filename="kubedoor-north-bundle.yaml"'
    out = io.StringIO()
    call_command("kubedoor_cluster_bundle", "north", stdout=out)
    assert bundle.content.decode() == out.getvalue()
    # when: the Secret is pasted into the connect form
    ca_pem = trustme.CA().cert_pem.bytes().decode()
    response = client.post(
        f"/admin/control/cluster/{cluster.pk}/connect/",
        {"server": new.url, "secret": _secret(token="token-form", ca_pem=ca_pem)},
    )
    # then: the page names every missing permission; the state is stored
    page = response.content.decode()
    assert response.status_code == 200
    assert page.count("<li><code>") == len(RBAC_REQUIREMENTS)
    assert "<li><code>patch deployments.apps/scale</code></li>" in page
    assert "<li><code>get mutatingwebhookconfigurations.admissionregistration.k8s.io kubedoor-north</code></li>" in page
    cluster.refresh_from_db()
    assert (cluster.connection_state, cluster.kubernetes_version) == (ConnectionState.INCOMPLETE, "v1.30.2")
    assert yaml.safe_load(cluster.kubeconfig)["users"][0]["user"]["token"] == "token-form"


def test_viewers_get_neither_the_bundle_nor_the_connect_form(db, client, viewer, two_standins):
    cluster = ClusterFactory(name="north")
    client.force_login(viewer)
    assert client.get(f"/admin/control/cluster/{cluster.pk}/bundle/").status_code == 403
    response = client.post(f"/admin/control/cluster/{cluster.pk}/connect/", {"check": "1"})
    assert response.status_code == 403
    assert two_standins[0].requests == []
    cluster.refresh_from_db()
    assert cluster.connection_checked_at is None

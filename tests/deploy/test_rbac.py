"""The ClusterRole against DESIGN §12, against the Kubernetes door's calls, and against the registration."""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate

from tests.deploy.manifests import EXPECTED_RULES_BASE, K8S_VERSION, NAMESPACE, generated, one, role_rules
from tests.servers import REPO


def test_cluster_role_grants_exactly_the_design_permissions(base, production):
    webhook_names = {"base": ("kubedoor-default",), "production": ("kubedoor-production",)}
    for which, objects in (("base", base), ("production", production)):
        names = webhook_names[which]
        named = (
            "mutatingwebhookconfigurations",
            "mutatingadmissionpolicies",
            "mutatingadmissionpolicybindings",
            "validatingadmissionpolicies",
            "validatingadmissionpolicybindings",
        )
        assert role_rules(objects) == EXPECTED_RULES_BASE | {
            ("admissionregistration.k8s.io", resource, verb, names)
            for resource in named
            for verb in ("get", "update", "delete")
        } | {("", "configmaps", verb, names) for verb in ("get", "update", "delete")}, which
        # No wildcard, no secrets, no pod reads beyond the list a resize needs: nothing beyond the door's calls.
        assert all("*" not in part for rule in role_rules(objects) for part in rule[:3])


# The Kubernetes door (apps/control/k8s.py) against the ClusterRole: every call it can make is granted.
DOOR = REPO / "apps" / "control" / "k8s.py"
_HTTP_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}

# Granted because DESIGN §12 lists them, though the door makes no such call today (see the report in
# deploy/README.md, "What KubeDoor may do in the cluster"). The test fails when this changes, in
# either direction, so the list and the role are revisited together.
GRANTED_BEYOND_THE_DOOR: set[tuple[str, str, str]] = set()  # the role is exactly what the door calls
# Calls every authenticated user may make: /version (the built-in system:public-info-viewer role) and
# SelfSubjectAccessReviews (system:basic-user), with which the connection check asks what it may do.
# No rule of KubeDoor's role is needed for them.
NON_RESOURCE_APIS = {"VersionApi", "AuthorizationV1Api"}


def _permission_of(api_class: type, method: str, *, watched: bool = False) -> tuple[str, str, str]:
    """(apiGroup, resource[/subresource], verb) that one generated client method needs."""
    import inspect

    source = inspect.getsource(getattr(api_class, f"{method}_with_http_info"))
    ((path, http_method),) = re.findall(r"call_api\(\s*'([^']+)',\s*'([A-Z]+)'", source)
    parts = path.strip("/").split("/")
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    if len(rest) > 2 and rest[0] == "namespaces" and rest[1] == "{namespace}":
        rest = rest[2:]
    named = len(rest) > 1 and rest[1] == "{name}"
    resource = "/".join([rest[0], *rest[2:3]])
    if http_method == "GET":
        verb = "watch" if watched else ("get" if named else "list")
    elif http_method == "DELETE":
        verb = "delete" if named else "deletecollection"
    else:
        verb = _HTTP_VERBS[http_method]
    return group, resource, verb


def _door_permissions() -> set[tuple[str, str, str]]:
    """Every (apiGroup, resource, verb) that a client method named in the door's source needs."""
    import ast

    from kubernetes import client as k8s_client

    tree = ast.parse(DOOR.read_text())
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
    # The generated API classes the door instantiates, by name through its helper: _api(cluster, "AppsV1Api").
    names = {
        call.args[1].value
        for call in calls
        if isinstance(call.func, ast.Name)
        and call.func.id == "_api"
        and len(call.args) == 2
        and isinstance(call.args[1], ast.Constant)
    }
    assert not any(
        isinstance(call.func, ast.Attribute) and re.fullmatch(r"[A-Za-z0-9]+Api", call.func.attr) for call in calls
    ), "an API class made without _api() would escape this check"
    classes = {
        getattr(k8s_client, name)
        for name in names
        if re.fullmatch(r"[A-Za-z0-9]+Api", name) and hasattr(k8s_client, name) and name not in NON_RESOURCE_APIS
    }
    assert classes, "the door instantiates no Kubernetes API class"
    # Methods handed to a watch (watch.Watch().stream(api.list_..., ...)) or called with watch=True.
    watched = {
        arg.attr
        for call in calls
        if isinstance(call.func, ast.Attribute) and call.func.attr == "stream"
        for arg in call.args[:1]
        if isinstance(arg, ast.Attribute)
    } | {
        call.func.attr
        for call in calls
        if isinstance(call.func, ast.Attribute)
        and any(k.arg == "watch" and getattr(k.value, "value", False) is True for k in call.keywords)
    }
    assert not any(isinstance(c.func, ast.Attribute) and c.func.attr == "call_api" for c in calls), (
        "the door calls call_api directly: derive its permissions by hand"
    )
    needed = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        owners = [cls for cls in classes if hasattr(cls, f"{node.attr}_with_http_info")]
        # A method of several API versions (admissionregistration v1 and v1beta1) needs one permission:
        # the versions of a resource share its RBAC resource name.
        permissions = {_permission_of(owner, node.attr, watched=node.attr in watched) for owner in owners}
        assert len(permissions) <= 1, (node.attr, permissions)
        needed |= permissions
    return needed


def test_permission_derivation_reads_the_client_methods():
    from kubernetes import client as k8s_client

    apps, core = k8s_client.AppsV1Api, k8s_client.CoreV1Api
    admission = k8s_client.AdmissionregistrationV1Api
    assert _permission_of(apps, "patch_namespaced_deployment_scale") == ("apps", "deployments/scale", "patch")
    assert _permission_of(apps, "replace_namespaced_deployment_scale") == ("apps", "deployments/scale", "update")
    assert _permission_of(apps, "read_namespaced_deployment") == ("apps", "deployments", "get")
    assert _permission_of(apps, "list_deployment_for_all_namespaces") == ("apps", "deployments", "list")
    assert _permission_of(apps, "list_namespaced_deployment", watched=True) == ("apps", "deployments", "watch")
    assert _permission_of(core, "list_namespace") == ("", "namespaces", "list")
    assert _permission_of(core, "read_namespace") == ("", "namespaces", "get")
    assert _permission_of(core, "delete_collection_namespaced_pod") == ("", "pods", "deletecollection")
    assert _permission_of(admission, "replace_mutating_webhook_configuration") == (
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        "update",
    )


def test_cluster_role_grants_what_the_kubernetes_door_calls(production):
    # given: what the door calls, derived from its source
    needed = _door_permissions()
    granted = {rule[:3] for rule in role_rules(production)}
    # then: every call is allowed by the role (a missing verb is a 403 in production) ...
    assert needed - granted == set()
    # ... and nothing is granted that the door does not call
    assert granted - needed == GRANTED_BEYOND_THE_DOOR
    # The door's declared requirements (apps/control/rbac.py, which the onboarding bundle is built
    # from) agree with its calls ...
    from apps.control import k8s
    from apps.control.rbac import cluster_role_rules

    assert {permission.key for permission in k8s.RBAC_REQUIREMENTS} == needed
    # ... and deploy's ClusterRole is exactly the role built from them for its one configuration name.
    built = {"kind": "ClusterRole", "metadata": {"name": "kubedoor"}}
    built["rules"] = cluster_role_rules(webhook_names=["kubedoor-production"])
    assert role_rules([built]) == role_rules(production)


def _selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions) evaluated against labels."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        matched = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not matched:
            return False
    return True


def test_webhook_registration_built_from_the_deployed_settings_reaches_the_deployed_webhook(production):
    from apps.webhook.registration import WebhookEndpoint, configuration_build

    # given: the registration KubeDoor builds for the cluster "production" from the production ConfigMap
    config = generated(production, "ConfigMap", "kubedoor-config")["data"]
    assert config["KUBEDOOR_WEBHOOK_URL"] == ""
    assert config["KUBEDOOR_WEBHOOK_CA_BUNDLE"] == ""
    registration = configuration_build(
        cluster_name="production",
        excluded_namespaces=["kube-system", "kubedoor"],
        failure_policy="Ignore",
        timeout_seconds=5,
        endpoint=WebhookEndpoint(
            service=config["KUBEDOOR_WEBHOOK_SERVICE"], ca_inject_from=config["KUBEDOOR_WEBHOOK_CA_INJECT_FROM"]
        ),
    )
    kubernetes_validate.validate(registration, K8S_VERSION, strict=True)
    (webhook,) = registration["webhooks"]
    # then: its name is one the ClusterRole lets KubeDoor read, update and delete
    (named_rule,) = [
        r
        for r in one(production, "ClusterRole", "kubedoor")["rules"]
        if "resourceNames" in r and "mutatingwebhookconfigurations" in r["resources"]
    ]
    assert registration["metadata"]["name"] in named_rule["resourceNames"]
    # ... the API server calls the webhook Service on its port, over TLS the serving certificate covers
    service = one(production, "Service", "kubedoor-webhook")
    client = webhook["clientConfig"]["service"]
    assert (client["namespace"], client["name"]) == (service["metadata"]["namespace"], service["metadata"]["name"])
    assert client["port"] == service["spec"]["ports"][0]["port"]
    assert client["path"] == "/mutate/production"
    serving = one(production, "Certificate", "kubedoor-webhook-tls")
    assert f"{client['name']}.{client['namespace']}.svc" in serving["spec"]["dnsNames"]
    # ... cert-manager injects the CA of that very Certificate
    inject = registration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    assert inject == f"{serving['metadata']['namespace']}/{serving['metadata']['name']}"
    # ... and KubeDoor's own namespace is never sent to it
    namespace = one(production, "Namespace", NAMESPACE)
    own_labels = {**namespace["metadata"]["labels"], "kubernetes.io/metadata.name": NAMESPACE}
    assert _selector_matches(webhook["namespaceSelector"], own_labels) is False
    assert _selector_matches(webhook["namespaceSelector"], {"kubernetes.io/metadata.name": "shop"}) is True
    # (by its label alone too, e.g. were it renamed)
    relabelled = {"kubernetes.io/metadata.name": "kubedoor-2", "kubedoor-ignore": "true"}
    assert _selector_matches(webhook["namespaceSelector"], relabelled) is False

"""The admin "Admission" page: registration state read from the cluster, mode switch with confirmation."""

from __future__ import annotations

import pytest
import trustme
from django.urls import reverse

from apps.audit.models import AuditEvent
from tests.servers.k8s_standin import standin_cluster

CONFIGS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"


@pytest.fixture
def prod(k8s_standin, db, tmp_path, settings):
    ca = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))
    settings.KUBEDOOR_WEBHOOK_CA_BUNDLE = str(ca)
    settings.KUBEDOOR_WEBHOOK_CA_INJECT_FROM = ""
    settings.KUBEDOOR_WEBHOOK_URL = ""
    return standin_cluster(k8s_standin, name="prod")


def _writes(standin):
    return [(r.method, r.path) for r in standin.requests if r.method != "GET"]


def test_admin_switches_mode_after_confirmation(client, admin_user, prod, k8s_standin):
    client.force_login(admin_user)
    url = reverse("admin:webhook_admission_mode", args=[prod.pk])
    # the page shows the mode and that nothing is registered
    page = client.get(url)
    assert page.status_code == 200
    assert '<p id="registration">Not registered.</p>' in page.content.decode()
    # choosing a mode only asks for confirmation: nothing sent, nothing saved
    confirm = client.post(url, {"mode": "enforce"})
    assert confirm.status_code == 200
    assert "Switch cluster prod to enforce?" in confirm.content.decode()
    assert _writes(k8s_standin) == []
    prod.refresh_from_db()
    assert prod.admission_mode == "off"
    # confirming registers and saves
    done = client.post(url, {"mode": "enforce", "confirm": "yes"}, follow=True)
    assert "Admission of prod is now enforce." in done.content.decode()
    assert _writes(k8s_standin) == [("POST", CONFIGS)]
    prod.refresh_from_db()
    assert prod.admission_mode == "enforce"
    event = AuditEvent.objects.get(action="admission.mode")
    assert (event.source, event.actor_name, event.result) == ("admin", "admin1", "ok")
    # and the page now shows the registration read from the cluster
    assert "/mutate/prod" in client.get(url).content.decode()


def test_admin_shows_kubernetes_refusal(client, admin_user, prod, k8s_standin):
    k8s_standin.respond("POST", CONFIGS, status=403)
    client.force_login(admin_user)
    url = reverse("admin:webhook_admission_mode", args=[prod.pk])
    page = client.post(url, {"mode": "audit", "confirm": "yes"}, follow=True).content.decode()
    assert "Kubernetes refused the admission registration kubedoor-prod of cluster prod" in page
    prod.refresh_from_db()
    assert prod.admission_mode == "off"


def test_operator_sees_the_page_but_cannot_switch(client, operator, prod, k8s_standin):
    client.force_login(operator)
    url = reverse("admin:webhook_admission_mode", args=[prod.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert 'name="mode"' not in page.content.decode()
    assert client.post(url, {"mode": "enforce", "confirm": "yes"}).status_code == 403
    assert _writes(k8s_standin) == []
    assert client.get(reverse("admin:webhook_admission_changelist")).status_code == 200


def test_user_without_role_sees_nothing(client, nobody, prod):
    client.force_login(nobody)
    assert client.get(reverse("admin:webhook_admission_mode", args=[prod.pk])).status_code == 403
    assert client.get(reverse("admin:webhook_admission_changelist")).status_code == 403


def test_admin_switches_the_engine_after_confirmation(client, admin_user, prod, k8s_standin, operator):
    # given: admission enforced by the webhook on a 1.34 cluster
    k8s_standin.git_version = "v1.34.1"
    k8s_standin.add_namespace("shop")
    client.force_login(admin_user)
    url = reverse("admin:webhook_admission_mode", args=[prod.pk])
    client.post(url, {"mode": "enforce", "confirm": "yes"})
    assert list(k8s_standin.webhook_configurations) == ["kubedoor-prod"]
    page = client.get(url).content.decode()
    assert '<td id="admission-engine">webhook (KubeDoor&#x27;s admission endpoint)</td>' in page

    # choosing an engine only asks for confirmation
    confirm = client.post(url, {"engine": "policy"})
    assert "Switch the admission engine of cluster prod to policy" in confirm.content.decode()
    prod.refresh_from_db()
    assert prod.admission_engine == "webhook"

    # confirming removes the webhook configuration and creates the policies
    done = client.post(url, {"engine": "policy", "confirm": "yes"}, follow=True).content.decode()
    assert "The admission engine of prod is now policy (MutatingAdmissionPolicy, Kubernetes 1.34+)." in done
    assert k8s_standin.webhook_configurations == {}
    assert sorted(kind for kind, _ in k8s_standin.admission_policies) == [
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    assert "<li>MutatingAdmissionPolicy kubedoor-prod</li>" in client.get(url).content.decode()
    event = AuditEvent.objects.get(action="admission.engine")
    assert (event.source, event.before, event.after) == (
        "admin",
        {"admission_engine": "webhook"},
        {"admission_engine": "policy"},
    )

    # an operator may look but not switch
    client.force_login(operator)
    assert client.post(url, {"engine": "webhook", "confirm": "yes"}).status_code == 403


@pytest.mark.parametrize(
    ("field", "message"),
    [("mode", "Choose one of: off, audit, enforce."), ("engine", "Choose one of: webhook, policy.")],
)
def test_an_unknown_mode_or_engine_is_refused_with_the_choices(client, admin_user, prod, k8s_standin, field, message):
    client.force_login(admin_user)
    url = reverse("admin:webhook_admission_mode", args=[prod.pk])
    page = client.post(url, {field: "everything", "confirm": "yes"}, follow=True).content.decode()
    assert message in page
    assert _writes(k8s_standin) == []
    prod.refresh_from_db()
    assert (prod.admission_mode, prod.admission_engine) == ("off", "webhook")
    assert not AuditEvent.objects.filter(action__startswith="admission.").exists()

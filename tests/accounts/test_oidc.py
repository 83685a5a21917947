"""OIDC single sign-on against a real provider (oidc-provider-mock, its own process on loopback).

The test client drives the authorization-code flow over HTTP: KubeDoor redirects to the provider,
the provider's login form answers with a code, KubeDoor's callback exchanges it at the provider's
token endpoint, checks the signed ID token against its JWKS and reads the userinfo.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from rest_framework.test import APIClient

from apps.audit.models import AuditEvent
from kubedoor_site.oidc_config import group_roles_parse, oidc_settings

pytestmark = pytest.mark.django_db
BACKENDS = ["django.contrib.auth.backends.ModelBackend"]


@pytest.fixture
def oidc_on(oidc_provider):
    with override_settings(**oidc_settings(oidc_provider.env(), backends=BACKENDS)):
        yield oidc_provider


def sso_login(client: Client, provider, sub: str, *, next_url: str = "/admin/"):
    """Click "Log in with SSO", choose ``sub`` at the provider, follow the redirect back; KubeDoor's answer."""
    start = client.get(f"/oidc/authenticate/?next={next_url}")
    assert start.status_code == 302
    query = parse_qs(urlsplit(start["Location"]).query)
    assert query["redirect_uri"] == ["http://testserver/oidc/callback/"]
    assert query["scope"] == ["openid email profile"]
    back = provider.authorize(start["Location"], sub)
    assert back.status_code == 302
    callback = urlsplit(back.headers["location"])
    assert (callback.netloc, callback.path) == ("testserver", "/oidc/callback/")
    return client.get(f"{callback.path}?{callback.query}")


def groups_of(username: str) -> set[str]:
    return set(get_user_model().objects.get(username=username).groups.values_list("name", flat=True))


def test_sso_login_maps_groups_to_roles_audits_and_issues_an_api_token(oidc_on):
    # given: the provider knows ann, in team-a (→ operator) and in a group with no role
    oidc_on.user_set(
        "sub-ann-1",
        {"preferred_username": "ann", "email": "ann@example.test", "given_name": "Ann", "groups": ["team-a", "dev"]},
    )
    client = Client()
    # when
    response = sso_login(client, oidc_on, "sub-ann-1")
    # then: ann is logged in, as an operator, her groups mirrored
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    user = get_user_model().objects.get(username="ann")
    assert (user.email, user.first_name, user.is_staff, user.is_superuser) == ("ann@example.test", "Ann", True, False)
    assert user.has_usable_password() is False
    assert groups_of("ann") == {"operator", "team-a", "dev"}
    assert client.get("/admin/").status_code == 200
    assert user.has_perm("control.scale_microservice") is True
    assert user.has_perm("control.change_cluster") is False
    # ... the login is on record with its source address
    (event,) = AuditEvent.objects.filter(action="login.succeeded")
    assert (event.actor_name, event.actor, event.name, event.remote_addr) == ("ann", user, "ann", "127.0.0.1")
    assert event.after == {"backend": "oidc", "roles": ["operator"], "groups": ["team-a", "dev"]}
    # ... and she gets an API token without a password, which the API accepts
    issued = client.post("/preferences/api-token/")
    assert issued.status_code == 200
    token = issued.json()["token"]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get("/api/v1/clusters/").status_code == 200
    assert client.post("/preferences/api-token/").json() == {"token": token, "created": False}


def test_roles_follow_the_groups_claim_on_every_login(oidc_on):
    # given: ann logged in once as an admin
    oidc_on.user_set("sub-ann-2", {"preferred_username": "ann2", "groups": ["platform", "dev"]})
    sso_login(Client(), oidc_on, "sub-ann-2")
    assert groups_of("ann2") == {"admin", "platform", "dev"}
    # when: the directory moves her to the viewers and out of dev
    oidc_on.user_set("sub-ann-2", {"preferred_username": "ann2", "groups": ["team-view"]})
    response = sso_login(Client(), oidc_on, "sub-ann-2")
    # then
    assert response["Location"] == "/admin/"
    assert groups_of("ann2") == {"viewer", "team-view"}
    assert AuditEvent.objects.filter(action="login.succeeded", actor_name="ann2").count() == 2


def test_a_user_in_no_mapped_group_is_refused_and_not_created(oidc_on):
    oidc_on.user_set("sub-eve", {"preferred_username": "eve", "groups": ["dev", "team-b"]})
    client = Client()
    response = sso_login(client, oidc_on, "sub-eve")
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?sso=failed"
    assert not get_user_model().objects.filter(username="eve").exists()
    assert not AuditEvent.objects.filter(action="login.succeeded").exists()
    page = client.get("/admin/login/?sso=failed").content.decode()
    assert "Single sign-on did not log you in" in page


def test_an_sso_login_never_takes_over_a_local_account(oidc_on):
    local = get_user_model().objects.create_user("root2", password="a-local-password-123")
    oidc_on.user_set("sub-root", {"preferred_username": "root2", "groups": ["platform"]})
    response = sso_login(Client(), oidc_on, "sub-root")
    assert response["Location"] == "/admin/login/?sso=failed"
    local.refresh_from_db()
    assert local.groups.count() == 0
    assert local.is_staff is False


def test_login_page_shows_the_sso_button_only_when_configured(oidc_provider, client):
    with override_settings(**oidc_settings({}, backends=BACKENDS)):
        page = client.get("/admin/login/").content.decode()
        assert 'id="kd-sso-login"' not in page
        assert client.get("/oidc/authenticate/").status_code == 404
    with override_settings(**oidc_settings(oidc_provider.env(), backends=BACKENDS)):
        page = client.get("/admin/login/?next=/admin/control/").content.decode()
        assert '<a class="button" id="kd-sso-login" href="/oidc/authenticate/?next=/admin/control/">' in page
        assert "Log in with SSO" in page
    with override_settings(**oidc_settings(oidc_provider.env(), backends=BACKENDS)):
        client.cookies["django_language"] = "zh-hans"
        page = client.get("/admin/login/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
        assert "使用单点登录" in page


def test_group_roles_setting_is_parsed_and_a_bad_role_is_refused():
    assert group_roles_parse("team-a:operator, ops:x:admin ,") == {"team-a": "operator", "ops:x": "admin"}
    with pytest.raises(ValueError, match="'team-a:root' is not group:role"):
        group_roles_parse("team-a:root")
    with pytest.raises(ValueError, match="OIDC_OP_JWKS_ENDPOINT must be set"):
        oidc_settings({"OIDC_RP_CLIENT_ID": "x", **dict.fromkeys(("OIDC_RP_CLIENT_SECRET",), "v")}, backends=BACKENDS)

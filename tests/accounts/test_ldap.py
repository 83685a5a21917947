"""LDAP login against a real slapd: role mapping by group DN, admin login and API tokens."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from rest_framework.test import APIClient

from kubedoor_site.ldap_config import ldap_settings

pytestmark = pytest.mark.django_db


@pytest.fixture
def ldap_on(slapd):
    with override_settings(**ldap_settings(slapd.env(), base_backends=["django.contrib.auth.backends.ModelBackend"])):
        yield slapd


def roles_of(username: str) -> set[str]:
    return set(get_user_model().objects.get(username=username).groups.values_list("name", flat=True))


@pytest.mark.parametrize(
    ("username", "password", "groups"),
    [
        ("alice", "alice-pass-1", {"viewer"}),
        ("bob", "bob-pass-22", {"operator", "developers", "kd-operators"}),
        ("carol", "carol-pass-333", {"admin", "kd-admins"}),
    ],
)
def test_ldap_user_logs_into_admin_with_the_mapped_role(ldap_on, username, password, groups):
    # when
    client = Client()
    response = client.post("/admin/login/?next=/admin/", {"username": username, "password": password})
    # then
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    user = get_user_model().objects.get(username=username)
    assert user.is_staff is True
    assert user.is_superuser is False
    assert user.email == f"{username}@kubedoor.test"
    assert roles_of(username) >= groups - {"kd-viewers"}
    assert roles_of(username) & {"viewer", "operator", "admin"} == groups & {"viewer", "operator", "admin"}
    assert client.get("/admin/control/microservice/").status_code == 200


def test_operator_from_ldap_holds_operator_permissions_only(ldap_on):
    Client().post("/admin/login/", {"username": "bob", "password": "bob-pass-22"})
    bob = get_user_model().objects.get(username="bob")
    assert bob.has_perm("control.scale_microservice")
    assert bob.has_perm("control.change_microservice")
    assert not bob.has_perm("control.change_microservice_requests")
    assert not bob.has_perm("control.change_cluster")


def test_ldap_user_gets_an_api_token_and_uses_it(ldap_on, cluster):
    # when
    response = APIClient().post("/api/v1/auth/token/", {"username": "alice", "password": "alice-pass-1"}, format="json")
    # then
    assert response.status_code == 200
    token = response.json()["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    listing = client.get("/api/v1/clusters/")
    assert listing.status_code == 200
    assert [row["name"] for row in listing.json()["results"]] == ["prod"]
    assert client.patch("/api/v1/clusters/prod/", {"lookback_days": 2}, format="json").status_code == 403


def test_wrong_password_is_refused(ldap_on):
    client = Client()
    response = client.post("/admin/login/", {"username": "carol", "password": "not-her-password"})
    assert response.status_code == 200
    assert "Please enter the correct username and password" in response.content.decode()
    assert not get_user_model().objects.filter(username="carol").exists()
    token = APIClient().post("/api/v1/auth/token/", {"username": "carol", "password": "nope"}, format="json")
    assert token.status_code == 400


def test_user_in_no_role_group_is_refused(ldap_on):
    response = Client().post("/admin/login/", {"username": "dave", "password": "dave-pass-4444"})
    assert response.status_code == 200
    assert "Please enter the correct username and password" in response.content.decode()
    token = APIClient().post("/api/v1/auth/token/", {"username": "dave", "password": "dave-pass-4444"}, format="json")
    assert token.status_code == 400
    assert not get_user_model().objects.filter(username="dave", is_staff=True).exists()


def test_role_follows_ldap_membership_on_each_login(ldap_on, slapd):
    # given alice logged in once as a viewer, and someone gave her the operator role locally
    Client().post("/admin/login/", {"username": "alice", "password": "alice-pass-1"})
    from django.contrib.auth.models import Group

    alice = get_user_model().objects.get(username="alice")
    alice.groups.add(Group.objects.get(name="operator"))
    # when she logs in again
    Client().post("/admin/login/", {"username": "alice", "password": "alice-pass-1"})
    # then LDAP is the source of truth for roles
    assert roles_of("alice") & {"viewer", "operator", "admin"} == {"viewer"}


def test_ldap_is_off_without_a_server_uri():
    settings = ldap_settings({}, base_backends=["django.contrib.auth.backends.ModelBackend"])
    assert settings == {
        "AUTH_LDAP_SERVER_URI": "",
        "AUTHENTICATION_BACKENDS": ["django.contrib.auth.backends.ModelBackend"],
    }


def test_ldap_settings_refuse_a_configuration_where_nobody_could_log_in(slapd):
    env = {k: v for k, v in slapd.env().items() if not k.endswith("_GROUP_DN")}
    with pytest.raises(ValueError, match="nobody could log in"):
        ldap_settings(env, base_backends=[])

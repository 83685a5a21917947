"""Logins on record (admin form, API token, LDAP) and the lockout after repeated failures (django-axes)."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.test import Client, override_settings
from rest_framework.test import APIClient

from apps.audit.models import AuditEvent
from apps.audit.services import login_record
from kubedoor_site.ldap_config import ldap_settings
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-test-password"  # tests.factories.UserFactory's
WRONG = "not-the-password-42"
LOCKED = (
    "Too many failed logins: this account or address is locked for 15 minutes. "
    "Try again later, or ask an administrator to unlock it."
)


def logins() -> list[tuple]:
    return list(
        AuditEvent.objects.filter(action__startswith="login.")
        .order_by("id")
        .values_list("action", "actor_name", "source", "result", "remote_addr", "after")
    )


def no_password_anywhere(*passwords: str) -> None:
    for event in AuditEvent.objects.all():
        values = (event.before, event.after, event.message, event.name, event.actor_name)
        text = " ".join(str(value) for value in values)
        for password in passwords:
            assert password not in text


def admin_login(client: Client, username: str, password: str, **extra):
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": password}, **extra)


def token(username: str, password: str, **extra):
    return APIClient().post("/api/v1/auth/token/", {"username": username, "password": password}, format="json", **extra)


def test_admin_logins_are_audited_with_the_address_and_never_the_password(operator):
    # when: one failure, then a success
    assert admin_login(Client(), "operator1", WRONG).status_code == 200
    assert admin_login(Client(), "operator1", PASSWORD).status_code == 302
    # then
    assert logins() == [
        (
            "login.failed",
            "operator1",
            "admin",
            "denied",
            "127.0.0.1",
            {"backend": "local", "reason": "wrong user name or password"},
        ),
        ("login.succeeded", "operator1", "admin", "ok", "127.0.0.1", {"backend": "local"}),
    ]
    assert AuditEvent.objects.get(action="login.succeeded").actor == operator
    assert AuditEvent.objects.get(action="login.failed").actor is None
    no_password_anywhere(WRONG, PASSWORD)


def test_api_token_logins_are_audited(viewer):
    assert token("viewer1", WRONG).status_code == 400
    assert token("nobody-here", WRONG).status_code == 400
    response = token("viewer1", PASSWORD)
    assert response.status_code == 200
    assert len(response.json()["token"]) == 40
    reason = {"backend": "local", "reason": "wrong user name or password"}
    assert logins() == [
        ("login.failed", "viewer1", "api", "denied", "127.0.0.1", reason),
        ("login.failed", "nobody-here", "api", "denied", "127.0.0.1", reason),
        ("login.succeeded", "viewer1", "api", "ok", "127.0.0.1", {"backend": "local"}),
    ]
    no_password_anywhere(WRONG, PASSWORD)


def test_the_address_behind_a_proxy_is_the_one_the_proxy_appended(viewer, settings):
    # without the proxy setting the header is the client's word: ignored
    admin_login(Client(), "viewer1", WRONG, HTTP_X_FORWARDED_FOR="198.51.100.66")
    settings.KUBEDOOR_BEHIND_PROXY = True
    admin_login(Client(), "viewer1", WRONG, HTTP_X_FORWARDED_FOR="198.51.100.66, 203.0.113.9", REMOTE_ADDR="10.0.0.2")
    token("viewer1", PASSWORD, HTTP_X_FORWARDED_FOR="2001:db8::7", REMOTE_ADDR="10.0.0.2")
    assert [row[4] for row in logins()] == ["127.0.0.1", "203.0.113.9", "2001:db8::7"]
    # and axes counts the same address
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"127.0.0.1", "203.0.113.9"}


def test_an_sso_flow_records_its_logins_through_the_hook(viewer, rf):
    request = rf.get("/oidc/callback/", REMOTE_ADDR="192.0.2.10")
    login_record(request=request, backend="oidc", username="", user=viewer)
    login_record(request=request, backend="oidc", username="mallory", reason="state mismatch")
    assert logins() == [
        ("login.succeeded", "viewer1", "admin", "ok", "192.0.2.10", {"backend": "oidc"}),
        ("login.failed", "mallory", "admin", "denied", "192.0.2.10", {"backend": "oidc", "reason": "state mismatch"}),
    ]


@pytest.fixture
def ldap_on(slapd):
    auth = ldap_settings(slapd.env(), base_backends=["django.contrib.auth.backends.ModelBackend"])
    auth["AUTHENTICATION_BACKENDS"] = ["axes.backends.AxesStandaloneBackend", *auth["AUTHENTICATION_BACKENDS"]]
    with override_settings(**auth):
        yield slapd


def test_ldap_logins_failed_and_succeeded_are_audited(ldap_on):
    assert admin_login(Client(), "carol", "not-her-password").status_code == 200
    assert admin_login(Client(), "carol", "carol-pass-333").status_code == 302
    assert token("alice", "alice-pass-1").status_code == 200
    assert logins() == [
        (
            "login.failed",
            "carol",
            "admin",
            "denied",
            "127.0.0.1",
            {"backend": "ldap,local", "reason": "wrong user name or password"},
        ),
        ("login.succeeded", "carol", "admin", "ok", "127.0.0.1", {"backend": "ldap"}),
        ("login.succeeded", "alice", "api", "ok", "127.0.0.1", {"backend": "ldap"}),
    ]
    no_password_anywhere("not-her-password", "carol-pass-333", "alice-pass-1")


@override_settings(AXES_FAILURE_LIMIT=3)
def test_an_account_is_locked_after_n_failures_on_the_page_and_the_token_endpoint(operator, viewer):
    # given: three failures for operator1, from different addresses (the account is what locks);
    # the third one locks it and is answered so
    for address in ("10.0.0.1", "10.0.0.2"):
        assert admin_login(Client(), "operator1", WRONG, REMOTE_ADDR=address).status_code == 200
    assert admin_login(Client(), "operator1", WRONG, REMOTE_ADDR="10.0.0.3").status_code == 429
    # when: the right password, from a fourth address
    page = admin_login(Client(), "operator1", PASSWORD, REMOTE_ADDR="10.0.0.4")
    api = token("operator1", PASSWORD, REMOTE_ADDR="10.0.0.5")
    chinese = admin_login(Client(), "operator1", PASSWORD, REMOTE_ADDR="10.0.0.6", HTTP_ACCEPT_LANGUAGE="zh-hans")
    # then
    assert page.status_code == 429
    assert LOCKED in page.content.decode()
    assert "_auth_user_id" not in page.wsgi_request.session
    assert (api.status_code, api.json()) == (429, {"status": 429, "code": "locked_out", "detail": LOCKED})
    assert chinese.status_code == 429
    assert "登录失败次数过多：此账号或地址已被锁定 15 分钟。请稍后再试，或请管理员解锁。" in chinese.content.decode()
    assert [row[0] for row in logins()] == ["login.failed"] * 6
    assert [row[5]["reason"] for row in logins()] == ["wrong user name or password"] * 2 + ["locked out"] * 4
    # another account from those addresses is not locked
    assert admin_login(Client(), "viewer1", PASSWORD, REMOTE_ADDR="10.0.0.1").status_code == 302


@override_settings(AXES_FAILURE_LIMIT=3)
def test_an_address_is_locked_after_n_failures_across_accounts(viewer):
    for username in ("root", "admin", "test"):
        admin_login(Client(), username, WRONG, REMOTE_ADDR="198.51.100.23")
    assert admin_login(Client(), "viewer1", PASSWORD, REMOTE_ADDR="198.51.100.23").status_code == 429
    assert admin_login(Client(), "viewer1", PASSWORD, REMOTE_ADDR="198.51.100.24").status_code == 302


@override_settings(AXES_FAILURE_LIMIT=2)
def test_an_admin_unlocks_a_locked_account_and_the_unlock_is_audited(operator, admin_user):
    # given: operator1 is locked
    for _ in range(2):
        admin_login(Client(), "operator1", WRONG)
    assert admin_login(Client(), "operator1", PASSWORD, REMOTE_ADDR="10.9.9.9").status_code == 429
    attempts = list(AccessAttempt.objects.filter(username="operator1").order_by("ip_address"))
    assert [(a.ip_address, a.failures_since_start) for a in attempts] == [("10.9.9.9", 1), ("127.0.0.1", 2)]
    # when: an admin (the role, not a superuser) unlocks it from the admin
    admin = Client()
    admin.force_login(admin_user)
    assert admin.get("/admin/axes/accessattempt/").status_code == 200
    response = admin.post(
        "/admin/axes/accessattempt/", {"action": "unlock", "_selected_action": [a.pk for a in attempts]}, follow=True
    )
    # then
    assert "2 logins unlocked." in response.content.decode()
    assert not AccessAttempt.objects.filter(username="operator1").exists()
    assert admin_login(Client(), "operator1", PASSWORD).status_code == 302
    unlocks = AuditEvent.objects.filter(action="login.unlock")
    assert sorted((u.actor, u.source, u.name, u.after["ip_address"]) for u in unlocks) == [
        (admin_user, "admin", "operator1", "10.9.9.9"),
        (admin_user, "admin", "operator1", "127.0.0.1"),
    ]
    assert {frozenset(u.after) for u in unlocks} == {frozenset({"username", "ip_address"})}


def test_a_viewer_cannot_unlock(viewer):
    UserFactory(username="victim")
    client = Client()
    client.force_login(viewer)
    assert client.get("/admin/axes/accessattempt/").status_code == 403

"""The kubedoor_admin command: the first admin, with no default password anywhere."""

import re
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import RequestFactory
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_admin_command_generates_and_prints_a_password_once(monkeypatch):
    monkeypatch.delenv("KUBEDOOR_ADMIN_PASSWORD", raising=False)
    # when
    output = run("kubedoor_admin", "--username", "root")
    # then
    password = re.search(r"^Password: (\S+)$", output, re.M).group(1)
    assert len(password) >= 20
    user = get_user_model().objects.get(username="root")
    assert user.is_superuser
    assert user.is_staff
    assert list(user.groups.values_list("name", flat=True)) == ["admin"]
    assert authenticate(RequestFactory().post("/admin/login/"), username="root", password=password) == user


def test_admin_command_takes_the_password_from_the_environment_and_prints_a_token(monkeypatch):
    monkeypatch.setenv("KUBEDOOR_ADMIN_PASSWORD", "correct-horse-battery-staple")
    output = run("kubedoor_admin", "--username", "ops", "--token")
    assert "Password:" not in output
    token = re.search(r"^API token: (\w{40})$", output, re.M).group(1)
    assert Token.objects.get(key=token).user.username == "ops"
    request = RequestFactory().post("/admin/login/")  # django-axes needs the request a login comes with
    assert authenticate(request, username="ops", password="correct-horse-battery-staple") is not None
    # running it again updates the same user and keeps the token
    output = run("kubedoor_admin", "--username", "ops", "--token")
    assert f"API token: {token}" in output
    assert get_user_model().objects.filter(username="ops").count() == 1


def test_admin_command_refuses_a_weak_password(monkeypatch):
    monkeypatch.setenv("KUBEDOOR_ADMIN_PASSWORD", "admin")
    with pytest.raises(CommandError, match="too weak"):
        run("kubedoor_admin", "--username", "weak")
    assert not get_user_model().objects.filter(username="weak").exists()


def test_if_none_creates_no_second_admin(monkeypatch):
    monkeypatch.delenv("KUBEDOOR_ADMIN_PASSWORD", raising=False)
    run("kubedoor_admin", "--username", "first")
    output = run("kubedoor_admin", "--username", "second", "--if-none")
    assert "An admin exists already" in output
    assert not get_user_model().objects.filter(username="second").exists()

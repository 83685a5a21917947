"""The UI language: the browser's by default, or the one the user chose (kept per user)."""

import pytest
from django.test import Client

from apps.accounts.models import UserPreference

pytestmark = pytest.mark.django_db


def test_home_page_is_the_control_table(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/control/microservice/"


def test_browser_language_is_used_without_a_preference(viewer):
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    client.force_login(viewer)
    assert '<html lang="zh-hans"' in client.get("/admin/").content.decode()
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(viewer)
    assert '<html lang="en"' in client.get("/admin/").content.decode()


def test_chosen_language_wins_over_the_browser_and_follows_the_user(viewer):
    # given an English browser
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(viewer)
    # when the user picks Simplified Chinese
    response = client.post("/preferences/language/", {"language": "zh-hans", "next": "/admin/control/microservice/"})
    # then
    assert response.status_code == 302
    assert response["Location"] == "/admin/control/microservice/"
    assert UserPreference.objects.get(user=viewer).language == "zh-hans"
    assert '<html lang="zh-hans"' in client.get("/admin/").content.decode()
    # and in a new session on another English browser
    other = Client(HTTP_ACCEPT_LANGUAGE="en")
    other.force_login(viewer)
    assert '<html lang="zh-hans"' in other.get("/admin/").content.decode()
    # back to the browser's language
    client.post("/preferences/language/", {"language": ""})
    assert '<html lang="en"' in client.get("/admin/").content.decode()


def test_unknown_language_and_foreign_redirects_are_refused(viewer):
    client = Client()
    client.force_login(viewer)
    response = client.post("/preferences/language/", {"language": "xx", "next": "https://evil.example/"})
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert not UserPreference.objects.filter(user=viewer).exists()


def test_language_change_needs_login_post_and_csrf(viewer):
    assert Client().post("/preferences/language/", {"language": "en"}).status_code == 302  # to login
    client = Client(enforce_csrf_checks=True)
    client.force_login(viewer)
    assert client.get("/preferences/language/").status_code == 405
    assert client.post("/preferences/language/", {"language": "en"}).status_code == 403
    assert not UserPreference.objects.exists()

"""Notification channels in the admin: the target is a secret, edits are audited, deliveries are visible."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.audit.models import AuditEvent, NotificationChannel, NotificationDelivery
from apps.audit.services import Actor, audit_event_record

pytestmark = pytest.mark.django_db

CHANNELS = "/admin/audit/notificationchannel/"
SECRET = "https://chat.example/hook?key=very-secret-key-123"


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def channel_form(**overrides) -> dict:
    data = {
        "name": "ops-room",
        "kind": "wecom",
        "target": SECRET,
        "mention": "zhangsan",
        "language": "en",
        "actions": '["microservice.*", "operation.run"]',
        "results": "[]",
        "enabled": "on",
    }
    data.update(overrides)
    return data


def test_admin_adds_a_channel_and_the_secret_is_audited_only_as_set(admin_user):
    response = logged_in(admin_user).post(f"{CHANNELS}add/", channel_form())

    assert response.status_code == 302
    channel = NotificationChannel.objects.get()
    assert (channel.target, channel.actions, channel.results) == (SECRET, ["microservice.*", "operation.run"], [])
    event = AuditEvent.objects.get()
    assert (event.action, event.name, event.actor_name, event.source) == (
        "notification_channel.create",
        "ops-room",
        "admin1",
        "admin",
    )
    assert event.after["target"] == "<set>"
    assert "very-secret-key-123" not in str(event.after)


def test_the_target_is_never_rendered_back_and_empty_keeps_it(admin_user):
    channel = NotificationChannel.objects.create(
        name="ops", kind="slack", target=SECRET, actions=["microservice.*", "operation.run"]
    )
    client = logged_in(admin_user)
    url = f"{CHANNELS}{channel.pk}/change/"

    assert "very-secret-key-123" not in client.get(url).content.decode()
    response = client.post(url, channel_form(name="ops", kind="slack", target="", mention="U1"))

    assert response.status_code == 302
    channel.refresh_from_db()
    assert (channel.target, channel.mention) == (SECRET, "U1")
    event = AuditEvent.objects.get()
    assert (event.action, event.before, event.after) == (
        "notification_channel.update",
        {"mention": ""},
        {"mention": "U1"},
    )


def test_changing_the_target_is_audited_without_the_value(admin_user):
    channel = NotificationChannel.objects.create(
        name="ops", kind="slack", target=SECRET, mention="zhangsan", actions=["microservice.*", "operation.run"]
    )

    logged_in(admin_user).post(
        f"{CHANNELS}{channel.pk}/change/", channel_form(name="ops", kind="slack", target="https://new.example/x")
    )

    event = AuditEvent.objects.get()
    assert (event.before, event.after) == ({"target": "<set>"}, {"target": "<changed>"})


def test_viewers_see_channels_without_the_target_and_cannot_change_them(viewer, operator):
    channel = NotificationChannel.objects.create(name="ops", kind="slack", target=SECRET, actions=["*"])

    page = logged_in(viewer).get(f"{CHANNELS}{channel.pk}/change/")
    listing = logged_in(viewer).get(CHANNELS)

    assert page.status_code == 200
    assert listing.status_code == 200
    assert "very-secret-key-123" not in page.content.decode()
    assert "URL or token" not in page.content.decode()
    assert logged_in(viewer).post(f"{CHANNELS}add/", channel_form()).status_code == 403
    assert logged_in(operator).post(f"{CHANNELS}add/", channel_form()).status_code == 403
    assert NotificationChannel.objects.count() == 1
    assert not AuditEvent.objects.exists()


def test_deliveries_are_listed_read_only_with_their_errors(viewer):
    channel = NotificationChannel.objects.create(name="ops", kind="slack", target=SECRET, actions=["cluster.*"])
    event = audit_event_record(actor=Actor.system(), action="cluster.create", cluster="prod")
    NotificationDelivery.objects.filter(event=event).update(state="failed", attempts=4, last_error="HTTP 500: boom")

    page = logged_in(viewer).get("/admin/audit/notificationdelivery/").content.decode()

    assert "HTTP 500: boom" in page
    assert NotificationDelivery.objects.get().channel == channel
    assert logged_in(viewer).post("/admin/audit/notificationdelivery/add/", {}).status_code == 403


def test_the_add_form_starts_from_the_model_defaults(admin_user):
    import html as html_lib
    import re

    page = logged_in(admin_user).get(f"{CHANNELS}add/").content.decode()
    actions = re.search(r'<textarea name="actions"[^>]*>\s*(.*?)</textarea>', page, re.S).group(1)
    results = re.search(r'<textarea name="results"[^>]*>\s*(.*?)</textarea>', page, re.S).group(1)
    assert html_lib.unescape(actions).strip() == '["microservice.scale", "microservice.restart", "operation.run"]'
    assert html_lib.unescape(results).strip() == "[]"


def test_the_signing_secret_is_kept_when_empty_removed_with_a_dash_and_audited_without_its_value(admin_user):
    client = logged_in(admin_user)
    form = channel_form(kind="dingtalk", secret="SECtop-secret-1", keyword="KubeDoor", language="zh-hans")
    assert client.post(f"{CHANNELS}add/", form).status_code == 302
    channel = NotificationChannel.objects.get()
    assert (channel.secret, channel.keyword, channel.language) == ("SECtop-secret-1", "KubeDoor", "zh-hans")
    url = f"{CHANNELS}{channel.pk}/change/"
    assert b"SECtop-secret-1" not in client.get(url).content
    # empty keeps it
    assert client.post(url, channel_form(kind="dingtalk", target="", secret="", keyword="KubeDoor")).status_code == 302
    channel.refresh_from_db()
    assert (channel.secret, channel.language) == ("SECtop-secret-1", "en")
    # a new one is audited as changed, without either value
    assert client.post(url, channel_form(kind="dingtalk", target="", secret="SECtop-secret-2")).status_code == 302
    # "-" removes it
    assert client.post(url, channel_form(kind="dingtalk", target="", secret="-")).status_code == 302
    channel.refresh_from_db()
    assert channel.secret == ""
    created, language, changed, removed = AuditEvent.objects.order_by("id")
    assert created.after["secret"] == "<set>"
    assert (language.before, language.after) == ({"language": "zh-hans"}, {"language": "en"})
    assert (changed.before, changed.after) == (
        {"keyword": "KubeDoor", "secret": "<set>"},
        {"keyword": "", "secret": "<changed>"},
    )
    assert (removed.before, removed.after) == ({"secret": "<set>"}, {"secret": ""})
    assert "top-secret" not in str([event.before for event in (created, language, changed, removed)])
    assert "top-secret" not in str([event.after for event in (created, language, changed, removed)])

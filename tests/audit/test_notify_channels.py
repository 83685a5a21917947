"""Channels as people set them up: signed DingTalk and Feishu robots, keyword checks, Slack's own mrkdwn,
the channel's language and the cluster's time zone — captured by the real loopback receiver."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import time

import pytest
from django.core.exceptions import ValidationError

from apps.audit.models import NotificationChannel, NotificationDelivery
from apps.audit.services import AuditDraft, audit_events_record
from kubedoor_site.celery import app as celery_app
from tests.factories import ClusterFactory

pytestmark = pytest.mark.django_db

AT = datetime.datetime(2026, 3, 1, 2, 30, tzinfo=datetime.UTC)


@pytest.fixture
def eager_celery():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


def deliver(django_capture_on_commit_callbacks, **fields):
    draft = {
        "action": "microservice.scale",
        "actor_name": "operator1",
        "source": "api",
        "cluster": "prod",
        "namespace": "shop",
        "name": "cart",
        "before": {"replicas": 2},
        "after": {"replicas": 5},
        "at": AT,
        **fields,
    }
    with django_capture_on_commit_callbacks(execute=True):
        audit_events_record(drafts=[AuditDraft(**draft)])


def test_dingtalk_signature_matches_the_documented_algorithm(
    http_receiver, eager_celery, django_capture_on_commit_callbacks
):
    # given: a robot with signature verification ("加签") and a keyword check
    secret = "SEC0123456789abcdef+/=demo"
    NotificationChannel.objects.create(
        name="ding", kind="dingtalk", target=http_receiver.url + "/robot/send?access_token=t0k", secret=secret
    )
    before = int(time.time() * 1000)
    # when
    deliver(django_capture_on_commit_callbacks)
    # then: timestamp (ms) and sign in the query, next to the token
    [got] = http_receiver.received
    timestamp = got.query["timestamp"][0]
    assert before <= int(timestamp) <= int(time.time() * 1000)
    # DingTalk: sign = urlencode(base64(HmacSHA256(key=secret, data=timestamp + "\n" + secret)))
    expected = base64.b64encode(
        hmac.new(secret.encode("utf-8"), f"{timestamp}\n{secret}".encode(), digestmod=hashlib.sha256).digest()
    ).decode()
    assert got.query == {"access_token": ["t0k"], "timestamp": [timestamp], "sign": [expected]}  # decoded once
    assert NotificationDelivery.objects.get().state == "sent"


def test_feishu_signature_matches_the_documented_algorithm(
    http_receiver, eager_celery, django_capture_on_commit_callbacks
):
    secret = "fs-secret-Zz9"
    NotificationChannel.objects.create(name="lark", kind="feishu", target=http_receiver.url + "/hook", secret=secret)
    before = int(time.time())
    deliver(django_capture_on_commit_callbacks)
    [got] = http_receiver.received
    timestamp = got.body["timestamp"]
    assert before <= int(timestamp) <= int(time.time())
    # Feishu: sign = base64(HmacSHA256(key=timestamp + "\n" + secret, data=empty))
    expected = base64.b64encode(
        hmac.new(f"{timestamp}\n{secret}".encode(), b"", digestmod=hashlib.sha256).digest()
    ).decode()
    assert got.body["sign"] == expected
    assert got.body["msg_type"] == "interactive"
    assert got.query == {}


def test_a_missing_keyword_goes_into_the_title_and_a_present_one_changes_nothing(
    http_receiver, eager_celery, django_capture_on_commit_callbacks
):
    NotificationChannel.objects.create(
        name="ding", kind="dingtalk", target=http_receiver.url + "/a", keyword="变更通知", actions=["*"]
    )
    NotificationChannel.objects.create(
        name="lark", kind="feishu", target=http_receiver.url + "/b", keyword="cart", actions=["*"]
    )
    deliver(django_capture_on_commit_callbacks)
    ding, lark = sorted(http_receiver.received, key=lambda captured: captured.path)
    assert ding.body["markdown"]["title"] == "[变更通知] KubeDoor microservice.scale prod/shop/cart"
    assert ding.body["markdown"]["text"].startswith("**[变更通知] KubeDoor microservice.scale prod/shop/cart**\n")
    assert "timestamp" not in ding.query  # no secret, no signature
    assert lark.body["card"]["header"]["title"]["content"] == "KubeDoor microservice.scale prod/shop/cart"


def test_slack_gets_its_own_mrkdwn_escaped(http_receiver, eager_celery, django_capture_on_commit_callbacks):
    NotificationChannel.objects.create(name="slack", kind="slack", target=http_receiver.url + "/s", actions=["*"])
    deliver(django_capture_on_commit_callbacks, result="error", message="limit <4Gi> & request **high**")
    [got] = http_receiver.received
    assert got.body == {
        "text": "*KubeDoor microservice.scale prod/shop/cart*\n"
        "• result: ❌ error\n"
        "• by: operator1 (api)\n"
        "• at: 2026-03-01T02:30:00+00:00\n"
        '• before: `{"replicas":2}`\n'
        '• after: `{"replicas":5}`\n'
        "• message: limit &lt;4Gi&gt; &amp; request **high**"
    }


def test_a_chinese_channel_gets_chinese_words_and_times_in_the_clusters_time_zone(
    http_receiver, eager_celery, django_capture_on_commit_callbacks
):
    # given: the cluster runs on Shanghai time; one channel in Chinese, one in English
    ClusterFactory(name="prod", time_zone="Asia/Shanghai")
    NotificationChannel.objects.create(name="cn", kind="wecom", target=http_receiver.url + "/cn", language="zh-hans")
    NotificationChannel.objects.create(name="en", kind="wecom", target=http_receiver.url + "/en", language="en")
    # when
    deliver(django_capture_on_commit_callbacks, message="扩容")
    # then
    cn, en = sorted(http_receiver.received, key=lambda captured: captured.path)
    assert cn.body["markdown"]["content"] == (
        "**KubeDoor microservice.scale prod/shop/cart**\n"
        "- 结果: ✅ 成功\n"
        "- 操作人: operator1 (api)\n"
        "- 时间: 2026-03-01T10:30:00+08:00\n"
        '- 变更前: {"replicas":2}\n'
        '- 变更后: {"replicas":5}\n'
        "- 消息: 扩容"
    )
    assert en.body["markdown"]["content"] == (
        "**KubeDoor microservice.scale prod/shop/cart**\n"
        "- result: ✅ ok\n"
        "- by: operator1 (api)\n"
        "- at: 2026-03-01T10:30:00+08:00\n"
        '- before: {"replicas":2}\n'
        '- after: {"replicas":5}\n'
        "- message: 扩容"
    )


def test_an_event_without_a_cluster_is_told_in_the_projects_time_zone(
    http_receiver, eager_celery, django_capture_on_commit_callbacks, settings
):
    settings.TIME_ZONE = "America/New_York"
    NotificationChannel.objects.create(name="en", kind="wecom", target=http_receiver.url + "/en", actions=["*"])
    deliver(django_capture_on_commit_callbacks, action="channel.test", cluster="", namespace="", name="x")
    [got] = http_receiver.received
    assert "- at: 2026-02-28T21:30:00-05:00\n" in got.body["markdown"]["content"]


def test_only_dingtalk_and_feishu_channels_take_a_signing_secret():
    channel = NotificationChannel(name="ops", kind="slack", target="https://hooks.example/x", secret="abc")
    with pytest.raises(ValidationError) as error:
        channel.full_clean()
    assert error.value.message_dict == {
        "secret": ["Only DingTalk and Feishu robots sign their messages; ops is a Slack channel."]
    }

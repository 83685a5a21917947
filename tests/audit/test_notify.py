"""Notifications: exact chat payloads captured by a real loopback receiver, bounded retries, filters."""

from __future__ import annotations

import pytest
from django.test import override_settings

from apps.audit import notify
from apps.audit.models import AuditEvent, NotificationChannel, NotificationDelivery
from apps.audit.services import Actor, audit_event_record
from apps.control import operations
from tests.factories import MicroserviceFactory


def record_scale(actor_user, *, result: str = "ok", message: str = "") -> AuditEvent:
    return audit_event_record(
        actor=Actor(user=actor_user, name=actor_user.get_username(), source="api"),
        action="microservice.scale",
        cluster="prod",
        namespace="shop",
        name="cart",
        before={"replicas": 2},
        after={"replicas": 5},
        result=result,
        message=message,
    )


def markdown(event: AuditEvent) -> str:
    return (
        "**KubeDoor microservice.scale prod/shop/cart**\n"
        "- result: ✅ ok\n"
        "- by: operator1 (api)\n"
        f"- at: {event.at.isoformat(timespec='seconds')}\n"
        '- before: {"replicas":2}\n'
        '- after: {"replicas":5}'
    )


def deliver(django_capture_on_commit_callbacks, operator, **record_kwargs) -> AuditEvent:
    with django_capture_on_commit_callbacks(execute=True):
        return record_scale(operator, **record_kwargs)


def test_wecom_payload(http_receiver, operator, eager_celery, django_capture_on_commit_callbacks):
    NotificationChannel.objects.create(
        name="wecom", kind="wecom", target=http_receiver.url + "/wecom", mention="zhangsan, all"
    )

    event = deliver(django_capture_on_commit_callbacks, operator)

    [got] = http_receiver.received
    assert (got.method, got.path, got.headers["content-type"]) == ("POST", "/wecom", "application/json")
    assert got.body == {"msgtype": "markdown", "markdown": {"content": markdown(event) + "\n<@zhangsan> <@all>"}}
    delivery = NotificationDelivery.objects.get()
    assert (delivery.event, delivery.state, delivery.attempts, delivery.last_error) == (event, "sent", 1, "")


def test_dingtalk_payload(http_receiver, operator, eager_celery, django_capture_on_commit_callbacks):
    NotificationChannel.objects.create(
        name="ding", kind="dingtalk", target=http_receiver.url + "/robot/send", mention="13800000001,13800000002"
    )

    event = deliver(django_capture_on_commit_callbacks, operator)

    [got] = http_receiver.received
    assert got.body == {
        "msgtype": "markdown",
        "markdown": {
            "title": "KubeDoor microservice.scale prod/shop/cart",
            "text": markdown(event) + "\n@13800000001 @13800000002",
        },
        "at": {"atMobiles": ["13800000001", "13800000002"], "isAtAll": False},
    }


def test_feishu_payload_is_an_interactive_card(
    http_receiver, operator, eager_celery, django_capture_on_commit_callbacks
):
    NotificationChannel.objects.create(name="lark", kind="feishu", target=http_receiver.url + "/hook", mention="ou_1")

    event = deliver(django_capture_on_commit_callbacks, operator)

    [got] = http_receiver.received
    assert got.body == {
        "msg_type": "interactive",
        "card": {
            "config": {"wide_screen_mode": True},
            "header": {"title": {"tag": "plain_text", "content": "KubeDoor microservice.scale prod/shop/cart"}},
            "elements": [{"tag": "markdown", "content": markdown(event) + "\n<at id=ou_1></at>"}],
        },
    }


def test_slack_payload(http_receiver, operator, eager_celery, django_capture_on_commit_callbacks):
    NotificationChannel.objects.create(name="slack", kind="slack", target=http_receiver.url + "/s", mention="U123,all")

    event = deliver(django_capture_on_commit_callbacks, operator)

    [got] = http_receiver.received
    assert got.body == {
        "text": (
            "*KubeDoor microservice.scale prod/shop/cart*\n"
            "• result: ✅ ok\n"
            "• by: operator1 (api)\n"
            f"• at: {event.at.isoformat(timespec='seconds')}\n"
            '• before: `{"replicas":2}`\n'
            '• after: `{"replicas":5}`\n'
            "<@U123> <!channel>"
        )
    }


def test_generic_webhook_payload_carries_the_event(
    http_receiver, operator, eager_celery, django_capture_on_commit_callbacks
):
    NotificationChannel.objects.create(name="hook", kind="webhook", target=http_receiver.url + "/events")

    event = deliver(django_capture_on_commit_callbacks, operator, message="by hand")

    [got] = http_receiver.received
    assert got.body == {
        "event": {
            "id": event.pk,
            "at": event.at.isoformat(),
            "actor": "operator1",
            "source": "api",
            "action": "microservice.scale",
            "cluster": "prod",
            "namespace": "shop",
            "name": "cart",
            "before": {"replicas": 2},
            "after": {"replicas": 5},
            "result": "ok",
            "message": "by hand",
            "request_id": "",
        },
        "text": markdown(event) + "\n- message: by hand",
        "mention": [],
    }


def test_channels_get_only_the_actions_and_results_they_subscribe_to(
    http_receiver, operator, eager_celery, django_capture_on_commit_callbacks
):
    NotificationChannel.objects.create(
        name="restarts", kind="slack", target=http_receiver.url + "/r", actions=["*.restart"]
    )
    NotificationChannel.objects.create(
        name="errors", kind="slack", target=http_receiver.url + "/e", actions=["microservice.*"], results=["error"]
    )
    NotificationChannel.objects.create(
        name="off", kind="slack", target=http_receiver.url + "/o", actions=["*"], enabled=False
    )

    deliver(django_capture_on_commit_callbacks, operator)
    deliver(django_capture_on_commit_callbacks, operator, result="error")
    deliver(django_capture_on_commit_callbacks, operator, result="dry_run")

    assert [got.path for got in http_receiver.received] == ["/e"]
    assert NotificationDelivery.objects.count() == 1


def test_a_failing_receiver_is_retried_then_given_up_and_the_operation_still_succeeds(
    http_receiver, k8s_standin, k8s_cluster, operator, eager_celery, django_capture_on_commit_callbacks
):
    # given: a receiver answering 500 and a channel on scale events
    http_receiver.behave(status=500, body={"error": "boom"})
    NotificationChannel.objects.create(name="ops", kind="slack", target=http_receiver.url + "/ops")
    k8s_standin.add_deployment("shop", "cart", replicas=2)
    service = MicroserviceFactory(cluster=k8s_cluster, namespace="shop", name="cart")

    # when
    with (
        override_settings(KUBEDOOR_NOTIFY_MAX_RETRIES=2, KUBEDOOR_NOTIFY_RETRY_DELAY_SECONDS=0),
        django_capture_on_commit_callbacks(execute=True),
    ):
        result = operations.microservice_scale(
            actor=Actor(user=operator, name="operator1", source="api"), microservice=service, replicas=4
        )

    # then: three attempts (one + two retries), recorded as failed against the event; the scale happened
    assert result.ok is True
    assert k8s_standin.deployment("shop", "cart")["spec"]["replicas"] == 4
    assert len(http_receiver.received) == 3
    delivery = NotificationDelivery.objects.get()
    assert (delivery.state, delivery.attempts) == ("failed", 3)
    assert delivery.last_error == 'HTTP 500: {"error": "boom"}'
    assert delivery.event.result == "ok"
    assert list(delivery.event.deliveries.all()) == [delivery]


def test_a_hanging_receiver_times_out_and_is_given_up(
    http_receiver, operator, eager_celery, django_capture_on_commit_callbacks
):
    http_receiver.behave(delay=5.0)
    NotificationChannel.objects.create(name="ops", kind="webhook", target=http_receiver.url + "/slow")

    with override_settings(
        KUBEDOOR_NOTIFY_MAX_RETRIES=1, KUBEDOOR_NOTIFY_RETRY_DELAY_SECONDS=0, KUBEDOOR_NOTIFY_TIMEOUT_SECONDS=0.3
    ):
        deliver(django_capture_on_commit_callbacks, operator)

    assert len(http_receiver.received) == 2
    delivery = NotificationDelivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_error) == ("failed", 2, "no answer within 0.3 s")


def test_a_chat_api_refusal_with_http_200_is_a_failure(
    http_receiver, operator, eager_celery, django_capture_on_commit_callbacks
):
    http_receiver.behave(status=200, body={"errcode": 93000, "errmsg": "invalid webhook url"})
    NotificationChannel.objects.create(name="wecom", kind="wecom", target=http_receiver.url + "/w")

    with override_settings(KUBEDOOR_NOTIFY_MAX_RETRIES=0):
        deliver(django_capture_on_commit_callbacks, operator)

    delivery = NotificationDelivery.objects.get()
    assert (delivery.state, delivery.last_error) == (
        "failed",
        "refused by the chat API (errcode 93000: invalid webhook url)",
    )


def test_a_sent_delivery_is_not_sent_again(http_receiver, operator, eager_celery, django_capture_on_commit_callbacks):
    from apps.audit.tasks import notification_deliver_task

    NotificationChannel.objects.create(name="hook", kind="webhook", target=http_receiver.url + "/h")
    deliver(django_capture_on_commit_callbacks, operator)
    delivery = NotificationDelivery.objects.get()

    notification_deliver_task.apply(kwargs={"delivery_id": delivery.pk})

    assert len(http_receiver.received) == 1


@pytest.mark.parametrize(
    ("kind", "target", "url"),
    [
        ("wecom", "abc", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc"),
        ("dingtalk", "tok", "https://oapi.dingtalk.com/robot/send?access_token=tok"),
        ("feishu", "hook-id", "https://open.feishu.cn/open-apis/bot/v2/hook/hook-id"),
        ("slack", "https://hooks.example/T/B/x", "https://hooks.example/T/B/x"),
    ],
)
def test_channel_url_from_a_token_or_a_url(kind, target, url):
    assert notify.channel_url(kind=kind, target=target) == url


def test_a_slack_channel_needs_a_url():
    with pytest.raises(notify.NotifyError, match="needs a full URL"):
        notify.channel_url(kind="slack", target="token")

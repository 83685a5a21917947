"""Writes to notification channels, each audited without its secret target."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.forms.models import model_to_dict

from apps.audit.models import NotificationChannel
from apps.audit.services import Actor, audit_event_record


def notification_channel_snapshot(channel: NotificationChannel) -> dict[str, Any]:
    """The audited state of a channel: the target is a secret, only whether it is set is recorded."""
    data = model_to_dict(channel, exclude=["id"])
    data["target"] = "<set>" if channel.target else ""
    data["secret"] = "<set>" if channel.secret else ""
    return data


@transaction.atomic
def notification_channel_create(*, actor: Actor, **fields: Any) -> NotificationChannel:
    channel = NotificationChannel(**fields)
    channel.full_clean()
    channel.save()
    audit_event_record(
        actor=actor,
        action="notification_channel.create",
        name=channel.name,
        after=notification_channel_snapshot(channel),
    )
    return channel


@transaction.atomic
def notification_channel_update(
    *, actor: Actor, channel: NotificationChannel, data: Mapping[str, Any]
) -> NotificationChannel:
    channel = NotificationChannel.objects.select_for_update().get(pk=channel.pk)
    before = notification_channel_snapshot(channel)
    secrets_changed = [key for key in ("target", "secret") if key in data and data[key] != getattr(channel, key)]
    for field, value in data.items():
        setattr(channel, field, value)
    channel.full_clean()
    channel.save()
    after = notification_channel_snapshot(channel)
    keys = [key for key in after if before.get(key) != after.get(key)]
    for key in secrets_changed:
        if key not in keys:  # from one secret to another: both snapshots say "<set>"
            keys.append(key)
            before[key], after[key] = "<set>", "<changed>"
    if keys:
        audit_event_record(
            actor=actor,
            action="notification_channel.update",
            name=channel.name,
            before={key: before.get(key) for key in keys},
            after={key: after.get(key) for key in keys},
        )
    return channel


@transaction.atomic
def notification_channel_delete(*, actor: Actor, channel: NotificationChannel) -> None:
    before = notification_channel_snapshot(channel)
    name = channel.name
    channel.delete()
    audit_event_record(actor=actor, action="notification_channel.delete", name=name, before=before)

"""The admission audit writer: bulk-loaded rows equal what audit_event_record writes; subscribed
events still notify; dry runs never do; a storm of denials is written in full and notified once."""

from __future__ import annotations

import datetime
import decimal
import json
import logging
import threading
import time
from types import SimpleNamespace

import psycopg
import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client import REGISTRY

from apps.audit import services as audit_services
from apps.audit.models import AuditEvent, NotificationChannel, NotificationDelivery
from apps.audit.services import Actor, audit_event_record, audit_json_text
from apps.webhook import audit_writer as audit_writer_module
from apps.webhook.audit_writer import AuditWriter, json_text
from tests.factories import ClusterFactory
from tests.servers.postgres import server_params
from tests.webhook.conftest import load_case

EVENT = {
    "action": "admission.patch",
    "cluster": "prod",
    "namespace": "shop",
    "name": "cart",
    "before": {"replicas": 2, "containers": {"cart": {"requests": {"cpu": None}}}},
    "after": {"replicas": 3, "containers": {"cart": {"requests": {"cpu": "250m"}}}},
    "result": "ok",
    "message": "UPDATE Deployment by alice (uid u-1): kubedoor: spec.replicas 2 -> 3 (control table)",
}
FIELDS = ["actor_id", "actor_name", "source", "action", "cluster", "namespace", "name", "before", "after", "result",
          "message", "request_id", "remote_addr"]  # fmt: skip


def test_bulk_loaded_rows_equal_audit_event_record(db):
    # given the same event written both ways
    reference = audit_event_record(actor=Actor.system("webhook", source="webhook"), **EVENT)
    writer = AuditWriter(autostart=False)
    at = timezone.now() - datetime.timedelta(seconds=3)
    writer.submit(**EVENT, at=at)
    # when
    assert writer.drain() == 1
    # then every column matches, and the time is the decision's, not the write's
    loaded = AuditEvent.objects.exclude(pk=reference.pk).get()
    assert {f: getattr(loaded, f) for f in FIELDS} == {f: getattr(reference, f) for f in FIELDS}
    assert loaded.at == at


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({"replicas": 2}, {"replicas": 3}),
        (
            {"containers": {"café-ü": {"requests": {"cpu": 0.5, "memory": 134217728}}}},
            {"containers": {"café-ü": {"requests": {"cpu": "250m", "memory": "256Mi"}}}},
        ),
        ({"containers": {'a\\b\t"c\n': {"limits": {"cpu": "1"}}}}, {"replicas": None}),
        ({"replicas": 2**70}, {"replicas": 1}),
    ],
)
def test_bulk_loaded_before_and_after_equal_audit_event_record(db, before, after):
    # given the same decision written both ways: orjson's text where it writes the same value, Django's else
    event = EVENT | {"before": before, "after": after}
    reference = audit_event_record(actor=Actor.system("webhook", source="webhook"), **event)
    writer = AuditWriter(autostart=False)
    writer.submit(**event)
    # when
    assert writer.drain() == 1
    # then the stored values are the same
    loaded = AuditEvent.objects.exclude(pk=reference.pk).get()
    assert (loaded.before, loaded.after) == (reference.before, reference.after) == (before, after)


@pytest.mark.parametrize(
    "value",
    [
        {"cpu": float("nan")},
        {"cpu": float("inf")},
        {"replicas": 2**64},
        {"replicas": None},
        {"at": datetime.datetime(2026, 11, 30, 8, 40, 0, 123456, tzinfo=datetime.UTC)},
        {"day": datetime.date(2026, 11, 30)},
        {"cpu": decimal.Decimal("0.25")},
    ],
)
def test_json_text_is_djangos_text_where_orjson_would_write_another_value(value):
    assert json_text(value) == audit_json_text(value)


def test_json_text_is_orjsons_for_plain_values():
    value = {"containers": {"café": {"requests": {"cpu": "250m", "memory": 1.5}}}, "replicas": 3}
    assert json_text(value) == '{"containers":{"café":{"requests":{"cpu":"250m","memory":1.5}}},"replicas":3}'
    assert json.loads(json_text(value)) == json.loads(audit_json_text(value)) == value


def test_events_a_channel_wants_are_notified_and_dry_runs_are_not(db):
    # given a channel subscribed to admission decisions
    channel = NotificationChannel.objects.create(
        name="ops", kind="slack", target="http://127.0.0.1:9/hook", actions=["admission.*"], results=[]
    )
    writer = AuditWriter(autostart=False)
    writer.submit(**EVENT)
    writer.submit(**(EVENT | {"name": "dry", "result": "dry_run"}))
    writer.submit(**(EVENT | {"name": "other", "action": "admission.audit"}))
    # when
    assert writer.drain() == 3
    # then
    assert AuditEvent.objects.count() == 3
    notified = NotificationDelivery.objects.filter(channel=channel).values_list("event__name", flat=True)
    assert sorted(notified) == ["cart", "other"]


def test_a_notified_event_keeps_the_time_of_the_decision_too(db):
    # given a channel that wants the event
    NotificationChannel.objects.create(
        name="ops", kind="slack", target="http://127.0.0.1:9/hook", actions=["admission.*"], results=[]
    )
    writer = AuditWriter(autostart=False)
    at = timezone.now() - datetime.timedelta(seconds=3)
    writer.submit(**EVENT, at=at)
    # when
    assert writer.drain() == 1
    # then it went the notifying way, with the decision's time and the same columns as audit_event_record
    event = AuditEvent.objects.get()
    assert NotificationDelivery.objects.get().event == event
    assert (event.at, event.before, event.actor_name, event.source) == (at, EVENT["before"], "webhook", "webhook")


def test_a_batch_copies_the_silent_events_and_notifies_the_wanted_ones(db):
    # given a channel that wants denials only, and a batch of patches with one denial among them
    channel = NotificationChannel.objects.create(
        name="ops", kind="slack", target="http://127.0.0.1:9/hook", actions=["admission.deny"], results=[]
    )
    writer = AuditWriter(autostart=False)
    for index in range(3):
        writer.submit(**(EVENT | {"name": f"patched-{index}"}))
    writer.submit(**(EVENT | {"name": "denied", "action": "admission.deny", "result": "denied"}))
    # when
    with CaptureQueriesContext(connections["default"]) as queries:
        assert writer.drain() == 4
    # then the channels are read once for the batch
    channel_reads = [q["sql"] for q in queries if 'FROM "audit_notificationchannel"' in q["sql"]]
    assert len(channel_reads) == 1, channel_reads
    # then every event is stored; only the denial is notified
    assert sorted(AuditEvent.objects.values_list("name", flat=True)) == [
        "denied",
        "patched-0",
        "patched-1",
        "patched-2",
    ]
    assert list(NotificationDelivery.objects.filter(channel=channel).values_list("event__name", flat=True)) == [
        "denied"
    ]


def test_copied_texts_keep_tabs_newlines_and_backslashes(db):
    # given a message and names holding the characters COPY's text format escapes
    message = 'UPDATE by a\\b (uid\t1):\n\tline two\r\\N "quoted"'
    event = EVENT | {"namespace": "ns\\x", "name": "a\tb", "message": message}
    reference = audit_event_record(actor=Actor.system("webhook", source="webhook"), **event)
    writer = AuditWriter(autostart=False)
    writer.submit(**event)
    # when
    assert writer.drain() == 1
    # then
    loaded = AuditEvent.objects.exclude(pk=reference.pk).get()
    assert {f: getattr(loaded, f) for f in FIELDS} == {f: getattr(reference, f) for f in FIELDS}
    assert (loaded.namespace, loaded.name, loaded.message) == ("ns\\x", "a\tb", message)


def test_one_unstorable_review_does_not_cost_the_batch_its_other_events(db):
    # given, among ordinary events, a review whose name is longer than the column (the API server checks
    # names after mutating admission) and whose strings hold NUL characters, which PostgreSQL refuses
    writer = AuditWriter(autostart=False)
    writer.submit(**(EVENT | {"name": "before"}))
    writer.submit(
        **(
            EVENT
            | {
                "name": "x" * 300,
                "namespace": "shop\x00",
                "message": "CREATE Deployment by mal\x00lory",
                "after": {"containers": {"c\x00": {"requests": {"cpu": "1\x00"}}}},
            }
        )
    )
    writer.submit(**(EVENT | {"name": "after"}))
    # when
    assert writer.drain() == 3
    # then all three are stored, the odd one fitted to its columns
    assert AuditEvent.objects.count() == 3
    odd = AuditEvent.objects.get(namespace="shop\ufffd")
    assert odd.name == "x" * 252 + "…"
    assert odd.message == "CREATE Deployment by mal\ufffdlory"
    assert odd.after == {"containers": {"c\ufffd": {"requests": {"cpu": "1\ufffd"}}}}


def test_a_paced_copy_reaches_the_server_chunk_by_chunk(db, monkeypatch):
    # given five events' lines, to be written two at a time, and a second session watching the COPY's progress
    writer = AuditWriter(autostart=False)
    for index in range(5):
        writer.submit(**(EVENT | {"name": f"cart-{index}"}))
    lines = [event.line for event in writer._take(block=False)]
    connection = connections["default"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
    watcher = psycopg.connect(**server_params(connection.settings_dict["NAME"]))
    pauses: list[tuple[float, int]] = []

    def pause(seconds: float) -> None:
        """Instead of sleeping: wait until the server has taken every row sent so far (10 s at most)."""
        sent = 2 * (len(pauses) + 1)
        deadline = time.monotonic() + 10
        processed = 0
        while time.monotonic() < deadline:
            row = watcher.execute(
                "SELECT tuples_processed FROM pg_stat_progress_copy WHERE pid = %s", [backend]
            ).fetchone()
            processed = row[0] if row else 0
            if processed >= sent:
                break
            time.sleep(0.01)
        pauses.append((seconds, processed))

    monkeypatch.setattr(audit_services, "time", SimpleNamespace(sleep=pause))
    # when
    try:
        audit_services.audit_copy_lines(lines, chunk=2, pause=0.5)
    finally:
        watcher.close()
    # then the server had parsed each chunk before the next was sent, and every row is stored
    assert pauses == [(0.5, 2), (0.5, 4)]
    assert sorted(AuditEvent.objects.values_list("name", flat=True)) == [f"cart-{index}" for index in range(5)]


@pytest.mark.django_db(transaction=True)
def test_the_writer_paces_a_batch_only_while_it_keeps_up(monkeypatch):
    # given five events queued before the writer starts, and batches of two
    monkeypatch.setattr(audit_writer_module, "BATCH", 2)
    chunks: list[int] = []
    copy = audit_writer_module.audit_copy_lines

    def recording(lines, *, chunk: int = 0, pause: float = 0.0) -> None:
        chunks.append(chunk)
        copy(lines, chunk=chunk, pause=pause)

    monkeypatch.setattr(audit_writer_module, "audit_copy_lines", recording)
    # when the writer's thread writes them
    _write_queued(5)
    # then the first batch, taken with a full batch still queued, goes at once; the others at pace
    assert AuditEvent.objects.count() == 5
    assert chunks == [0, audit_writer_module.COPY_CHUNK, audit_writer_module.COPY_CHUNK]


@pytest.mark.django_db(transaction=True)
def test_the_writer_reports_its_batches_and_warns_of_a_slow_one(caplog, monkeypatch):
    # given three events queued before the writer starts, and batches of two
    monkeypatch.setattr(audit_writer_module, "BATCH", 2)
    observed: list[tuple[int, bool]] = []
    observe = audit_writer_module.metrics.audit_batch_observe

    def recording(*, queued: int, seconds: float | None = None) -> None:
        observed.append((queued, seconds is not None))
        observe(queued=queued, seconds=seconds)

    monkeypatch.setattr(audit_writer_module.metrics, "audit_batch_observe", recording)
    written = REGISTRY.get_sample_value("kubedoor_webhook_audit_write_seconds_count") or 0.0
    # when the writer's thread writes them
    writer = _write_queued(3)
    # then each batch reports what is left queued when taken and when written, and its write time
    assert AuditEvent.objects.count() == 3
    assert observed == [(1, False), (1, True), (0, False), (0, True)]
    assert REGISTRY.get_sample_value("kubedoor_webhook_audit_write_seconds_count") == written + 2
    assert REGISTRY.get_sample_value("kubedoor_webhook_audit_queued_events") == 0
    # and a slow batch is logged, once per 10 s; a quick one is not
    with caplog.at_level(logging.WARNING, logger="apps.webhook.audit_writer"):
        writer._written(500, 0.4)
        writer._written(500, 1.5)
        writer._written(500, 2.5)
    assert [record.getMessage() for record in caplog.records] == [
        "admission audit batch of 500 events took 1.5 s; 0 queued (at most 10000, then events are dropped)"
    ]


def _write_queued(count: int) -> AuditWriter:
    """Queue ``count`` events (cart-0, cart-1, …) before the writer's thread starts, start it, wait until all
    are stored (10 s at most) and stop it."""
    writer = AuditWriter(autostart=False)
    for index in range(count):
        writer.submit(**(EVENT | {"name": f"cart-{index}"}))
    writer.autostart = True
    writer.ensure_started()
    deadline = time.monotonic() + 10
    while AuditEvent.objects.count() < count and time.monotonic() < deadline:
        time.sleep(0.05)
    writer.stop()
    return writer


def _deny_storm(client, count: int) -> None:
    """``count`` reviews of shop/newsvc, which has no control row: each one is denied."""
    review = load_case("unmanaged-create-denied")[0]
    for index in range(count):
        review["request"]["uid"] = f"storm-{index:03d}"
        response = client.post("/mutate/prod", data=json.dumps(review), content_type="application/json")
        assert response.json()["response"]["allowed"] is False


def test_a_storm_of_denials_is_audited_in_full_and_notified_once(
    client, db, webhook_state, webhook_process, http_receiver, eager_celery, django_capture_on_commit_callbacks
):
    # given a cluster that denies unmanaged Deployments and a channel subscribed to denials
    ClusterFactory(name="prod", admission_mode="enforce")
    webhook_state.holder.refresh()
    NotificationChannel.objects.create(
        name="ops", kind="webhook", target=http_receiver.url + "/deny", actions=["admission.deny"]
    )
    # when a controller retries the same denied Deployment 100 times and the writer writes them
    _deny_storm(client, 100)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert webhook_state.writer.drain() == 100
    # then every denial is audited
    events = AuditEvent.objects.filter(action="admission.deny", namespace="shop", name="newsvc")
    assert events.count() == 100
    assert AuditEvent.objects.count() == 100
    # and the first one is notified, once; the window's summary task was queued to run when it closes
    first = events.order_by("id").first()
    delivery = NotificationDelivery.objects.get(repeats=0)
    assert (delivery.event_id, delivery.state) == (first.pk, "sent")
    summary_calls = [c for c in callbacks if c.func is audit_services._enqueue_repeats_summary]
    assert [c.args for c in summary_calls] == [(delivery.pk, 60.0)]
    # (the eager test worker ran that task at once instead of 60 s later: the storm was written by
    # then, so it says what it would say at the end of the minute) — exactly two requests in all
    received = http_receiver.wait_for(2, timeout=5)
    assert len(received) == 2
    assert [r.path for r in received] == ["/deny", "/deny"]
    assert received[0].body["event"]["id"] == first.pk
    assert "repeats" not in received[0].body["event"]
    last = events.order_by("id").last()
    assert received[1].body["event"]["id"] == last.pk
    assert received[1].body["event"]["repeats"] == 99
    assert received[1].body["text"].splitlines()[:2] == [
        "**KubeDoor admission.deny prod/shop/newsvc: 99 more**",
        "- 99 more denials of shop/newsvc in the last minute",
    ]
    assert NotificationDelivery.objects.count() == 2


def test_denials_written_by_two_workers_at_once_share_one_window(
    transactional_db, client, webhook_state, webhook_process, monkeypatch
):
    # given two webhook workers' writers holding 50 denials of the same Deployment each
    ClusterFactory(name="prod", admission_mode="enforce")
    webhook_state.holder.refresh()
    NotificationChannel.objects.create(
        name="ops", kind="webhook", target="http://127.0.0.1:9/deny", actions=["admission.deny"]
    )
    queued: list[tuple] = []  # what would go to the broker after each commit
    monkeypatch.setattr(audit_services, "_enqueue_delivery", lambda *args: queued.append(("deliver", *args)))
    monkeypatch.setattr(audit_services, "_enqueue_repeats_summary", lambda *args: queued.append(("summary", *args)))
    _deny_storm(client, 100)
    writers = [AuditWriter(autostart=False), AuditWriter(autostart=False)]
    for index, event in enumerate(list(webhook_state.writer.queue.queue)):
        writers[index % 2].queue.put_nowait(event)
    start = threading.Barrier(2)

    def drain(writer: AuditWriter) -> None:
        start.wait()
        try:
            writer.drain()
        finally:
            connections.close_all()

    # when both write at the same moment, each in its own transaction and connection
    threads = [threading.Thread(target=drain, args=(writer,)) for writer in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # then all 100 are written and exactly one delivery (with its window's summary) is queued
    assert AuditEvent.objects.filter(action="admission.deny").count() == 100
    delivery = NotificationDelivery.objects.get()
    assert delivery.repeats == 0
    assert sorted(queued) == [("deliver", delivery.pk), ("summary", delivery.pk, 60.0)]

"""The in-memory control snapshot: what it holds, when it rebuilds, and a database that went away."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from apps.audit.models import AuditEvent
from apps.control.models import Microservice
from apps.webhook import metrics
from apps.webhook.admission import ClusterSettings, ControlRow
from apps.webhook.audit_writer import AuditWriter
from apps.webhook.snapshot import SnapshotHolder, cluster_settings_from, control_row_from
from tests.factories import ClusterFactory, MicroserviceFactory
from tests.servers import free_port
from tests.webhook.conftest import load_case


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _refresh_with_database_down(holder: SnapshotHolder) -> bool:
    """Refresh from a fresh connection whose server port is closed: a real connection failure.

    The test's own connection stays open (the test transaction); only the thread's new connection
    goes to the dead port. PostgreSQL itself is never stopped (other suites share it).
    """
    settings_dict = connections.settings["default"]
    saved = settings_dict["PORT"]
    settings_dict["PORT"] = str(free_port())
    result: dict[str, bool] = {}
    try:
        thread = threading.Thread(target=lambda: result.update(rebuilt=holder.refresh(force=True)))
        thread.start()
        thread.join(timeout=30)
    finally:
        settings_dict["PORT"] = saved
    return result["rebuilt"]


def test_snapshot_holds_settings_and_rows_with_effective_replicas(db):
    # given
    prod = ClusterFactory(
        name="prod",
        admission_mode="audit",
        namespaces=["shop"],
        allow_unmanaged=True,
        on_store_error="deny",
        apply_recommended_replicas=True,
    )
    MicroserviceFactory(
        cluster=prod, namespace="shop", name="a", replicas_measured=4, replicas_recommended=6, replicas_specified=None
    )
    MicroserviceFactory(
        cluster=prod, namespace="shop", name="b", replicas_measured=4, replicas_specified=0, container="app"
    )
    MicroserviceFactory(
        cluster=prod, namespace="shop", name="c", replicas_measured=0, replicas_mode="ignore", limit_cpu_m=None
    )
    ClusterFactory(name="empty")
    holder = SnapshotHolder(autostart=False)
    # when
    with CaptureQueriesContext(connection) as queries:
        assert holder.refresh() is True
    # then: two aggregate queries for the stamp and two for the data
    assert len(queries) == 4
    clusters = holder.current.clusters
    assert set(clusters) == {"prod", "empty"}
    assert clusters["prod"].settings == ClusterSettings(
        name="prod",
        admission_mode="audit",
        namespaces=frozenset({"shop"}),
        excluded_namespaces=frozenset({"kube-system", "kubedoor"}),
        allow_unmanaged=True,
        on_store_error="deny",
        own_usernames=frozenset({"system:serviceaccount:kubedoor:kubedoor"}),
    )
    rows = clusters["prod"].rows
    assert rows[("shop", "a")] == ControlRow(
        namespace="shop",
        name="a",
        replicas=6,
        request_cpu_m=250,
        request_mem_mib=256,
        limit_cpu_m=1000,
        limit_mem_mib=1024,
    )
    assert rows[("shop", "b")].replicas == 0
    assert rows[("shop", "b")].container == "app"
    assert (rows[("shop", "c")].replicas, rows[("shop", "c")].replicas_mode) == (None, "ignore")
    assert rows[("shop", "c")].limit_cpu_m is None
    assert clusters["empty"].rows == {}


def test_snapshot_rows_and_settings_are_the_ones_the_factories_build_from_the_models(db):
    # given rows covering every source of replicas, an HPA and unset resources
    prod = ClusterFactory(
        name="prod", admission_mode="audit", namespaces=["shop"], on_store_error="deny", apply_recommended_replicas=True
    )
    MicroserviceFactory(
        cluster=prod, namespace="shop", name="a", replicas_measured=4, replicas_recommended=6, replicas_specified=None
    )
    MicroserviceFactory(
        cluster=prod, namespace="shop", name="b", replicas_measured=0, replicas_specified=None, hpa_name="b"
    )
    MicroserviceFactory(cluster=prod, namespace="shop", name="c", container="app", request_mem_mib=None)
    holder = SnapshotHolder(autostart=False)
    # when
    holder.refresh()
    # then the snapshot (built from value rows) holds what the preview builds from model instances
    control = holder.current.clusters["prod"]
    assert control.settings == cluster_settings_from(prod)
    for service in Microservice.objects.filter(cluster=prod):
        assert control.rows[(service.namespace, service.name)] == control_row_from(service, apply_recommended=True)
    assert control.rows[("shop", "a")].replicas == 6
    assert (control.rows[("shop", "b")].replicas, control.rows[("shop", "b")].hpa_managed) == (None, True)
    assert cluster_settings_from(prod, admission_mode="enforce") == ClusterSettings(
        name="prod",
        admission_mode="enforce",
        namespaces=frozenset({"shop"}),
        excluded_namespaces=frozenset({"kube-system", "kubedoor"}),
        on_store_error="deny",
        own_usernames=frozenset({"system:serviceaccount:kubedoor:kubedoor"}),
    )


def test_recommended_pods_count_only_in_a_cluster_that_applies_them(db):
    # given: the cluster's "apply recommended pods" off (the default)
    prod = ClusterFactory(name="prod")
    MicroserviceFactory(
        cluster=prod, namespace="shop", name="a", replicas_measured=4, replicas_recommended=2, replicas_specified=None
    )
    MicroserviceFactory(
        cluster=prod, namespace="shop", name="b", replicas_measured=4, replicas_recommended=2, replicas_specified=3
    )
    holder = SnapshotHolder(autostart=False)
    holder.refresh()
    rows = holder.current.clusters["prod"].rows
    assert (rows[("shop", "a")].replicas, rows[("shop", "b")].replicas) == (4, 3)  # today's pods, specified
    # when the cluster turns it on
    prod.apply_recommended_replicas = True
    prod.save()
    assert holder.refresh() is True
    # then the recommendation comes before today's pods, after the specified ones
    rows = holder.current.clusters["prod"].rows
    assert (rows[("shop", "a")].replicas, rows[("shop", "b")].replicas) == (2, 3)


def test_refresh_rebuilds_when_rows_change_and_when_stale(db):
    # given a loaded snapshot
    prod = ClusterFactory(name="prod")
    row = MicroserviceFactory(cluster=prod, namespace="shop", name="cart", replicas_measured=2)
    clock = FakeClock()
    holder = SnapshotHolder(autostart=False, max_age=5.0, clock=clock)
    assert holder.refresh() is True
    first = holder.current

    # unchanged and fresh: only the stamp is read
    clock.now += 1
    with CaptureQueriesContext(connection) as queries:
        assert holder.refresh() is False
    assert len(queries) == 2
    assert holder.current is first

    # a changed row: rebuilt
    row.replicas_specified = 7
    row.save()
    assert holder.refresh() is True
    assert holder.current.clusters["prod"].rows[("shop", "cart")].replicas == 7

    # a deleted row: rebuilt
    row.delete()
    assert holder.refresh() is True
    assert holder.current.clusters["prod"].rows == {}

    # a changed cluster setting: rebuilt
    prod.on_store_error = "deny"
    prod.save()
    assert holder.refresh() is True
    assert holder.current.clusters["prod"].settings.on_store_error == "deny"

    # nothing changed but older than max_age: rebuilt anyway
    clock.now += 5
    assert holder.refresh() is True
    assert holder.age() == 0.0


def test_database_down_keeps_serving_the_last_snapshot(db, client, webhook_state, webhook_process):
    # given a snapshot loaded while the database was up
    prod = ClusterFactory(name="prod", admission_mode="enforce")
    MicroserviceFactory(cluster=prod, namespace="shop", name="cart", replicas_specified=3)
    holder = webhook_state.holder
    assert holder.refresh() is True
    loaded = holder.current

    # when the database becomes unreachable
    assert _refresh_with_database_down(holder) is False

    # then the holder keeps the snapshot and remembers why it could not refresh
    assert holder.current is loaded
    assert "127.0.0.1" in holder.last_error or "connect" in holder.last_error.lower()
    review = load_case("scale-kubectl")[0]
    with CaptureQueriesContext(connection) as queries:
        response = client.post("/mutate/prod", data=json.dumps(review), content_type="application/json")
    assert len(queries) == 0
    assert response.json()["response"]["warnings"] == ["kubedoor: spec.replicas 5 -> 3 (control table)"]
    ready = client.get("/readyz").json()
    assert (ready["status"], ready["snapshot"]) == ("ok", "loaded")
    assert ready["store_error"] == holder.last_error


@pytest.mark.parametrize(("policy", "allowed"), [("allow", True), ("deny", False)])
def test_database_down_at_start_follows_on_store_error(
    db, client, webhook_state, webhook_process, settings, policy, allowed
):
    # given a process that never loaded a snapshot because the database was down
    settings.KUBEDOOR_WEBHOOK_ON_STORE_ERROR_DEFAULT = policy
    assert _refresh_with_database_down(webhook_state.holder) is False
    assert webhook_state.holder.current is None
    # when
    review = load_case("kubectl-update-image")[0]
    answer = client.post("/mutate/prod", data=json.dumps(review), content_type="application/json").json()["response"]
    # then
    assert answer["allowed"] is allowed
    assert "patch" not in answer
    if allowed:
        assert answer["warnings"] == ["kubedoor: control table unavailable; allowed unchanged (on_store_error=allow)"]
    else:
        assert answer["status"]["code"] == 503


def _wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


def test_background_thread_follows_changes(transactional_db):
    # given a holder started like in the webhook process
    prod = ClusterFactory(name="prod")
    holder = SnapshotHolder(check_interval=0.05, max_age=60)
    holder.ensure_started()
    try:
        assert holder.current is not None  # the first load happened before the thread started
        assert holder.current.clusters["prod"].rows == {}
        # when a row is added and then changed
        row = MicroserviceFactory(cluster=prod, namespace="shop", name="cart", replicas_measured=2)
        _wait_for(lambda: ("shop", "cart") in holder.current.clusters["prod"].rows)
        row.replicas_specified = 9
        row.save()
        # then the snapshot follows
        _wait_for(lambda: holder.current.clusters["prod"].rows[("shop", "cart")].replicas == 9)
    finally:
        holder.stop()


def test_audit_writer_thread_writes_queued_events(transactional_db):
    writer = AuditWriter()
    try:
        assert writer.submit(action="admission.patch", cluster="prod", namespace="shop", name="cart", result="ok")
        _wait_for(lambda: AuditEvent.objects.filter(action="admission.patch").count() == 1)
    finally:
        writer.stop()
    event = AuditEvent.objects.get()
    assert (event.actor_name, event.source, event.cluster, event.namespace, event.name) == (
        "webhook",
        "webhook",
        "prod",
        "shop",
        "cart",
    )


def test_audit_writer_drops_when_full_and_counts_it(db):
    writer = AuditWriter(maxsize=1, autostart=False)
    before = metrics.AUDIT_DROPPED._value.get()
    assert writer.submit(action="admission.deny", name="a") is True
    assert writer.submit(action="admission.deny", name="b") is False
    assert metrics.AUDIT_DROPPED._value.get() - before == 1
    assert writer.drain() == 1
    assert list(AuditEvent.objects.values_list("name", flat=True)) == ["a"]


def test_background_threads_start_again_in_a_forked_child():
    # given a holder and a writer whose threads run in this process (no database: in-memory loaders)
    checks: list[int] = []
    loads: list[int] = []
    holder = SnapshotHolder(
        stamp_loader=lambda: checks.append(os.getpid()) or (),
        loader=lambda: loads.append(os.getpid()) or {},
        check_interval=60,
    )
    writer = AuditWriter()
    holder.ensure_started()
    writer.ensure_started()
    parent_threads = (holder._thread, writer._thread)
    read_end, write_end = os.pipe()
    try:
        # when the process forks (as gunicorn's master forks a worker) and the child asks again
        pid = os.fork()
        if pid == 0:  # the child: report, then leave without running the parent's exit handlers
            try:
                copies_alive = [thread.is_alive() for thread in parent_threads]
                holder.ensure_started()
                writer.ensure_started()
                started = [
                    part._thread is not copy and part._thread.is_alive() and part._pid == os.getpid()
                    for part, copy in zip((holder, writer), parent_threads, strict=True)
                ]
                checked = checks.count(os.getpid()) >= 1
                os.write(write_end, json.dumps([copies_alive, started, checked]).encode())
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        report = json.loads(os.read(read_end, 4096))
    finally:
        holder.stop()
        writer.stop()
        os.close(read_end)
        os.close(write_end)
    # then the child's copies of the threads are not alive, and it started its own and checked the store
    assert report == [[False, False], [True, True], True]
    # and in this process the running threads were left as they were, with one load
    assert loads == [os.getpid()]

"""A queued collection spread over real Celery workers in per-day chunks (issue 14 item 3).

Against the generated Prometheus (three days of history) through the real worker fixture: chunks give
the same store and control table as the one-shot ``collection_run``; a chunk whose backend drops its
connections is retried alone; a worker SIGKILLed mid-run and started again finishes the run with the
right figures; two clusters collect at once on two worker processes. The backend semaphore is tested
on the real Redis.
"""

from __future__ import annotations

import datetime
import time
import uuid

import pytest
from django.test import override_settings
from django.utils import timezone

from apps.audit.services import Actor
from apps.control.models import Microservice
from apps.metrics import backend_slots, peaks, pod_node_promql, promql, services
from apps.metrics.models import CollectionChunk, CollectionRun, DailyPeak, NodePeak, PodPeak
from apps.metrics.prometheus import DEFAULT_RETRIES
from tests.factories import ClusterFactory
from tests.servers import stop_process
from tests.servers.prometheus import CLUSTER_LABEL, TIME_ZONE
from tests.servers.prometheus_proxy import PrometheusProxy

DAYS = 5  # today-4 … today: the three generated days, then two days with no history
WORKER_ENV = {"KUBEDOOR_COLLECTION_RETRY_DELAY_SECONDS": "0.5"}
# Short leases and visibility timeout, so a killed worker's chunk is taken over within seconds (the
# live worker's tasks come back too when they outlast it: the chunks' claims keep them from running twice).
DYING_WORKER_ENV = {
    **WORKER_ENV,
    "KUBEDOOR_COLLECTION_LEASE_SECONDS": "6",
    "KUBEDOOR_CELERY_VISIBILITY_TIMEOUT": "8",
    "KUBEDOOR_COLLECTION_BACKEND_SLOTS": "1",
}


@pytest.fixture
def workers(celery_worker_factory, settings):
    """Start workers for this test only, on a queue of its own: no other worker of the session takes its chunks."""
    queue = f"collect-{uuid.uuid4().hex[:8]}"
    settings.KUBEDOOR_COLLECTION_QUEUE = queue
    started = []

    def start(*, extra_env: dict[str, str], **kwargs):
        process = celery_worker_factory(
            extra_env={**extra_env, "KUBEDOOR_COLLECTION_QUEUE": queue}, queues=queue, **kwargs
        )
        started.append(process)
        return process

    yield start
    for process in started:
        stop_process(process, timeout=15)


def _queries_per_day(cluster) -> int:
    settings = services.query_settings(cluster, window_seconds=5400)
    return len(promql.day_queries(settings)) + len(pod_node_promql.day_queries(settings))


def _at(cluster, day: datetime.date) -> str:
    """The evaluation time of a day's queries, as the client sends it."""
    window = peaks.peak_window(day=day, start=cluster.peak_start, end=cluster.peak_end, time_zone=cluster.time_zone)
    return f"{window.end.timestamp():.3f}"


def _cluster(name: str, url: str):
    return ClusterFactory(
        name=name,
        prometheus_url=url,
        prometheus_label_key=CLUSTER_LABEL,
        prometheus_label_value="prod",
        time_zone=TIME_ZONE,
    )


def _start(cluster, *, concurrency: int = 4) -> CollectionRun:
    return services.collection_start(
        cluster=cluster, days=DAYS, concurrency=concurrency, actor=Actor.system("tester", source="system")
    )


def _wait(run: CollectionRun, timeout: float = 180) -> CollectionRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.state in ("done", "failed"):
            return run
        time.sleep(0.2)
    raise AssertionError(f"run #{run.pk} still {run.state} after {timeout} s: {run.progress_done}/{run.progress_total}")


def _store(model, cluster: str) -> list[dict]:
    rows = model.objects.filter(cluster=cluster).order_by(*[f.name for f in model._meta.fields if f.name != "id"])
    return [
        {k: v for k, v in row.items() if k not in ("id", "cluster", "collected_at")}
        for row in rows.values()  # every figure, window and key
    ]


def _table(cluster) -> list[dict]:
    rows = Microservice.objects.filter(cluster=cluster).order_by("namespace", "name").values()
    return [{k: v for k, v in row.items() if k not in ("id", "cluster_id", "created_at", "updated_at")} for row in rows]


def _assert_prod_collected(run: CollectionRun, days: tuple[datetime.date, ...]) -> None:
    """The figures of a complete run of the generated "prod" history (9 containers a day, 7 services)."""
    cluster = run.cluster
    assert run.state == "done", run.errors
    assert run.progress_total == len(run.days_collected) * services.queries_per_day(run.cluster)
    assert run.progress_done == run.progress_total
    assert [DailyPeak.objects.filter(cluster=cluster.name, day=day).count() for day in days] == [9, 9, 9]
    assert DailyPeak.objects.filter(cluster=cluster.name).count() == 27
    assert run.rows_written == 27
    assert run.days_collected == sorted(run.days_collected)
    assert {days[0].isoformat(), days[1].isoformat(), days[2].isoformat()} <= set(run.days_collected)
    assert Microservice.objects.filter(cluster=cluster).count() == 7
    assert Microservice.objects.get(cluster=cluster, name="cart").source_day == days[1]
    assert run.services_added == 7


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
@override_settings(KUBEDOOR_COLLECTION_CHUNK_DAYS=2)
def test_chunks_give_the_store_and_control_table_of_a_one_shot_collection(prometheus_server, workers):
    # given: the same history seen as two clusters
    workers(name="chunks", extra_env=WORKER_ENV)
    one_shot, chunked = _cluster("prod", prometheus_server.url), _cluster("prod-chunked", prometheus_server.url)
    reference = services.collection_start(
        cluster=one_shot, days=DAYS, actor=Actor.system("tester", source="system"), enqueue=False
    )
    reference = services.collection_run(run_id=reference.pk, now=timezone.now())
    # when: queued, split into chunks of two days on the worker
    run = _wait(_start(chunked))
    # then
    _assert_prod_collected(run, prometheus_server.days)
    chunks = list(CollectionChunk.objects.filter(run=run))
    assert [chunk.days for chunk in chunks] == [
        run.days_collected[i : i + 2] for i in range(0, len(run.days_collected), 2)
    ]
    assert {(chunk.state, chunk.attempts) for chunk in chunks} == {("done", 0)}
    assert sum(chunk.rows_written for chunk in chunks) == 27
    assert (run.progress_done, run.rows_written, run.days_collected) == (
        reference.progress_done,
        reference.rows_written,
        reference.days_collected,
    )
    for model in (DailyPeak, PodPeak, NodePeak):
        assert _store(model, "prod-chunked") == _store(model, "prod"), model.__name__
    assert len(_store(PodPeak, "prod")) > 0
    assert _table(chunked) == _table(one_shot)
    assert (run.services_added, run.services_updated, run.unmanaged) == (
        reference.services_added,
        reference.services_updated,
        reference.unmanaged,
    )


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_chunk_whose_backend_drops_it_is_retried_alone(prometheus_server, workers):
    # given: the peak day's first query loses its connection as often as the client tries it
    workers(name="retry", extra_env=WORKER_ENV)
    proxy = PrometheusProxy(prometheus_server.url)
    try:
        cluster = _cluster("prod", proxy.url)
        peak_day = prometheus_server.days[1]
        proxy.drop(_at(cluster, peak_day), times=DEFAULT_RETRIES + 1)
        # when: one query at a time, so the dropped ones are the day's first query's attempts
        run = _wait(_start(cluster, concurrency=1))
    finally:
        proxy.close()
    # then: the run is complete and right
    _assert_prod_collected(run, prometheus_server.days)
    chunks = {chunk.days[0]: chunk for chunk in CollectionChunk.objects.filter(run=run)}
    failed = chunks.pop(peak_day.isoformat())
    assert (failed.state, failed.attempts) == ("done", 1)
    assert "unreachable" in failed.error
    assert {(chunk.state, chunk.attempts) for chunk in chunks.values()} == {("done", 0)}
    # only that day was asked again: every other day's queries went out exactly once
    per_day = _queries_per_day(cluster)
    assert proxy.dropped == {_at(cluster, peak_day): DEFAULT_RETRIES + 1}
    others = [day for day in run.days_collected if day != peak_day.isoformat()]
    # (a day on which some Deployment's pods are named unlike it adds its owners' queries, and a day on which
    # some Deployment's pods have different limits one per-pod %-of-limit query per resource,
    # apps/metrics/daily.py: at most len(OWNER_STATISTICS) + len(PERCENT_STATISTICS) more; never a second round)
    extra = len(promql.OWNER_STATISTICS) + len(promql.PERCENT_STATISTICS)
    counts = [proxy.count[_at(cluster, datetime.date.fromisoformat(day))] for day in others]
    assert all(per_day <= count <= per_day + extra for count in counts), counts
    # the failed day in full on its retry, plus at most the one query the single query thread had
    # already taken when the first one failed
    assert per_day <= proxy.count[_at(cluster, peak_day)] <= per_day + extra + 1


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_chunk_out_of_retries_fails_the_run_naming_its_day(prometheus_server, workers):
    # given: the peak day's backend never answers; one retry allowed
    workers(name="hopeless", extra_env={**WORKER_ENV, "KUBEDOOR_COLLECTION_MAX_RETRIES": "1"})
    proxy = PrometheusProxy(prometheus_server.url)
    try:
        cluster = _cluster("prod", proxy.url)
        peak_day = prometheus_server.days[1]
        proxy.drop(_at(cluster, peak_day), times=10_000)
        # when
        run = _wait(_start(cluster, concurrency=1))
    finally:
        proxy.close()
    # then: the run failed, naming the day and the attempts; the chunk tried twice; no control rows
    assert run.state == "failed"
    assert len(run.errors) == 1
    assert run.errors[0].startswith(f"Days {peak_day.isoformat()} failed after 2 attempts: Prometheus ")
    failed = CollectionChunk.objects.get(run=run, days=[peak_day.isoformat()])
    assert (failed.state, failed.attempts, failed.rows_written) == ("failed", 2, 0)
    # two attempts, each losing its first query's tries (and those of the one query its thread had taken)
    assert 2 * (DEFAULT_RETRIES + 1) <= proxy.dropped[_at(cluster, peak_day)] <= 4 * (DEFAULT_RETRIES + 1)
    assert proxy.count[_at(cluster, peak_day)] == 0
    assert DailyPeak.objects.filter(cluster="prod", day=peak_day).count() == 0
    assert Microservice.objects.filter(cluster=cluster).count() == 0
    assert run.refresh_claimed_at is None


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_run_is_replaced_and_the_run_finishes_right(prometheus_server, workers):
    # given: slow queries, one chunk at a time on the backend
    worker = workers(name="doomed", extra_env=DYING_WORKER_ENV)
    proxy = PrometheusProxy(prometheus_server.url)
    proxy.delay = 0.15
    try:
        cluster = _cluster("prod", proxy.url)
        run = _start(cluster, concurrency=1)
        # when: the worker is SIGKILLed while a chunk is half-way through its day
        deadline = time.monotonic() + 120
        running = None
        while running is None and time.monotonic() < deadline:
            running = CollectionChunk.objects.filter(run=run, state="running", progress_done__gte=2).first()
            time.sleep(0.05)
        assert running is not None, "no chunk started"
        worker.kill()
        worker.wait(timeout=10)
        running.refresh_from_db()
        killed_day, killed_claim = running.days[0], running.claimed_by
        # …and a new worker starts on the same broker
        workers(name="successor", extra_env=DYING_WORKER_ENV, flush=False)
        run = _wait(run)
    finally:
        proxy.close()
    # then: the right figures, the killed chunk taken over and counted once
    _assert_prod_collected(run, prometheus_server.days)
    taken_over = CollectionChunk.objects.get(run=run, days=[killed_day])
    assert taken_over.state == "done"
    assert taken_over.claimed_by != killed_claim
    assert taken_over.progress_done == services.queries_per_day(taken_over.run.cluster)
    assert proxy.count[_at(cluster, datetime.date.fromisoformat(killed_day))] > _queries_per_day(cluster)
    assert CollectionChunk.objects.filter(run=run).exclude(state="done").count() == 0


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_two_clusters_collect_in_parallel_on_two_workers(prometheus_server, workers):
    # given
    workers(name="first", extra_env=WORKER_ENV)
    workers(name="second", extra_env=WORKER_ENV, flush=False)
    first, second = _cluster("prod", prometheus_server.url), _cluster("prod-twin", prometheus_server.url)
    # when: both queued at once
    runs = [_start(first), _start(second)]
    runs = [_wait(run) for run in runs]
    # then: both complete and identical
    for run in runs:
        _assert_prod_collected(run, prometheus_server.days)
    assert _store(DailyPeak, "prod") == _store(DailyPeak, "prod-twin")
    assert _table(first) == _table(second)


def test_a_backend_semaphore_lends_its_slots_up_to_the_limit_and_frees_a_dead_holders(settings):
    # given: the test broker's Redis
    assert settings.CELERY_BROKER_URL.startswith("redis://"), "CELERY_BROKER_URL=redis://… is needed"
    backend_slots._client.cache_clear()
    url = f"http://semaphore-test-{time.time_ns()}:9090"
    a, b, c = (backend_slots.BackendSlot(url, limit=2, lease_seconds=60) for _ in range(3))
    # when / then: two slots, the third waits
    assert (a.acquire(), b.acquire(), c.acquire()) == (True, True, False)
    assert backend_slots.slots_held(url) == 2
    # a holder asking again keeps its one slot
    assert a.acquire() is True
    assert backend_slots.slots_held(url) == 2
    # released, the slot goes to the next
    a.release()
    assert c.acquire() is True
    assert b.renew() is True
    # another backend has its own slots
    assert backend_slots.BackendSlot(url + "/other", limit=2, lease_seconds=60).acquire() is True
    assert backend_slots.slots_held(url) == 2
    b.release()
    c.release()


def test_a_backend_slot_whose_holder_stopped_renewing_is_lent_again(settings):
    # given: a one-slot backend whose holder's worker died (it renews no more)
    backend_slots._client.cache_clear()
    url = f"http://semaphore-test-{time.time_ns()}:9090"
    dead = backend_slots.BackendSlot(url, limit=1, lease_seconds=1)
    assert dead.acquire() is True
    # when: the lease has passed
    time.sleep(1.5)
    successor = backend_slots.BackendSlot(url, limit=1, lease_seconds=60)
    # then: the slot is lent again, and the old holder cannot renew it back
    assert successor.acquire() is True
    assert dead.renew() is False
    assert backend_slots.slots_held(url) == 1
    assert backend_slots.BackendSlot(url, limit=1, lease_seconds=60).acquire() is False
    successor.release()

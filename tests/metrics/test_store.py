"""The daily-peak store contract, run against the real ClickHouse 18.16 server, chdb (a current
ClickHouse, same SQL) and the ORM store on PostgreSQL."""

from __future__ import annotations

import datetime

import pytest

from apps.metrics import clickhouse as ch
from apps.metrics.clickhouse import ClickHouseDoor
from apps.metrics.store import ClickHouseStore, OrmStore, PeakRow, _ch_values

UTC = datetime.UTC
# Every variant needs the default database: the ORM store lives there, and pytest-django guards
# every connection (the ClickHouse wrappers too) behind database access.
pytestmark = pytest.mark.django_db

D1 = datetime.date(2026, 3, 1)
D2 = datetime.date(2026, 3, 2)
D3 = datetime.date(2026, 4, 1)  # another month: another ClickHouse partition


def make_row(cluster="prod", day=D1, namespace="shop", deployment="cart", container="cart", **over) -> PeakRow:
    values = {
        "cluster": cluster,
        "day": day,
        "namespace": namespace,
        "deployment": deployment,
        "container": container,
        "window_start": datetime.datetime.combine(day, datetime.time(2, 0), UTC),
        "window_end": datetime.datetime.combine(day, datetime.time(3, 30), UTC),
        "pod_count": 3,
        "p95_cpu_cores": 0.25,
        "p95_cpu_pct": 25.0,
        "p95_mem_mib": 300.5,
        "p95_mem_pct": 58.69140625,
        "request_cpu_m": 200,
        "request_mem_mib": 256,
        "limit_cpu_m": 1000,
        "limit_mem_mib": 512,
        "quantile": 0.95,
        "aggregation": "avg",
        "step_seconds": 30,
        "collected_at": datetime.datetime(2026, 3, 2, 4, 0, 0, tzinfo=UTC),
        "oom_kills": 2,
        "throttled_pct": 12.5,
    }
    values.update(over)
    return PeakRow(**values)


@pytest.fixture(params=["clickhouse-18.16", "chdb", "orm"])
def store(request):
    if request.param == "orm":
        yield OrmStore()
        return
    if request.param == "chdb":
        executor = request.getfixturevalue("chdb_executor")
        store = ClickHouseStore(executor)
        store.ensure_schema()
        yield store
        return
    door = ClickHouseDoor.from_url(request.getfixturevalue("clickhouse_url"))
    store = ClickHouseStore(door)
    store.ensure_schema()
    yield store
    door.close()


def test_written_rows_read_back_exactly(store):
    # given
    rows = [
        make_row(),
        make_row(deployment="cart", container="istio-proxy", p95_cpu_cores=0.05, limit_cpu_m=None, p95_cpu_pct=None),
        make_row(
            namespace="pay",
            deployment="api",
            container="api",
            pod_count=None,
            limit_mem_mib=None,
            oom_kills=None,
            throttled_pct=None,
        ),
    ]
    # when
    written = store.day_replace(cluster="prod", day=D1, rows=rows)
    # then
    assert written == 3
    got = store.rows(cluster="prod", day_from=D1, day_to=D1)
    assert got == sorted(rows, key=lambda r: (r.day, r.namespace, r.deployment, r.container))
    assert got[2].p95_cpu_pct is None
    assert got[0].pod_count is None


def test_replacing_a_day_never_duplicates_and_drops_rows_no_longer_seen(store):
    # given: a day collected with a 10:00-11:30 window
    store.day_replace(cluster="prod", day=D1, rows=[make_row(), make_row(deployment="old", container="old")])
    # when: re-collected after the window changed, "old" gone
    later = datetime.datetime.combine(D1, datetime.time(5, 0), UTC)
    new = make_row(window_start=later - datetime.timedelta(hours=1), window_end=later, p95_cpu_cores=0.5)
    store.day_replace(cluster="prod", day=D1, rows=[new])
    store.day_replace(cluster="prod", day=D1, rows=[new])
    # then
    assert store.rows(cluster="prod", day_from=D1, day_to=D1) == [new]
    assert store.count(cluster="prod", day_from=D1, day_to=D1) == 1


def test_replacing_a_day_leaves_other_days_and_clusters_alone(store):
    store.day_replace(cluster="prod", day=D1, rows=[make_row()])
    store.day_replace(cluster="prod", day=D2, rows=[make_row(day=D2)])
    store.day_replace(cluster="prod", day=D3, rows=[make_row(day=D3)])
    store.day_replace(cluster="stage", day=D1, rows=[make_row(cluster="stage")])
    # when
    store.day_replace(cluster="prod", day=D1, rows=[])
    # then
    assert store.days(cluster="prod") == {D2: 1, D3: 1}
    assert store.days(cluster="stage") == {D1: 1}
    assert store.rows(cluster="stage", day_from=D1, day_to=D3) == [make_row(cluster="stage")]


def test_filters_by_day_range_namespace_and_deployment_with_paging(store):
    for day in (D1, D2, D3):
        store.day_replace(
            cluster="prod",
            day=day,
            rows=[
                make_row(day=day),
                make_row(day=day, deployment="web", container="web"),
                make_row(day=day, namespace="pay", deployment="api", container="api"),
            ],
        )
    assert store.count(cluster="prod", day_from=D1, day_to=D3) == 9
    assert store.count(cluster="prod", day_from=D2, day_to=D3) == 6
    assert [(r.day, r.deployment) for r in store.rows(cluster="prod", day_from=D1, day_to=D2, namespace="shop")] == [
        (D1, "cart"),
        (D1, "web"),
        (D2, "cart"),
        (D2, "web"),
    ]
    assert [r.day for r in store.rows(cluster="prod", day_from=D1, day_to=D3, deployment="api")] == [D1, D2, D3]
    assert store.count(cluster="prod", day_from=D1, day_to=D3, namespace="pay", deployment="api") == 3
    page = store.rows(cluster="prod", day_from=D1, day_to=D3, limit=2, offset=3)
    assert [(r.day, r.namespace, r.deployment) for r in page] == [(D2, "pay", "api"), (D2, "shop", "cart")]
    assert store.rows(cluster="nowhere", day_from=D1, day_to=D3) == []


def test_rows_for_another_day_are_refused(store):
    with pytest.raises(ValueError, match="belongs to prod 2026-03-02"):
        store.day_replace(cluster="prod", day=D1, rows=[make_row(day=D2)])
    assert store.days(cluster="prod") == {}


def test_values_with_quotes_are_stored_verbatim(store):
    row = make_row(namespace="o'neil", deployment="x\\y", container="c'")
    store.day_replace(cluster="prod", day=D1, rows=[row])
    assert store.rows(cluster="prod", day_from=D1, day_to=D1, namespace="o'neil") == [row]


def test_schema_creation_is_idempotent(store):
    store.day_replace(cluster="prod", day=D1, rows=[make_row()])
    store.ensure_schema()
    store.ensure_schema()
    assert store.count(cluster="prod", day_from=D1, day_to=D1) == 1


def test_stats_are_the_refresh_columns_of_the_range(store):
    store.day_replace(cluster="prod", day=D1, rows=[make_row(), make_row(container="sidecar", limit_cpu_m=None)])
    store.day_replace(cluster="prod", day=D3, rows=[make_row(day=D3, pod_count=None)])
    store.day_replace(cluster="stage", day=D1, rows=[make_row(cluster="stage")])
    stats = store.stats(cluster="prod", day_from=D1, day_to=D2)
    assert stats == [
        (D1, "shop", "cart", "cart", 3, 0.25, 25.0, 300.5, 58.69140625, 1000, 512, 2, 12.5),
        (D1, "shop", "cart", "sidecar", 3, 0.25, 25.0, 300.5, 58.69140625, None, 512, 2, 12.5),
    ]
    assert [s.pod_count for s in store.stats(cluster="prod", day_from=D1, day_to=D3)] == [3, 3, None]


@pytest.mark.parametrize("engine", ["clickhouse-18.16", "chdb"])
def test_a_table_made_before_the_feedback_columns_gains_them(request, engine):
    """A release's table without ``oom_kills``/``throttled_pct``: ``ensure_schema`` adds them, keeps the rows."""
    if engine == "chdb":
        executor, door = request.getfixturevalue("chdb_executor"), None
    else:
        door = ClickHouseDoor.from_url(request.getfixturevalue("clickhouse_url"))
        executor = door
    executor.execute("DROP TABLE IF EXISTS kubedoor_daily_peaks")
    old_ddl = ch.DAILY_PEAKS_CREATE_SQL.replace(
        "collected_at DateTime('UTC'),\n    oom_kills Nullable(UInt32),\n    throttled_pct Nullable(Float64)",
        "collected_at DateTime('UTC')",
    ).format(ttl="")
    assert "oom_kills" not in old_ddl
    executor.execute(old_ddl)
    old_columns = [c for c in ch.DAILY_PEAKS_COLUMNS if c not in ("oom_kills", "throttled_pct")]
    executor.insert(
        "INSERT INTO kubedoor_daily_peaks (" + ", ".join(old_columns) + ") VALUES",
        old_columns,
        [{k: v for k, v in _ch_values(make_row()).items() if k in old_columns}],
    )
    store = ClickHouseStore(executor)
    # when
    store.ensure_schema()
    store.ensure_schema()
    # then
    (old,) = store.rows(cluster="prod", day_from=D1, day_to=D1)
    assert (old.oom_kills, old.throttled_pct, old.p95_cpu_cores) == (None, None, 0.25)
    store.day_replace(cluster="prod", day=D3, rows=[make_row(day=D3)])
    assert [(s.oom_kills, s.throttled_pct) for s in store.stats(cluster="prod", day_from=D1, day_to=D3)] == [
        (None, None),
        (2, 12.5),
    ]
    if door is not None:
        door.close()

"""collect_peaks, clickhouse_migrate and import_kubedoor, against the real Prometheus and ClickHouse."""

from __future__ import annotations

import datetime
import io

import pytest
from django.core.management import CommandError, call_command

from apps.audit.models import AuditEvent
from apps.control.models import Microservice
from apps.metrics.clickhouse import ClickHouseDoor
from apps.metrics.models import CollectionRun, DailyPeak
from apps.metrics.store import OrmStore
from tests.factories import ClusterFactory, MicroserviceFactory
from tests.metrics.test_store import make_row
from tests.servers.prometheus import CLUSTER_LABEL, TIME_ZONE

# KubeDoor 0.2's tables with its column layout; 18.16 lacks column comments' later syntax, the
# PRIMARY KEY clause and TTL, so those are left out (they do not change the columns).
KUBEDOOR_RES_CONTROL_DDL = """
CREATE TABLE k8s_res_control (
    env String, namespace String, deployment String,
    pod_count_init UInt8 DEFAULT 0, pod_count UInt8 DEFAULT 0, pod_count_manual Int16 DEFAULT -1,
    p95_pod_cpu_pct Float32 DEFAULT -1, p95_pod_mem_pct Float32 DEFAULT -1,
    request_cpu_m Int32 DEFAULT -1, request_mem_mb Int32 DEFAULT -1,
    limit_cpu_m Int32 DEFAULT -1, limit_mem_mb Int32 DEFAULT -1,
    update DateTime('Asia/Shanghai'),
    pod_mem_saved_mb Float32 DEFAULT -1, pod_qps Float32 DEFAULT -1, pod_g1gc_qps Float32 DEFAULT -1,
    pod_count_ai Int16 DEFAULT -1, pod_qps_ai Float32 DEFAULT -1, pod_load_ai Float32 DEFAULT -1,
    pod_g1gc_qps_ai Float32 DEFAULT -1, update_ai DateTime('Asia/Shanghai')
) ENGINE = MergeTree ORDER BY (env, namespace, deployment)
"""
KUBEDOOR_RESOURCES_DDL = """
CREATE TABLE k8s_resources (
    date DateTime('Asia/Shanghai'), env String, namespace String, deployment String,
    pod_count UInt8, p95_pod_load Float32, p95_pod_cpu_pct Float32, p95_pod_wss_mb Float32,
    p95_pod_wss_pct Float32, limit_pod_cpu_m Float32, limit_pod_mem_mb Float32,
    request_pod_cpu_m Float32, request_pod_mem_mb Float32, p95_pod_qps Float32,
    p95_pod_g1gc_qps Float32, pod_jvm_max_mb Float32
) ENGINE = MergeTree PARTITION BY toYYYYMM(date) ORDER BY (date, env, namespace, deployment)
"""
CONTROL_COLUMNS = (
    "env", "namespace", "deployment", "pod_count_init", "pod_count", "pod_count_manual", "p95_pod_cpu_pct",
    "p95_pod_mem_pct", "request_cpu_m", "request_mem_mb", "limit_cpu_m", "limit_mem_mb", "update", "pod_count_ai",
    "update_ai",
)  # fmt: skip
JUNE_1 = datetime.datetime(2025, 6, 1, 4, tzinfo=datetime.UTC)
JUNE_2 = datetime.datetime(2025, 6, 2, 4, tzinfo=datetime.UTC)
CONTROL_ROWS = [
    ("prod", "shop", "cart", 3, 3, -1, 41.5, 60.25, 250, 512, 1000, 1024, JUNE_1, -1, JUNE_1),
    ("prod", "shop", "cart", 3, 4, 6, 42.5, 61.25, 300, 600, 1000, 1024, JUNE_2, 5, JUNE_2),  # the latest wins
    ("prod", "pay", "api", 2, 2, 0, -1, -1, -1, -1, -1, -1, JUNE_2, -1, JUNE_2),
    ("prod", "kube-system", "coredns", 2, 2, -1, 1, 1, 10, 10, 100, 100, JUNE_2, -1, JUNE_2),
    ("stage", "shop", "cart", 1, 1, -1, 1, 1, 10, 10, 100, 100, JUNE_2, -1, JUNE_2),
]
RESOURCE_COLUMNS = (
    "date", "env", "namespace", "deployment", "pod_count", "p95_pod_load", "p95_pod_cpu_pct", "p95_pod_wss_mb",
    "p95_pod_wss_pct", "limit_pod_cpu_m", "limit_pod_mem_mb", "request_pod_cpu_m", "request_pod_mem_mb",
    "p95_pod_qps", "p95_pod_g1gc_qps", "pod_jvm_max_mb",
)  # fmt: skip
PEAK_1 = datetime.datetime(2025, 6, 1, 3, 30, tzinfo=datetime.UTC)  # 11:30 in Shanghai
PEAK_2 = datetime.datetime(2025, 6, 2, 3, 30, tzinfo=datetime.UTC)
RESOURCE_ROWS = [
    (PEAK_1, "prod", "shop", "cart", 3, 0.25, 25, 300.5, 29.5, 1000, 1024, 250, 512, -1, -1, -1),
    (PEAK_1, "prod", "pay", "api", 2, 0.5, -1, 128, -1, -1, -1, 100, 128, -1, -1, -1),
    (PEAK_2, "prod", "shop", "cart", 4, 0.375, 37.5, 310, 30.25, 1000, 1024, 250, 512, -1, -1, -1),
    (PEAK_2, "stage", "shop", "cart", 1, 9, 9, 9, 9, 9, 9, 9, 9, -1, -1, -1),
]


def test_collect_peaks_runs_synchronously_with_progress_and_summary(prometheus_server, db, capsys):
    ClusterFactory(
        name="prod",
        prometheus_url=prometheus_server.url,
        prometheus_label_key=CLUSTER_LABEL,
        prometheus_label_value="prod",
        time_zone=TIME_ZONE,
    )
    out = io.StringIO()
    call_command("collect_peaks", "--cluster", "prod", "--days", "7", "--concurrency", "2", stdout=out)
    run = CollectionRun.objects.get()
    assert (run.state, run.concurrency, run.services_added) == ("done", 2, 7)
    assert out.getvalue().startswith(f"run #{run.pk} done: ")
    assert "control table: 7 added, 0 updated, 0 vanished, 0 seen unmanaged" in out.getvalue()
    assert f"{run.progress_total}/{run.progress_total}" in capsys.readouterr().err  # the tqdm bar
    for day in prometheus_server.days:
        assert DailyPeak.objects.filter(day=day).count() == 9


def test_collect_peaks_fails_loudly(db):
    ClusterFactory(name="prod", prometheus_url="http://127.0.0.1:9")
    with pytest.raises(CommandError, match="is unreachable"):
        call_command("collect_peaks", "--cluster", "prod", "--days", "3", "--no-progress", stdout=io.StringIO())
    with pytest.raises(CommandError, match="No cluster named 'nope'"):
        call_command("collect_peaks", "--cluster", "nope", stdout=io.StringIO())


@pytest.mark.django_db
def test_clickhouse_migrate_is_idempotent(clickhouse_url):
    out = io.StringIO()
    call_command("clickhouse_migrate", "--clickhouse-url", clickhouse_url, stdout=out)
    call_command("clickhouse_migrate", "--clickhouse-url", clickhouse_url, stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("kubedoor_daily_peaks ready on ClickHouse 18.16, without")
    assert lines[0] == lines[1]
    door = ClickHouseDoor.from_url(clickhouse_url)
    assert door.execute("SELECT count() FROM kubedoor_daily_peaks") == [(0,)]
    assert door.execute("SELECT partition_key, sorting_key FROM system.tables WHERE name = 'kubedoor_daily_peaks'") == [
        ("toYYYYMM(day)", "cluster, namespace, deployment, day, container")
    ]
    door.close()


def test_clickhouse_migrate_needs_a_url(db, settings):
    settings.CLICKHOUSE_URL = ""
    with pytest.raises(CommandError, match="CLICKHOUSE_URL is not set"):
        call_command("clickhouse_migrate", stdout=io.StringIO())


@pytest.mark.django_db
def test_import_kubedoor_reads_0_2_tables_idempotently(clickhouse_url):
    # given: KubeDoor 0.2's tables in a real ClickHouse, and a day KubeDoor already collected itself
    source = ClickHouseDoor.from_url(clickhouse_url)
    source.execute(KUBEDOOR_RES_CONTROL_DDL)
    source.execute(KUBEDOOR_RESOURCES_DDL)
    for table, columns, rows in (
        ("k8s_res_control", CONTROL_COLUMNS, CONTROL_ROWS),
        ("k8s_resources", RESOURCE_COLUMNS, RESOURCE_ROWS),
    ):
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES"
        source.insert(sql, columns, [dict(zip(columns, row, strict=True)) for row in rows])
    source.close()
    prod = ClusterFactory(name="prod", time_zone="Asia/Shanghai")
    MicroserviceFactory(cluster=prod, namespace="pay", name="api", replicas_measured=9)
    collected_day = datetime.date(2025, 6, 2)
    OrmStore().day_replace(cluster="prod", day=collected_day, rows=[make_row(day=collected_day)])
    # when
    out = io.StringIO()
    call_command("import_kubedoor", "--clickhouse-url", clickhouse_url, "--cluster", "prod", stdout=out)
    # then: the latest 0.2 control row wins, -1 became null, excluded namespaces and other envs are ignored
    assert out.getvalue().splitlines() == [
        "control table: 1 created, 1 updated, 0 unchanged",
        "archive: 2 rows in 1 days (1 days kept: already collected by KubeDoor)",
    ]
    cart = Microservice.objects.get(namespace="shop", name="cart")
    assert (cart.replicas_initial, cart.replicas_measured, cart.replicas_specified, cart.replicas_recommended) == (
        3,
        4,
        6,
        5,
    )
    assert (cart.p95_cpu_pct, cart.p95_mem_pct) == (42.5, 61.25)
    assert (cart.request_cpu_m, cart.request_mem_mib, cart.limit_cpu_m, cart.limit_mem_mib) == (300, 600, 1000, 1024)
    api = Microservice.objects.get(namespace="pay", name="api")
    assert (api.replicas_measured, api.replicas_specified, api.request_cpu_m, api.limit_mem_mib, api.p95_cpu_pct) == (
        2,
        0,
        None,
        None,
        None,
    )
    assert not Microservice.objects.filter(namespace="kube-system").exists()
    imported = {(r.deployment, r.day): r for r in DailyPeak.objects.filter(step_seconds=0)}
    assert set(imported) == {("cart", datetime.date(2025, 6, 1)), ("api", datetime.date(2025, 6, 1))}
    cart_day = imported[("cart", datetime.date(2025, 6, 1))]
    assert (cart_day.container, cart_day.pod_count, cart_day.p95_cpu_cores, cart_day.p95_mem_mib) == (
        "cart",
        3,
        0.25,
        300.5,
    )
    assert cart_day.window_end == datetime.datetime(2025, 6, 1, 3, 30, tzinfo=datetime.UTC)  # 11:30 Shanghai
    api_day = imported[("api", datetime.date(2025, 6, 1))]
    assert (api_day.p95_cpu_pct, api_day.limit_cpu_m, api_day.request_cpu_m) == (None, None, 100)
    assert DailyPeak.objects.get(day=collected_day).step_seconds == 30  # kept
    assert AuditEvent.objects.filter(action="microservice.import").count() == 2
    # when: run again
    again = io.StringIO()
    call_command("import_kubedoor", "--clickhouse-url", clickhouse_url, "--cluster", "prod", stdout=again)
    # then: nothing new
    assert again.getvalue().splitlines()[0] == "control table: 0 created, 0 updated, 2 unchanged"
    assert DailyPeak.objects.count() == 3
    assert Microservice.objects.count() == 2
    assert AuditEvent.objects.filter(action="microservice.import").count() == 2
    assert AuditEvent.objects.filter(action="kubedoor.import").count() == 2


def test_import_kubedoor_reports_an_unreachable_clickhouse(db):
    ClusterFactory(name="prod")
    with pytest.raises(CommandError, match="ClickHouse"):
        call_command(
            "import_kubedoor",
            "--clickhouse-url",
            "clickhouse://default@127.0.0.1:9/x",
            "--cluster",
            "prod",
            stdout=io.StringIO(),
        )
    assert Microservice.objects.count() == 0


def _kubedoor_tables_load(url: str, *, control: list[tuple], resources: list[tuple]) -> None:
    source = ClickHouseDoor.from_url(url)
    source.execute(KUBEDOOR_RES_CONTROL_DDL)
    source.execute(KUBEDOOR_RESOURCES_DDL)
    for table, columns, rows in (
        ("k8s_res_control", CONTROL_COLUMNS, control),
        ("k8s_resources", RESOURCE_COLUMNS, resources),
    ):
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES"
        source.insert(sql, columns, [dict(zip(columns, row, strict=True)) for row in rows])
    source.close()


@pytest.mark.django_db
def test_import_kubedoor_keeps_rows_whose_env_is_empty(clickhouse_url):
    # given: 0.2 rows added by hand (env ''), next to the cluster's own rows and another env's
    control = [
        ("", "shop", "hand", 1, 2, 5, 12.5, 33.75, 150, 256, 500, 768, JUNE_1, 4, JUNE_1),
        ("", "shop", "cart", 3, 3, -1, 41.5, 60.25, 250, 512, 1000, 1024, JUNE_1, -1, JUNE_1),
        ("prod", "shop", "cart", 3, 4, 6, 42.5, 61.25, 300, 600, 1000, 1024, JUNE_2, 5, JUNE_2),  # the later wins
        ("", "kube-system", "coredns", 2, 2, -1, 1, 1, 10, 10, 100, 100, JUNE_2, -1, JUNE_2),  # excluded namespace
        ("stage", "shop", "orders", 1, 1, -1, 1, 1, 10, 10, 100, 100, JUNE_2, -1, JUNE_2),  # another env
    ]
    resources = [
        (PEAK_1, "", "shop", "hand", 2, 0.125, 12.5, 200.5, 26.25, 500, 768, 150, 256, -1, -1, -1),
        (PEAK_1, "stage", "shop", "orders", 1, 9, 9, 9, 9, 9, 9, 9, 9, -1, -1, -1),
    ]
    _kubedoor_tables_load(clickhouse_url, control=control, resources=resources)
    ClusterFactory(name="prod", time_zone="Asia/Shanghai")
    # when
    out = io.StringIO()
    call_command("import_kubedoor", "--clickhouse-url", clickhouse_url, "--cluster", "prod", stdout=out)
    # then: the hand-made rows are in the control table with their exact values; stage's are not
    assert out.getvalue().splitlines() == [
        "control table: 2 created, 0 updated, 0 unchanged",
        "archive: 1 rows in 1 days (0 days kept: already collected by KubeDoor)",
    ]
    hand = Microservice.objects.get(namespace="shop", name="hand")
    assert (hand.replicas_initial, hand.replicas_measured, hand.replicas_specified, hand.replicas_recommended) == (
        1,
        2,
        5,
        4,
    )
    assert (hand.p95_cpu_pct, hand.p95_mem_pct) == (12.5, 33.75)
    assert (hand.request_cpu_m, hand.request_mem_mib, hand.limit_cpu_m, hand.limit_mem_mib) == (150, 256, 500, 768)
    cart = Microservice.objects.get(namespace="shop", name="cart")
    assert (cart.replicas_measured, cart.replicas_specified, cart.request_cpu_m) == (4, 6, 300)
    assert sorted(Microservice.objects.values_list("name", flat=True)) == ["cart", "hand"]
    (hand_day,) = DailyPeak.objects.filter(step_seconds=0)
    assert (hand_day.deployment, hand_day.day, hand_day.pod_count, hand_day.p95_cpu_cores, hand_day.p95_mem_pct) == (
        "hand",
        datetime.date(2025, 6, 1),
        2,
        0.125,
        26.25,
    )

"""The admin's "Import from KubeDoor": uploads through a real Celery worker, ClickHouse connections, refusals."""

from __future__ import annotations

import datetime
import io
import json
import time

import pytest
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.control.models import Cluster, Microservice
from apps.metrics.clickhouse import ClickHouseDoor
from apps.metrics.importer import agent_settings_map
from apps.metrics.models import DailyPeak, ImportRun
from tests.factories import ClusterFactory, UserFactory
from tests.metrics.test_commands import KUBEDOOR_RES_CONTROL_DDL

ADD_URL = "admin:metrics_importrun_add"
UPDATED = datetime.datetime(2025, 6, 1, 4, tzinfo=datetime.UTC)

# What `SELECT * FROM kubedoor.<table> FORMAT JSONEachRow` prints (ClickHouse quotes 64-bit integers;
# these columns are narrower and come out bare). Only the columns the import reads, plus one it ignores.
CONTROL_LINES = [
    {"env": "", "namespace": "shop", "deployment": "hand", "pod_count_init": 1, "pod_count": 2,
     "pod_count_manual": 5, "p95_pod_cpu_pct": 12.5, "p95_pod_mem_pct": 33.75, "request_cpu_m": 150,
     "request_mem_mb": 256, "limit_cpu_m": 500, "limit_mem_mb": 768, "update": "2025-06-01 12:00:00",
     "pod_count_ai": 4, "pod_qps": -1},
    {"env": "prod", "namespace": "shop", "deployment": "cart", "pod_count_init": 3, "pod_count": 3,
     "pod_count_manual": -1, "p95_pod_cpu_pct": 41.5, "p95_pod_mem_pct": 60.25, "request_cpu_m": 250,
     "request_mem_mb": 512, "limit_cpu_m": 1000, "limit_mem_mb": 1024, "update": "2025-06-01 12:00:00",
     "pod_count_ai": -1},
    {"env": "prod", "namespace": "shop", "deployment": "cart", "pod_count_init": 3, "pod_count": 4,
     "pod_count_manual": 6, "p95_pod_cpu_pct": 42.5, "p95_pod_mem_pct": 61.25, "request_cpu_m": 300,
     "request_mem_mb": 600, "limit_cpu_m": 1000, "limit_mem_mb": 1024, "update": "2025-06-02 12:00:00",
     "pod_count_ai": 5},
    {"env": "stage", "namespace": "shop", "deployment": "orders", "pod_count_init": 1, "pod_count": 1,
     "pod_count_manual": -1, "p95_pod_cpu_pct": 1, "p95_pod_mem_pct": 1, "request_cpu_m": 10,
     "request_mem_mb": 10, "limit_cpu_m": 100, "limit_mem_mb": 100, "update": "2025-06-02 12:00:00",
     "pod_count_ai": -1},
]  # fmt: skip
RESOURCE_LINES = [
    {"date": "2025-06-01 11:30:00", "env": "", "namespace": "shop", "deployment": "hand", "pod_count": 2,
     "p95_pod_load": 0.125, "p95_pod_cpu_pct": 12.5, "p95_pod_wss_mb": 200.5, "p95_pod_wss_pct": 26.25,
     "limit_pod_cpu_m": 500, "limit_pod_mem_mb": 768, "request_pod_cpu_m": 150, "request_pod_mem_mb": 256},
    {"date": "2025-06-01 11:30:00", "env": "prod", "namespace": "shop", "deployment": "cart", "pod_count": 3,
     "p95_pod_load": 0.25, "p95_pod_cpu_pct": 25, "p95_pod_wss_mb": 300.5, "p95_pod_wss_pct": 29.5,
     "limit_pod_cpu_m": 1000, "limit_pod_mem_mb": 1024, "request_pod_cpu_m": 250, "request_pod_mem_mb": 512},
    {"date": "2025-06-01 14:00:00", "env": "prod", "namespace": "shop", "deployment": "cart", "pod_count": 4,
     "p95_pod_load": 0.5, "p95_pod_cpu_pct": 20, "p95_pod_wss_mb": 250, "p95_pod_wss_pct": 31,
     "limit_pod_cpu_m": 1000, "limit_pod_mem_mb": 1024, "request_pod_cpu_m": 250, "request_pod_mem_mb": 512},
]  # fmt: skip
AGENT_STATUS_LINES = [
    {"env": "prod", "collect": True, "peak_hours": "09:15:00-10:45:00", "admission": True,
     "admission_namespace": "[\"shop\"]", "nms_not_confirm": False, "scheduler": False},
    {"env": "stage", "collect": False, "peak_hours": "20:00:00-21:00:00", "admission": False,
     "admission_namespace": "", "nms_not_confirm": False, "scheduler": False},
]  # fmt: skip


def _jsonl(name: str, lines: list[dict]) -> io.BytesIO:
    data = io.BytesIO(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
    data.name = name
    return data


def _admin_client(*, csrf: bool = False) -> tuple[Client, object]:
    user = UserFactory(username="admin1", role="admin")
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client, user


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_an_upload_runs_on_a_real_worker_with_progress_to_the_end(celery_worker_factory):
    # given
    celery_worker_factory(name="import")
    cluster = ClusterFactory(name="prod", time_zone="Asia/Shanghai", collect_enabled=False)
    client, user = _admin_client()
    assert client.get(reverse(ADD_URL)).status_code == 200
    # when: the three tables uploaded
    response = client.post(
        reverse(ADD_URL),
        {
            "cluster": "prod",
            "env": "",
            "control_file": _jsonl("k8s_res_control.jsonl", CONTROL_LINES),
            "resources_file": _jsonl("k8s_resources.jsonl", RESOURCE_LINES),
            "agent_status_file": _jsonl("k8s_agent_status.jsonl", AGENT_STATUS_LINES),
        },
    )
    # then: the run's page, polled like the page's script does until the run ends
    run = ImportRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:metrics_importrun_change", args=[run.pk])
    status_url = reverse("admin:metrics_importrun_status", args=[run.pk])
    assert 'id="kd-progress"' in client.get(response["Location"]).content.decode()
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = client.get(status_url).json()
        seen.append(status["state"])
        if status["state"] in ("done", "failed"):
            break
        time.sleep(0.2)
    assert status["state"] == "done", status["error"]
    # rows read, as the reader aggregates them: control hand + cart (its two rows by the latest) = 2,
    # archive hand + cart (its two June 1 rows by the max) = 2, and prod's agent status row = 5
    assert (status["rows_read"], status["progress_done"], status["progress_pct"]) == (5, 5, 100)
    assert status["rows_written"] == 2 + 2  # two archive rows, two control rows created
    assert set(seen) <= {"queued", "running", "done"}
    page = client.get(response["Location"]).content.decode()
    assert "5/5 (100 %)" in page
    assert status_url not in page  # no more polling once done
    # the data: hand-made rows (env '') kept, stage ignored, the latest cart row won
    hand = Microservice.objects.get(cluster=cluster, namespace="shop", name="hand")
    assert (hand.replicas_initial, hand.replicas_measured, hand.replicas_specified, hand.replicas_recommended) == (
        1,
        2,
        5,
        4,
    )
    assert (hand.request_cpu_m, hand.request_mem_mib, hand.limit_cpu_m, hand.limit_mem_mib) == (150, 256, 500, 768)
    cart = Microservice.objects.get(cluster=cluster, namespace="shop", name="cart")
    assert (cart.replicas_measured, cart.replicas_specified, cart.replicas_recommended, cart.p95_cpu_pct) == (
        4,
        6,
        5,
        42.5,
    )
    assert not Microservice.objects.filter(name="orders").exists()
    cart_day = DailyPeak.objects.get(deployment="cart", day=datetime.date(2025, 6, 1))
    # the max of each column over the day's two rows, as ClickHouse's max() does
    assert (cart_day.pod_count, cart_day.p95_cpu_cores, cart_day.p95_cpu_pct, cart_day.p95_mem_mib) == (
        4,
        0.5,
        25.0,
        300.5,
    )
    assert cart_day.window_end == datetime.datetime(2025, 6, 1, 2, 45, tzinfo=datetime.UTC)  # 10:45 Shanghai
    # KubeDoor 1.x settings: the peak window and collection imported, the rest reported
    cluster.refresh_from_db()
    assert (cluster.peak_start, cluster.peak_end, cluster.collect_enabled) == (
        datetime.time(9, 15),
        datetime.time(10, 45),
        True,
    )
    run.refresh_from_db()
    assert run.result["settings_imported"] == {
        "collect_enabled": True,
        "peak_start": "09:15:00",
        "peak_end": "10:45:00",
    }
    assert sorted(run.result["settings_not_imported"]) == [
        "admission",
        "admission_namespace",
        "nms_not_confirm",
        "scheduler",
    ]
    assert run.upload == {}  # the uploaded rows are not kept after the run
    # audited, with the admin's identity on every event
    start = AuditEvent.objects.get(action="kubedoor.import_run.start")
    assert (start.actor_id, start.cluster, start.source) == (user.pk, "prod", "admin")
    assert start.after == {
        "run": run.pk,
        "env": "prod",
        "source": "upload",
        "read_from": "k8s_res_control.jsonl, k8s_resources.jsonl, k8s_agent_status.jsonl",
    }
    done = AuditEvent.objects.get(action="kubedoor.import")
    assert (done.actor_id, done.after["created"], done.after["rows_written"]) == (user.pk, 2, 2)
    assert AuditEvent.objects.get(action="cluster.update").actor_id == user.pk
    assert AuditEvent.objects.filter(action="microservice.import").count() == 2


@pytest.mark.django_db
def test_a_bad_upload_is_refused_naming_the_line():
    ClusterFactory(name="prod")
    client, _user = _admin_client()
    broken = [CONTROL_LINES[0], {k: v for k, v in CONTROL_LINES[1].items() if k != "pod_count"}]
    response = client.post(reverse(ADD_URL), {"cluster": "prod", "control_file": _jsonl("control.jsonl", broken)})
    assert response.status_code == 400
    assert "control.jsonl, line 2: missing column pod_count" in response.content.decode()
    not_json = _jsonl("control.jsonl", CONTROL_LINES[:1])
    not_json.seek(0, io.SEEK_END)
    not_json.write(b"env,namespace\n")
    not_json.seek(0)
    response = client.post(reverse(ADD_URL), {"cluster": "prod", "control_file": not_json})
    assert response.status_code == 400
    assert "control.jsonl, line 2: not a JSON object" in response.content.decode()
    text_number = _jsonl("control.jsonl", [{**CONTROL_LINES[0], "pod_count": "two"}])
    response = client.post(reverse(ADD_URL), {"cluster": "prod", "control_file": text_number})
    assert response.status_code == 400
    assert "control.jsonl, line 1: column pod_count is not a number: &#x27;two&#x27;" in response.content.decode()
    # nothing recorded, nothing audited
    assert ImportRun.objects.count() == 0
    assert not AuditEvent.objects.filter(action__startswith="kubedoor.").exists()


@pytest.mark.django_db
def test_the_import_page_is_for_admins_and_needs_the_csrf_token():
    ClusterFactory(name="prod")
    operator = UserFactory(username="operator1", role="operator")
    client = Client()
    client.force_login(operator)
    assert client.get(reverse(ADD_URL)).status_code == 403
    assert (
        client.post(reverse(ADD_URL), {"cluster": "prod", "clickhouse_url": "clickhouse://127.0.0.1:9"}).status_code
        == 403
    )
    csrf_client, _user = _admin_client(csrf=True)
    response = csrf_client.post(
        reverse(ADD_URL), {"cluster": "prod", "control_file": _jsonl("control.jsonl", CONTROL_LINES)}
    )
    assert response.status_code == 403
    assert ImportRun.objects.count() == 0
    assert not AuditEvent.objects.filter(action__startswith="kubedoor.").exists()


@pytest.mark.django_db
def test_a_clickhouse_import_reads_1x_settings_and_never_keeps_the_password(
    clickhouse_url, eager_celery, django_capture_on_commit_callbacks
):
    # given: 0.2's control table and 1.x's k8s_agent_status (Bool is UInt8 on this 18.16 server)
    door = ClickHouseDoor.from_url(clickhouse_url)
    door.execute(KUBEDOOR_RES_CONTROL_DDL)
    door.execute("CREATE TABLE k8s_resources (date DateTime, env String, namespace String, deployment String,"
                 " pod_count UInt8, p95_pod_load Float32, p95_pod_cpu_pct Float32, p95_pod_wss_mb Float32,"
                 " p95_pod_wss_pct Float32, limit_pod_cpu_m Float32, limit_pod_mem_mb Float32,"
                 " request_pod_cpu_m Float32, request_pod_mem_mb Float32) ENGINE = Memory")  # fmt: skip
    door.execute(
        "CREATE TABLE k8s_agent_status (env String, collect UInt8, peak_hours String, admission UInt8,"
        " admission_namespace String) ENGINE = Memory"
    )
    status = ("env", "collect", "peak_hours", "admission", "admission_namespace")
    door.insert(
        f"INSERT INTO k8s_agent_status ({', '.join(status)}) VALUES",
        status,
        [dict(zip(status, ("prod", 0, "20:00:00-21:30:00", 1, "shop"), strict=True))],
    )
    control = ("env", "namespace", "deployment", "pod_count_init", "pod_count", "pod_count_manual", "request_cpu_m")
    door.insert(
        f"INSERT INTO k8s_res_control ({', '.join(control)}, update) VALUES",
        (*control, "update"),
        [dict(zip((*control, "update"), ("", "shop", "hand", 1, 2, 3, 150, UPDATED), strict=True))],
    )
    door.close()
    ClusterFactory(name="prod", collect_enabled=True)
    client, _user = _admin_client()
    base, database = clickhouse_url.rsplit("/", 1)
    host = base.split("@", 1)[1]
    form = {"cluster": "prod", "clickhouse_url": f"clickhouse://{host}", "database": database, "user": "default"}
    # when: a password the server refuses
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse(ADD_URL), {**form, "password": "s3cret-Pw"})
    # then: the run failed with ClickHouse's message; the password is nowhere
    failed = ImportRun.objects.get()
    assert response.status_code == 302
    assert failed.state == "failed"
    assert failed.error.startswith("ClickHouse: ")
    assert failed.source_label == f"clickhouse://default@{host}/{database}"
    page = client.get(reverse("admin:metrics_importrun_change", args=[failed.pk])).content.decode()
    assert "ClickHouse: Code: " in page
    for text in (
        json.dumps(list(ImportRun.objects.values()), default=str),
        json.dumps(list(AuditEvent.objects.values("after", "before", "message")), default=str),
        page,
        client.get(reverse(ADD_URL)).content.decode(),
    ):
        assert "s3cret-Pw" not in text
    assert AuditEvent.objects.get(action="kubedoor.import_run.fail").result == "error"
    # when: the right (empty) password
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse(ADD_URL), form)
    run = ImportRun.objects.exclude(pk=failed.pk).get()
    assert run.state == "done", run.error
    assert Microservice.objects.get(name="hand").replicas_specified == 3
    cluster = Cluster.objects.get(name="prod")
    assert (cluster.peak_start, cluster.peak_end, cluster.collect_enabled) == (
        datetime.time(20, 0),
        datetime.time(21, 30),
        False,
    )
    assert run.result["settings_not_imported"] == {
        "admission": {"value": 1, "reason": "admission is switched per cluster with its admission mode"
                      " (off/audit/enforce), not imported"},
        "admission_namespace": {"value": "shop", "reason": "1.x's admission namespaces are not the controlled"
                                " namespaces; set those by hand"},
    }  # fmt: skip


@pytest.mark.django_db
def test_connection_details_keep_credentials_out_of_the_url():
    ClusterFactory(name="prod")
    client, _user = _admin_client()
    response = client.post(
        reverse(ADD_URL), {"cluster": "prod", "clickhouse_url": "clickhouse://u:pw@127.0.0.1:9000", "database": "x"}
    )
    assert response.status_code == 400
    assert "Put the user and password in their own fields, not in the URL." in response.content.decode()
    response = client.post(reverse(ADD_URL), {"cluster": "prod"})
    assert response.status_code == 400
    assert ImportRun.objects.count() == 0


def test_1x_settings_that_do_not_parse_are_reported_not_guessed():
    fields, skipped = agent_settings_map({"env": "prod", "collect": "false", "peak_hours": "10:00-late"})
    assert fields == {"collect_enabled": False}
    assert skipped == {"peak_hours": {"value": "10:00-late", "reason": "not HH:MM:SS-HH:MM:SS"}}
    fields, skipped = agent_settings_map({"env": "prod", "peak_hours": "10:00:00-11:30:00", "scheduler": 1})
    assert fields == {"peak_start": datetime.time(10, 0), "peak_end": datetime.time(11, 30)}
    assert skipped == {"scheduler": {"value": 1, "reason": "KubeDoor 1.x's pod scheduler has no counterpart"}}

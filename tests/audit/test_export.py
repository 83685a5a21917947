"""Export of a filtered range as CSV and JSON Lines, from the API and the admin, streamed."""

import datetime
import json

import pytest
from django.http import StreamingHttpResponse

from apps.audit.services import AuditDraft, audit_events_record

pytestmark = pytest.mark.django_db

UTC = datetime.UTC


@pytest.fixture
def planted():
    """Four events: two in prod in January (one with a formula-like message), one in prod in March, one in dev."""
    audit_events_record(
        drafts=[
            AuditDraft(
                action="microservice.scale",
                actor_name="alice",
                source="api",
                cluster="prod",
                namespace="shop",
                name="cart",
                before={"replicas": 2},
                after={"replicas": 5},
                message='=HYPERLINK("http://evil")',
                at=datetime.datetime(2026, 1, 10, 9, 30, tzinfo=UTC),
                remote_addr="10.0.0.7",
                request_id="r-1",
            ),
            AuditDraft(
                action="microservice.restart",
                actor_name="bob",
                source="admin",
                cluster="prod",
                namespace="shop",
                name="pay",
                message="ok, 重启",
                at=datetime.datetime(2026, 1, 20, 18, 0, tzinfo=UTC),
            ),
            AuditDraft(
                action="microservice.scale",
                actor_name="alice",
                source="api",
                cluster="prod",
                at=datetime.datetime(2026, 3, 1, tzinfo=UTC),
            ),
            AuditDraft(
                action="microservice.scale",
                actor_name="carol",
                source="api",
                cluster="dev",
                at=datetime.datetime(2026, 1, 15, tzinfo=UTC),
            ),
        ]
    )
    from apps.audit.models import AuditEvent

    return {event.name or event.cluster + "-" + event.at.strftime("%m"): event.pk for event in AuditEvent.objects.all()}


def _body(response) -> str:
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response.streaming_content).decode()


def test_api_exports_the_filtered_range_as_csv(viewer_api, planted):
    response = viewer_api.get(
        "/api/v1/audit-events/export/",
        {"format": "csv", "cluster": "prod", "since": "2026-01-01T00:00:00Z", "until": "2026-02-01T00:00:00Z"},
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="kubedoor-audit-')
    assert _body(response) == (
        "id,at,actor_name,source,action,cluster,namespace,name,result,message,before,after,request_id,remote_addr\r\n"
        f"{planted['cart']},2026-01-10T09:30:00+00:00,alice,api,microservice.scale,prod,shop,cart,ok,"
        '"\'=HYPERLINK(""http://evil"")","{""replicas"":2}","{""replicas"":5}",r-1,10.0.0.7\r\n'
        f'{planted["pay"]},2026-01-20T18:00:00+00:00,bob,admin,microservice.restart,prod,shop,pay,ok,"ok, 重启",,,,\r\n'
    )


def test_api_exports_json_lines_with_the_values_as_they_are(viewer_api, planted):
    response = viewer_api.get("/api/v1/audit-events/export/", {"format": "jsonl", "actor": "alice"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/jsonl; charset=utf-8"
    lines = _body(response).splitlines()
    assert [json.loads(line) for line in lines] == [
        {
            "id": planted["cart"],
            "at": "2026-01-10T09:30:00+00:00",
            "actor_name": "alice",
            "source": "api",
            "action": "microservice.scale",
            "cluster": "prod",
            "namespace": "shop",
            "name": "cart",
            "result": "ok",
            "message": '=HYPERLINK("http://evil")',
            "before": {"replicas": 2},
            "after": {"replicas": 5},
            "request_id": "r-1",
            "remote_addr": "10.0.0.7",
        },
        {
            "id": planted["prod-03"],
            "at": "2026-03-01T00:00:00+00:00",
            "actor_name": "alice",
            "source": "api",
            "action": "microservice.scale",
            "cluster": "prod",
            "namespace": "",
            "name": "",
            "result": "ok",
            "message": "",
            "before": None,
            "after": None,
            "request_id": "",
            "remote_addr": None,
        },
    ]


def test_api_export_refuses_an_unknown_format_and_users_without_the_audit_role(viewer_api, nobody, planted):
    response = viewer_api.get("/api/v1/audit-events/export/", {"format": "xlsx"})
    assert response.status_code == 400
    assert response.json()["errors"] == {"format": "Unknown export format xlsx: use csv or jsonl."}
    nobody_client = viewer_api.__class__()
    nobody_client.force_authenticate(nobody)
    assert nobody_client.get("/api/v1/audit-events/export/", {"format": "csv"}).status_code == 403


def test_admin_exports_the_changelists_filtered_events(client, viewer, planted):
    client.force_login(viewer)
    changelist = client.get("/admin/audit/auditevent/", {"cluster": "dev"})
    assert b'href="/admin/audit/auditevent/export/?cluster=dev&amp;format=csv"' in changelist.content
    response = client.get("/admin/audit/auditevent/export/", {"cluster": "dev", "format": "jsonl"})
    assert response.status_code == 200
    assert [json.loads(line)["id"] for line in _body(response).splitlines()] == [planted["dev-01"]]
    response = client.get("/admin/audit/auditevent/export/", {"actor_name": "alice", "format": "csv"})
    rows = _body(response).splitlines()
    assert [row.split(",")[0] for row in rows] == ["id", str(planted["cart"]), str(planted["prod-03"])]

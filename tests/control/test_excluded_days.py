"""The calendar of excluded days (issue 11 §4) through the API and the admin, audited with its reason."""

import datetime

import pytest
from django.test import Client

from apps.audit.models import AuditEvent
from apps.control.excluded_days import excluded_dates
from apps.control.models import ExcludedDay
from tests.factories import ClusterFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/clusters/prod/excluded-days/"
D = datetime.date(2026, 3, 1)


def day(n: int) -> datetime.date:
    return D + datetime.timedelta(days=n)


def test_an_operator_adds_changes_and_removes_a_day_each_audited_with_its_reason(cluster, operator_api):
    # when: a single day (no end)
    created = operator_api.post(URL, {"start": "2026-03-03", "reason": "load test"}, format="json")
    # then
    assert created.status_code == 201, created.json()
    body = created.json()
    assert {k: body[k] for k in ("cluster", "start", "end", "reason", "created_by")} == {
        "cluster": "prod",
        "start": "2026-03-03",
        "end": "2026-03-03",
        "reason": "load test",
        "created_by": "operator1",
    }
    event = AuditEvent.objects.get(action="excluded_day.create")
    assert (event.cluster, event.name, event.actor_name, event.source, event.message) == (
        "prod",
        "2026-03-03",
        "operator1",
        "api",
        "load test",
    )
    assert event.after == {"start": "2026-03-03", "end": "2026-03-03", "reason": "load test", "created_by": "operator1"}
    # when: widened to a range with another reason
    pk = body["id"]
    changed = operator_api.patch(f"{URL}{pk}/", {"end": "2026-03-05", "reason": "incident 42"}, format="json")
    # then
    assert changed.status_code == 200, changed.json()
    event = AuditEvent.objects.get(action="excluded_day.update")
    assert event.before == {"end": "2026-03-03", "reason": "load test"}
    assert event.after == {"end": "2026-03-05", "reason": "incident 42"}
    assert (event.name, event.message) == ("2026-03-03 – 2026-03-05", "incident 42")
    assert excluded_dates(cluster="prod", day_from=day(0), day_to=day(9)) == {day(2), day(3), day(4)}
    # when: removed
    assert operator_api.delete(f"{URL}{pk}/").status_code == 204
    # then
    assert not ExcludedDay.objects.exists()
    event = AuditEvent.objects.get(action="excluded_day.delete")
    assert (event.before["reason"], event.message, event.actor_name) == ("incident 42", "incident 42", "operator1")


def test_a_viewer_reads_the_calendar_but_cannot_write_it(cluster, viewer_api):
    # given
    ExcludedDay.objects.create(cluster=cluster, start=day(1), end=day(2), reason="promotion")
    ExcludedDay.objects.create(cluster=ClusterFactory(name="stage"), start=day(1), end=day(1), reason="other")
    # when
    listed = viewer_api.get(URL)
    refused = viewer_api.post(URL, {"start": "2026-03-03", "reason": "x"}, format="json")
    # then: only this cluster's days
    assert listed.status_code == 200
    assert [(r["start"], r["end"], r["reason"]) for r in listed.json()["results"]] == [
        ("2026-03-02", "2026-03-03", "promotion")
    ]
    assert refused.status_code == 403
    assert ExcludedDay.objects.count() == 2
    assert not AuditEvent.objects.filter(action__startswith="excluded_day.").exists()


def test_bad_input_is_a_400_naming_the_field_and_an_unknown_cluster_a_404_naming_it(cluster, operator_api):
    backwards = operator_api.post(URL, {"start": "2026-03-05", "end": "2026-03-04", "reason": "x"}, format="json")
    no_reason = operator_api.post(URL, {"start": "2026-03-05"}, format="json")
    unknown = operator_api.get("/api/v1/clusters/nowhere/excluded-days/")
    assert backwards.status_code == 400
    assert backwards.json()["errors"] == {"end": ["The last day must not be before the first day."]}
    assert no_reason.status_code == 400
    assert list(no_reason.json()["errors"]) == ["reason"]
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == "No cluster nowhere."
    assert not ExcludedDay.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="excluded_day.").exists()


def test_the_admin_adds_and_deletes_through_the_audited_service(cluster, operator):
    client = Client()
    client.force_login(operator)
    # the cluster's page links its calendar
    # when
    response = client.post(
        "/admin/control/excludedday/add/",
        {"cluster": cluster.pk, "start": "2026-03-04", "end": "", "reason": "incident 7"},
    )
    # then
    assert response.status_code == 302, response.context["adminform"].form.errors
    excluded = ExcludedDay.objects.get()
    assert (excluded.start, excluded.end, excluded.created_by) == (day(3), day(3), "operator1")
    event = AuditEvent.objects.get(action="excluded_day.create")
    assert (event.source, event.actor_name, event.message) == ("admin", "operator1", "incident 7")
    listed = client.get("/admin/control/excludedday/?cluster__name=prod")
    assert "incident 7" in listed.content.decode()
    # when
    response = client.post(f"/admin/control/excludedday/{excluded.pk}/delete/", {"post": "yes"})
    # then
    assert response.status_code == 302
    assert not ExcludedDay.objects.exists()
    assert AuditEvent.objects.get(action="excluded_day.delete").message == "incident 7"


def test_the_cluster_page_links_its_calendar(cluster, admin_user):
    ExcludedDay.objects.create(cluster=cluster, start=day(1), end=day(1), reason="x")
    client = Client()
    client.force_login(admin_user)
    page = client.get(f"/admin/control/cluster/{cluster.pk}/change/").content.decode()
    assert "/admin/control/excludedday/?cluster__name=prod" in page
    assert "1 in the calendar" in page

"""The one writer of beat entries (kubedoor_site/beat.py): crontab and one-off entries, by name."""

from __future__ import annotations

import datetime
import json

import pytest
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, PeriodicTask

from kubedoor_site.beat import Clocked, Crontab, periodic_task_disable, periodic_task_sync, periodic_tasks_delete

pytestmark = pytest.mark.django_db

AT = datetime.datetime(2030, 1, 2, 3, 4, tzinfo=datetime.UTC)


def test_a_crontab_entry_is_created_then_updated_in_place_then_deleted():
    # when
    first = periodic_task_sync(
        name="job",
        task="apps.x.tasks.job_task",
        schedule=Crontab(minute="45", hour="11", time_zone="Asia/Shanghai"),
        kwargs={"cluster": "prod"},
        description="a job",
    )
    # then
    entry = PeriodicTask.objects.get()
    assert entry == first
    assert (entry.name, entry.task, entry.one_off, entry.enabled, entry.description) == (
        "job",
        "apps.x.tasks.job_task",
        False,
        True,
        "a job",
    )
    assert json.loads(entry.kwargs) == {"cluster": "prod"}
    crontab = entry.crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_month, crontab.month_of_year, crontab.day_of_week) == (
        "45",
        "11",
        "*",
        "*",
        "*",
    )
    assert str(crontab.timezone) == "Asia/Shanghai"
    assert entry.clocked is None

    # when: another time, disabled
    second = periodic_task_sync(
        name="job", task="apps.x.tasks.job_task", schedule=Crontab(minute="5", hour="23"), enabled=False
    )
    # then: the same row
    assert second.pk == first.pk
    entry = PeriodicTask.objects.get()
    assert (entry.crontab.hour, entry.crontab.minute, str(entry.crontab.timezone), entry.enabled) == (
        "23",
        "5",
        "UTC",
        False,
    )

    # when: no schedule
    assert periodic_task_sync(name="job", task="apps.x.tasks.job_task", schedule=None) is None
    # then: the entry is gone; crontab rows are shared and stay
    assert not PeriodicTask.objects.exists()
    assert CrontabSchedule.objects.count() == 2


def test_crontab_rows_are_shared_between_entries():
    for name in ("a", "b"):
        periodic_task_sync(name=name, task="t", schedule=Crontab(minute="0", hour="9", time_zone="Europe/Berlin"))

    assert CrontabSchedule.objects.count() == 1
    assert PeriodicTask.objects.filter(crontab=CrontabSchedule.objects.get()).count() == 2


def test_a_clocked_entry_is_one_off_and_its_clocked_row_goes_with_it():
    # when
    entry = periodic_task_sync(name="once", task="t", schedule=Clocked(at=AT), kwargs={"operation_id": 1})
    # then
    assert (entry.one_off, entry.clocked.clocked_time, entry.crontab) == (True, AT, None)

    # when: the same time again
    periodic_task_sync(name="once", task="t", schedule=Clocked(at=AT))
    # then: the clocked row is kept
    assert list(ClockedSchedule.objects.values_list("pk", flat=True)) == [entry.clocked.pk]

    # when: a later time
    periodic_task_sync(name="once", task="t", schedule=Clocked(at=AT + datetime.timedelta(hours=1)))
    # then: the row is replaced
    assert [c.clocked_time for c in ClockedSchedule.objects.all()] == [AT + datetime.timedelta(hours=1)]
    assert ClockedSchedule.objects.get().pk != entry.clocked.pk

    # when: turned into a crontab
    entry = periodic_task_sync(name="once", task="t", schedule=Crontab(minute="0", hour="9"))
    # then
    assert (entry.one_off, entry.clocked) == (False, None)
    assert not ClockedSchedule.objects.exists()


def test_enabling_a_fired_one_off_entry_rearms_it():
    entry = periodic_task_sync(name="once", task="t", schedule=Clocked(at=AT))
    PeriodicTask.objects.filter(pk=entry.pk).update(last_run_at=AT, total_run_count=1)

    periodic_task_sync(name="once", task="t", schedule=Clocked(at=AT), enabled=True)

    assert PeriodicTask.objects.get().last_run_at is None


def test_delete_removes_the_named_entries_and_clocked_rows_no_other_entry_uses():
    periodic_task_sync(name="a", task="t", schedule=Clocked(at=AT))
    periodic_task_sync(name="b", task="t", schedule=Clocked(at=AT))
    periodic_task_sync(name="c", task="t", schedule=Crontab(minute="0", hour="9"))

    periodic_tasks_delete(names=["a", "c", "missing"])

    assert list(PeriodicTask.objects.values_list("name", flat=True)) == ["b"]
    assert list(ClockedSchedule.objects.all()) == [PeriodicTask.objects.get().clocked]


def test_disable_turns_an_entry_off():
    periodic_task_sync(name="once", task="t", schedule=Clocked(at=AT))

    periodic_task_disable(name="once")

    assert PeriodicTask.objects.get().enabled is False

"""Queue a Celery task by its registered name, so services never import the tasks that call them back.

Each app keeps its task names and typed ``<service>_enqueue`` functions in its own ``queue.py``;
the task decorators use the same name constants. ``send_task`` ignores ``task_always_eager``, so in
eager mode (``CELERY_TASK_ALWAYS_EAGER``, and tests that switch it on) the registered task is
applied in-process, as ``apply_async`` would do (loading the tasks modules first, as a worker
does: a process that only sends never imports them). This module imports no app.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubedoor_site.celery import app as celery_app


def task_send(
    name: str, *, kwargs: Mapping[str, Any], countdown: float | None = None, queue: str | None = None
) -> None:
    """Send ``name`` with ``kwargs`` to the broker (after ``countdown`` seconds, to ``queue`` or the
    default queue), or run it now when eager."""
    if celery_app.conf.task_always_eager:
        if name not in celery_app.tasks:
            # A web process has not imported the apps' tasks modules; load them as a worker does.
            celery_app.loader.import_default_modules()
        celery_app.tasks[name].apply(kwargs=dict(kwargs))
        return
    options: dict[str, Any] = {} if countdown is None else {"countdown": countdown}
    if queue:
        options["queue"] = queue
    celery_app.send_task(name, kwargs=dict(kwargs), **options)

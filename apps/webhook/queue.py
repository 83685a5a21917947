"""Tasks of the webhook app, named here (the names the task decorators in ``tasks.py`` use).

Beat's drift entry names its task by this string, so the services that write the entry never import
``tasks.py``.
"""

from __future__ import annotations

DRIFT_CHECK_TASK = "apps.webhook.tasks.drift_check_task"

"""The Celery application shared by the worker, beat and every process that queues tasks."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kubedoor_site.settings")

app = Celery("kubedoor")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

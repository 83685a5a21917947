"""WSGI entry point of the webhook process (``gunicorn -c python:apps.webhook.gunicorn_conf apps.webhook.wsgi``).

It runs the same settings with ``KUBEDOOR_PROCESS=webhook``: only the admission endpoint (a DRF view),
probes and metrics are routed (apps/webhook/process_urls.py), with no middleware at all, through
Django's handler with a direct way in for ``/mutate/<cluster>`` (apps/webhook/handler.py). The control
snapshot is loaded before the first request and kept fresh by a background thread.
"""

import gc
import os

os.environ["KUBEDOOR_PROCESS"] = "webhook"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kubedoor_site.settings")

import django  # noqa: E402

django.setup(set_prefix=False)  # as get_wsgi_application() does: import the apps' modules after it

from django.core import signals  # noqa: E402
from django.core.cache import close_caches  # noqa: E402
from django.core.handlers.base import reset_urlconf  # noqa: E402
from django.db import close_old_connections, connections, reset_queries  # noqa: E402
from django.urls import get_resolver  # noqa: E402

from apps.webhook.handler import WebhookHandler  # noqa: E402
from apps.webhook.snapshot import holder  # noqa: E402

application = WebhookHandler()
get_resolver().resolve("/mutate")  # compile the URL map before the first request
holder.ensure_started()
# The request thread never uses the database or a cache: reviews are answered from the snapshot, and
# the snapshot's refresher and the audit writer are threads with their own connections (Django's
# connections are per thread), which they check and close themselves. So Django's per-request
# receivers, which look for this thread's connections and caches to reset or close, find nothing to
# do, at ≈ 25 µs of CPU per review (bench/webhook/cpu.py): the webhook process does without them.
# Nor does it reset the thread's URLconf after each request: every request that sets one (those
# Django's handler answers) sets the same ROOT_URLCONF, and the reviews set none (handler.py).
# The first snapshot load above ran on this thread: its connection is closed here, once.
signals.request_started.disconnect(reset_queries)
signals.request_started.disconnect(close_old_connections)
signals.request_finished.disconnect(close_old_connections)
signals.request_finished.disconnect(close_caches)
signals.request_finished.disconnect(reset_urlconf)
connections.close_all()
# Everything loaded so far lives as long as the process: keep it out of the garbage collector's
# scans, so the collections that parsing reviews triggers only walk young objects.
gc.collect()
gc.freeze()
# The GIL's switch interval stays Python's 5 ms. At 1 ms, gunicorn's main loop (accepting and polling
# connections) and the request thread forced each other off the interpreter five times as often,
# and those hand-offs cost more than they saved: ≈ 20-35 µs of CPU per review under wrk at 1 and
# 16 connections (bench/webhook/threads.py). The audit writer gives the GIL up by itself every 100
# rows of a batch (apps/audit/services.py), so a review does not wait behind a whole batch.

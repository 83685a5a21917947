"""WSGI entry point of the webhook process (``gunicorn -c python:apps.webhook.gunicorn_conf apps.webhook.wsgi``).

It runs the same settings with ``KUBEDOOR_PROCESS=webhook``: only the admission endpoints, probes and
metrics are routed, with no session, CSRF or authentication middleware. The control snapshot is
loaded before the first request and kept fresh by a background thread.
"""

import os

os.environ["KUBEDOOR_PROCESS"] = "webhook"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kubedoor_site.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()

from apps.webhook.snapshot import holder  # noqa: E402

holder.ensure_started()

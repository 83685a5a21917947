"""The webhook process's WSGI handler: Django's, with a direct way in for ``POST /mutate/<cluster>``.

The webhook process answers one kind of request thousands of times a second, and a review's CPU is its
throughput (bench/webhook/cpu.py). Django's handler spends a good part of a review on steps that cannot
change this endpoint's answer in this process: it has no middleware, no database or cache on the
request thread (apps/webhook/wsgi.py), nothing that reverses URLs, and its URL map
(apps/webhook/process_urls.py) sends ``/mutate/<slug>`` to one view. So for a path that map resolves
to ``webhook-mutate`` the handler:

- matches the path with one precompiled expression — the route's own (``mutate/<slug:cluster>``, the
  slug converter's ``[-a-zA-Z0-9_]+``, anchored at both ends), which the URL map tries first — instead
  of walking the resolver, and calls the route's callback, ``AdmissionReviewView.as_view()``, with
  the same keyword argument;
- still builds Django's ``WSGIRequest`` and answers the view's ``HttpResponse`` with Django's status
  line and headers, logs a 4xx/5xx answer on ``django.request`` as Django does, and turns an
  exception that escapes the view into Django's answer for it (the view itself never raises);
- sends ``request_started`` / ``request_finished`` only to receivers that exist (the webhook process
  disconnects Django's: see apps/webhook/wsgi.py), and leaves out what only other requests need: the
  script prefix and URLconf of the thread (nothing here reverses a URL), the resolver match on the
  request (the view does not read it) and the transaction wrapper of ``ATOMIC_REQUESTS`` (refused
  below: the request thread has no database).

Every other path — probes, metrics, 404s, ``/mutate`` without a cluster — goes through Django's
handler unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core import signals
from django.core.handlers.exception import response_for_exception
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpResponse, HttpResponseBase
from django.urls import URLPattern, get_resolver
from django.utils.log import log_response

MUTATE_ROUTE = "webhook-mutate"
# The route ``mutate/<slug:cluster>`` as Django compiles it, with the URL map's leading "/": the slug
# converter's expression, nothing before or after (tests/webhook/test_handler.py holds the two equal).
MUTATE_PATH = re.compile(r"/mutate/(?P<cluster>[-a-zA-Z0-9_]+)")


def mutate_view(urlconf: str | None = None) -> Callable[..., HttpResponse]:
    """The callback the URL map routes ``/mutate/<cluster>`` to (``AdmissionReviewView.as_view()``)."""
    for pattern in get_resolver(urlconf).url_patterns:
        if isinstance(pattern, URLPattern) and pattern.name == MUTATE_ROUTE:
            return pattern.callback
    raise LookupError(f"the URL map routes no {MUTATE_ROUTE!r}")


class WebhookHandler(WSGIHandler):
    """Django's WSGI handler, with ``/mutate/<cluster>`` answered without the resolver and middleware."""

    def __init__(self) -> None:
        super().__init__()
        if settings.MIDDLEWARE:
            raise ImproperlyConfiguredWebhook("the webhook process runs without middleware")
        if any(database.get("ATOMIC_REQUESTS") for database in settings.DATABASES.values()):
            raise ImproperlyConfiguredWebhook("the webhook process's request thread never opens a transaction")
        self.mutate = mutate_view()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> HttpResponseBase:
        match = MUTATE_PATH.fullmatch(environ.get("PATH_INFO", ""))
        if match is None:
            return super().__call__(environ, start_response)
        handler_class = self.__class__
        if signals.request_started.receivers:
            signals.request_started.send(sender=handler_class, environ=environ)
        request = self.request_class(environ)
        response: HttpResponse
        try:
            response = self.mutate(request, cluster=match["cluster"])
        except Exception as exc:  # Django's answer to what escaped the view (it never lets anything escape)
            response = response_for_exception(request, exc)
        django_private: Any = response  # what Django's handler sets on every response it answers
        django_private._resource_closers.append(request.close)
        if response.status_code >= 400:
            log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request)
        django_private._handler_class = handler_class
        headers = list(response.items())
        if response.cookies:
            headers += [("Set-Cookie", cookie.output(header="")) for cookie in response.cookies.values()]
        start_response(f"{response.status_code} {response.reason_phrase}", headers)
        return response


class ImproperlyConfiguredWebhook(RuntimeError):
    """The settings give the webhook process something its direct way in would skip."""

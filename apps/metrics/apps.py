from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MetricsConfig(AppConfig):
    name = "apps.metrics"
    label = "metrics"
    verbose_name = _("Metrics")

    def ready(self) -> None:
        # httpx imports its transport (httpcore, and with it anyio) on the first Client, which in a worker
        # is a task's thread. anyio builds its lazy-import map with ``ast`` at import, and CPython 3.11's
        # AST construction keeps one recursion counter per interpreter: racing another thread's ``ast``
        # use (3.11 formats every traceback's carets with ``ast.parse``, e.g. Celery logging a retry) it
        # raised "SystemError: AST constructor recursion depth mismatch" and failed a collection. Import
        # them here, once, on the thread that sets Django up.
        import httpcore  # noqa: F401

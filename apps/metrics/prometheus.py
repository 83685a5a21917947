"""The one door to Prometheus (or a compatible API such as VictoriaMetrics): instant queries over HTTP.

Basic auth may be embedded in the URL (``https://user:pass@host``) and is sent as an
``Authorization`` header, never logged; a bearer token is optional. Every request has explicit
timeouts; 5xx answers and connection errors are retried a bounded number of times; a 4xx (a bad
query) fails at once with Prometheus' own error text. At most ``max_in_flight`` queries are in flight
to one backend URL from this process, however many clients and threads share it (a backend's
queries compete for its cores: more at once only queue there, and can time out).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import re
import threading
import time
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

logger = logging.getLogger(__name__)
# httpx logs every request at INFO: thousands of lines per collection. Errors are logged here instead.
logging.getLogger("httpx").setLevel(logging.WARNING)

# Prometheus' own --query.timeout defaults to 2 minutes; waiting longer than that is pointless.
DEFAULT_TIMEOUT = httpx.Timeout(120.0, connect=5.0)
DEFAULT_RETRIES = 2
RETRY_BACKOFF_SECONDS = 0.5
DEFAULT_MAX_IN_FLIGHT = 4

_slots: dict[str, threading.BoundedSemaphore] = {}
_slots_lock = threading.Lock()


def backend_slots(base_url: str, limit: int) -> threading.BoundedSemaphore:
    """The process-wide bound on queries in flight to ``base_url`` (the first client's ``limit`` sets it)."""
    with _slots_lock:
        if base_url not in _slots:
            _slots[base_url] = threading.BoundedSemaphore(limit)
        return _slots[base_url]


class PrometheusError(Exception):
    """Prometheus could not answer a query; the message is meant for people."""


class PrometheusUnavailable(PrometheusError):
    """Unreachable, timing out or answering 5xx after the retries."""


class PrometheusQueryError(PrometheusError):
    """Prometheus refused the query (4xx), e.g. bad PromQL or bad credentials."""


@dataclasses.dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


def _split_auth(url: str) -> tuple[str, httpx.BasicAuth | None]:
    parts = urlsplit(url.rstrip("/"))
    if not parts.scheme or not parts.hostname:
        raise PrometheusQueryError(f"Not a Prometheus URL: {url!r}")
    auth = None
    if parts.username is not None:
        auth = httpx.BasicAuth(unquote(parts.username), unquote(parts.password or ""))
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    if ":" in parts.hostname:
        netloc = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc)), auth


class PrometheusClient:
    """Instant queries against one Prometheus; safe to share between threads."""

    def __init__(
        self,
        url: str,
        *,
        token: str = "",
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = RETRY_BACKOFF_SECONDS,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        base, auth = _split_auth(url)
        headers = {"Accept": "application/json", "User-Agent": "kubedoor"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
            auth = None
        self.base_url = base
        self.retries = retries
        self.backoff = backoff
        self._slots = backend_slots(base, max_in_flight)
        self._client = httpx.Client(
            base_url=base, auth=auth, headers=headers, timeout=timeout, transport=transport, follow_redirects=False
        )

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def query(self, expr: str, *, at: datetime.datetime) -> list[Sample]:
        """Evaluate ``expr`` at ``at``; a vector (or scalar) result as samples, NaN values dropped."""
        with self._slots:
            data = self._post("/api/v1/query", {"query": expr, "time": f"{at.timestamp():.3f}"})
        result_type = data.get("resultType")
        result: Any = data.get("result")  # the JSON payload, shaped by result_type
        if result_type == "vector":
            samples = [Sample(labels=dict(item["metric"]), value=float(item["value"][1])) for item in result]
        elif result_type == "scalar":
            samples = [Sample(labels={}, value=float(result[1]))]
        else:
            raise PrometheusQueryError(f"Prometheus answered a {result_type} where a vector was expected")
        return [sample for sample in samples if sample.value == sample.value]  # NaN != NaN

    def _post(self, path: str, form: dict[str, str]) -> dict[str, Any]:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._client.post(path, data=form)
            except httpx.ReadTimeout as exc:
                # The query ran out of time: sending it again would only add load to a busy server.
                raise PrometheusUnavailable(
                    f"Prometheus {self.base_url} did not answer within {self._client.timeout.read} s"
                ) from exc
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                reason = f"{self.base_url} is unreachable ({exc.__class__.__name__}: {exc})"
                if attempt > self.retries:
                    raise PrometheusUnavailable(f"Prometheus {reason}") from exc
                logger.warning("Prometheus %s, retry %d", reason, attempt)
                time.sleep(self.backoff * attempt)
                continue
            if response.status_code >= 500:
                reason = f"{self.base_url} answered {response.status_code}: {_error_text(response)}"
                if attempt > self.retries:
                    raise PrometheusUnavailable(f"Prometheus {reason}")
                logger.warning("Prometheus %s, retry %d", reason, attempt)
                time.sleep(self.backoff * attempt)
                continue
            if response.status_code >= 400:
                raise PrometheusQueryError(
                    f"Prometheus {self.base_url} refused the query ({response.status_code}): {_error_text(response)}"
                )
            try:
                body = response.json()
            except ValueError as exc:
                raise PrometheusQueryError(f"Prometheus {self.base_url} answered something that is not JSON") from exc
            if body.get("status") != "success":
                raise PrometheusQueryError(f"Prometheus {self.base_url}: {body.get('error') or body}")
            return body["data"]


# VictoriaMetrics repeats the whole query before its reason: the query is known, the reason is what matters.
_VM_QUERY_PREFIX = re.compile(r'^error when executing query=".*" for \(time=\d+, step=\d+\): ', re.DOTALL)


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
        return _VM_QUERY_PREFIX.sub("", str(body.get("error") or body))[:500]
    except ValueError:
        return response.text[:500] or response.reason_phrase

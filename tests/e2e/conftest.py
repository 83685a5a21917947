"""Browser tests: headless Chromium (the system's, driven by Playwright) against a live server.

The live server is pytest-django's (a thread of this process serving the test database, static
files included), so tests commit their data (``transactional_db``); the database is flushed after
each test, so ``role_groups`` puts the three role groups back first (serialized rollback does not
survive Playwright: its event loop in the test thread gives the ORM a fresh connection object
without the serialized copy). Playwright's synchronous API runs that loop in the test thread, which
Django would take for async code; the module-scoped ``browser`` fixture allows the ORM there for
the duration of the browser tests only.

Every page a test visits can be saved with :func:`shot` under test-output/screenshots/.
"""

from __future__ import annotations

import datetime
import io
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import OUTPUT, require_binary

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = OUTPUT / "screenshots"
PASSWORD = "a-long-test-password"  # tests.factories.UserFactory's
DEMO_DAYS = 30


@pytest.fixture(autouse=True)
def role_groups(transactional_db) -> None:
    """The viewer/operator/admin groups with their permissions, as the roles migration makes them."""
    from tests.factories import role_groups_ensure

    role_groups_ensure(force=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    require_binary(CHROMIUM)
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def new_page(browser) -> Iterator[Any]:
    """``new_page(**context_options)`` opens a page in a fresh browser context (own cookies, language)."""
    contexts = []

    def make(**options: Any) -> Any:
        options.setdefault("viewport", {"width": 1800, "height": 1000})
        context = browser.new_context(**options)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def shot(page: Any, name: str) -> Path:
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page: Any, base_url: str, username: str, *, next_url: str = "/admin/") -> None:
    page.goto(f"{base_url}/admin/login/?next={next_url}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base_url}{next_url}")


def demo_peaks(*, cluster: str, last_day: datetime.date, days: int = DEMO_DAYS, seed: int = 11) -> int:
    """Daily peaks for every control row of ``cluster`` over ``days`` days ending ``last_day``, written
    through the configured store; values vary around the row's own figures. Returns rows written."""
    from apps.control.models import Microservice
    from apps.metrics.store import PeakRow, peak_store

    rng = random.Random(seed)
    store = peak_store()
    services = list(Microservice.objects.filter(cluster__name=cluster).order_by("namespace", "name"))
    written = 0
    for offset in range(days):
        day = last_day - datetime.timedelta(days=days - 1 - offset)
        start = datetime.datetime.combine(day, datetime.time(10, 0), datetime.UTC)
        rows = []
        for service in services:
            factor = rng.uniform(0.5, 1.2)
            pods = max(1, (service.replicas_measured or 1) + rng.choice([-1, 0, 0, 1]))
            cpu = round((service.p95_cpu_cores or 0.1) * factor, 4)
            mem = round((service.p95_mem_mib or 128.0) * rng.uniform(0.8, 1.1), 1)
            rows.append(
                PeakRow(
                    cluster=cluster,
                    day=day,
                    namespace=service.namespace,
                    deployment=service.name,
                    container=service.container or service.name,
                    window_start=start,
                    window_end=start + datetime.timedelta(minutes=90),
                    pod_count=pods,
                    p95_cpu_cores=cpu,
                    p95_cpu_pct=round(cpu * 100_000 / service.limit_cpu_m, 2) if service.limit_cpu_m else None,
                    p95_mem_mib=mem,
                    p95_mem_pct=round(mem * 100 / service.limit_mem_mib, 2) if service.limit_mem_mib else None,
                    request_cpu_m=service.request_cpu_m,
                    request_mem_mib=service.request_mem_mib,
                    limit_cpu_m=service.limit_cpu_m,
                    limit_mem_mib=service.limit_mem_mib,
                    quantile=0.95,
                    aggregation="avg",
                    step_seconds=30,
                    collected_at=start + datetime.timedelta(hours=2),
                )
            )
        written += store.day_replace(cluster=cluster, day=day, rows=rows)
    return written


@pytest.fixture
def demo(transactional_db) -> Any:
    """The demo cluster (``kubedoor_demo``: 50 services in 5 namespaces) with 30 days of daily peaks
    ending yesterday in the cluster's time zone."""
    from django.core.management import call_command

    from apps.control.models import Cluster
    from apps.metrics.selectors import cluster_today

    call_command("kubedoor_demo", stdout=io.StringIO())
    cluster = Cluster.objects.get(name="demo")
    yesterday = cluster_today(cluster) - datetime.timedelta(days=1)
    assert demo_peaks(cluster="demo", last_day=yesterday) == 50 * DEMO_DAYS
    return cluster

"""Shared fixtures. Real services live in tests/servers/ and are loaded as plugins here."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from kubedoor_site.celery import app as celery_app
from tests.factories import ClusterFactory, MicroserviceFactory, UserFactory


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every transactional test restores the migrations' data (content types, permissions, role groups).

    A transactional test empties the database when it ends. Without ``serialized_rollback`` Django's
    flush also re-runs ``post_migrate``, which recreates content types and permissions, and the next
    test that does restore the snapshot then fails on them (a duplicate content type) — so whether a
    test passed depended on which transactional test ran before it. With it on every transactional test,
    the flush leaves the database empty and each test starts from the same migrated data.
    """
    for item in items:
        marker = item.get_closest_marker("django_db")
        fixtures = getattr(item, "fixturenames", ())
        transactional = (marker is not None and marker.kwargs.get("transaction")) or (
            "transactional_db" in fixtures or "live_server" in fixtures
        )
        if transactional and not (marker is not None and marker.kwargs.get("serialized_rollback")):
            kwargs = {**(marker.kwargs if marker is not None else {}), "transaction": True, "serialized_rollback": True}
            item.add_marker(pytest.mark.django_db(**kwargs), append=False)


pytest_plugins = [
    "tests.servers.slapd",
    "tests.servers.celery_worker",
    "tests.servers.clickhouse",
    "tests.servers.prometheus",
    "tests.servers.history_feedback",
    "tests.servers.victoriametrics",
    "tests.servers.k8s_standin",
    "tests.servers.webhook_process",
    "tests.servers.http_receiver",
    "tests.servers.oidc_provider",
]


@pytest.fixture
def viewer(db):
    return UserFactory(username="viewer1", role="viewer")


@pytest.fixture
def operator(db):
    return UserFactory(username="operator1", role="operator")


@pytest.fixture
def admin_user(db):
    return UserFactory(username="admin1", role="admin")


@pytest.fixture
def nobody(db):
    """An authenticated user in no role group."""
    return UserFactory(username="nobody1")


def _token_client(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def viewer_api(viewer) -> APIClient:
    return _token_client(viewer)


@pytest.fixture
def operator_api(operator) -> APIClient:
    return _token_client(operator)


@pytest.fixture
def admin_api(admin_user) -> APIClient:
    return _token_client(admin_user)


@pytest.fixture
def cluster(db):
    return ClusterFactory(name="prod", display_name="Production")


@pytest.fixture
def service(cluster):
    return MicroserviceFactory(cluster=cluster, namespace="shop", name="cart")


@pytest.fixture
def eager_celery():
    """Queued tasks run in-process, at once (retries included); the e2e tests use a real worker."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous

"""A scoped user's dashboard (issue 13 §2): summary and waste over some namespaces of a cluster.

On each backend (ClickHouse 18.16, chdb, the ORM), the figures over ``only_namespaces`` are exactly
those of a cluster that holds only those namespaces' rows.
"""

from __future__ import annotations

import dataclasses

import pytest

from apps.metrics import dashboard
from apps.metrics.dashboard import as_payload
from tests.metrics import test_dashboard
from tests.metrics.test_dashboard import D1, D3, SCENARIO, load

pytestmark = pytest.mark.django_db
stores = test_dashboard.stores  # (peak store, dashboard backend) on ClickHouse 18.16, chdb and the ORM


def _only(namespaces: set[str], cluster: str) -> dict:
    """SCENARIO's prod rows of ``namespaces``, as the rows of another cluster."""
    return {
        day: [
            dataclasses.replace(row, cluster=cluster)
            for row in rows
            if row.cluster == "prod" and row.namespace in namespaces
        ]
        for day, rows in SCENARIO.items()
    }


@pytest.mark.parametrize("namespaces", [{"shop"}, {"pay"}, {"shop", "pay"}, {"nowhere"}])
def test_summary_and_waste_over_some_namespaces_are_those_of_their_rows_alone(stores, namespaces):
    # given: prod as the scenario has it, and "alone" holding only the chosen namespaces' rows
    store, backend = stores
    load(store, SCENARIO)
    load(store, _only(namespaces, "alone"))
    # when
    scoped = dashboard.dashboard_summary(cluster="prod", day_from=D1, day_to=D3, backend=backend, namespaces=namespaces)
    alone = dashboard.dashboard_summary(cluster="alone", day_from=D1, day_to=D3, backend=backend)
    # then
    assert {**as_payload(scoped), "cluster": "alone"} == as_payload(alone)
    assert {row.namespace for row in scoped.namespace_rows} == namespaces & {"shop", "pay"}
    sources = backend.raw_waste_sources(cluster="prod", day_from=D1, day_to=D3, excluded=(), only_namespaces=namespaces)
    assert sorted(sources) == sorted(backend.raw_waste_sources(cluster="alone", day_from=D1, day_to=D3, excluded=()))
    trend = backend.raw_waste_trend(cluster="prod", day_from=D1, day_to=D3, only_namespaces=namespaces)
    assert [tuple(row) for row in trend] == [
        tuple(row) for row in backend.raw_waste_trend(cluster="alone", day_from=D1, day_to=D3)
    ]

"""Fixtures of the webhook tests: a snapshot holder and an audit writer owned by the test."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from apps.webhook import audit_writer, snapshot
from apps.webhook.audit_writer import AuditWriter
from apps.webhook.snapshot import SnapshotHolder

REVIEWS = Path(__file__).resolve().parent / "reviews"


@dataclass
class WebhookState:
    holder: SnapshotHolder
    writer: AuditWriter


@pytest.fixture
def webhook_state(monkeypatch) -> WebhookState:
    """Replace the process-wide holder and writer by ones without threads, driven by the test.

    The holder is loaded explicitly (``state.holder.refresh()``) inside the test's transaction and
    the writer is drained explicitly, so a test sees exactly what the request path did on its own.
    """
    state = WebhookState(holder=SnapshotHolder(autostart=False), writer=AuditWriter(autostart=False))
    monkeypatch.setattr(snapshot, "holder", state.holder)
    monkeypatch.setattr(audit_writer, "writer", state.writer)
    return state


@pytest.fixture
def webhook_process(settings) -> None:
    """The URL map and middleware of the separate webhook process (KUBEDOOR_PROCESS=webhook)."""
    settings.ROOT_URLCONF = "apps.webhook.process_urls"
    settings.MIDDLEWARE = []


def load_case(name: str) -> tuple[dict, dict]:
    review = json.loads((REVIEWS / f"{name}.json").read_text())
    expected = json.loads((REVIEWS / f"{name}.expected.json").read_text())
    return review, expected


def case_names() -> list[str]:
    return sorted(p.name.removesuffix(".json") for p in REVIEWS.glob("*.json") if not p.name.endswith(".expected.json"))

"""Shared fixtures: real Redis, a real Celery worker (threads pool, in this process, so it
uses the test database), and helpers to POST and wait for outcomes.

PostgreSQL and Redis are always there: the ones DATABASE_URL / REDIS_URL name, or the
session's own (tests/plugins/services.py). With DATABASE_URL set to SQLite on purpose, the
tests that need PostgreSQL are skipped, each with the reason.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from ingestion.extraction import reset_extractor
from tests.fakes.claude_api import FakeClaude

_ON_SQLITE = settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
_UNSET_FOR_POSTGRES = "unset DATABASE_URL and the session starts its own PostgreSQL"
_NEEDS_POSTGRES = f"needs PostgreSQL, DATABASE_URL is SQLite: {_UNSET_FOR_POSTGRES}"
# The in-process worker's threads and the test write to one SQLite in-memory test database at
# once, and its shared-cache table locks fail them ("database table is locked").
_WORKER_NEEDS_POSTGRES = (
    f"the in-process Celery worker needs PostgreSQL (concurrent writers on SQLite fail with "
    f"'database table is locked'): {_UNSET_FOR_POSTGRES}"
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _ON_SQLITE:
        return
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=_NEEDS_POSTGRES))
        elif "celery_worker" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.skip(reason=_WORKER_NEEDS_POSTGRES))


@pytest.fixture(autouse=True)
def _fresh_tenants() -> Iterator[None]:
    """The tenants' per-process cache is forgotten around each test: a rolled-back or flushed
    test database must not leave ids of rows that are gone."""
    from tenants import directory

    directory.forget()
    yield
    directory.forget()


@pytest.fixture(autouse=True)
def _fresh_extractor() -> Iterator[None]:
    reset_extractor()
    yield
    reset_extractor()


@pytest.fixture(autouse=True)
def _open_gate() -> Iterator[None]:
    """The web's per-process 503 gate (ingestion/api/dbgate.py) starts open in each test: a
    slow POST or a database failure in one test (the test client runs in this process) must
    not shed the next test's POSTs."""
    from ingestion.api import dbgate

    dbgate.reopen()
    yield
    dbgate.reopen()


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


@pytest.fixture
def clean_cache(redis_client: redis.Redis) -> Iterator[None]:
    """Forget this run's cache keys (breaker, heartbeat, alerts, throttles) around a test.

    Only keys under this run's prefix: Django's cache.clear() is FLUSHDB, which would also
    wipe other runs' queues and data on a shared Redis.
    """

    def forget() -> None:
        prefix = settings.CACHES["default"]["KEY_PREFIX"]
        for key in redis_client.scan_iter(match=f"{prefix}:*", count=500):
            redis_client.delete(key)

    forget()
    yield
    forget()


@pytest.fixture
def fast_pipeline(settings: Any) -> Any:
    """Timers short enough for tests; the mechanisms are the production ones."""
    settings.NEXUS = {
        **settings.NEXUS,
        "BACKOFF_BASE_SECONDS": 0.05,
        "BACKOFF_CAP_SECONDS": 2.0,
        "BREAKER_BASE_SECONDS": 0.5,
        "BREAKER_CAP_SECONDS": 2.0,
        "DISPATCH_GRACE_SECONDS": 1.0,
        "LEASE_SECONDS": 5.0,
    }
    return settings


@pytest.fixture
def celery_worker(transactional_db: None, redis_client: redis.Redis, clean_cache: None) -> Iterator[Any]:
    """A real Celery worker on real Redis, threads pool, consuming this run's queue."""
    from celery.contrib.testing.worker import start_worker

    from nexus_project.celery import app

    redis_client.delete(app.conf.task_default_queue, settings.NEXUS_BULK_QUEUE)
    with start_worker(
        app, pool="threads", concurrency=4, perform_ping_check=False, shutdown_timeout=30, loglevel="WARNING"
    ) as worker:
        yield worker
    connection.close()


@pytest.fixture
def fake_claude() -> Iterator[FakeClaude]:
    with FakeClaude() as fake:
        yield fake


@pytest.fixture
def claude_settings(settings: Any, fake_claude: FakeClaude) -> Iterator[Any]:
    """Settings that make get_extractor() a ClaudeExtractor talking to the fake."""
    settings.EXTRACTOR = "claude"
    settings.ANTHROPIC_API_KEY = "test-key"
    settings.ANTHROPIC_BASE_URL = fake_claude.url
    settings.ANTHROPIC_MODEL = "claude-haiku-5-5"
    settings.ANTHROPIC_TIMEOUT_SECONDS = 5.0
    reset_extractor()
    yield settings
    reset_extractor()


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll until ``predicate()`` is truthy; fail with what it last returned."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    assert value, f"condition not met within {timeout}s (last value: {value!r})"
    return value


def transcript(*contents: str) -> list[dict[str, str]]:
    """Alternate user/assistant turns, starting with the visitor."""
    roles = ["user", "assistant"]
    return [{"role": roles[i % 2], "content": c} for i, c in enumerate(contents)]


SEED_MESSAGES = transcript(
    "Hola, me llamo Juan Pérez",
    "Hola Juan, ¿en qué puedo ayudarte?",
    "Quiero saber sobre las oportunidades de inversión",
)


def producer_body(
    messages: list[dict[str, str]] | None = None,
    session_id: str | None = None,
    fingerprint: str = "test-fingerprint-456",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "messages": messages if messages is not None else SEED_MESSAGES,
        "sessionId": session_id or f"test-{uuid.uuid4().hex[:10]}",
        "fingerprint": fingerprint,
        **extra,
    }

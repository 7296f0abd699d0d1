"""The producer's health GET as a load balancer or an operator reads it (SPEC §3, §10)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ingestion.models import Extraction, Job
from tests.conftest import wait_for
from tests.ingestion.test_dispatch import broker_down

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

URL = "/api/nexus/producer"
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def cli_worker(clean_cache: None, tmp_path: Path) -> Iterator[None]:
    """A worker started as deployed (``celery -A nexus_project worker``): the heartbeat starts on
    the CLI worker's ready signal, which the in-process test worker does not send."""
    env = {
        **os.environ,
        "DJANGO_ENV": "development",
        "DJANGO_SETTINGS_MODULE": "nexus_project.settings",
        "DJANGO_SECRET_KEY": "health-test-key-not-a-secret",
        "NEXUS_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}",  # it runs no task here
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_TASK_DEFAULT_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE + "-health",
        "CACHE_KEY_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
        "WORKER_CONCURRENCY": "1",
    }
    celery = str(Path(sys.executable).parent / "celery")
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(
        [celery, "-A", "nexus_project", "worker", "--loglevel", "WARNING"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


def workers_up(api) -> dict | None:
    body = api.get(URL).json()
    return body if body["checks"]["workers"] == "up" else None


def test_healthy_with_a_worker_beating_and_nothing_crossed(cli_worker, api):
    body = wait_for(lambda: workers_up(api), timeout=60)

    assert body["status"] == "healthy"
    assert body["checks"] == {"database": "up", "broker": "up", "workers": "up", "extractor": "up"}
    assert body["alerts"] == []
    assert body["queue"] == {"pending": 0, "processing": 0, "failed": 0, "oldest_pending_age_s": 0.0}
    assert 0 <= body["worker_heartbeat_age_s"] < settings.NEXUS["HEARTBEAT_TTL_SECONDS"]


def test_degraded_but_200_when_the_broker_is_down(cli_worker, api):
    wait_for(lambda: workers_up(api), timeout=60)

    with broker_down():
        response = api.get(URL)

    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["broker"] == "down"


def test_degraded_when_no_worker_beats(api, clean_cache):
    response = api.get(URL)

    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["workers"] == "down"
    assert Job.objects.count() == 0  # health never enqueues


def test_polling_health_reuses_the_hours_figures(api, clean_cache):
    """The p95 sorts the whole last hour; a poller must not make the database do it each GET."""
    job = Job.objects.create(session_id="h-1", transcript_hash="h", revised_at=timezone.now())
    Extraction.objects.create(
        job=job, revision=1, outcome="failed", error_category="timeout", extractor="claude"
    )
    assert "error_rate" in api.get(URL).json()["alerts"]

    with CaptureQueriesContext(connection) as queries:
        polls = [api.get(URL).json()["alerts"] for _ in range(3)]

    assert all("error_rate" in alerts for alerts in polls)
    assert not [q["sql"] for q in queries.captured_queries if "prospects_extraction" in q["sql"]]

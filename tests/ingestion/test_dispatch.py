"""Broker down: the POST still answers 202 (the row is the promise) and the sweeper publishes
once the broker is back (SPEC §10)."""

from __future__ import annotations

import contextlib
import time

import pytest

from ingestion.dispatch import job_sweep
from ingestion.models import Job, JobStatus
from ingestion.services import job_requeue
from nexus_project.celery import app
from tests.conftest import producer_body, wait_for

pytestmark = [pytest.mark.redis]


def _use_broker(url: str) -> None:
    # New pools for the new URL; the old ones stay with whoever holds them (the worker).
    app.conf.broker_url = url
    app._pool = None
    app.amqp._producer_pool = None


@contextlib.contextmanager
def broker_down():
    working = app.conf.broker_url
    _use_broker("redis://127.0.0.1:9/0")  # nothing listens on port 9
    try:
        yield
    finally:
        _use_broker(working)


@pytest.mark.django_db(transaction=True)
def test_post_answers_202_when_the_broker_is_down_and_leaves_the_job_for_the_sweeper(api):
    with broker_down():
        started = time.monotonic()
        response = api.post("/api/nexus/producer", producer_body(session_id="nobroker"), format="json")
        elapsed = time.monotonic() - started

    assert response.status_code == 202
    job = Job.objects.get(session_id="nobroker")
    assert job.status == JobStatus.PENDING
    assert job.dispatched_at is None  # nothing outstanding: the next sweep publishes it
    assert elapsed < 5  # bounded publish retry, not a hang (a generous bound, not a benchmark)


def test_sweeper_publishes_what_the_broker_refused_once_it_is_back(api, celery_worker):
    with broker_down():
        api.post("/api/nexus/producer", producer_body(session_id="later"), format="json")
    assert Job.objects.get(session_id="later").dispatched_at is None

    assert job_sweep() == 1

    wait_for(lambda: Job.objects.filter(session_id="later", status=JobStatus.COMPLETED).exists())


@pytest.mark.redis
def test_a_post_is_published_on_the_live_queue_and_a_reprocess_on_the_bulk_queue(
    api, transactional_db, redis_client, settings
):
    live_queue, bulk_queue = settings.CELERY_TASK_DEFAULT_QUEUE, settings.NEXUS_BULK_QUEUE
    redis_client.delete(live_queue, bulk_queue)
    job_id = api.post("/api/nexus/producer", producer_body(session_id="lane-1"), format="json").json()[
        "queueId"
    ]
    assert (redis_client.llen(live_queue), redis_client.llen(bulk_queue)) == (1, 0)

    Job.objects.filter(id=job_id).update(status=JobStatus.COMPLETED)
    assert job_requeue(job_id=job_id)

    assert (redis_client.llen(live_queue), redis_client.llen(bulk_queue)) == (1, 1)
    assert Job.objects.get(id=job_id).lane == "bulk"
    redis_client.delete(live_queue, bulk_queue)

"""Ownership and due-ness are decided on the database's clock: a real Celery worker whose host
clock is five minutes off (libfaketime, Debian's ``faketime`` package) neither takes over a
live lease nor holds back a due job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from ingestion import dispatch
from ingestion.models import Extraction, Job, JobStatus
from ingestion.services import transcript_hash
from nexus_project.db import db_now
from tests.conftest import SEED_MESSAGES, wait_for
from tests.faketime import faketime_env, needs_faketime
from tests.readiness import wait_celery_ready
from tests.test_gunicorn_conf import database_url

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[3]
CELERY = Path(sys.executable).parent / "celery"
SKEW = timedelta(minutes=5)


def app_env(tmp_path: Path) -> dict[str, str]:
    """What a worker on another host would be given: this test's database, Redis and queue."""
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        DJANGO_ENV="development",
        DJANGO_SETTINGS_MODULE="nexus_project.settings",
        DJANGO_SECRET_KEY="clock-skew-test-key-not-a-secret",
        DATABASE_URL=database_url(),
        REDIS_URL=settings.REDIS_URL,
        CELERY_TASK_DEFAULT_QUEUE=settings.CELERY_TASK_DEFAULT_QUEUE,
        CACHE_KEY_PREFIX=settings.CACHES["default"]["KEY_PREFIX"],
        NEXUS_VAR_DIR=str(tmp_path),
        EXTRACTOR="offline",
        LOG_LEVEL="INFO",
    )
    return env


class SkewedWorker:
    def __init__(self, offset: str, tmp_path: Path) -> None:
        self.env = {**app_env(tmp_path), **faketime_env(offset)}
        self.logfile = tmp_path / f"worker{offset}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def clock_offset(self) -> float:
        """Seconds this worker's wall clock is ahead of the database's (negative: behind)."""
        code = "import time; print(time.time())"
        out = subprocess.run(
            [sys.executable, "-c", code], env=self.env, capture_output=True, text=True, check=True
        ).stdout
        return float(out) - db_now().timestamp()

    def start(self) -> None:
        with self.logfile.open("wb") as log:
            self.process = subprocess.Popen(
                [str(CELERY), "-A", "nexus_project", "worker", "--pool", "threads", "-c", "2",
                 "-n", f"skewed-{uuid.uuid4().hex[:6]}@%h", "--loglevel", "INFO"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        wait_celery_ready(self.process, self.log)

    def _died(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def log(self) -> str:
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""

    def records(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def wait_record(self, match: Callable[[dict[str, Any]], bool], timeout: float = 60) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            assert not self._died(), self.log()[-3000:]
            return next((r for r in self.records() if match(r)), None)

        return wait_for(found, timeout=timeout, interval=0.2)  # type: ignore[no-any-return]

    def wait_task_done(self, task: str, done_before: int, timeout: float = 60) -> None:
        """Celery's own "Task … succeeded" line, one more than ``done_before``."""
        wait_for(lambda: self.tasks_done(task) > done_before, timeout=timeout, interval=0.2)

    def tasks_done(self, task: str) -> int:
        return sum(1 for line in self.log().splitlines() if f"Task {task}[" in line and " succeeded" in line)


@pytest.fixture
def skewed_worker(tmp_path: Path, redis_client: Any) -> Iterator[Callable[[str], SkewedWorker]]:
    redis_client.delete(settings.CELERY_TASK_DEFAULT_QUEUE)
    started: list[SkewedWorker] = []

    def start(offset: str) -> SkewedWorker:
        worker = SkewedWorker(offset, tmp_path)
        started.append(worker)
        worker.start()
        return worker

    yield start
    for worker in started:
        worker.stop()


def ledger_row(session_id: str, **fields: Any) -> Job:
    """A job row as another worker or an earlier run left it (no task published)."""
    now = db_now()
    values: dict[str, Any] = {
        "session_id": session_id,
        "fingerprint": "fp-clock",
        "messages": SEED_MESSAGES,
        "transcript_hash": transcript_hash(SEED_MESSAGES),
        "message_count": len(SEED_MESSAGES),
        "metadata": {},
        "revised_at": now,
        **fields,
    }
    return Job.objects.create(**values)


def about(seconds: float, target: float, slack: float = 60) -> bool:
    return abs(seconds - target) < slack


@needs_faketime
def test_a_worker_five_minutes_fast_cannot_take_over_a_live_lease(skewed_worker):
    worker = skewed_worker("+5m")
    assert about(worker.clock_offset(), SKEW.total_seconds()), "faketime did not move the worker's clock"
    held_by = uuid.uuid4()
    lease = db_now() + timedelta(seconds=120)  # another worker's claim, 2 min left by the database
    job = ledger_row(
        "skew-fast-1", status=JobStatus.PROCESSING, claim_token=held_by, lease_until=lease, claims=1
    )

    dispatch.job_publish(job_id=job.id)  # a redelivery reaches the fast worker
    worker.wait_record(
        lambda r: r.get("message", "").startswith("job not claimable") and r.get("job_id") == str(job.id)
    )

    job.refresh_from_db()
    assert (job.status, job.claim_token, job.lease_until, job.claims) == (
        JobStatus.PROCESSING,
        held_by,
        lease,
        1,
    )
    assert not Extraction.objects.filter(job=job).exists()

    # Its sweeper does not see the lease as expired either: nothing is published for the job.
    before = worker.tasks_done("ingestion.sweep")
    dispatch.app.send_task("ingestion.sweep")
    worker.wait_task_done("ingestion.sweep", before)
    assert not any(r.get("message") == "sweeper re-dispatched jobs" for r in worker.records())

    # Once the lease has expired by the database's clock, the same worker takes the job over.
    Job.objects.filter(id=job.id).update(lease_until=db_now() - timedelta(seconds=1))
    dispatch.job_publish(job_id=job.id)
    wait_for(lambda: Job.objects.filter(id=job.id, status=JobStatus.COMPLETED).exists(), timeout=60)
    job.refresh_from_db()
    assert job.claims == 2 and Extraction.objects.filter(job=job, outcome="ok").count() == 1


@needs_faketime
def test_a_worker_five_minutes_fast_does_not_redispatch_an_outstanding_task(skewed_worker):
    worker = skewed_worker("+5m")
    published = db_now()  # a POST's task, published a moment ago and not yet delivered
    job = ledger_row("skew-fast-2", status=JobStatus.PENDING, dispatched_at=published)

    before = worker.tasks_done("ingestion.sweep")
    dispatch.app.send_task("ingestion.sweep")
    worker.wait_task_done("ingestion.sweep", before)

    job.refresh_from_db()
    assert job.dispatched_at == published and job.status == JobStatus.PENDING
    assert not any(r.get("message") == "sweeper re-dispatched jobs" for r in worker.records())


@needs_faketime
def test_a_worker_five_minutes_slow_does_not_delay_a_due_job(skewed_worker):
    worker = skewed_worker("-5m")
    assert about(worker.clock_offset(), -SKEW.total_seconds()), "faketime did not move the worker's clock"
    now = db_now()
    grace = timedelta(seconds=settings.NEXUS["DISPATCH_GRACE_SECONDS"])
    # A backoff that ended a second ago by the database, its task lost; and a task lost in the
    # broker (dispatch older than the grace). A slow clock would see both as not yet due.
    retry = ledger_row(
        "skew-slow-1", status=JobStatus.PENDING, attempts=1,
        next_attempt_at=now - timedelta(seconds=1), dispatched_at=None,
    )  # fmt: skip
    lost = ledger_row(
        "skew-slow-2", status=JobStatus.PENDING, dispatched_at=now - grace - timedelta(seconds=5)
    )
    # A lease that expired by the database's clock (its worker died).
    orphan = ledger_row(
        "skew-slow-3", status=JobStatus.PROCESSING, claim_token=uuid.uuid4(), claims=1,
        lease_until=now - timedelta(seconds=1), dispatched_at=None,
    )  # fmt: skip

    dispatch.app.send_task("ingestion.sweep")  # beat's sweep, run by the slow worker

    ids = [retry.id, lost.id, orphan.id]
    wait_for(lambda: Job.objects.filter(id__in=ids, status=JobStatus.COMPLETED).count() == 3, timeout=90)
    assert Extraction.objects.filter(job_id__in=ids, outcome="ok").count() == 3
    # The worker stamped the database's time, not its own: the Extraction rows the spend caps
    # count are not five minutes in the past.
    for extraction in Extraction.objects.filter(job_id__in=ids):
        assert abs((extraction.created_at - db_now()).total_seconds()) < 120

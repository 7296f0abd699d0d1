"""gunicorn as deployed (gunicorn.conf.py, several sync workers): /metrics reports the request
counters of every worker, whichever worker answers the scrape."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import producer_body, wait_for
from tests.readiness import wait_http_ready

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def database_url() -> str:
    db = settings.DATABASES["default"]  # the test database, which this test's rows go to
    credentials = f"{quote(db['USER'])}:{quote(db['PASSWORD'])}"
    socket_dir = db["OPTIONS"].get("host")  # a server on a Unix socket (the session's own)
    if socket_dir:
        return f"postgres://{credentials}@:{db['PORT'] or 5432}/{db['NAME']}?host={quote(socket_dir)}"
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """gunicorn with the project's config and two workers, without PROMETHEUS_MULTIPROC_DIR."""
    with run_gunicorn(tmp_path) as running:
        yield running


@contextlib.contextmanager
def run_gunicorn(tmp_path: Path, **extra_env: str) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        DJANGO_ENV="development",
        DJANGO_SETTINGS_MODULE="nexus_project.settings",
        DJANGO_SECRET_KEY="gunicorn-test-key-not-a-secret",
        DATABASE_URL=database_url(),
        REDIS_URL=settings.REDIS_URL,
        CELERY_TASK_DEFAULT_QUEUE=settings.CELERY_TASK_DEFAULT_QUEUE,
        CACHE_KEY_PREFIX=settings.CACHES["default"]["KEY_PREFIX"],
        NEXUS_VAR_DIR=str(tmp_path),
        NEXUS_THROTTLE_IP_RATE="off",
        NEXUS_THROTTLE_SESSION_RATE="off",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="2",
        LOG_LEVEL="WARNING",
        **extra_env,
    )
    log = (tmp_path / "gunicorn.log").open("wb")
    process = subprocess.Popen(
        [str(GUNICORN), "nexus_project.wsgi:application", "-c", "gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http_ready(process, f"{base}/healthz", (tmp_path / "gunicorn.log").read_text, timeout=30)
        yield base, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=40)
        log.close()


def body_for(session_id: str) -> dict:
    """A session of its own visitor: the same transcript from one visitor under another
    sessionId is the same chat continued (a duplicate), not a new session."""
    return producer_body(session_id=session_id, fingerprint=f"fp-{session_id}")


def post(base: str, body: dict) -> int:
    request = urllib.request.Request(
        f"{base}/api/nexus/producer",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        return urllib.request.urlopen(request, timeout=10).status
    except urllib.error.HTTPError as error:
        return error.code


def posts_counted(base: str) -> dict[str, float]:
    text = urllib.request.urlopen(f"{base}/metrics", timeout=10).read().decode()
    return {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "nexus_producer_posts_total"
    }


def worker_pids(master_pid: int) -> set[int]:
    """The master's live worker processes."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children")
    return {int(pid) for pid in children.read_text().split()} if children.exists() else set()


def own_multiproc_dirs(master_pid: int) -> list[Path]:
    return [
        path
        for parent in (Path("/dev/shm"), Path(tempfile.gettempdir()))
        if parent.is_dir()
        for path in parent.glob(f"nexus-prometheus-{master_pid}-*")
    ]


def test_metrics_sum_the_post_counters_of_every_worker(gunicorn):
    base, master_pid = gunicorn
    (directory,) = own_multiproc_dirs(master_pid)  # made by gunicorn.conf.py, not by us
    sent = {"accepted": 0, "rejected": 0}
    counting_pids: set[str] = set()
    deadline = time.monotonic() + 60
    # Concurrent, so both sync workers answer some: a busy worker cannot take the next one.
    # In rounds, because on a loaded machine the second worker may still be booting when the
    # first round arrives (/healthz answered by one worker says nothing of the other).
    for round_ in range(100):
        bodies = [body_for(f"gu-{round_}-{n}") for n in range(24)] + [
            {"messages": [], "sessionId": f"gu-bad-{round_}-{n}"} for n in range(16)
        ]
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda body: post(base, body), bodies))
        assert statuses.count(202) == 24 and statuses.count(400) == 16
        sent["accepted"] += 24
        sent["rejected"] += 16
        counting_pids = {path.stem.rsplit("_", 1)[-1] for path in directory.glob("counter_*.db")}
        if len(counting_pids) == 2 or time.monotonic() > deadline:
            break
    assert len(counting_pids) == 2, counting_pids  # both workers counted POSTs
    # Every scrape, whichever worker answers it, reports all of them.
    for _ in range(10):
        assert posts_counted(base) == sent


def test_gunicorn_keeps_its_metrics_directory_over_a_reload_and_removes_it_at_exit(gunicorn):
    base, master_pid = gunicorn
    (directory,) = own_multiproc_dirs(master_pid)
    assert post(base, body_for("gu-before")) == 202

    old_workers = worker_pids(master_pid)
    os.kill(master_pid, signal.SIGHUP)  # reload: config re-read, workers replaced
    # The new workers boot (imports, warm-up) before they answer; on a loaded machine that
    # takes longer than any fixed pause.
    wait_for(lambda: (pids := worker_pids(master_pid)) and not pids & old_workers, timeout=60, interval=0.2)
    assert post(base, body_for("gu-after")) == 202

    assert own_multiproc_dirs(master_pid) == [directory]
    assert posts_counted(base) == {"accepted": 2}  # the old workers' counts are kept
    os.kill(master_pid, signal.SIGTERM)
    deadline = time.monotonic() + 40
    while directory.exists() and time.monotonic() < deadline:
        time.sleep(0.1)

    assert not directory.exists()

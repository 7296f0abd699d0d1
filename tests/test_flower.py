"""Flower as `make run` starts it (nexus_project.devrun's command line), on real Redis: basic
auth from FLOWER_BASIC_AUTH, bounded memory, and the task events that make it useful."""

from __future__ import annotations

import base64
import functools
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from ingestion.models import Job, JobStatus
from nexus_project import devrun
from tests.conftest import producer_body, wait_for

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent
CREDENTIAL = "ops:flower-test-password"

pytestmark = pytest.mark.redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def flower_argv(port: int) -> list[str]:
    (flower,) = [child for child in devrun.children({}, port) if child.name == "flower"]
    return flower.argv


def get(url: str, credential: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if credential:
        request.add_header("Authorization", "Basic " + base64.b64encode(credential.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture(scope="module")
def flower(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("flower")
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_ENV": "development",
        "DJANGO_SETTINGS_MODULE": "nexus_project.settings",
        "DJANGO_SECRET_KEY": "flower-test-key-not-a-secret",
        "NEXUS_VAR_DIR": str(tmp),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_TASK_DEFAULT_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
        "FLOWER_BASIC_AUTH": CREDENTIAL,
    }
    log = (tmp / "flower.log").open("wb")
    process = subprocess.Popen(flower_argv(port), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if get(f"{base}/healthcheck")[0] == 200:
                break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("Flower did not start:\n" + (tmp / "flower.log").read_text()[-3000:])
        time.sleep(0.2)
    try:
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def test_flower_commands_bound_memory_and_keep_the_credential_off_the_command_line():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["flower"]
    argv = flower_argv(5555)

    assert "--max_tasks=10000" in argv
    assert "--max_tasks=10000" in compose["command"].split()
    assert ":?" in compose["environment"]["FLOWER_BASIC_AUTH"]  # compose refuses to start without it
    assert not any(CREDENTIAL in arg or "basic_auth" in arg for arg in argv)


def test_flower_asks_for_the_basic_auth_credential(flower):
    assert get(f"{flower}/")[0] == 401
    assert get(f"{flower}/", "ops:wrong")[0] == 401
    assert get(f"{flower}/api/workers")[0] == 401
    assert get(f"{flower}/", CREDENTIAL)[0] == 200


def test_flower_metrics_and_healthcheck_are_open_as_documented(flower):
    """Flower serves these two without authentication (README: keep its port private)."""
    status, body = get(f"{flower}/metrics")

    assert status == 200 and b"flower_" in body
    assert get(f"{flower}/healthcheck")[0] == 200
    assert (
        "Flower's basic auth covers its UI and API but not its `/metrics`" in (ROOT / "README.md").read_text()
    )


def flower_task(flower: str, job_id: str) -> dict[str, Any] | None:
    status, body = get(f"{flower}/api/tasks?limit=1000", CREDENTIAL)
    assert status == 200
    for task in json.loads(body).values():
        if task.get("name") == "ingestion.process_session" and job_id in str(task.get("args")):
            return task
    return None


def completed(job_id: str) -> bool:
    return Job.objects.filter(id=job_id, status=JobStatus.COMPLETED).exists()


@pytest.mark.django_db(transaction=True)
def test_flower_sees_a_job_task_sent_and_succeeded(flower, celery_worker, api):
    # Task events are broadcast, not queued: a task published before Flower subscribed is
    # never seen. Flower answering its healthcheck does not promise it has subscribed, so the
    # first few sessions may go unseen; one that is seen must be seen whole.
    task = None
    for attempt in range(10):
        body = producer_body(session_id=f"flower-{attempt}-{os.getpid()}")
        job_id = api.post("/api/nexus/producer", body, format="json").json()["queueId"]
        wait_for(functools.partial(completed, job_id))
        deadline = time.monotonic() + 3
        while task is None and time.monotonic() < deadline:
            found = flower_task(flower, job_id)
            task = found if found and found.get("state") == "SUCCESS" else None
            time.sleep(0.2)
        if task is not None:
            break

    assert task is not None, "Flower never saw a process_session task succeed"
    assert task["sent"]  # task_send_sent_event: the publisher's event
    assert task["received"] and task["succeeded"]  # worker_send_task_events: the worker's

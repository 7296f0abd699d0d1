"""The test session's own servers and manners (tests/plugins/services.py): it deletes the keys
it made in a Redis it was given and no one else's, stops at once naming a given server that
does not answer, and on an SQLite DATABASE_URL skips what needs PostgreSQL, saying why."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis

from nexus_project.celery import app
from tests.plugins.services import forget_run_keys

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parent.parent


def keys_of(client: redis.Redis, run_name: str) -> set[bytes]:
    return set(client.scan_iter(match=f"*{run_name}*", count=1000))


def test_a_run_deletes_its_own_redis_keys_and_leaves_another_runs(redis_client, settings):
    mine, other = (f"nexus-test-{uuid.uuid4().hex[:8]}" for _ in range(2))
    try:
        for run in (mine, other):
            # What a run leaves: its queue with a message nobody consumed, kombu's binding
            # tables for it (no TTL), and cache keys under its prefix.
            app.send_task("ingestion.process_session", args=["no-such-job"], queue=run)
            redis_client.set(f"{run}:1:worker_heartbeat", b"1")
        made = keys_of(redis_client, mine)
        assert {
            mine.encode(),
            f"_kombu.binding.{mine}".encode(),
            f"{mine}:1:worker_heartbeat".encode(),
        } <= made
        others = keys_of(redis_client, other)

        removed = forget_run_keys(settings.REDIS_URL, mine)

        assert removed == len(made)
        assert keys_of(redis_client, mine) == set()
        assert keys_of(redis_client, other) == others
    finally:
        forget_run_keys(settings.REDIS_URL, mine)
        forget_run_keys(settings.REDIS_URL, other)


def inner_pytest(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """A pytest session of its own, with its own run names, in a child process."""
    child_env = {
        k: v for k, v in os.environ.items() if k not in {"CELERY_TASK_DEFAULT_QUEUE", "CACHE_KEY_PREFIX"}
    }
    child_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=ROOT, env=child_env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("variable", "dead_server"),
    [("DATABASE_URL", "postgres://postgres@127.0.0.1:9/nexus"), ("REDIS_URL", "redis://127.0.0.1:9/0")],
)
def test_a_given_server_that_does_not_answer_stops_the_session_naming_it(variable, dead_server):
    result = inner_pytest("tests/test_session_services.py", "-k", "no_such_test", **{variable: dead_server})

    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert f"{variable}={dead_server} does not answer" in result.stderr
    assert f"unset {variable} and the session starts its own" in result.stderr


def test_on_sqlite_what_needs_postgresql_is_skipped_with_the_reason(tmp_path):
    result = inner_pytest(
        "tests/test_flower.py", "tests/test_gunicorn_conf.py", "-k", "sees_a_job or sum_the_post_counters", "-rs",
        DATABASE_URL=f"sqlite:///{tmp_path / 'chosen.sqlite3'}",
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 skipped" in result.stdout.splitlines()[-1], result.stdout
    assert "in-process Celery worker needs PostgreSQL" in result.stdout  # the worker test
    assert "needs PostgreSQL, DATABASE_URL is SQLite" in result.stdout  # the marked test
    assert "failed" not in result.stdout.splitlines()[-1]

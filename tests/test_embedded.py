"""The servers `make run` starts from pip packages (nexus_project/embedded.py): a PostgreSQL
cluster in var/postgres that a manage.py in another terminal reaches with nothing set, a stale
postmaster.pid that does not fool it, a server left running that is adopted, a clean stop, and
a valkey port taken by someone else refused with a message."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from nexus_project.embedded import DEV_DATABASE_NAME, EmbeddedPostgres, EmbeddedValkey, StartupError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def var_dir() -> Iterator[Path]:
    """Not under pytest's tmp_path: as root the server runs as another user, and every pytest
    session on the machine resets /tmp/pytest-of-root to 0700, which that user cannot cross."""
    path = Path(tempfile.mkdtemp(prefix="nexus-embedded-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(var_dir: Path) -> Iterator[EmbeddedPostgres]:
    """`make run`'s cluster, in a var/ of its own; each test leaves it running."""
    postgres = EmbeddedPostgres(pgdata=var_dir / "postgres")
    postgres.start()
    postgres.create_database(DEV_DATABASE_NAME)
    yield postgres
    postgres.stop()


def data_directory(url: str) -> str:
    with psycopg.connect(url, connect_timeout=5) as conn:
        (directory,) = conn.execute("SELECT current_setting('data_directory')").fetchone() or ("",)
        return str(directory)


def test_manage_py_with_nothing_set_reaches_the_database_make_run_started(cluster, var_dir):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update(DJANGO_ENV="development", NEXUS_VAR_DIR=str(var_dir), DJANGO_SECRET_KEY="embedded-test-key")
    probe = (
        "from django.db import connection\n"
        "with connection.cursor() as c:\n"
        "    c.execute(\"SELECT current_database(), current_setting('data_directory')\")\n"
        "    print(*c.fetchone())"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", probe],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [DEV_DATABASE_NAME, str(cluster.pgdata)]


def test_a_stale_postmaster_pid_does_not_stop_the_next_start(cluster):
    """After a reboot the pid in postmaster.pid may belong to any process: here, this one."""
    pidfile = cluster.pgdata / "postmaster.pid"
    lines = pidfile.read_text().splitlines()
    cluster.stop()
    pidfile.write_text("\n".join([str(os.getpid()), *lines[1:]]) + "\n")
    said: list[str] = []

    cluster.say = said.append
    cluster.start()

    assert any("removing a stale" in line for line in said), said
    assert not cluster.adopted
    assert data_directory(cluster.url(DEV_DATABASE_NAME)) == str(cluster.pgdata)


def test_a_server_an_earlier_run_left_running_is_adopted_and_stopped(cluster):
    """A SIGKILLed `make run` leaves its PostgreSQL (pg_ctl detaches it); the next run uses it."""
    said: list[str] = []
    next_run = EmbeddedPostgres(pgdata=cluster.pgdata, say=said.append)

    next_run.start()
    assert next_run.adopted
    assert any("left running" in line for line in said), said
    assert data_directory(next_run.url(DEV_DATABASE_NAME)) == str(cluster.pgdata)

    next_run.stop()
    assert not cluster.running()
    assert not (cluster.pgdata / "postmaster.pid").exists()
    cluster.start()  # for the module's teardown
    assert cluster.running()


def test_a_valkey_port_taken_by_another_program_is_refused_with_what_to_do(tmp_path):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        valkey = EmbeddedValkey(port=port, data_dir=tmp_path / "valkey")

        with pytest.raises(StartupError, match=f"port {port} .* not this checkout's embedded valkey"):
            valkey.start()
    assert valkey.process is None

"""The chaos suite's servers (own PostgreSQL, Redis, RabbitMQ and fake Claude, started once)
and its report: one summary line per scenario in the run's terminal summary."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import scenario
from .app import ROOT
from .scenario import FakeControl, Outcome, Stack
from .services import Postgres, RabbitMQ, Redis, ServiceUnavailable, free_port, port_open, wait_until

REPORT: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if REPORT:
        terminalreporter.section("chaos summary")
        for line in REPORT:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def chaos_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="nexus-chaos-"))
    root.chmod(0o755)  # initdb and RabbitMQ run as their own users below it
    REPORT.append(f"[chaos] logs and data in {root}")
    yield root
    shutil.rmtree(root / "pg", ignore_errors=True)  # the bulky part; logs stay for a post-mortem


@pytest.fixture(scope="session")
def fake_url(chaos_root: Path) -> Iterator[str]:
    port = free_port()
    log = (chaos_root / "fake-claude.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.claude_api", "--port", str(port), "--seed", "1"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    log.close()
    wait_until(lambda: port_open(port), 30, "fake Claude listening")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="session")
def stack(chaos_root: Path, fake_url: str) -> Iterator[Stack]:
    started: list[Postgres | Redis | RabbitMQ] = []
    try:
        try:
            started.append(Postgres(chaos_root).start())
            started.append(Redis(chaos_root).start())
        except ServiceUnavailable as exc:
            pytest.skip(f"chaos suite needs its own servers: {exc}")
        postgres, redis = started
        assert isinstance(postgres, Postgres) and isinstance(redis, Redis)
        stack = Stack(chaos_root, postgres, redis, FakeControl(fake_url))
        stack.migrate_template()
        yield stack
    finally:
        for service in reversed(started):
            service.stop()


@pytest.fixture(scope="session")
def rabbitmq_stack(stack: Stack, chaos_root: Path) -> Iterator[Stack]:
    """The stack with a RabbitMQ node of its own added (Redis stays the cache)."""
    try:
        stack.rabbitmq = RabbitMQ(chaos_root).start()
    except ServiceUnavailable as exc:
        pytest.skip(f"RabbitMQ scenarios need rabbitmq-server: {exc}")
    try:
        yield stack
    finally:
        stack.rabbitmq.stop()
        stack.rabbitmq = None


@pytest.fixture(scope="session")
def fault_free_redis(stack: Stack) -> Outcome:
    """The oracle: the scripted traffic with no fault, on Redis."""
    return scenario.run(stack, "fault_free_redis")


@pytest.fixture(scope="session")
def fault_free_rabbitmq(rabbitmq_stack: Stack) -> Outcome:
    """The oracle on RabbitMQ (extraction counts depend a little on the broker's timing)."""
    return scenario.run(rabbitmq_stack, "fault_free_rabbitmq", broker="rabbitmq")

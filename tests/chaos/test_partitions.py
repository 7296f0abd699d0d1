"""Partitions on a test host of the suite's own (tests/chaos/netns.py): worker chaos1 runs in a
network namespace and reaches PostgreSQL, Redis and the fake Claude over a veth pair; one of
them is cut off from it (a blackhole route) for longer than the lease, then healed. The other
worker, web and beat are untouched. Same traffic, oracle and verdict as the rest of the suite.

    make chaos PYTEST_ARGS="-k partition"
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from .netns import WorkerHost, available
from .profile import TIMERS
from .scenario import Context, Outcome, Stack, run
from .test_chaos import assert_nothing_lost

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(900)]

CUT_S = 2 * float(TIMERS["NEXUS_LEASE_SECONDS"]) + 2  # past the lease and a takeover


@pytest.fixture
def worker_host(stack: Stack) -> Iterator[WorkerHost]:
    reason = available()
    if reason:
        pytest.skip(reason)
    ports = {
        "postgres": stack.postgres.port,
        "redis": stack.redis.port,
        "claude": int(urlsplit(stack.fake.url).port or 0),
    }
    with WorkerHost(ports) as host:
        yield host


def on_its_host(host: WorkerHost, name: str) -> dict[str, dict[str, str]]:
    """chaos1's environment as its own host sees the servers: over the veth pair."""
    return {
        "chaos1": {
            "DATABASE_URL": f"postgres://postgres@{host.url('postgres')}/chaos_{name}",
            "REDIS_URL": f"redis://{host.url('redis')}/0",
            "CELERY_BROKER_URL": f"redis://{host.url('redis')}/0",
            "ANTHROPIC_BASE_URL": f"http://{host.url('claude')}",
        }
    }


def cut_off(host: WorkerHost, target: str):  # type: ignore[no-untyped-def]
    def fault(ctx: Context) -> None:
        ctx.at(6.0)
        in_flight = ctx.stack.fake.stats()["in_flight"]
        host.partition(target)
        time.sleep(CUT_S)
        host.heal(target)
        ctx.notes.update(partitioned=target, cut_s=CUT_S, calls_in_flight_at_cut=in_flight)

    return fault


def partition_run(stack: Stack, host: WorkerHost, target: str) -> Outcome:
    name = f"partition_worker_{target}"
    return run(
        stack,
        name,
        fault=cut_off(host, target),
        process_env=on_its_host(host, name),
        process_prefix={"chaos1": host.prefix()},
    )


def test_partition_between_a_worker_and_postgres_loses_nothing(
    stack: Stack, fault_free_redis: Outcome, worker_host: WorkerHost
) -> None:
    outcome = partition_run(stack, worker_host, "postgres")

    assert_nothing_lost(outcome, fault_free_redis)


def test_partition_between_a_worker_and_redis_loses_nothing(
    stack: Stack, fault_free_redis: Outcome, worker_host: WorkerHost
) -> None:
    outcome = partition_run(stack, worker_host, "redis")

    assert_nothing_lost(outcome, fault_free_redis)

"""Nothing lost under faults: at-least-once delivery with exactly-once effect (SPEC §4, §10).

Each scenario plays the same scripted traffic (300 sessions x 4 growing POSTs, 50 returning
visitors) against gunicorn, two Celery workers and beat started as the README starts them,
on a PostgreSQL, Redis and RabbitMQ of the suite's own, with the fake Claude answering in
0.2-0.6 s so faults land mid-call. After the drain the ledger must match a fault-free run of
the same traffic: every session completed at its final transcript, every Prospect equal field
by field, no duplicate rows, and no more work than faults can explain.

    make chaos                       (or: pytest -m chaos tests/chaos)
"""

from __future__ import annotations

import time

import pytest

from . import traffic
from .conftest import REPORT
from .scenario import Context, Outcome, Stack, injected_failures, prospect_differences, run, summary_line

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(900)]

# More work than the fault-free run is what redelivery costs (a killed call runs again);
# beyond half as much again something is re-extracting what it need not.
EXTRA_WORK_LIMIT = 1.5


def assert_nothing_lost(outcome: Outcome, fault_free: Outcome) -> None:
    REPORT.append(summary_line(outcome, fault_free))
    tally, snap = outcome.tally, outcome.snapshot
    assert tally.accepted >= 0.99 * tally.posts, (
        f"only {tally.accepted}/{tally.posts} accepted: {tally.gave_up[:5]}"
    )
    assert not tally.server_errors, f"5xx other than the documented 503: {tally.server_errors}"
    assert not tally.unexpected, tally.unexpected[:5]
    assert tally.accepted_sessions == {s.session_id for s in traffic.script()}
    assert not outcome.lost, (
        f"{len(outcome.lost)} sessions not completed at their final transcript: {outcome.lost[:5]}"
    )
    assert not prospect_differences(snap, fault_free.snapshot)
    assert snap.duplicate_extractions == 0
    assert len(snap.prospects) == len(fault_free.snapshot.prospects)
    assert snap.extractions_ok <= EXTRA_WORK_LIMIT * fault_free.snapshot.extractions_ok
    assert snap.extractions_failed <= injected_failures(outcome.fake)
    assert outcome.fake["same_conversation_overlaps"] == 0, "two workers worked one session at once"


# --- faults -------------------------------------------------------------------------------------
KILL_TIMES_S = (4.0, 9.0, 14.0, 20.0)


def kill_workers_mid_call(ctx: Context) -> None:
    """SIGKILL both workers (whole process groups) while Claude calls are in flight, restart."""
    kills = landed = killed_calls = 0
    for moment in KILL_TIMES_S:
        ctx.at(moment)
        deadline = time.monotonic() + 3
        in_flight = ctx.stack.fake.stats()["in_flight"]
        while not in_flight and time.monotonic() < deadline:
            time.sleep(0.02)
            in_flight = ctx.stack.fake.stats()["in_flight"]
        ctx.app.kill_workers()
        kills += 1
        landed += in_flight > 0
        killed_calls += in_flight
        time.sleep(1.0)  # a supervisor's restart delay
        ctx.app.start_workers()
        ctx.app.wait_workers_ready()
    ctx.notes.update(kills=kills, kills_with_calls_in_flight=landed, calls_in_flight_at_kills=killed_calls)


# A flush or purge proves something only when it destroys queued messages. At the default
# fake latency the 32 worker threads (~80 calls/s) keep up with the ~75 POSTs/s of the script
# on a quick machine, so the queue is often empty when the fault lands and nothing is lost:
# these scenarios run Claude slower, so a backlog is waiting at every flush.
BACKLOG_LATENCY_S = (0.8, 1.6)


def flush_redis(ctx: Context) -> None:
    """FLUSHALL twice: queued and unacked messages, bindings, heartbeat, breaker state gone."""
    flushed = []
    for moment in (7.0, 15.0):
        ctx.at(moment)
        flushed.append(int(ctx.stack.redis.cli("LLEN", ctx.queue) or 0))
        ctx.stack.redis.cli("FLUSHALL")
    ctx.notes.update(flushes=2, queued_at_flushes=sum(flushed))


REDIS_RESTART_TIMES_S = (5.0, 11.0, 17.0)


def restart_redis(ctx: Context) -> None:
    """Redis killed three times, back empty after 2 s each time (no persistence: the harshest
    case). Each restart lands while task threads are acking: what once made a worker exit."""
    for moment in REDIS_RESTART_TIMES_S:
        ctx.at(moment)
        ctx.stack.redis.restart(downtime=2.0)
    ctx.notes["redis_restarts"] = len(REDIS_RESTART_TIMES_S)


def restart_postgres(ctx: Context) -> None:
    """``pg_ctl restart -m immediate`` twice: every connection of web, workers and beat dies."""
    for moment in (6.0, 15.0):
        ctx.at(moment)
        ctx.stack.postgres.restart_immediate()
    ctx.notes["postgres_restarts"] = 2


def restart_rabbitmq(ctx: Context) -> None:
    ctx.at(8.0)
    assert ctx.stack.rabbitmq is not None
    ctx.stack.rabbitmq.restart(downtime=2.0)
    ctx.notes["broker_restarts"] = 1


def purge_rabbitmq_queue(ctx: Context) -> None:
    assert ctx.stack.rabbitmq is not None
    purged = []
    for moment in (7.0, 15.0):
        ctx.at(moment)
        purged.append(ctx.stack.rabbitmq.purge(ctx.queue))
    ctx.notes["purges"] = len(purged)


# Claude failing: a share of calls answer 429 (retry-after 1 s), 529 or 500, and some hang
# past the SDK timeout. Transient, so every session must still complete.
CLAUDE_FAILURES = {
    "rate": 0.15,
    "statuses": [429, 529, 500],
    "hang_rate": 0.03,
    "hang_seconds": 4.0,
    "seed": 11,
}


# --- Redis (broker and cache) -------------------------------------------------------------------
def test_fault_free_run_completes_every_session(fault_free_redis: Outcome) -> None:
    assert_nothing_lost(fault_free_redis, fault_free_redis)


def test_sigkill_of_the_workers_mid_call_loses_nothing(stack: Stack, fault_free_redis: Outcome) -> None:
    outcome = run(stack, "sigkill_workers", fault=kill_workers_mid_call)

    assert_nothing_lost(outcome, fault_free_redis)
    assert outcome.notes["kills_with_calls_in_flight"] == len(KILL_TIMES_S)
    assert outcome.sweeper_redispatches > 0  # leases expired on the killed runs


def test_redis_flushall_mid_run_loses_nothing(stack: Stack, fault_free_redis: Outcome) -> None:
    outcome = run(stack, "redis_flushall", fault=flush_redis, latency=BACKLOG_LATENCY_S)

    assert_nothing_lost(outcome, fault_free_redis)
    assert outcome.notes["queued_at_flushes"] > 0  # the fault destroyed queued messages
    assert outcome.sweeper_redispatches > 0


def test_redis_restart_mid_run_loses_nothing(stack: Stack, fault_free_redis: Outcome) -> None:
    outcome = run(stack, "redis_restart", fault=restart_redis)

    assert_nothing_lost(outcome, fault_free_redis)
    assert outcome.sweeper_redispatches > 0


def test_postgres_restart_mid_run_loses_nothing(stack: Stack, fault_free_redis: Outcome) -> None:
    outcome = run(stack, "postgres_restart", fault=restart_postgres)

    assert_nothing_lost(outcome, fault_free_redis)


def test_claude_failing_and_hanging_loses_nothing(stack: Stack, fault_free_redis: Outcome) -> None:
    outcome = run(stack, "claude_failures", failure=CLAUDE_FAILURES)

    assert_nothing_lost(outcome, fault_free_redis)
    assert injected_failures(outcome.fake) > 0 and outcome.snapshot.extractions_failed > 0
    assert outcome.fake["injected"].get("hang", 0) > 0


def test_concurrent_duplicate_and_out_of_order_posts_converge(
    stack: Stack, fault_free_redis: Outcome
) -> None:
    outcome = run(stack, "unruly_clients", lanes=traffic.unruly_lanes)

    assert_nothing_lost(outcome, fault_free_redis)
    assert outcome.tally.flags["duplicate"] > 0 and outcome.tally.flags["stale"] > 0


# --- RabbitMQ as the broker (Redis stays the cache) -----------------------------------------
def test_rabbitmq_fault_free_run_completes_every_session(
    fault_free_rabbitmq: Outcome, fault_free_redis: Outcome
) -> None:
    # The same Prospects as on Redis; the scenarios below compare with this run (its own
    # extraction count is the fair bound for work on this broker).
    assert_nothing_lost(fault_free_rabbitmq, fault_free_redis)


def test_rabbitmq_sigkill_of_the_workers_mid_call_loses_nothing(
    rabbitmq_stack: Stack, fault_free_rabbitmq: Outcome
) -> None:
    outcome = run(rabbitmq_stack, "rabbitmq_sigkill_workers", broker="rabbitmq", fault=kill_workers_mid_call)

    assert_nothing_lost(outcome, fault_free_rabbitmq)
    assert outcome.notes["kills_with_calls_in_flight"] == len(KILL_TIMES_S)


def test_rabbitmq_restart_mid_run_loses_nothing(rabbitmq_stack: Stack, fault_free_rabbitmq: Outcome) -> None:
    outcome = run(rabbitmq_stack, "rabbitmq_restart", broker="rabbitmq", fault=restart_rabbitmq)

    assert_nothing_lost(outcome, fault_free_rabbitmq)


def test_rabbitmq_queue_purge_mid_run_loses_nothing(
    rabbitmq_stack: Stack, fault_free_rabbitmq: Outcome
) -> None:
    outcome = run(
        rabbitmq_stack,
        "rabbitmq_purge",
        broker="rabbitmq",
        fault=purge_rabbitmq_queue,
        latency=BACKLOG_LATENCY_S,
    )

    assert_nothing_lost(outcome, fault_free_rabbitmq)
    assert outcome.sweeper_redispatches > 0

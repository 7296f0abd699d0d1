"""The web's faults on test hosts of the suite's own, in the suite's style (the same scripted
traffic, the fault-free oracle, the same assertions, one summary line each):

- web ↔ PostgreSQL partition: gunicorn runs in a network namespace (tests/chaos/netns.py) and
  is cut off from PostgreSQL (every packet from it dropped on arrival) while the POSTs keep coming; every POST
  answers 503 with Retry-After (never 500), the load client waits out Retry-After and retries,
  and once healed nothing is lost.
- slow dependencies: 200 ms added to every chunk each way between every process and
  PostgreSQL, then Redis (tests/chaos/delay_relay.py: this kernel has no ``sch_netem``, so the
  delay is a user-space relay); POSTs stay bounded, none answers 500, the pipeline drains.

    make chaos PYTEST_ARGS="-k partition_web"
    make chaos PYTEST_ARGS="-k slow_dependency"
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import psycopg
import pytest

from . import traffic
from .delay_relay import DelayRelay
from .netns import HOST_SIDE, WorkerHost, available, firewall_available
from .scenario import Context, Outcome, Stack, run
from .services import free_port
from .test_chaos import assert_nothing_lost

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(900)]

WEB_CUT_S = 12.0  # several Retry-After rounds (2 s each) of every POST in flight
# Connections the client saw fail while the web was cut off: a request a web worker was
# serving when the packets stopped is answered 503 once TCP_USER_TIMEOUT drops its pooled
# connection, so none is expected; a handful allows for one per web worker and retry.
CONNECTION_ERRORS_ALLOWED = 4


@pytest.fixture
def web_host(stack: Stack) -> Iterator[WorkerHost]:
    reason = available() or firewall_available()
    if reason:
        pytest.skip(reason)
    ports = {"postgres": stack.postgres.port, "redis": stack.redis.port}
    with WorkerHost(ports) as host:
        yield host


def web_on_its_host(host: WorkerHost, name: str, web_port: int) -> dict[str, dict[str, str]]:
    """gunicorn's environment on its own host: the servers over the veth pair, listening on
    the host's address (reached through ``host.expose``)."""
    return {
        "web": {
            "DATABASE_URL": f"postgres://postgres@{host.url('postgres')}/chaos_{name}",
            "REDIS_URL": f"redis://{host.url('redis')}/0",
            "CELERY_BROKER_URL": f"redis://{host.url('redis')}/0",
            "GUNICORN_BIND": f"{HOST_SIDE}:{web_port}",
        }
    }


def attempts_between(outcome: Outcome, start: float, end: float) -> list[tuple[float, float, str]]:
    return [a for a in outcome.tally.attempts if start <= a[0] < end]


def test_partition_web_postgres_answers_503_and_loses_nothing(
    stack: Stack, fault_free_redis: Outcome, web_host: WorkerHost
) -> None:
    name = "partition_web_postgres"
    web_port = free_port()
    web_host.expose(web_port)
    window: dict[str, float] = {}

    def cut_web_from_postgres(ctx: Context) -> None:
        ctx.at(4.0)
        window["start"] = time.monotonic()
        web_host.silence("postgres")
        time.sleep(WEB_CUT_S)
        web_host.unsilence("postgres")
        window["end"] = time.monotonic()

    outcome = run(
        stack,
        name,
        fault=cut_web_from_postgres,
        process_env=web_on_its_host(web_host, name, web_port),
        process_prefix={"web": web_host.prefix()},
        web_port=web_port,
    )
    during = attempts_between(outcome, window["start"], window["end"])
    answers = {key: sum(1 for *_, k in during if k == key) for key in {k for *_, k in during}}
    latency_p99 = traffic.p99([seconds for _, seconds, key in during if key != "connection_error"])
    outcome.notes.update(
        cut_s=WEB_CUT_S,
        answers_during_cut=dict(sorted(answers.items())),
        post_p99_during_cut_s=round(latency_p99, 2),
        post_p99_s=round(
            traffic.p99([s for _, s, k in outcome.tally.attempts if k != "connection_error"]), 2
        ),
        retry_after_waits=outcome.tally.retry_after_waits,
    )

    assert_nothing_lost(outcome, fault_free_redis)
    assert answers.get("503", 0) > 0, f"the cut never reached a POST: {answers}"
    assert outcome.tally.answers.get("connection_error", 0) <= CONNECTION_ERRORS_ALLOWED, (
        outcome.tally.answers
    )
    assert outcome.tally.retry_after_waits >= answers.get("503", 0)


# --- slow dependencies --------------------------------------------------------------------------
SLOW_S = 0.2  # added to every chunk, each way: a round trip costs 0.4 s more
SLOW_AT_S, SLOW_FOR_S = 4.0, 20.0  # most of the first phase's traffic
SLOW_DRAIN_TIMEOUT_S = 180.0
# A POST's own time is bounded by the pool's wait for a connection (3 s on the web) plus its
# handful of round trips (each 0.4 s slower: ~2 s a POST on slow PostgreSQL; 0.8 s on slow
# Redis, two Redis round trips in job_accept, measured). Two sync gunicorn workers then serve
# one or two POSTs a second against the ~50/s the script offers; without shedding the rest
# queued in the listen backlog and what a client waited was bounded only by its 15 s attempt
# timeout (p99 14 s, ~220 attempts timed out, on either). A POST slower than
# NEXUS_SHED_SLOW_POST_SECONDS (0.5 s) closes that process's gate for a second
# (ingestion/api/dbgate.py): the backlog is answered 503 with Retry-After in milliseconds, so an
# answered POST waits about one slow POST plus its own. PostgreSQL: two slow POSTs (2 x 2 s)
# plus a loaded machine's margin; measured 1.8-1.9 s (4.7 s at the old 1.5 s budget). Redis:
# two slow POSTs are 1.6 s; measured 0.81 s in two runs, 6.7 s in one where each worker also
# answered ~36 503s a second (the backlog and its retries) between them on two shared cores
# (at the old 1.5 s budget the gate never closed: 13.7 s). 9 s covers that run with margin and
# stays well under the client's timeout, which bounded it before.
POST_P99_BOUND_S = {"postgres": 7.0, "redis": 9.0}


def through_a_slow_link(name: str, target: str, port: int) -> dict[str, dict[str, str]]:
    """Every process of the scenario reaches ``target`` through the delay relay on ``port``."""
    if target == "postgres":
        env = {"DATABASE_URL": f"postgres://postgres@127.0.0.1:{port}/chaos_{name}"}
    else:
        env = {"REDIS_URL": f"redis://127.0.0.1:{port}/0", "CELERY_BROKER_URL": f"redis://127.0.0.1:{port}/0"}
    return {process: dict(env) for process in ("web", "chaos1", "chaos2", "beat")}


def extractions_ok(stack: Stack, name: str) -> int:
    """Successful extractions so far, read over a direct connection (not the slow one)."""
    url = stack.postgres.url(f"chaos_{name}").replace("postgres://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM prospects_extraction WHERE outcome = 'ok'").fetchone()
    return int(row[0]) if row else 0


def slow_run(stack: Stack, target: str) -> Outcome:
    name = f"slow_{target}"
    upstream = stack.postgres.port if target == "postgres" else stack.redis.port
    window: dict[str, float] = {}

    with DelayRelay(upstream) as relay:

        def slow_down(ctx: Context) -> None:
            ctx.at(SLOW_AT_S)
            before = extractions_ok(stack, name)
            window["start"] = time.monotonic()
            relay.delay_s = SLOW_S
            time.sleep(SLOW_FOR_S)
            relay.delay_s = 0.0
            window["end"] = time.monotonic()
            window["rate"] = (extractions_ok(stack, name) - before) / SLOW_FOR_S

        outcome = run(
            stack,
            name,
            fault=slow_down,
            process_env=through_a_slow_link(name, target, relay.port),
            drain_timeout=SLOW_DRAIN_TIMEOUT_S,
        )
    during = attempts_between(outcome, window["start"], window["end"])
    answered = [s for _, s, k in during if k != "connection_error"]
    outcome.notes.update(
        delay_ms=int(1000 * SLOW_S),
        slow_s=SLOW_FOR_S,
        answers_while_slow=dict(sorted(Counter(k for *_, k in during).items())),
        post_p99_while_slow_s=round(traffic.p99(answered), 2),
        extractions_per_s_while_slow=round(window["rate"], 1),
        relayed_connections=relay.connections,
    )
    return outcome


@pytest.mark.parametrize("target", ["postgres", "redis"])
def test_slow_dependency_bounds_post_latency_and_drains(
    stack: Stack, fault_free_redis: Outcome, target: str
) -> None:
    outcome = slow_run(stack, target)

    assert_nothing_lost(outcome, fault_free_redis)  # no 500, nothing lost, no duplicate
    assert outcome.notes["relayed_connections"] > 0
    assert outcome.notes["post_p99_while_slow_s"] <= POST_P99_BOUND_S[target], outcome.notes

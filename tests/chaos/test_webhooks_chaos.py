"""Webhooks under faults (issue 14): every committed event arrives, signed, and an event is
only ever repeated with the same webhook-id.

Each scenario plays part of the chaos script (the first 100 visitors and the 50 who come
back: 150 sessions, ~30 s) against gunicorn, two Celery workers and beat as the other
scenarios do, with one endpoint registered by ``manage.py webhooks add`` for every event
type, pointing at a receiver on 127.0.0.1 (tests/fakes/webhook_receiver.py) that checks each
request with the ``standardwebhooks`` package. The retry schedule is the chaos profile's
(1,1,2,2,3,5,8 s), the lease 5 s, the sweep 1 s. After the jobs drain, the scenario waits for
the deliveries, then compares the receiver's record with the outbox (prospects_event):

- every event in the database arrived (answered 2xx at least once): lost=0;
- no event arrived that the database does not hold: invented=0;
- every request's signature verified: bad_signatures=0;
- each (prospect, sequence) came under one webhook-id only, with the event's own type:
  dup_ids=0 (a repeat under the same id is what at-least-once costs, and is counted).

    make chaos PYTEST_ARGS="-k webhook"
"""

from __future__ import annotations

import base64
import dataclasses
import secrets
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.fakes.webhook_receiver import Receiver

from .app import manage
from .conftest import REPORT
from .scenario import Context, Outcome, Stack, run
from .test_chaos import BACKLOG_LATENCY_S

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

EVENT_TYPES = "prospect.created,prospect.updated,prospect.stage_changed,prospect.hot"
VISITORS = 100  # first-phase sessions kept; the 50 returning visitors are among them
SETTLE_TIMEOUT_S = 60.0  # the schedule's 22 s, a lease, the sweep's slack and a backlog
ENV = {"NEXUS_WEBHOOK_ALLOW_PRIVATE": "true"}  # the receiver is on loopback


@pytest.fixture
def webhook_stack(stack: Stack) -> Stack:
    sessions = [s for s in stack.sessions if s.phase == 2 or int(s.session_id.split("-")[1]) < VISITORS]
    return dataclasses.replace(stack, sessions=sessions)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    receiver = Receiver(secret).start()
    yield receiver
    receiver.stop()


def _connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url.replace("postgres://", "postgresql://"), autocommit=True)


def _events(url: str) -> dict[tuple[int, int], str]:
    with _connect(url) as conn:
        rows = conn.execute("SELECT prospect_id, sequence, type FROM prospects_event").fetchall()
    return {(prospect, sequence): kind for prospect, sequence, kind in rows}


def _pending(url: str) -> int:
    """Deliveries still owed: pending rows, and events no delivery was prepared for yet."""
    with _connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM prospects_delivery WHERE status = 'pending')"
            " + (SELECT count(*) FROM prospects_event e WHERE e.delivered_at IS NULL"
            "    AND NOT EXISTS (SELECT 1 FROM prospects_delivery d WHERE d.event_id = e.id))"
        ).fetchone()
    return int(row[0]) if row else 0


def _delivery_figures(url: str) -> dict[str, Any]:
    with _connect(url) as conn:
        statuses = dict(
            conn.execute("SELECT status, count(*) FROM prospects_delivery GROUP BY status").fetchall()
        )
        attempts, refused = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status_code IS NULL) FROM prospects_deliveryattempt"
        ).fetchone() or (0, 0)
        most = conn.execute("SELECT coalesce(max(attempts), 0) FROM prospects_delivery").fetchone()
    return {
        "statuses": statuses,
        "attempts": attempts,
        "refused": refused,
        "max_attempts": most[0] if most else 0,
    }


def setup_endpoint(receiver: Receiver) -> Any:
    def setup(env: dict[str, str]) -> None:
        manage(env, "webhooks", "add", receiver.url, "--events", EVENT_TYPES, "--secret", receiver.secret)

    return setup


def settle(receiver: Receiver) -> Any:
    """Wait until every event in the outbox reached the receiver (or the timeout)."""

    def wait(ctx: Context) -> None:
        started = time.monotonic()
        while time.monotonic() - started < SETTLE_TIMEOUT_S:
            wanted = set(_events(ctx.database_url))
            got = {(r.prospect_id, r.sequence) for r in receiver.accepted().values()}
            if wanted <= got and not _pending(ctx.database_url):
                break
            for process in ctx.app.procs:
                ctx.app.assert_running(process)
            time.sleep(0.5)
        ctx.notes["settle_s"] = round(time.monotonic() - started, 1)
        swept = ctx.app.webhook_redispatches()
        ctx.notes.update(swept_events=swept["events"], swept_deliveries=swept["deliveries"])
        ctx.notes["events_db"] = _events(ctx.database_url)
        ctx.notes["deliveries"] = _delivery_figures(ctx.database_url)

    return wait


def assert_every_event_arrived(outcome: Outcome, receiver: Receiver) -> dict[str, Any]:
    """Compare the receiver's record with the outbox; report one summary line."""
    events: dict[tuple[int, int], str] = outcome.notes.pop("events_db")
    figures = outcome.notes.pop("deliveries")
    records = receiver.snapshot()
    ids_by_key: dict[tuple[int | None, int | None], set[str]] = defaultdict(set)
    key_by_id: dict[str, set[tuple[Any, ...]]] = defaultdict(set)
    for record in records:
        if record.verified:
            ids_by_key[(record.prospect_id, record.sequence)].add(record.webhook_id)
            key_by_id[record.webhook_id].add((record.prospect_id, record.sequence, record.type))
    accepted = {(r.prospect_id, r.sequence) for r in receiver.accepted().values()}
    lost = sorted(set(events) - accepted)
    invented = sorted(set(ids_by_key) - set(events))
    dup_ids = {key: ids for key, ids in ids_by_key.items() if len(ids) > 1}
    id_changed = {wid: keys for wid, keys in key_by_id.items() if len(keys) > 1}
    wrong_type = [
        r for r in records if r.verified and events.get((r.prospect_id, r.sequence), r.type) != r.type
    ]
    bad = [r for r in records if not r.verified]
    repeats = len([r for r in records if r.verified]) - len(key_by_id)
    by_type: dict[str, int] = defaultdict(int)
    for kind in events.values():
        by_type[kind.removeprefix("prospect.")] += 1
    notes = {k: v for k, v in outcome.notes.items()}
    REPORT.append(
        f"[chaos] {outcome.name}: events={len(events)} delivered={len(set(events) & accepted)} "
        f"lost={len(lost)} invented={len(invented)} dup_ids={len(dup_ids)} "
        f"bad_signatures={len(bad)} requests={len(records)} retries={repeats} "
        f"attempts_recorded={figures['attempts']} refused={figures['refused']} "
        f"max_attempts={figures['max_attempts']} "
        f"deliveries={dict(sorted(figures['statuses'].items()))} by_type={dict(sorted(by_type.items()))} "
        f"jobs_lost={len(outcome.lost)} sweeper_redispatches={outcome.sweeper_redispatches}"
        + "".join(f" {k}={v}" for k, v in notes.items())
    )
    assert events, "the traffic wrote no event: nothing was tested"
    assert not outcome.lost, f"sessions not completed: {outcome.lost[:5]}"
    assert not lost, f"{len(lost)} committed events never arrived, e.g. {lost[:5]}"
    assert not invented, f"events arrived that the database does not hold: {invented[:5]}"
    assert not bad, f"{len(bad)} requests failed standardwebhooks verification"
    assert not dup_ids, f"one event under two webhook-ids: {list(dup_ids.items())[:5]}"
    assert not id_changed, f"one webhook-id for two events: {list(id_changed.items())[:5]}"
    assert not wrong_type, wrong_type[:5]
    assert set(figures["statuses"]) == {"succeeded"}, figures
    return {"repeats": repeats, "requests": len(records), **figures}


def _run(stack: Stack, name: str, receiver: Receiver, **kwargs: Any) -> Outcome:
    return run(stack, name, env=ENV, setup=setup_endpoint(receiver), after_drain=settle(receiver), **kwargs)


# --- faults -------------------------------------------------------------------------------------
FAIL_FIRST = 3  # 500 to each event's first three tries: the 4th (after 1+1+2 s) is answered 200


def test_receiver_answering_500_first_gets_every_event(webhook_stack: Stack, receiver: Receiver) -> None:
    receiver.fail_first = FAIL_FIRST
    outcome = _run(webhook_stack, "webhook_receiver_500", receiver)

    figures = assert_every_event_arrived(outcome, receiver)
    answered_500 = sum(1 for r in receiver.snapshot() if r.answered == 500)
    assert answered_500 >= FAIL_FIRST * len(receiver.accepted())  # every event met the 500s
    assert figures["repeats"] >= answered_500


DOWN_AT_S, DOWN_FOR_S = 6.0, 12.0  # past five retries (1+1+2+2+3 s), within the seventh (22 s)


def receiver_down(receiver: Receiver) -> Any:
    def fault(ctx: Context) -> None:
        ctx.at(DOWN_AT_S)
        receiver.stop()
        time.sleep(DOWN_FOR_S)
        receiver.start()  # the same port
        ctx.notes.update(down_s=DOWN_FOR_S)

    return fault


def test_receiver_down_past_several_retries_then_back_gets_every_event(
    webhook_stack: Stack, receiver: Receiver
) -> None:
    outcome = _run(webhook_stack, "webhook_receiver_down", receiver, fault=receiver_down(receiver))

    figures = assert_every_event_arrived(outcome, receiver)
    # Deliveries met the closed port, some of them five times and more before it came back.
    assert figures["refused"] > 0
    assert figures["max_attempts"] >= 6


KILL_TIMES_S = (6.0, 14.0)
HOLD_S = 1.5  # the receiver keeps each request open this long around a kill (timeout 3 s)


def kill_workers_mid_delivery(receiver: Receiver) -> Any:
    def fault(ctx: Context) -> None:
        cut = landed = 0
        for moment in KILL_TIMES_S:
            ctx.at(moment - HOLD_S)
            receiver.hold_s = HOLD_S
            deadline = time.monotonic() + 5
            while not receiver.in_flight and time.monotonic() < deadline:
                time.sleep(0.02)
            in_flight = receiver.in_flight
            ctx.app.kill_workers()
            receiver.hold_s = 0.0
            cut += in_flight
            landed += in_flight > 0
            time.sleep(1.0)  # a supervisor's restart delay
            ctx.app.start_workers()
            ctx.app.wait_workers_ready()
        ctx.notes.update(kills=len(KILL_TIMES_S), kills_mid_delivery=landed, deliveries_cut=cut)

    return fault


def test_workers_sigkilled_mid_delivery_lose_no_event(webhook_stack: Stack, receiver: Receiver) -> None:
    outcome = _run(
        webhook_stack, "webhook_sigkill_mid_delivery", receiver, fault=kill_workers_mid_delivery(receiver)
    )

    assert_every_event_arrived(outcome, receiver)
    assert outcome.notes["kills_mid_delivery"] == len(KILL_TIMES_S)
    assert outcome.notes["swept_deliveries"] > 0  # the cut deliveries' leases ran out


FLUSH_TIMES_S = (8.0, 16.0)


def flush_with_events_pending(ctx: Context) -> None:
    """FLUSHALL while deliveries are owed: queued event tasks and retry countdowns gone."""
    pending, queued = [], []
    for moment in FLUSH_TIMES_S:
        ctx.at(moment)
        queued.append(int(ctx.stack.redis.cli("LLEN", ctx.queue) or 0))
        pending.append(_pending(ctx.database_url))
        ctx.stack.redis.cli("FLUSHALL")
    ctx.notes.update(
        flushes=len(FLUSH_TIMES_S), pending_at_flushes=sum(pending), queued_at_flushes=sum(queued)
    )


def test_redis_flushed_with_events_pending_loses_none(webhook_stack: Stack, receiver: Receiver) -> None:
    receiver.fail_first = 1  # every delivery waits on a retry countdown at some point
    outcome = _run(
        webhook_stack,
        "webhook_redis_flushall",
        receiver,
        fault=flush_with_events_pending,
        latency=BACKLOG_LATENCY_S,
    )

    assert_every_event_arrived(outcome, receiver)
    assert outcome.notes["pending_at_flushes"] > 0  # the flush met deliveries owed
    assert outcome.notes["queued_at_flushes"] > 0  # and destroyed queued messages
    assert outcome.notes["swept_events"] + outcome.notes["swept_deliveries"] > 0

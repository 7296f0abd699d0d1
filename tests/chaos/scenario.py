"""One chaos scenario: fresh database and queue, the app's processes, the scripted traffic,
a fault on a timeline, then drain and read the outcome from the ledger.

The verdict compares the outcome with a fault-free run of the same traffic (the oracle).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from ingestion.services import transcript_hash

from . import profile, traffic
from .app import App, manage
from .services import Postgres, RabbitMQ, Redis, free_port

PROSPECT_FIELDS = (
    "nombre", "email", "telefono", "ocupacion", "nivel_interes", "momento_optimo", "arquetipo",
    "objeciones", "stage", "session_count",
)  # fmt: skip
# Normal drains take seconds (sweep 1 s, grace 3 s, lease 6 s). A minute means something is
# wedged: a worker that stops consuming loses nothing but is a failure all the same.
DRAIN_TIMEOUT_S = 60.0


class FakeControl:
    """The fake Claude server (its own process), driven over its control API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, path: str, payload: Any = None) -> dict[str, Any]:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            f"{self.url}/_fake/{path}", data=data, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return dict(json.loads(response.read()))

    def stats(self) -> dict[str, Any]:
        return self.call("stats")

    def prepare(self, *, latency: tuple[float, float], failure: dict[str, Any] | None = None) -> None:
        self.call("reset", {})
        self.call("latency", {"min": latency[0], "max": latency[1]})
        if failure:
            self.call("failure_rate", failure)


@dataclass
class Stack:
    """The servers every scenario shares; each scenario gets its own database and queue."""

    root: Path
    postgres: Postgres
    redis: Redis
    fake: FakeControl
    rabbitmq: RabbitMQ | None = None
    template: str = "chaos_template"
    sessions: list[traffic.Session] = field(default_factory=traffic.script)

    def broker_url(self, broker: str) -> str:
        if broker == "rabbitmq":
            assert self.rabbitmq is not None
            return self.rabbitmq.url
        return self.redis.url

    def migrate_template(self) -> None:
        url = self.postgres.create_database(self.template)
        manage(self.environment(url, "redis", "migrate", 0), "migrate", "--noinput")

    def environment(self, database_url: str, broker: str, queue: str, web_port: int) -> dict[str, str]:
        return profile.environment(
            database_url=database_url,
            redis_url=self.redis.url,
            broker_url=self.broker_url(broker),
            queue=queue,
            claude_url=self.fake.url,
            web_port=web_port,
        )


@dataclass
class Snapshot:
    """What the ledger says after the drain."""

    jobs: dict[str, dict[str, Any]]
    prospects: dict[str, dict[str, Any]]
    extractions_ok: int
    extractions_failed: int
    duplicate_extractions: int


@dataclass
class Context:
    """What a fault function may touch while the traffic runs."""

    stack: Stack
    app: App
    client: traffic.LoadClient
    queue: str
    notes: dict[str, Any] = field(default_factory=dict)
    database_url: str = ""

    def at(self, seconds: float) -> None:
        """Sleep until ``seconds`` after the traffic started."""
        while not self.client.started_at:
            time.sleep(0.01)
        time.sleep(max(0.0, self.client.started_at + seconds - time.monotonic()))


Fault = Callable[[Context], None]


@dataclass
class Outcome:
    name: str
    broker: str
    tally: traffic.Tally
    snapshot: Snapshot
    fake: dict[str, Any]
    sweeper_redispatches: int
    drain_s: float
    notes: dict[str, Any]
    lost: list[str]
    logs: dict[str, str] = field(default_factory=dict)  # each process's log, at the drain


def run(
    stack: Stack,
    name: str,
    *,
    broker: str = "redis",
    fault: Fault | None = None,
    lanes: Callable[[list[traffic.Session], int], list[list[traffic.Post]]] = traffic.plain_lanes,
    latency: tuple[float, float] = (0.2, 0.6),
    failure: dict[str, Any] | None = None,
    process_env: dict[str, dict[str, str]] | None = None,
    drain_timeout: float = DRAIN_TIMEOUT_S,
    process_prefix: dict[str, list[str]] | None = None,
    web_port: int | None = None,
    env: dict[str, str] | None = None,
    setup: Callable[[dict[str, str]], None] | None = None,
    after_drain: Fault | None = None,
) -> Outcome:
    database = f"chaos_{name}"
    url = stack.postgres.create_database(database, template=stack.template)
    web_port = web_port or free_port()
    queue = f"chaos-{name}"
    stack.fake.prepare(latency=latency, failure=failure)
    environment = {**stack.environment(url, broker, queue, web_port), **(env or {})}
    if setup is not None:
        setup(environment)  # before any process starts (``manage.py webhooks add …``)
    app = App(
        environment,
        stack.root / "logs" / name,
        web_port,
        process_env,
        process_prefix,
    )
    app.start()
    try:
        client = traffic.LoadClient(web_port)
        context = Context(stack, app, client, queue, database_url=url)
        phases = [lanes(stack.sessions, 1), lanes(stack.sessions, 2)]
        runner = threading.Thread(target=client.run, args=(phases,), name=f"traffic-{name}")
        runner.start()
        if fault is not None:
            fault(context)
        runner.join()
        traffic_done = time.monotonic()
        lost = drain(url, stack.sessions, app, drain_timeout)
        drain_s = time.monotonic() - traffic_done
        if after_drain is not None:
            after_drain(context)  # with every process still up (a wait for the webhooks)
        for process in ("web", "beat", *app.worker_starts):
            app.assert_running(process)
        return Outcome(
            name=name,
            broker=broker,
            tally=client.tally,
            snapshot=snapshot(url),
            fake=stack.fake.stats(),
            sweeper_redispatches=app.sweeper_redispatches(),
            drain_s=drain_s,
            notes=context.notes,
            lost=lost,
            logs={process: app.log(process) for process in app.procs},
        )
    finally:
        app.stop()


def _connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url.replace("postgres://", "postgresql://"), autocommit=True)


def unfinished(url: str, sessions: list[traffic.Session]) -> list[str]:
    """Sessions whose job is not completed at the revision of their final transcript."""
    want = {s.session_id: transcript_hash(s.final) for s in sessions}
    with _connect(url) as conn:
        rows = conn.execute(
            "SELECT session_id, status, revision, processed_revision, transcript_hash FROM ingestion_job"
        ).fetchall()
    done = {
        sid
        for sid, status, revision, processed, digest in rows
        if status == "completed" and processed == revision and digest == want.get(sid)
    }
    states = {sid: f"{status} r{processed}/{revision}" for sid, status, revision, processed, _ in rows}
    return [f"{sid} ({states.get(sid, 'no job')})" for sid in sorted(set(want) - done)]


def drain(url: str, sessions: list[traffic.Session], app: App, timeout: float = DRAIN_TIMEOUT_S) -> list[str]:
    """Wait for every session to complete at its final transcript; what never did is lost."""
    deadline = time.monotonic() + timeout
    while True:
        left = unfinished(url, sessions)
        if not left or time.monotonic() > deadline:
            return left
        for process in app.procs:
            app.assert_running(process)
        time.sleep(0.5)


def snapshot(url: str) -> Snapshot:
    with _connect(url) as conn:
        jobs = {
            row[0]: {"status": row[1], "revision": row[2], "claims": row[3], "attempts": row[4]}
            for row in conn.execute(
                "SELECT session_id, status, revision, claims, attempts FROM ingestion_job"
            ).fetchall()
        }
        columns = ", ".join(PROSPECT_FIELDS)
        prospects = {
            row[0]: dict(zip(PROSPECT_FIELDS, row[1:], strict=True))
            for row in conn.execute(f"SELECT key, {columns} FROM prospects_prospect").fetchall()  # noqa: S608
        }
        counts = dict(
            conn.execute("SELECT outcome, count(*) FROM prospects_extraction GROUP BY outcome").fetchall()
        )
        duplicates = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM prospects_extraction WHERE outcome = 'ok' "
            "GROUP BY job_id, revision, prompt_version, trigger HAVING count(*) > 1) d"
        ).fetchone()
    return Snapshot(
        jobs=jobs,
        prospects=prospects,
        extractions_ok=counts.get("ok", 0),
        extractions_failed=counts.get("failed", 0),
        duplicate_extractions=duplicates[0] if duplicates else 0,
    )


def prospect_differences(outcome: Snapshot, oracle: Snapshot) -> list[str]:
    """Every field of every Prospect that differs from the fault-free run's."""
    differences = []
    for key in sorted(set(outcome.prospects) | set(oracle.prospects)):
        mine, theirs = outcome.prospects.get(key), oracle.prospects.get(key)
        if mine is None or theirs is None:
            differences.append(f"{key}: {'missing' if mine is None else 'extra'}")
            continue
        for name in PROSPECT_FIELDS:
            if mine[name] != theirs[name]:
                differences.append(f"{key}.{name}: {mine[name]!r} != fault-free {theirs[name]!r}")
    return differences


def injected_failures(fake: dict[str, Any]) -> int:
    return int(sum(fake.get("injected", {}).values()))


def summary_line(outcome: Outcome, oracle: Outcome) -> str:
    tally, snap = outcome.tally, outcome.snapshot
    duplicates = snap.duplicate_extractions + max(0, len(snap.prospects) - len(oracle.snapshot.prospects))
    return (
        f"[chaos] {outcome.name} ({outcome.broker}): sessions={len(snap.jobs)} posts={tally.posts} "
        f"posts_202={tally.accepted} answers={dict(sorted(tally.answers.items()))} "
        f"lost={len(outcome.lost)} duplicates={duplicates} "
        f"kills_with_calls_in_flight={outcome.notes.get('kills_with_calls_in_flight', 0)} "
        f"sweeper_redispatches={outcome.sweeper_redispatches} "
        f"extractions={snap.extractions_ok} vs fault-free {oracle.snapshot.extractions_ok} "
        f"failed_calls={snap.extractions_failed} injected={injected_failures(outcome.fake)} "
        f"overlaps={outcome.fake.get('same_conversation_overlaps')} drain_s={outcome.drain_s:.1f}"
        + "".join(f" {k}={v}" for k, v in outcome.notes.items() if k != "kills_with_calls_in_flight")
    )

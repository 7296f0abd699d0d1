"""The soak: steady scripted traffic for SOAK_MINUTES (20 by default) with a fault every few
minutes (both workers SIGKILLed, Redis restarted empty, a burst of Claude errors), sampling
every minute what leaks would show: RSS and open descriptors of web and workers, PostgreSQL
connections (pg_stat_activity), Redis memory, queue depth. Prints one JSON document (also
written to $SOAK_REPORT, default var/soak.json) and fails when:

- RSS of web or workers grew more than 10 % between the baseline minute and the end;
- connections or descriptors are not flat (the end above 1.25 x the baseline + 4);
- a round of traffic did not drain (every session completed at its final transcript) within
  the drain timeout after a fault.

The baseline minute is 5, or a third of the run when it is shorter (a 3-minute run, which
proves the machinery, compares minute 1 with the end).

    make soak                      (SOAK_MINUTES=60 make soak for longer; not in .ci/run)
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from . import traffic
from .app import WORKERS, App
from .scenario import DRAIN_TIMEOUT_S, Stack, unfinished
from .services import free_port
from .test_chaos import CLAUDE_FAILURES

pytestmark = [pytest.mark.soak, pytest.mark.timeout(0)]

MINUTES = float(os.environ.get("SOAK_MINUTES", "20"))
SAMPLE_S = float(os.environ.get("SOAK_SAMPLE_SECONDS", "60"))
FAULT_EVERY_S = float(os.environ.get("SOAK_FAULT_EVERY_SECONDS", "180"))
REPORT_PATH = Path(os.environ.get("SOAK_REPORT", "var/soak.json"))
RSS_GROWTH_LIMIT = 0.10  # the bound, between the baseline minute and the end
FLAT_RATIO, FLAT_SLACK = 1.25, 4  # "flat": a few connections or fds of noise, no trend


def round_sessions(round_no: int) -> list[traffic.Session]:
    """The script with its own ids for this round: every round is new conversations."""
    return [
        dataclasses.replace(
            s, session_id=f"soak{round_no}-{s.session_id}", fingerprint=f"soak{round_no}-{s.fingerprint}"
        )
        for s in traffic.script(seed=2026 + round_no)
    ]


def process_group(pid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pid:  # pgrp: each app process leads its own group
            members.append(int(entry))
    return members


def rss_and_fds(pid: int) -> tuple[int, int]:
    """Resident memory (KiB) and open descriptors of a process group, summed."""
    rss = fds = 0
    for member in process_group(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
            fds += len(os.listdir(f"/proc/{member}/fd"))
        except OSError:
            continue
    return rss, fds


class Sampler:
    def __init__(self, stack: Stack, app: App, url: str, queue: str) -> None:
        self.stack, self.app, self.url, self.queue = stack, app, url, queue
        self.samples: list[dict[str, Any]] = []
        self.started = time.monotonic()

    def sample(self) -> None:
        row: dict[str, Any] = {"minute": round((time.monotonic() - self.started) / 60, 2)}
        for name in ("web", *WORKERS):
            rss, fds = rss_and_fds(self.app.procs[name].pid)
            row[f"{name}_rss_kib"], row[f"{name}_fds"] = rss, fds
        row["workers_rss_kib"] = sum(row[f"{w}_rss_kib"] for w in WORKERS)
        row["workers_fds"] = sum(row[f"{w}_fds"] for w in WORKERS)
        database = self.url.rsplit("/", 1)[1]
        with psycopg.connect(self.stack.postgres.url().replace("postgres://", "postgresql://")) as conn:
            connections = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [database])
            row["pg_connections"] = connections.fetchone()[0]  # type: ignore[index]
        with psycopg.connect(self.url.replace("postgres://", "postgresql://")) as conn:
            open_jobs = conn.execute(
                "SELECT count(*) FROM ingestion_job WHERE status IN ('pending', 'processing')"
            ).fetchone()
            row["open_jobs"] = open_jobs[0] if open_jobs else 0
        try:
            row["redis_used_memory"] = redis.Redis(port=self.stack.redis.port, socket_timeout=2).info(
                "memory"
            )["used_memory"]
        except (OSError, redis.RedisError):
            row["redis_used_memory"] = None  # mid-restart
        row["queue_depth"] = int(self.stack.redis.cli("LLEN", self.queue) or 0)
        self.samples.append(row)


FAULTS = ("kill_workers", "restart_redis", "claude_errors")


def inject(fault: str, stack: Stack, app: App) -> None:
    if fault == "kill_workers":
        app.kill_workers()
        time.sleep(1.0)
        app.start_workers()
        app.wait_workers_ready()
    elif fault == "restart_redis":
        stack.redis.restart(downtime=2.0)
    else:  # a burst of Claude errors for one round
        stack.fake.call("failure_rate", CLAUDE_FAILURES)


def verdict(samples: list[dict[str, Any]], rounds: list[dict[str, Any]]) -> dict[str, Any]:
    baseline_minute = min(5.0, max(1.0, MINUTES / 3))
    base = next((s for s in samples if s["minute"] >= baseline_minute), samples[0])
    end = samples[-1]
    checks: dict[str, Any] = {"baseline_minute": base["minute"], "end_minute": end["minute"]}
    for name in ("web_rss_kib", "workers_rss_kib"):
        growth = (end[name] - base[name]) / base[name] if base[name] else 0.0
        checks[f"{name}_growth"] = round(growth, 4)
        checks[f"{name}_ok"] = growth <= RSS_GROWTH_LIMIT
    for name in ("pg_connections", "web_fds", "workers_fds"):
        checks[f"{name}_ok"] = end[name] <= FLAT_RATIO * base[name] + FLAT_SLACK
    checks["rounds_drained_ok"] = all(r["lost"] == 0 for r in rounds)
    checks["passed"] = all(v for k, v in checks.items() if k.endswith("_ok"))
    return checks


def test_soak(stack: Stack) -> None:
    name = "soak"
    url = stack.postgres.create_database(f"chaos_{name}", template=stack.template)
    web_port, queue = free_port(), f"chaos-{name}"
    stack.fake.prepare(latency=(0.2, 0.6))
    app = App(stack.environment(url, "redis", queue, web_port), stack.root / "logs" / name, web_port)
    app.start()
    sampler = Sampler(stack, app, url, queue)
    stop = threading.Event()

    def sample_every_minute() -> None:
        while not stop.wait(SAMPLE_S):
            sampler.sample()

    rounds: list[dict[str, Any]] = []
    faults: list[dict[str, Any]] = []
    sampler.sample()
    ticker = threading.Thread(target=sample_every_minute, name="soak-sampler", daemon=True)
    ticker.start()
    try:
        next_fault, fault_no, round_no = FAULT_EVERY_S, 0, 0
        while time.monotonic() - sampler.started < MINUTES * 60:
            sessions = round_sessions(round_no)
            client = traffic.LoadClient(web_port)
            runner = threading.Thread(
                target=client.run,
                args=([traffic.plain_lanes(sessions, 1), traffic.plain_lanes(sessions, 2)],),
            )
            runner.start()
            fault = None
            if time.monotonic() - sampler.started >= next_fault:
                time.sleep(5.0)  # mid-round, calls in flight
                fault = FAULTS[fault_no % len(FAULTS)]
                inject(fault, stack, app)
                faults.append({"minute": round((time.monotonic() - sampler.started) / 60, 2), "fault": fault})
                fault_no += 1
                next_fault += FAULT_EVERY_S
            runner.join()
            if fault == "claude_errors":
                stack.fake.prepare(latency=(0.2, 0.6))  # the burst ends with its round
            drained_at = time.monotonic()
            deadline = drained_at + DRAIN_TIMEOUT_S
            left = unfinished(url, sessions)
            while left and time.monotonic() < deadline:
                time.sleep(0.5)
                left = unfinished(url, sessions)
            rounds.append({
                "round": round_no, "fault": fault, "posts": client.tally.posts,
                "accepted": client.tally.accepted, "lost": len(left),
                "drain_s": round(time.monotonic() - drained_at, 1),
                "server_errors": len(client.tally.server_errors),
            })  # fmt: skip
            round_no += 1
        stop.set()
        ticker.join()
        sampler.sample()
        for process in ("web", "beat", *WORKERS):
            app.assert_running(process)
    finally:
        stop.set()
        app.stop()
    checks = verdict(sampler.samples, rounds)
    document = {
        "minutes": MINUTES,
        "samples": sampler.samples,
        "faults": faults,
        "rounds": rounds,
        "verdict": checks,
    }
    text = json.dumps(document, indent=1)
    REPORT_PATH.parent.mkdir(parents=True, exist_ok=True)
    REPORT_PATH.write_text(text)
    print(text)
    assert checks["passed"], checks

"""`python -m bench`: run the seven figures of issue 7 and print one JSON document.

It starts its own fake Claude server, gunicorn and Celery worker processes on free ports,
against real PostgreSQL (its own database, ``nexus_bench`` by default) and Redis (its own
queue name and cache prefix), and stops everything it started on exit, error or Ctrl-C.
DATABASE_URL / REDIS_URL are used when set. See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
PY = sys.executable
BIN = Path(PY).parent

RUN_ID = uuid.uuid4().hex[:8]
QUEUE = f"nexus-bench-{RUN_ID}"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- environment ------------------------------------------------------------------------------
def bench_env(args: argparse.Namespace, fake_port: int, static_root: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("NEXUS_THROTTLE_IP_RATE", "NEXUS_THROTTLE_SESSION_RATE", "NEXUS_NUM_PROXIES"):
        env.pop(name, None)  # the production defaults, whatever the caller's shell says
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DJANGO_ENV": "production",
            "DJANGO_SECRET_KEY": "bench-only-" + "x" * 50,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            # Plain HTTP on loopback: no TLS redirect (production sits behind a TLS proxy).
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "DJANGO_STATIC_ROOT": static_root,
            "DATABASE_URL": args.database_url,
            "REDIS_URL": args.redis_url,
            "CELERY_TASK_DEFAULT_QUEUE": QUEUE,
            "CACHE_KEY_PREFIX": QUEUE,
            "BENCH_COUNTER_KEY": f"noop-count-{RUN_ID}",
            "EXTRACTOR": "claude",
            "ANTHROPIC_API_KEY": "bench",
            "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{fake_port}",
            # Throttles stay on at their production rates (NEXUS_THROTTLE_IP_RATE /
            # NEXUS_THROTTLE_SESSION_RATE unset), so their cache round trips are measured. The
            # load comes from one loopback address standing in for many visitors, so the bench
            # is what production is behind one proxy: NUM_PROXIES=1, and every request carries
            # an X-Forwarded-For of its own visitor (bench/post.lua, bench/loadgen.py).
            "NEXUS_NUM_PROXIES": "1",
            # Figure 11's receiver listens on 127.0.0.1, which production refuses as a webhook
            # address (SSRF guard); the bench's processes allow it.
            "NEXUS_WEBHOOK_ALLOW_PRIVATE": "true",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if args.web_concurrency:
        env["WEB_CONCURRENCY"] = str(args.web_concurrency)
    if args.worker_concurrency:
        env["WORKER_CONCURRENCY"] = str(args.worker_concurrency)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("wrk not found; installing it with apt-get")
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=False, capture_output=True)
        if not shutil.which("wrk"):
            subprocess.run(["apt-get", "update"], check=False, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, capture_output=True)
        found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is needed: apt-get install wrk (or your platform's package)")
    return found


def ensure_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres", scheme="postgresql"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')


# --- processes --------------------------------------------------------------------------------
class Processes:
    """Everything the bench started, each in its own process group, stopped in reverse order."""

    def __init__(self, logdir: Path, env: dict[str, str]) -> None:
        self.logdir, self.env = logdir, env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.offsets: dict[str, int] = {}

    def start(self, name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        path = self.logdir / f"{name}.log"
        self.offsets[name] = path.stat().st_size if path.exists() else 0
        out = path.open("ab")
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        out.close()
        self.procs[name] = proc
        return proc

    def log_since_start(self, name: str) -> str:
        path = self.logdir / f"{name}.log"
        with path.open("rb") as f:
            f.seek(self.offsets.get(name, 0))
            return f.read().decode(errors="replace")

    def stop(self, name: str, timeout: float = 20.0) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        except ProcessLookupError:
            pass

    def stop_together(self, names: list[str], timeout: float = 20.0) -> None:
        """Stop these processes at once: every one is sent SIGTERM before any is waited for,
        so their warm shutdowns overlap instead of adding up (one at a time, each worker's
        shutdown waited for the one before it)."""
        procs = [p for name in names if (p := self.procs.pop(name, None)) is not None and p.poll() is None]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop(name, timeout=10)


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(interval)
    raise RuntimeError(f"timed out waiting for {what}")


def http_json(url: str, payload: Any = None) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes (those that still exist) and of their reaped
    children (a gunicorn worker restarted by max_requests is counted in its master)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime (stat 14-17)
    return total / CLOCK_TICKS


def peak_rss_mb(roots: list[int]) -> dict[str, float]:
    """Peak RSS (VmHWM) of process trees: the largest process and the sum."""
    peaks = []
    for p in [p for root in roots for p in descendants(root)]:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        match = re.search(r"VmHWM:\s+(\d+) kB", status)
        if match:
            peaks.append(int(match.group(1)) / 1024)
    return {
        "max_process_mb": round(max(peaks, default=0), 1),
        "sum_mb": round(sum(peaks), 1),
        "processes": len(peaks),
    }


ROUNDS = 3  # figure 1: interleaved wrk runs per route


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median rate, with every run's rate beside it."""
    ordered = sorted(runs, key=lambda r: r["rps"])
    return {**ordered[len(ordered) // 2], "rps_samples": [r["rps"] for r in runs]}


def ratio(value: float | None, reference: float | None) -> float | None:
    if not value or not reference:
        return None
    return round(value / reference, 3)


# A throughput or latency figure counts only answers that did the work. Non-2xx answers (a
# throttle's 429s, 4xx from a bad body, 5xx) are cheap and would inflate the rate, as they
# once did when the bench set throttle variables the settings never read: such a run is
# reported invalid (met: false, with the reason) and `make bench` exits non-zero.
def wrk_problems(name: str, run: dict[str, Any]) -> list[str]:
    problems = []
    if run.get("non2xx"):
        problems.append(f"{name}: {run['non2xx']} of {run['requests']} answers were not 2xx")
    if run.get("errors"):
        problems.append(f"{name}: {run['errors']} socket errors or timeouts")
    return problems


def paced_problems(name: str, summary: dict[str, Any]) -> list[str]:
    problems = []
    bad = {code: n for code, n in summary["statuses"].items() if not 200 <= code < 300}
    if bad:
        problems.append(f"{name}: non-2xx answers {bad}")
    if summary["errors"]:
        problems.append(f"{name}: {summary['errors']} socket errors or timeouts")
    lag = summary["client"]["send_lag_p99_ms"]
    if lag is not None and lag > 5:
        problems.append(f"{name}: the client sent late (p99 {lag} ms): it measured itself")
    return problems


def drain_problems(name: str, measured: dict[str, Any]) -> list[str]:
    """A drain that did not finish, with why (``Bench.drain_why``) when it drained nothing."""
    if measured.get("not_run"):
        return [f"{name}: not measured: {measured['not_run']}"]
    if measured.get("timed_out"):
        problem = f"{name}: queue not drained in time ({measured['done']} of {measured['total']})"
        if measured.get("stalled"):
            problem = f"{name}: drained {measured['done']} of {measured['total']}, stalled"
        why = measured.get("why")
        return [f"{problem}: {why}" if why else problem]
    return []


# A drain with nothing done this long after the workers said ready, and nothing left in the
# queues, has stalled: the workers took every message and completed none (a task that raises
# on every job, a counter that counts the wrong rows). Waiting out the timeout (120-180 s)
# changes nothing. Worker start-up is behind start_worker, so the first completion of a
# healthy drain comes within a second or two even on a loaded machine.
STALL_SECONDS = 30.0


def fake_problems(stats: dict[str, Any]) -> list[str]:
    """The fake answers 200 unless scripted otherwise; anything else means retries were timed."""
    bad = {code: n for code, n in stats["by_status"].items() if code != "200"}
    return [f"fake Claude answered {bad}"] if bad else []


def verdict(met: bool, invalid: list[str]) -> dict[str, Any]:
    for problem in invalid:
        log(f"INVALID: {problem}")
    result: dict[str, Any] = {"met": met and not invalid}
    if invalid:
        result["invalid"] = invalid
    return result


def with_load(figure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A figure's result with the machine's 1-minute load average before and after it."""
    before = os.getloadavg()[0]
    result = figure()
    result["loadavg_1m"] = {"before": round(before, 2), "after": round(os.getloadavg()[0], 2)}
    return result


# The figures measured once per round: (the key of the headline value, the target, and
# whether the value must be at most (True) or at least (False) the target). Figure 2 is also
# held to >= 100/s; the verdict of its median run says so.
HEADLINE: dict[str, tuple[str, float, bool]] = {
    "2_pipeline_throughput_1s": ("ratio", 0.85, False),
    "3_per_job_overhead_0s": ("ratio_to_floor", 0.70, False),
    "4_end_to_end_latency": ("p99_ms", 50.0, True),
    "5_coalescing": ("claude_calls_per_session", 2.0, True),
}


def aggregate(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median run of a figure measured in rounds, with the spread of every round.

    The verdict rule: a figure is met only when its median meets the target AND the spread
    (max - min of the rounds) is narrower than the median's distance to the target; a spread
    wider than that distance is "inconclusive" (never met), whichever side the median is on.
    Any invalid round makes the figure invalid."""
    key, target, at_most = HEADLINE[name]
    values = [r.get(key) for r in runs]
    known = sorted(v for v in values if v is not None)
    ordered = sorted((r for r in runs if r.get(key) is not None), key=lambda r: r[key])
    median = ordered[len(ordered) // 2] if ordered else runs[0]
    result = dict(median)
    invalid = [problem for r in runs for problem in r.get("invalid", [])]
    spread: dict[str, Any] = {"key": key, "samples": values, "rounds": len(runs)}
    if known:
        mean = statistics.fmean(known)
        lo, hi = known[0], known[-1]
        spread.update(min=lo, max=hi, width=round(hi - lo, 3),
                      cv=round(statistics.pstdev(known) / mean, 3) if mean else None)  # fmt: skip
        value = median[key]
        distance = abs(value - target)
        met = value <= target if at_most else value >= target
        spread["distance_to_target"] = round(distance, 3)
        if len(known) < 2 or hi - lo > distance:
            decision = "inconclusive"
        else:
            decision = "met" if met and median.get("met", met) else "not met"
    else:
        decision = "not met"
    spread["loadavg_1m"] = [r.get("loadavg_1m") for r in runs]
    result["spread"] = spread
    result["verdict"] = "invalid" if invalid else decision
    result["met"] = decision == "met" and not invalid
    if invalid:
        result["invalid"] = invalid
    else:
        result.pop("invalid", None)
    return result


def ref_rows() -> int:
    from django.db import connection

    from bench.views import REF_TABLE

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {REF_TABLE}")  # noqa: S608 - a constant
        return int(cursor.fetchone()[0])


def timezone_now() -> Any:
    from django.utils import timezone

    return timezone.now()


# --- the bench --------------------------------------------------------------------------------
class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        # Figure 6: the largest summed worker peak read right after a figure 2 drain (the pipeline
        # at full concurrency), before figure 3 restarts the workers for other work.
        self.pipeline_rss: dict[str, float] | None = None
        # Figure 7: figure 5's Extraction rows' token averages, read before later figures
        # truncate them.
        self.extraction_tokens: dict[str, Any] = {}
        self.scale = args.scale
        self.fake_port, self.web_port = free_port(), free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix="nexus-bench-"))
        self.env = bench_env(args, self.fake_port, str(self.tmp / "static"))
        self.procs = Processes(self.tmp, self.env)
        self.fake_url = f"http://127.0.0.1:{self.fake_port}"
        self.web = f"http://127.0.0.1:{self.web_port}"
        self.wrk = ensure_wrk()
        self.worker_concurrency = 0
        self.worker_processes = args.worker_processes
        self.web_workers = 0
        # Where the run's time goes (the JSON's "time"): wall seconds per figure and round, and
        # the fixed costs the figures share (worker starts and stops, filling the ledger).
        self.figure_seconds: dict[str, list[float]] = {}
        self.fixed_costs: dict[str, dict[str, float]] = {}

    def spent(self, what: str, since: float) -> None:
        cost = self.fixed_costs.setdefault(what, {"calls": 0, "seconds": 0.0})
        cost["calls"] += 1
        cost["seconds"] = round(cost["seconds"] + time.monotonic() - since, 2)

    def timed(self, key: str, figure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        started = time.monotonic()
        try:
            return figure()
        finally:
            self.figure_seconds.setdefault(key, []).append(round(time.monotonic() - started, 1))

    # setup -----------------------------------------------------------------------------------
    def setup(self) -> None:
        ensure_database(self.args.database_url)
        subprocess.run(
            [PY, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=self.env, check=True
        )
        os.environ.update(self.env)
        import django

        django.setup()
        from django.conf import settings
        from django.db import connection

        from bench.views import CREATE_REF_TABLE

        with connection.cursor() as cursor:
            cursor.execute(CREATE_REF_TABLE)
        self.worker_concurrency = settings.CELERY_WORKER_CONCURRENCY
        # gunicorn.conf.py's default (2 x CPUs) unless WEB_CONCURRENCY says otherwise.
        self.web_workers = int(self.env.get("WEB_CONCURRENCY") or 2 * (os.cpu_count() or 1))
        self.settings = settings

    def start_fake(self) -> None:
        self.procs.start("fake", [PY, "-m", "tests.fakes.claude_api", "--port", str(self.fake_port)])
        wait_until(lambda: http_json(f"{self.fake_url}/_fake/stats") is not None, 15, "fake Claude")

    def fake(self, path: str, payload: Any = None) -> Any:
        return http_json(f"{self.fake_url}/_fake/{path}", payload)

    def start_web(self) -> None:
        cmd = [str(BIN / "gunicorn"), "nexus_project.wsgi:application"]
        if (ROOT / "gunicorn.conf.py").exists():
            cmd += ["-c", "gunicorn.conf.py"]
        else:
            cmd += ["--workers", str(self.web_workers)]
        cmd += ["--bind", f"127.0.0.1:{self.web_port}"]
        self.procs.start("web", cmd)
        wait_until(
            lambda: urllib.request.urlopen(f"{self.web}/healthz", timeout=2).status == 200, 30, "gunicorn"
        )

    @property
    def worker_names(self) -> list[str]:
        return [f"worker{i}" for i in range(self.worker_processes)]

    def start_worker(self) -> None:
        """The production worker: ``worker_processes`` Celery processes (one per core, as the
        README's sizing says), each the Procfile's command with the settings' pool and threads."""
        started = time.monotonic()
        for name in self.worker_names:
            cmd = [
                str(BIN / "celery"), "-A", "nexus_project", "worker",
                "--pool", self.settings.CELERY_WORKER_POOL,
                "--concurrency", str(self.worker_concurrency),
                "--loglevel", "INFO", "-n", f"bench-{RUN_ID}-{name}@%h",
            ]  # fmt: skip
            self.procs.start(name, cmd)
        for name in self.worker_names:
            wait_until(partial(self.worker_ready, name), 60, "celery worker", 0.05)
        self.spent("worker_start", started)

    def worker_ready(self, name: str) -> bool:
        return " ready." in self.procs.log_since_start(name)

    def stop_worker(self) -> None:
        if not any(name in self.procs.procs for name in self.worker_names):
            return
        started = time.monotonic()
        self.procs.stop_together(self.worker_names)
        self.spent("worker_stop", started)

    def worker_running(self) -> bool:
        return all(name in self.procs.procs for name in self.worker_names)

    @property
    def total_concurrency(self) -> int:
        return self.worker_processes * self.worker_concurrency

    def reset_state(self) -> None:
        """Empty the bench database tables and this run's queue."""
        from django.core.cache import cache
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "TRUNCATE ingestion_job, prospects_extraction, prospects_prospect, bench_ref_event CASCADE"
            )
        client = cache._cache.get_client(write=True)  # type: ignore[attr-defined]
        for key in client.scan_iter(match=f"{QUEUE}*"):
            client.delete(key)

    @staticmethod
    def outbox_per_job() -> dict[str, Any]:
        """Issue 14's outbox cost: event rows per prospect the jobs changed. A fold writes its
        events in one multi-row INSERT (prospects/events.py), so statements per changed prospect
        are at most 1; rows exceed 1 when a fold makes two types (prospect.created and .hot)."""
        from ingestion.models import Job, JobStatus
        from prospects.models import Event, Prospect

        events, prospects = Event.objects.count(), Prospect.objects.count()
        jobs = Job.objects.filter(status=JobStatus.COMPLETED).count()
        per = round(events / prospects, 3) if prospects else None
        return {"event_rows": events, "prospects_changed": prospects, "jobs": jobs,
                "event_rows_per_changed_prospect": per,
                "insert_statements_per_changed_prospect": "1 (one bulk_create per fold)"}  # fmt: skip

    def hot_path_costs(self, calls: int = 1000) -> dict[str, Any]:
        """µs of this process's CPU per call, in-process against the bench's PostgreSQL and
        Redis: the producer's tenant resolution (figure 1) and continuity lookup (figure 1)."""
        from django.utils import timezone
        from rest_framework.request import Request
        from rest_framework.test import APIRequestFactory

        from bench import loadgen
        from ingestion import selectors
        from ingestion.api.tenancy import resolve
        from ingestion.services import _continuation_hashes, prefix_hashes
        from tenants import directory

        def cpu_us(fn: Callable[[], Any], n: int) -> dict[str, float]:
            fn()
            c0, w0 = time.process_time(), time.perf_counter()
            for _ in range(n):
                fn()
            return {"cpu_us": round((time.process_time() - c0) / n * 1e6, 1),
                    "wall_us": round((time.perf_counter() - w0) / n * 1e6, 1)}  # fmt: skip

        request = Request(APIRequestFactory().post("/api/nexus/producer", {}, format="json"))
        messages = loadgen.conversation(random.Random(3))
        hashes = prefix_hashes(messages)
        candidates = _continuation_hashes(messages, hashes)
        tenant_id = directory.default_tenant().id

        def lookup() -> Any:
            return selectors.job_for_post(tenant_id=tenant_id, session_id="hot-path", fingerprint="fp-hot",
                                          hashes=candidates, now=timezone.now())  # fmt: skip

        return {
            "tenant_resolution_per_request": cpu_us(lambda: resolve(request), calls),
            "continuity_lookup_per_request": {**cpu_us(lookup, calls // 4), "note": "a new session: no job"},
            "governor_per_job": self.governor_cpu_per_call(calls),
        }

    def reset_state_queue_only(self) -> None:
        """Drop this run's queued messages, keep the rows."""
        from django.core.cache import cache

        client = cache._cache.get_client(write=True)  # type: ignore[attr-defined]
        for key in client.scan_iter(match=f"{QUEUE}*"):
            client.delete(key)

    # figure 1 --------------------------------------------------------------------------------
    def server_cpu(self) -> tuple[float, float]:
        """CPU seconds used so far by gunicorn (master and workers) and by the PostgreSQL
        backends serving the bench database: what a request costs the machine, whatever other
        work shares it (unlike a rate, this barely moves with the machine's load)."""
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            backends = [row[0] for row in cursor.fetchall()]
        return cpu_seconds(descendants(self.procs.procs["web"].pid)), cpu_seconds(backends)

    def wrk_run(self, path: str, seconds: float) -> dict[str, Any]:
        web0, db0 = self.server_cpu()
        out = subprocess.run(
            [self.wrk, "-t1", "-c32", f"-d{max(1, round(seconds))}s", "-s", str(BENCH / "post.lua"),
             f"{self.web}{path}", "--", f"{RUN_ID}-{random.randint(0, 10**9)}"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        line = next(x for x in out.stdout.splitlines() if x.startswith("WRKJSON "))
        run: dict[str, Any] = json.loads(line[len("WRKJSON ") :])
        web1, db1 = self.server_cpu()
        if run["requests"]:
            run["web_cpu_ms_per_request"] = round((web1 - web0) / run["requests"] * 1000, 3)
            # A backend that exits mid-run (its gunicorn worker restarted) takes its CPU along.
            run["db_cpu_ms_per_request"] = round(max(0.0, db1 - db0) / run["requests"] * 1000, 3)
        return run

    def paced(self, path: str, rate: float, seconds: float, prefix: str) -> tuple[dict[str, Any], Any]:
        """Open-loop POSTs at ``rate``/s for ``seconds`` (new session each); (summary, raw)."""
        from bench import loadgen

        rng = random.Random(7)
        requests = []
        for i in range(int(rate * seconds)):
            session = f"{prefix}-{RUN_ID}-{i}"
            requests.append((session, loadgen.producer_body(session, loadgen.conversation(rng))))
        result = asyncio.run(loadgen.paced("127.0.0.1", self.web_port, path, rate, requests))
        summary = {
            "rate": round(rate, 1),
            "requests": len(result.latencies_ms),
            "errors": result.errors,
            "statuses": result.statuses,
            "p50_ms": loadgen.percentile(result.latencies_ms, 50),
            "p99_ms": loadgen.percentile(result.latencies_ms, 99),
            "client": {
                "send_lag_p99_ms": loadgen.percentile(result.send_lag_ms, 99),
                "cpu_core_fraction": round(result.client_cpu_s / result.wall_s, 3) if result.wall_s else None,
            },
        }
        return summary, result

    def figure_1(self) -> dict[str, Any]:
        from ingestion.models import Job

        seconds = 12 * self.scale  # per route, in ROUNDS runs; the half-rate runs take 10
        routes = {"producer": "/api/nexus/producer", "plain": "/bench/plain", "floor": "/bench/floor"}
        rows: dict[str, Callable[[], int]] = {"producer": Job.objects.count, "floor": ref_rows}
        samples: dict[str, list[dict[str, Any]]] = {name: [] for name in routes}
        invalid: list[str] = []
        for path in routes.values():
            self.reset_state()
            self.wrk_run(path, 2)  # warm-up: imports, pools, caches
        # Interleaved rounds, median per route: a burst of other work on the shared machine
        # then lands on all three routes' samples instead of on one route's only run.
        for _round in range(ROUNDS):
            for name, path in routes.items():
                self.reset_state()
                run = self.wrk_run(path, seconds / ROUNDS)
                invalid += wrk_problems(name, run)
                if name in rows:
                    # Every answered request must have done its work: a row per new session.
                    run["rows_written"] = written = rows[name]()
                    if written < run["requests"]:
                        invalid.append(f"{name}: {written} rows for {run['requests']} answers")
                samples[name].append(run)
        runs = {name: median_run(found) for name, found in samples.items()}
        for name in routes:
            log(f"figure 1 {name}: median {runs[name]}")
        half = runs["producer"]["rps"] / 2
        self.reset_state()
        at_half, _ = self.paced(routes["producer"], half, 10 * self.scale, "paced-producer")
        self.reset_state()
        floor_at_half, _ = self.paced(routes["floor"], half, 10 * self.scale, "paced-floor")
        log(f"figure 1 at half rate: producer {at_half} floor {floor_at_half}")
        invalid += paced_problems("producer at half rate", at_half)
        invalid += paced_problems("floor at half rate", floor_at_half)
        vs_plain = ratio(runs["producer"]["rps"], runs["plain"]["rps"])
        vs_floor = ratio(runs["producer"]["rps"], runs["floor"]["rps"])
        return {
            "what": "POST /api/nexus/producer, new session per request, 1-2 KB bodies; wrk -t1 -c32; "
            f"median of {ROUNDS} interleaved runs per route",
            "producer": runs["producer"],
            "reference_plain_django_202": runs["plain"],
            "reference_floor_drf_insert_publish": runs["floor"],
            "ratio_vs_plain": vs_plain,
            "ratio_vs_floor": vs_floor,
            "at_half_max_rate": {"producer": at_half, "reference_floor": floor_at_half},
            "target": "rps >= 25% of plain and >= 80% of floor; p99 <= 50 ms at half max rate",
            **verdict(
                bool(
                    vs_plain and vs_plain >= 0.25 and vs_floor and vs_floor >= 0.80
                    and at_half["p99_ms"] is not None and at_half["p99_ms"] <= 50
                ),
                invalid,
            ),
        }  # fmt: skip

    # the worker-side figures -----------------------------------------------------------------
    def fill_jobs(self, count: int, prefix: str) -> None:
        """Create ``count`` new sessions through the service (each publishes its task)."""
        from bench import loadgen
        from ingestion.services import job_accept

        rng = random.Random(11)
        started = time.monotonic()
        for i in range(count):
            session = f"{prefix}-{RUN_ID}-{i}"
            job_accept(
                session_id=session,
                fingerprint=f"fp-{session}",
                messages=loadgen.conversation(rng),
                metadata={"url": "https://example.com"},
            )
        self.spent("fill_jobs", started)

    def completed(self) -> int:
        from ingestion.models import Job, JobStatus

        return Job.objects.filter(status=JobStatus.COMPLETED).count()

    def drain_rate(
        self, count: Callable[[], int], total: int, timeout: float, task: str = "", jobs: bool = True
    ) -> dict[str, Any]:
        """Completions per second between 10 % and 90 % of ``total`` (ramp-up and tail cut).

        A drain that does not reach 90 % carries ``why`` (``drain_why``: what the workers
        received and raised, the jobs' statuses, what is left queued); one that completed
        nothing while the queues emptied stops after ``STALL_SECONDS`` (``stalled``)."""
        lo, hi = int(total * 0.10), int(total * 0.90)
        t_lo = t_hi = None
        n_lo = n_hi = 0
        start = time.monotonic()
        stalled, next_stall_check = False, start + STALL_SECONDS
        while time.monotonic() - start < timeout:
            n = count()
            now = time.monotonic()
            if t_lo is None and n >= lo:
                t_lo, n_lo = now, n
            if n >= hi:
                t_hi, n_hi = now, n
                break
            if n == 0 and now >= next_stall_check:
                if self.queued() == 0:
                    stalled = True
                    break
                next_stall_check = now + 1.0
            time.sleep(0.01)  # the no-op drains 10 % -> 90 % of a small queue in ~0.2 s
        if t_lo is None or t_hi is None or t_hi <= t_lo:
            result: dict[str, Any] = {"rate": None, "done": count(), "total": total, "timed_out": True,
                      "waited_s": round(time.monotonic() - start, 1)}  # fmt: skip
            if stalled:
                result["stalled"] = True
            result["why"] = self.drain_why(task, jobs)
            return result
        return {"rate": round((n_hi - n_lo) / (t_hi - t_lo), 1), "window_s": round(t_hi - t_lo, 2),
                "total": total}  # fmt: skip

    def queued(self) -> int:
        """Messages waiting in this run's queues (live, bulk, and their priority lists)."""
        from django.core.cache import cache

        client = cache._cache.get_client(write=True)  # type: ignore[attr-defined]
        return sum(int(client.llen(key)) for key in client.scan_iter(match=f"{QUEUE}*", _type="list"))

    def worker_log_tasks(self, task: str) -> tuple[int, dict[str, int]]:
        """Since the workers' last start: how many ``task`` messages they received, and their
        ERROR lines (task ids cut out, so a failure repeated on every job counts as one kind)."""
        received, errors = 0, dict[str, int]()
        for name in self.worker_names:
            for line in self.procs.log_since_start(name).splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(entry, dict):
                    continue
                message = str(entry.get("message", ""))
                if task and message.startswith(f"Task {task}[") and message.endswith("] received"):
                    received += 1
                if entry.get("level") in ("ERROR", "CRITICAL"):
                    # The first line: the failing row's values that follow would make every
                    # job's error a kind of its own.
                    first = message.replace("\\n", "\n").splitlines()[0] if message else ""
                    kind = re.sub(r"\[[0-9a-f-]{36}\]", "[…]", first)[:300]
                    errors[kind] = errors.get(kind, 0) + 1
        return received, errors

    def drain_why(self, task: str, jobs: bool) -> str:
        """Why a drain did not finish, from what can be read after it: the workers' logs
        (messages received, errors raised), the jobs' statuses, the messages left queued."""
        from django.db.models import Count

        from ingestion.models import Job

        parts = []
        received, errors = self.worker_log_tasks(task)
        if task:
            parts.append(f"the workers received {received} {task} messages")
        if errors:
            kind, n = max(errors.items(), key=lambda item: item[1])
            parts.append(f"they logged {sum(errors.values())} errors, the most frequent ({n}x): {kind}")
        else:
            parts.append("they logged no error")
        if jobs:
            statuses = dict(Job.objects.values_list("status").annotate(n=Count("id")).order_by())
            parts.append(f"jobs by status {statuses}")
        parts.append(f"{self.queued()} messages still queued")
        return "; ".join(parts)

    def figure_2(self) -> dict[str, Any]:
        latency = 1.0
        self.stop_worker()
        self.reset_state()
        self.fake("reset", {})
        self.fake("latency", {"latency": latency})
        total = int(self.total_concurrency * 12 * self.scale)
        self.fill_jobs(total, "f2")
        self.start_worker()
        measured = self.drain_rate(self.completed, total, timeout=120, task="ingestion.process_session")
        rss = peak_rss_mb([self.procs.procs[name].pid for name in self.worker_names])
        if self.pipeline_rss is None or rss["sum_mb"] > self.pipeline_rss["sum_mb"]:
            self.pipeline_rss = rss
        stats = self.fake("stats")
        ideal = self.total_concurrency / latency
        rate = measured["rate"]
        log(f"figure 2: {measured} fake={stats}")
        return {
            "what": f"extractions/s, Claude latency {latency} s, queue pre-filled with {total} jobs",
            "extractions_per_s": rate,
            "reference_ideal": ideal,
            "ratio": ratio(rate, ideal),
            "worker": {"pool": self.settings.CELERY_WORKER_POOL, "processes": self.worker_processes,
                       "threads_per_process": self.worker_concurrency,
                       "concurrency": self.total_concurrency,
                       "db_pool_max": self.settings.DATABASES["default"]["OPTIONS"]["pool"]["max_size"]},
            "fake_max_in_flight": stats["max_in_flight"],
            "detail": measured,
            "target": ">= 85% of ideal and >= 100/s (150 the aim)",
            **verdict(bool(rate and rate >= 0.85 * ideal and rate >= 100),
                      drain_problems("jobs", measured) + fake_problems(stats)),
        }  # fmt: skip

    def figure_6(self, web_pid: int) -> dict[str, Any]:
        # The workers alive now are figure 3's (raw SQL, no Claude call): the pipeline's peak
        # is the one read after figure 2's drains.
        worker = self.pipeline_rss or peak_rss_mb([self.procs.procs[name].pid for name in self.worker_names])
        web = peak_rss_mb([web_pid])
        return {
            "what": "peak RSS (VmHWM): the workers right after a figure 2 drain (the largest of the "
            "rounds), gunicorn (master + workers) after figures 1-5",
            "worker": worker,
            "web": web,
            "reference": f"target 400 MB for the worker: {self.worker_processes} processes x "
            f"{self.worker_concurrency} threads, summed",
            "target": "worker <= 400 MB at the configured concurrency",
            "met": worker["sum_mb"] <= 400,
        }

    def figure_5(self) -> dict[str, Any]:
        from django.db.models import Count

        from bench import loadgen
        from ingestion.models import Extraction, Job

        sessions_n, posts = int(300 * min(1.0, self.scale)), 8  # per round (3 rounds)
        self.reset_state()
        self.fake("reset", {})
        self.fake("latency", {"latency": 1.0})
        rng = random.Random(5)
        sessions = []
        for s in range(sessions_n):
            session = f"coalesce-{RUN_ID}-{s}"
            convo = loadgen.conversation(rng, turns=posts * 2)
            sessions.append(
                (session, [loadgen.producer_body(session, convo[: 2 * k + 1]) for k in range(posts)])
            )
        started = time.monotonic()
        result = asyncio.run(loadgen.bursts("127.0.0.1", self.web_port, "/api/nexus/producer", sessions, 16))
        burst_s = time.monotonic() - started
        invalid = []
        if result.non_2xx() or result.errors:
            # A refused POST never became a revision: the calls per session would be measured
            # on fewer POSTs than claimed. Report it instead of waiting for jobs that never come.
            bad = {code: n for code, n in result.statuses.items() if not 200 <= code < 300}
            invalid.append(f"POSTs not accepted: {bad}, socket errors {result.errors}")
        created = Job.objects.count()
        if created != sessions_n:
            invalid.append(f"{created} jobs for {sessions_n} sessions")

        def settled() -> bool:
            return not Job.objects.exclude(status="completed").exists()

        try:
            wait_until(settled, 120, "coalescing jobs to complete", 0.2)
        except RuntimeError as exc:
            invalid.append(f"{exc}: {dict(Job.objects.values_list('status').annotate(n=Count('id')))}")
        calls = self.fake("stats")["calls"]
        per_job = list(
            Extraction.objects.values("job_id").annotate(n=Count("id")).values_list("n", flat=True)
        )
        per_session = calls / sessions_n
        from django.db.models import Avg

        self.extraction_tokens = Extraction.objects.aggregate(
            input=Avg("input_tokens"), output=Avg("output_tokens"),
            cache_write=Avg("cache_creation_tokens"), cache_read=Avg("cache_read_tokens"),
        )  # fmt: skip
        third_calls = self.third_calls(result)
        log(f"figure 5: {calls} calls for {sessions_n} sessions; burst {burst_s:.1f}s")
        return {
            "what": f"{sessions_n} sessions x {posts} growing transcripts, each session's POSTs back to back "
            "(16 sessions at a time), Claude at 1.0 s",
            "claude_calls_per_session": round(per_session, 3),
            "reference_naive": posts,
            "ratio": ratio(per_session, posts),
            "max_calls_one_session": max(per_job, default=0),
            "sessions_over_2_calls": third_calls,
            "posts": sum(result.statuses.values()),
            "post_statuses": result.statuses,
            "post_errors": result.errors,
            "post_p50_ms": loadgen.percentile(result.latencies_ms, 50),
            "post_p99_ms": loadgen.percentile(result.latencies_ms, 99),
            "burst_seconds": round(burst_s, 1),
            "target": "<= 2.0 calls per session",
            **verdict(per_session <= 2.0, invalid),
        }

    def third_calls(self, result: Any) -> dict[str, Any]:
        """Why a session got more than two calls. Run 2 claims the latest revision when run 1
        ends; a third run is needed only if a POST committed after run 2 claimed. For each such
        session: the first revision run 2 did not see, and whether the POST that made it was
        sent after run 2's Claude call began ("late_post": the intended bound, two runs could
        not have seen it), answered before its claim ("race": ours to fix), or overlapped."""
        from ingestion.models import Extraction

        rows: dict[Any, list[tuple[int, float, int]]] = {}
        for job_id, session, revision, created, latency in Extraction.objects.filter(
            job__session_id__startswith=f"coalesce-{RUN_ID}-"
        ).values_list("job_id", "job__session_id", "revision", "created_at", "latency_ms"):
            rows.setdefault((job_id, session), []).append((revision, created.timestamp(), latency or 0))
        kinds = {"late_post": 0, "overlap": 0, "race": 0}
        examples = []
        for (_, session), runs in rows.items():
            if len(runs) <= 2:
                continue
            runs.sort(key=lambda r: r[1])
            revision2, done2, latency2 = runs[1]
            call2_began = done2 - latency2 / 1000
            posts = result.posts.get(session, [])
            if revision2 >= len(posts):
                kinds["race"] += 1  # run 2 saw every POST and still a third run came
                examples.append({"session": session, "runs": runs, "kind": "race"})
                continue
            sent, answered = posts[revision2]  # the POST of revision revision2 + 1
            kind = (
                "late_post" if sent >= call2_began else "race" if answered < call2_began - 0.05 else "overlap"
            )
            kinds[kind] += 1
            if len(examples) < 5:
                examples.append({"session": session, "kind": kind, "run_revisions": [r[0] for r in runs],
                                 "unseen_post_sent_after_run2_call_s": round(sent - call2_began, 3),
                                 "session_posts_span_s": round(posts[-1][1] - posts[0][0], 3)})  # fmt: skip
        return {"sessions": sum(kinds.values()), **kinds, "examples": examples}

    @staticmethod
    def tail_breakdown(sent_at: dict[str, float], stamps: dict[str, tuple[Any, Any, Any]]) -> dict[str, Any]:
        """Where the slowest 1 % (at least 3 jobs) and the median job spent their time, from the
        Job row's own stamps (database clock; the client is on the same host): POST sent ->
        row inserted (web: connect, throttles, validation, INSERT), inserted -> claimed (commit,
        publish, broker, prefetch, thread pickup, the claim UPDATE's wait), claimed -> completed
        (the run: Claude at 0 s, record, fold, commits)."""
        phases = []
        for s, t in sent_at.items():
            created, started, finished = stamps.get(s, (None, None, None))
            if created is None or started is None or finished is None:
                continue
            web = (created.timestamp() - t) * 1000
            queue = (started - created).total_seconds() * 1000
            run = (finished - started).total_seconds() * 1000
            phases.append((web + queue + run, web, queue, run))
        if not phases:
            return {}
        phases.sort()
        slow = phases[-max(3, len(phases) // 100) :]
        mid = phases[len(phases) // 2]

        def row(p: tuple[float, float, float, float]) -> dict[str, float]:
            keys = ("total_ms", "web_ms", "queue_and_claim_ms", "run_ms")
            return {k: round(v, 1) for k, v in zip(keys, p, strict=True)}

        mean = [round(statistics.fmean(p[i] for p in slow), 1) for i in range(4)]
        return {"median_job": row(mid), "slowest": [row(p) for p in slow],
                "slowest_mean": {"total_ms": mean[0], "web_ms": mean[1], "queue_and_claim_ms": mean[2],
                                 "run_ms": mean[3]}}  # fmt: skip

    def figure_4(self) -> dict[str, Any]:
        from bench import loadgen
        from ingestion.models import Job

        rate, seconds = 20.0, 15 * self.scale
        self.reset_state()
        self.fake("reset", {})
        self.fake("latency", {"latency": 0.0})
        posted, result = self.paced("/api/nexus/producer", rate, seconds, "e2e")
        invalid = paced_problems("POSTs at 20/s", posted)
        total = len(result.sent_at)
        try:
            wait_until(lambda: Job.objects.filter(status="completed").count() >= total, 60, "e2e jobs", 0.2)
        except RuntimeError as exc:
            invalid.append(str(exc))
        stamps = {
            s: (created, started, finished)
            for s, created, started, finished in Job.objects.filter(
                session_id__in=list(result.sent_at)
            ).values_list("session_id", "created_at", "started_at", "processed_at")
        }
        done = {s: finished for s, (_, _, finished) in stamps.items()}
        e2e = [
            (finished.timestamp() - t) * 1000
            for s, t in result.sent_at.items()
            if (finished := done.get(s)) is not None
        ]
        p50, p99 = loadgen.percentile(e2e, 50), loadgen.percentile(e2e, 99)
        tail = self.tail_breakdown(result.sent_at, stamps)
        return {
            "what": "POST sent -> job completed (processed_at), 20 POST/s, new sessions, Claude at 0 s",
            "samples": len(e2e),
            "p50_ms": p50,
            "p99_ms": p99,
            "reference_post_latency": {"p50_ms": posted["p50_ms"], "p99_ms": posted["p99_ms"]},
            "tail": tail,
            "target": "p50 <= 30 ms, p99 <= 50 ms (issue 18; was 150)",
            **verdict(bool(p50 is not None and p99 is not None and p50 <= 30 and p99 <= 50), invalid),
        }

    def figure_3(self) -> dict[str, Any]:
        from django.core.cache import cache

        from bench.tasks import COUNTER_KEY, noop

        total = int(2000 * self.scale)  # per round (3 rounds)
        self.fake("reset", {})
        self.fake("latency", {"latency": 0.0})
        # Reference: no-op tasks, same broker, same worker command and settings.
        self.stop_worker()
        self.reset_state()
        cache.set(COUNTER_KEY, 0, timeout=None)
        for i in range(total):
            noop.apply_async(args=[i])
        self.start_worker()
        noop_rate = self.drain_rate(
            lambda: int(cache.get(COUNTER_KEY) or 0), total, timeout=120, task="bench.noop", jobs=False
        )
        log(f"figure 3 noop: {noop_rate}")
        # The real job: claim, Claude call (0 s), merge.
        self.stop_worker()
        self.reset_state()
        self.fill_jobs(total, "f3")
        self.start_worker()
        job_rate = self.drain_rate(self.completed, total, timeout=180, task="ingestion.process_session")
        log(f"figure 3 jobs: {job_rate}")
        outbox = self.outbox_per_job()
        # The same-work floor: the same pending rows, their statements as raw SQL (bench/tasks.py).
        self.stop_worker()
        self.reset_state()
        self.fill_jobs(total, "f3floor")
        self.reset_state_queue_only()
        from bench.tasks import same_work
        from ingestion.models import Job

        job_ids = list(Job.objects.values_list("id", flat=True))
        # One job through the floor's SQL in this process, rolled back: a statement the schema
        # refuses fails here in milliseconds, with its error, instead of on every job.
        refused = self.floor_refused(job_ids[0])
        if refused:
            floor_rate: dict[str, Any] = {"rate": None, "total": total, "not_run": refused}
        else:
            for job_id in job_ids:
                same_work.apply_async(args=[str(job_id)])
            self.start_worker()
            floor_rate = self.drain_rate(self.completed, total, timeout=180, task="bench.same_work")
        log(f"figure 3 floor: {floor_rate}")
        invalid = drain_problems("no-op", noop_rate) + drain_problems("jobs", job_rate)
        invalid += drain_problems("floor", floor_rate)
        invalid += fake_problems(self.fake("stats"))
        r = ratio(job_rate["rate"], noop_rate["rate"])
        return {
            "what": f"drain rate of {total} pre-queued tasks, Claude at 0 s",
            "extractions_per_s": job_rate["rate"],
            "reference_noop_tasks_per_s": noop_rate["rate"],
            "ratio": r,
            "reference_same_work_floor_per_s": floor_rate["rate"],
            "ratio_to_floor": ratio(job_rate["rate"], floor_rate["rate"]),
            "outbox": outbox,
            "detail": {"jobs": job_rate, "noop": noop_rate, "floor": floor_rate},
            "target": ">= 70% of the same-work floor (issue 18); the no-op ratio is a second reference",
            **verdict(bool((rf := ratio(job_rate["rate"], floor_rate["rate"])) and rf >= 0.7), invalid),
        }

    @staticmethod
    def floor_refused(job_id: Any) -> str | None:
        """Run ``bench.same_work`` on one pending job in this process and roll it back: None
        when it completed the job, else why not (the database's error, or the job's status)."""
        import psycopg
        from django.db import DatabaseError, transaction

        from bench.tasks import same_work
        from ingestion.models import Job, JobStatus

        try:
            with transaction.atomic():
                same_work(str(job_id))
                status = Job.objects.filter(id=job_id).values_list("status", flat=True).first()
                transaction.set_rollback(True)
        # The task runs its SQL on the raw psycopg connection: psycopg's errors, not Django's.
        except (DatabaseError, psycopg.Error) as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return f"bench.same_work fails on a pending job: {type(exc).__name__}: {first_line}"
        if status != JobStatus.COMPLETED:
            return f"bench.same_work left a pending job {status}, not completed"
        return None

    def figure_7(self, calls_per_session: float | None) -> dict[str, Any]:

        from bench import loadgen
        from ingestion.extraction.claude import ClaudeExtractor
        from ingestion.extraction.prompt import SYSTEM_PROMPT
        from tests.fakes.claude_api import cache_minimum, prompt_tokens, tokens

        settings = self.settings
        model = settings.ANTHROPIC_MODEL
        # Figure 5's extractions (8 growing transcripts per session): later figures truncate them.
        avg = self.extraction_tokens or dict.fromkeys(("input", "output", "cache_write", "cache_read"))
        prefix = tokens(len(SYSTEM_PROMPT))
        minimum = cache_minimum(model)
        # The 8 growing transcripts of figure 5, priced call by call.
        extractor = ClaudeExtractor(api_key="x", model=model, base_url="http://127.0.0.1:9")
        convo = loadgen.conversation(random.Random(5), turns=16)
        per_post_in = [prompt_tokens(extractor.request_params(convo[: 2 * k + 1], 512)) for k in range(8)]
        out_tokens = avg["output"] or 60

        def cost(prices: dict[str, float], calls: list[int], cached: bool) -> float:
            total = 0.0
            for i, tok in enumerate(calls):
                if cached:
                    cached_part = prefix
                    rate = prices["cache_write"] if i == 0 else prices["cache_read"]
                    total += cached_part * rate + (tok - cached_part) * prices["input"]
                else:
                    total += tok * prices["input"]
                total += out_tokens * prices["output"]
            return round(total / 1e6 * 1000, 4)

        haiku = next(p for n, p in settings.ANTHROPIC_PRICES.items() if model.startswith(n))
        sonnet = settings.ANTHROPIC_PRICES["claude-sonnet-4-5"]
        cps = calls_per_session or 8
        # Coalesced: the session's calls see the later, longer transcripts.
        coalesced = per_post_in[-max(1, round(cps)) :]
        cacheable = prefix >= minimum
        return {
            "what": "tokens as the fake counts them (chars / 4); cost per 1,000 conversations of 8 POSTs",
            "input_tokens_per_extraction": round(avg["input"] or 0, 1),
            "cache_tokens_per_extraction": {"write": avg["cache_write"], "read": avg["cache_read"]},
            "output_tokens_per_extraction": round(out_tokens, 1),
            "cacheable_prefix_tokens": prefix,
            "model": model,
            "model_cache_minimum_tokens": minimum,
            "prefix_is_cached": cacheable,
            "usd_per_1000_conversations": {
                "reference_seed_sonnet_uncached_one_call_per_post": cost(sonnet, per_post_in, False),
                "configured_no_coalescing_no_caching": cost(haiku, per_post_in, False),
                "configured_coalescing_no_caching": cost(haiku, coalesced, False),
                "configured_coalescing_and_caching": cost(haiku, coalesced, cacheable),
            },
            "note": "caching applies only when the cached prefix reaches the model's minimum",
        }

    # figure 8 --------------------------------------------------------------------------------
    def figure_8(self) -> dict[str, Any]:
        """The rate governor: sessions against a fake enforcing the account's RPM with real 429s.

        Time is scaled by ``time_scale``: the fake and the governor both run at k x 120 RPM,
        the fake's bucket holds 60/k s of refill (a 120-RPM account holds a minute), the
        governor's burst is its 5 s / k and Claude's latency 1 s / k, so the run is the
        120-RPM one played k times faster: same calls, same bucket shapes, k times shorter."""
        limit_rpm, time_scale = 120, 10
        rpm = limit_rpm * time_scale
        sessions = max(100, int(600 * self.scale))
        self.stop_worker()
        self.reset_state()
        self.fake("reset", {})
        self.fake("latency", {"latency": 1.0 / time_scale})
        self.fake("rate_limits", {"rpm": rpm, "window": 60.0 / time_scale})
        governed = {
            "NEXUS_CLAUDE_RPM": str(rpm),
            "NEXUS_GOVERNOR_BURST_SECONDS": str(5.0 / time_scale),
            "NEXUS_GOVERNOR_PROCESSES": str(self.worker_processes),
        }
        self.env.update(governed)
        try:
            self.fill_jobs(sessions, "f8")
            started = time.monotonic()
            self.start_worker()
            measured = self.drain_rate(
                self.completed,
                sessions,
                timeout=sessions / (rpm / 60) * 4 + 60,
                task="ingestion.process_session",
            )
            wait_until(lambda: self.completed() >= sessions, sessions / (rpm / 60) * 4 + 60, "all jobs")
            elapsed = time.monotonic() - started
            stats = self.fake("stats")
        finally:
            for name in governed:
                self.env.pop(name, None)
            self.stop_worker()
        from ingestion.models import Extraction

        failed = Extraction.objects.filter(outcome="failed").count()
        calls, limited = stats["calls"], stats["rate_limited"]
        share_429 = limited / calls if calls else None
        rate_per_min = measured["rate"] * 60 if measured.get("rate") else None
        throughput = ratio(rate_per_min, rpm)
        cpu = self.governor_cpu_per_call()
        log(f"figure 8: {measured} fake={stats} cpu={cpu}")
        invalid = drain_problems("jobs", measured)
        if self.completed() < sessions:
            invalid.append(f"only {self.completed()} of {sessions} jobs completed")
        return {
            "what": f"{sessions} sessions against a fake enforcing {limit_rpm} RPM with real 429s, "
                    f"time scaled x{time_scale} (fake and governor at {rpm} RPM)",
            "sessions": sessions,
            "completed": self.completed(),
            "failed_extractions": failed,
            "claude_calls": calls,
            "http_429": limited,
            "share_429": round(share_429, 4) if share_429 is not None else None,
            "throughput_per_min_scaled": round(rate_per_min, 1) if rate_per_min else None,
            "throughput_vs_limit": throughput,
            "equivalent_at_120_rpm": {"throughput_per_min": round(rate_per_min / time_scale, 1)
                                      if rate_per_min else None},
            "wall_s_including_worker_start": round(elapsed, 1),
            "governor_cpu_ms_per_call": cpu,
            "detail": measured,
            "target": "every job completes, 429s <= 1% of calls, throughput >= 90% of the limit, "
                      "governor CPU <= 0.5 ms per call",
            **verdict(bool(self.completed() >= sessions and share_429 is not None and share_429 <= 0.01
                           and throughput and throughput >= 0.9 and cpu["cpu_ms_per_call"] <= 0.5),
                      invalid),
        }  # fmt: skip

    def figure_9(self) -> dict[str, Any]:
        """A batch reprocess against the live path: the same jobs extracted live by the workers,
        then re-extracted through the Message Batches API (the fake's batch endpoints), and the
        cost each path recorded per extraction."""
        from django.db.models import Avg, Count

        from ingestion.extraction import reset_extractor
        from ingestion.models import Extraction, ExtractionBatch, Job
        from ingestion.worker.batches import batch_submit, batches_poll

        jobs = max(100, int(1000 * self.scale))
        self.stop_worker()
        self.reset_state()
        ExtractionBatch.objects.all().delete()
        self.fake("reset", {})
        self.fill_jobs(jobs, "f9")
        self.start_worker()
        wait_until(lambda: self.completed() >= jobs, 120 + jobs / 10, "live extractions")
        self.stop_worker()
        reset_extractor()
        started = time.monotonic()
        batches = batch_submit(job_ids=list(Job.objects.values_list("id", flat=True)))
        open_batches = ExtractionBatch.objects.exclude(status="folded")
        wait_until(lambda: batches_poll() > 0 or not open_batches.exists(), 120, "batch folded")
        folded_s = time.monotonic() - started
        by_trigger = {
            row["trigger"]: row
            for row in Extraction.objects.filter(outcome="ok").values("trigger")
            .annotate(n=Count("id"), cost=Avg("cost_usd"), input=Avg("input_tokens"))
            .order_by()
        }  # fmt: skip
        live, batch = by_trigger.get("auto"), by_trigger.get("batch")
        cost_ratio = ratio(float(batch["cost"]), float(live["cost"])) if live and batch else None
        # The same tokens at the live rates: what the batch rows would have cost as live calls.
        from ingestion.extraction.base import Usage
        from ingestion.extraction.claude import cost_usd

        rows = Extraction.objects.filter(outcome="ok", trigger="batch")
        at_live = sum(
            cost_usd(
                r.model, Usage(r.input_tokens, r.output_tokens, r.cache_creation_tokens, r.cache_read_tokens)
            )
            for r in rows
        )
        recorded = float(sum(r.cost_usd for r in rows))
        same_tokens_ratio = ratio(recorded, at_live)
        log(f"figure 9: live={live} batch={batch} batches={len(batches)}")
        invalid = (
            [] if batch and batch["n"] == jobs else [f"batch extractions: {batch and batch['n']} of {jobs}"]
        )
        return {
            "what": f"{jobs} jobs extracted live, then re-extracted through one Message Batch",
            "live": {"extractions": live and live["n"],
                     "cost_usd_per_extraction": live and float(live["cost"])},
            "batch": {"extractions": batch and batch["n"],
                      "cost_usd_per_extraction": batch and float(batch["cost"]),
                      "batches": len(batches), "submit_to_folded_s": round(folded_s, 1)},
            "cost_ratio_batch_vs_live": cost_ratio,
            "cost_ratio_same_tokens_at_live_rates": same_tokens_ratio,
            "note": "the live run's first call writes the prompt cache, the batch reads it: per-extraction "
                    "costs differ by that too; the same-tokens ratio isolates the batch discount",
            "target": "batch = half the live per-extraction cost",
            **verdict(bool(cost_ratio is not None and abs(cost_ratio - 0.5) <= 0.01), invalid),
        }  # fmt: skip

    def figure_10(self) -> dict[str, Any]:
        """Live POST -> completed p95 with and without a bulk reprocess running, under the
        governor at the account's limit (time scaled as figure 8: x10, 1,200 RPM)."""
        from ingestion.models import Job, JobStatus
        from ingestion.services import job_requeue

        limit_rpm, time_scale = 120, 10
        rpm = limit_rpm * time_scale
        live_rate, seconds = 4.0, 15 * self.scale  # a fifth of the limit
        bulk = max(300, int(3000 * self.scale))
        self.stop_worker()
        self.reset_state()
        self.fake("reset", {})
        self.fake("latency", {"latency": 1.0 / time_scale})
        self.fake("rate_limits", {"rpm": rpm, "window": 60.0 / time_scale})
        governed = {
            "NEXUS_CLAUDE_RPM": str(rpm),
            "NEXUS_GOVERNOR_BURST_SECONDS": str(5.0 / time_scale),
            "NEXUS_GOVERNOR_PROCESSES": str(self.worker_processes),
        }
        self.env.update(governed)
        try:
            self.start_worker()
            alone, invalid = self._live_e2e(live_rate, seconds, "f10a")
            rng = random.Random(5)
            from bench import loadgen

            now = timezone_now()
            Job.objects.bulk_create(
                Job(session_id=f"f10bulk-{RUN_ID}-{i}", fingerprint=f"f10fp-{i}", transcript_hash=f"h{i}",
                    messages=(m := loadgen.conversation(rng)), message_count=len(m), revised_at=now,
                    status=JobStatus.COMPLETED, revision=1, processed_revision=1)
                for i in range(bulk)
            )  # fmt: skip
            for job_id in Job.objects.filter(session_id__startswith="f10bulk-").values_list("id", flat=True):
                job_requeue(job_id=job_id, reextract=True)
            wait_until(
                lambda: Job.objects.filter(lane="bulk", status="completed").count() >= 20, 60, "bulk start"
            )
            under, more = self._live_e2e(live_rate, seconds, "f10b")
            invalid += more
            bulk_left = Job.objects.filter(lane="bulk").exclude(status="completed").count()
            stats = self.fake("stats")
        finally:
            for name in governed:
                self.env.pop(name, None)
            self.stop_worker()
        p95_ratio = ratio(under["p95_ms"], alone["p95_ms"])
        if not bulk_left:
            invalid.append("the bulk backlog finished before the live phase did: not measured under bulk")
        log(f"figure 10: alone={alone} under={under} bulk_left={bulk_left} fake={stats}")
        return {
            "what": f"live POST -> completed at {live_rate}/s (time scaled x{time_scale}, {rpm} RPM), "
                    f"alone and while a {bulk}-job bulk reprocess runs",
            "alone": alone,
            "under_bulk": under,
            "bulk_jobs_still_pending_after": bulk_left,
            "http_429": stats["rate_limited"],
            "p95_ratio": p95_ratio,
            "target": "p95 under bulk <= 1.2 x p95 alone",
            **verdict(bool(p95_ratio is not None and p95_ratio <= 1.2), invalid),
        }  # fmt: skip

    def _live_e2e(self, rate: float, seconds: float, prefix: str) -> tuple[dict[str, Any], list[str]]:
        from bench import loadgen
        from ingestion.models import Job

        posted, result = self.paced("/api/nexus/producer", rate, seconds, prefix)
        invalid = paced_problems(f"live POSTs at {rate}/s", posted)
        sessions = list(result.sent_at)
        try:
            done_jobs = Job.objects.filter(session_id__in=sessions, status="completed")
            wait_until(lambda: done_jobs.count() >= len(sessions), 120, "live jobs", 0.2)
        except RuntimeError as exc:
            invalid.append(str(exc))
        done = dict(Job.objects.filter(session_id__in=sessions).values_list("session_id", "processed_at"))
        e2e = [
            (f.timestamp() - t) * 1000 for s, t in result.sent_at.items() if (f := done.get(s)) is not None
        ]
        return {"samples": len(e2e), "p50_ms": loadgen.percentile(e2e, 50),
                "p95_ms": loadgen.percentile(e2e, 95)}, invalid  # fmt: skip

    def governor_cpu_per_call(self, calls: int = 2000) -> dict[str, Any]:
        """The worker CPU the governor adds to one Claude call, measured in this process on the
        bench's Redis (process time: the client's work, not the Redis server's). Two cases:
        the common one, an account above our RPM (acquire only: the settle has nothing to
        correct), and the worst one, a report that makes every settle a second round trip."""
        return {
            "cpu_ms_per_call": self._governor_cpu(calls, remaining=10**9)["cpu_ms"],
            "cpu_ms_per_call_with_settle_round_trip": self._governor_cpu(calls, remaining=0)["cpu_ms"],
            "calls": calls,
        }

    def _governor_cpu(self, calls: int, remaining: int) -> dict[str, float]:
        from ingestion.extraction.base import Limit, RateLimits
        from ingestion.worker import governor

        nexus = self.settings.NEXUS
        saved = {k: nexus[k] for k in ("CLAUDE_RPM", "CLAUDE_ITPM", "CLAUDE_OTPM")}
        nexus.update(CLAUDE_RPM=10**9, CLAUDE_ITPM=10**12, CLAUDE_OTPM=10**12)  # always granted
        report = RateLimits(
            limits={"requests": Limit(limit=10**9, remaining=remaining, reset_at=time.time() + 60)}
        )
        try:
            governor.reset_state()
            estimate = governor.Estimate(input_tokens=1200, output_tokens=512)
            for _ in range(50):  # warm: script load, connection
                governor.settle(governor.acquire(lane="live", estimate=estimate),
                                input_tokens=1000, output_tokens=100, calls=1, report=report)  # fmt: skip
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for _ in range(calls):
                decision = governor.acquire(lane="live", estimate=estimate)
                governor.settle(decision, input_tokens=1000, output_tokens=100, calls=1, report=report)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        finally:
            nexus.update(saved)
            governor.reset_state()
        return {"cpu_ms": round(cpu / calls * 1000, 3), "wall_ms": round(wall / calls * 1000, 3)}

    # webhook delivery (issue 14) -------------------------------------------------------------
    def receiver_ceiling(self, url: str, secret: str, seconds: float) -> dict[str, Any]:
        """The receiver's own ceiling: ``total_concurrency`` threads POSTing signed bodies
        back to back with the worker's client (prospects.webhooks._post: urllib, a new
        connection per request, signed with standardwebhooks per request) for ``seconds``."""
        import threading

        from standardwebhooks.webhooks import Webhook

        from prospects.webhooks import _post

        hook = Webhook(secret)
        body = json.dumps({"type": "prospect.created", "data": {"prospectId": 1, "prospect": {}}})
        stop = time.monotonic() + seconds
        counts = {"ok": 0, "failed": 0}
        lock = threading.Lock()

        def client(n: int) -> None:
            i = 0
            while time.monotonic() < stop:
                i += 1
                msg_id, now = f"ceil_{n}_{i}", timezone_now()
                headers = {"content-type": "application/json", "webhook-id": msg_id,
                           "webhook-timestamp": str(int(now.timestamp())),
                           "webhook-signature": hook.sign(msg_id, now, body)}  # fmt: skip
                status, _ = _post(url, body.encode(), headers)
                with lock:
                    counts["ok" if status and 200 <= status < 300 else "failed"] += 1

        threads = [threading.Thread(target=client, args=(n,)) for n in range(self.total_concurrency)]
        started, cpu0 = time.monotonic(), time.process_time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed, cpu = time.monotonic() - started, time.process_time() - cpu0
        return {"posts_per_s": round(counts["ok"] / elapsed, 1), "posts": counts["ok"],
                "client_cpu_ms_per_post": round(cpu / max(1, counts["ok"]) * 1000, 2),
                "failed": counts["failed"], "seconds": round(elapsed, 2),
                "client_threads": self.total_concurrency}  # fmt: skip

    def figure_11(self) -> dict[str, Any]:
        """Webhook delivery to a local receiver: events/s the real workers deliver (the
        event_deliver task: prepare the delivery, sign, POST, record), beside the receiver's
        own ceiling measured with the same client and concurrency."""
        from django.db.models import Count

        from ingestion import dispatch
        from prospects.models import Delivery, DeliveryStatus, Event, EventType, Prospect, WebhookEndpoint
        from prospects.webhooks import secret_new
        from tenants import directory

        total = max(200, int(3000 * self.scale))
        secret, port = secret_new(), free_port()
        url = f"http://127.0.0.1:{port}/hook"
        self.stop_worker()
        self.reset_state()
        self.procs.start(
            "receiver", [PY, "-m", "tests.fakes.webhook_receiver", "--port", str(port), "--secret", secret]
        )
        stats_url = f"http://127.0.0.1:{port}/_stats"
        wait_until(lambda: http_json(stats_url) is not None, 15, "webhook receiver")
        invalid: list[str] = []
        try:
            ceiling = self.receiver_ceiling(url, secret, max(2.0, 10 * self.scale))
            if ceiling["failed"]:
                invalid.append(f"the ceiling run saw {ceiling['failed']} failed POSTs")
            http_json(f"http://127.0.0.1:{port}/_reset", {})
            WebhookEndpoint.objects.create(url=url, events=[EventType.CREATED], secret=secret)
            # The outbox rows a fold writes for a new prospect (prospects/events.py): one
            # prospect.created each, committed; then their delivery tasks, as the on-commit
            # hook publishes them, with the worker stopped so the queue is pre-filled.
            tenant_id, now = directory.default_tenant().id, timezone_now()
            prospects = Prospect.objects.bulk_create(
                Prospect(tenant_id=tenant_id, key=f"f11-{RUN_ID}-{i}", nombre=f"Bench {i}", nivel_interes=5,
                         first_seen_at=now, last_seen_at=now, session_count=1)
                for i in range(total)
            )  # fmt: skip
            events = Event.objects.bulk_create(
                Event(tenant_id=tenant_id, prospect_id=p.pk, sequence=1, type=EventType.CREATED,
                      payload={"changes": {"nombre": {"old": None, "new": p.nombre}}})
                for p in prospects
            )  # fmt: skip
            dispatch.events_publish([e.pk for e in events])
            self.start_worker()
            worker_pids = [self.procs.procs[n].pid for n in self.worker_names]
            worker_cpu0 = cpu_seconds(worker_pids)
            wall0 = time.monotonic()
            succeeded = Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED)
            measured = self.drain_rate(
                succeeded.count, total, timeout=120, task="ingestion.event_deliver", jobs=False
            )
            try:
                wait_until(lambda: succeeded.count() >= total, 60, "every delivery", 0.05)
            except RuntimeError as exc:
                invalid.append(str(exc))
            wall = time.monotonic() - wall0
            worker_cpu = cpu_seconds(worker_pids) - worker_cpu0
            received = http_json(stats_url)
            statuses = dict(Delivery.objects.values_list("status").annotate(n=Count("pk")))
            undelivered = Event.objects.filter(delivered_at__isnull=True).count()
        finally:
            WebhookEndpoint.objects.filter(url=url).delete()
            self.stop_worker()
            self.procs.stop("receiver")
        rate, ceiling_rate = measured["rate"], ceiling["posts_per_s"]
        invalid += drain_problems("deliveries", measured)
        if statuses.get(DeliveryStatus.FAILED) or statuses.get(DeliveryStatus.PENDING):
            invalid.append(f"deliveries not all succeeded: {statuses}")
        if received["bad_signature"] or received["verified"] < total:
            invalid.append(
                f"receiver verified {received['verified']} of {total} ({received['bad_signature']} bad)"
            )
        if received["repeated_ids"] or received["distinct_ids"] != total:
            invalid.append(f"{received['distinct_ids']} distinct ids, {received['repeated_ids']} repeated")
        if undelivered:
            invalid.append(f"{undelivered} events without delivered_at")
        log(f"figure 11: {measured} ceiling={ceiling} receiver={received} statuses={statuses}")
        r = ratio(rate, ceiling_rate)
        return {
            "what": f"webhook deliveries/s of {total} prospect.created events (queue pre-filled) to a local "
                    "receiver verifying each signature with standardwebhooks",
            "events_per_s": rate,
            "reference_receiver_ceiling_per_s": ceiling_rate,
            "ratio": r,
            "ceiling": ceiling,
            "receiver": received,
            "deliveries": statuses,
            "worker_cpu_ms_per_delivery": round(worker_cpu / total * 1000, 2),
            "worker_wall_s": round(wall, 2),
            "detail": measured,
            "target": ">= 0.5 of the receiver's ceiling",
            **verdict(bool(r is not None and r >= 0.5), invalid),
        }  # fmt: skip

    # run -------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        load_before = os.getloadavg()
        self.setup()
        self.start_fake()
        self.start_web()
        web_pid = self.procs.procs["web"].pid
        # A first worker start declares this run's queue and bindings; without it the tasks
        # pre-filled before the first start were never delivered in our trials.
        self.start_worker()
        self.stop_worker()
        only = {int(x) for x in self.args.only.split(",") if x} or set(range(1, 12))
        figures: dict[str, Any] = {}
        if 1 in only:
            figures["1_producer_http"] = self.timed("1", partial(with_load, self.figure_1))
        # Figures 2-5 measure one run each: they run ROUNDS times, interleaved (round 1 of
        # every figure, then round 2, ...), so a burst of load from elsewhere lands on one
        # round of each instead of on all rounds of one; the median run is reported with the
        # spread of all of them (see aggregate()).
        repeated: dict[str, list[dict[str, Any]]] = {}
        for _ in range(self.args.rounds):
            if only & {2, 6}:
                repeated.setdefault("2_pipeline_throughput_1s", []).append(
                    self.timed("2", partial(with_load, self.figure_2))
                )
            if only & {5, 7}:
                if not self.worker_running():
                    self.start_worker()
                repeated.setdefault("5_coalescing", []).append(
                    self.timed("5", partial(with_load, self.figure_5))
                )
            if 4 in only:
                if not self.worker_running():
                    self.start_worker()
                repeated.setdefault("4_end_to_end_latency", []).append(
                    self.timed("4", partial(with_load, self.figure_4))
                )
            if 3 in only:
                repeated.setdefault("3_per_job_overhead_0s", []).append(
                    self.timed("3", partial(with_load, self.figure_3))
                )
        for name, runs in repeated.items():
            figures[name] = aggregate(name, runs)
        if only & {2, 6}:
            figures["6_memory"] = self.figure_6(web_pid)
        if 1 in only:
            figures["1_producer_http"]["hot_path_costs"] = self.timed("1_hot_path", self.hot_path_costs)
        if 8 in only:
            figures["8_rate_governor"] = self.timed("8", self.figure_8)
        if 9 in only:
            figures["9_batch_cost"] = self.timed("9", self.figure_9)
        if 10 in only:
            figures["10_live_under_bulk"] = self.timed("10", self.figure_10)
        if 11 in only:
            figures["11_webhook_delivery"] = self.timed("11", partial(with_load, self.figure_11))
        if 7 in only:
            figures["7_prompt_and_cost"] = self.figure_7(figures["5_coalescing"]["claude_calls_per_session"])
        ordered = {k: figures[k] for k in sorted(figures)}
        met = {k: v.get("met") for k, v in ordered.items() if "met" in v}
        return {
            "bench": "NEXUS ingestion, issue 7",
            "run_id": RUN_ID,
            "machine": {"cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before],
                        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
                        "note": "shared machine: other processes add noise (see loadavg)"},
            "config": {"web": f"gunicorn sync x {self.web_workers}",
                       "throttle_rates": self.settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
                       "worker": f"{self.worker_processes} x celery {self.settings.CELERY_WORKER_POOL} "
                                 f"x {self.worker_concurrency} threads",
                       "db_pool_max_per_process":
                           self.settings.DATABASES["default"]["OPTIONS"]["pool"]["max_size"]},
            "figures": ordered,
            "targets_met": met,
            "verdicts": {k: v.get("verdict", ("met" if v["met"] else "not met") if "met" in v
                                  else "no target") for k, v in ordered.items()},
            "all_met": all(met.values()),
            "invalid": {k: v["invalid"] for k, v in ordered.items() if v.get("invalid")},
            "seconds": round(time.monotonic() - started, 1),
            "time": {"seconds_by_figure": self.figure_seconds, "fixed_costs": self.fixed_costs,
                     "note": "wall seconds per figure (one entry per round for 2-5); fixed_costs are "
                             "inside them"},
        }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL")
        or os.environ.get("DATABASE_URL")
        or "postgres://postgres@127.0.0.1:5432/nexus_bench",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL")
        or os.environ.get("REDIS_URL")
        # A database number of its own: test suites that FLUSHDB database 0 (chaos runs) would
        # otherwise delete this run's queue bindings and its pre-filled tasks mid-run.
        or "redis://127.0.0.1:6379/11",
    )
    parser.add_argument("--web-concurrency", type=int, default=None, help="gunicorn workers")
    parser.add_argument("--worker-concurrency", type=int, default=None, help="threads per worker process")
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=int(os.environ.get("WORKER_PROCESSES") or os.cpu_count() or 1),
        help="worker processes (production sizing: one per core)",
    )
    parser.add_argument("--scale", type=float, default=1.0, help="shrink durations and counts (e.g. 0.3)")
    parser.add_argument("--only", default="", help="comma list of figure numbers (make bench FIGURES=4,5)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved runs of figures 2-5 (median reported)"
    )
    args = parser.parse_args(argv)  # fmt: skip

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    bench = Bench(args)
    log(f"run {RUN_ID}: logs in {bench.tmp}")
    try:
        report = bench.run()
    finally:
        bench.procs.stop_all()
        try:
            bench.reset_state()
        except Exception as exc:
            log(f"cleanup: {exc}")
    print(json.dumps(report, indent=2))
    if report["invalid"]:
        log(f"INVALID figures (see 'invalid' in the JSON): {', '.join(report['invalid'])}")
        sys.exit(2)


if __name__ == "__main__":
    main()

"""`python -m bench.tracing_cost`: what tracing costs the producer, as one JSON document.

gunicorn as deployed (gunicorn.conf.py, one sync worker so the CPU per request is one
process's) serves ``--posts`` POSTs of a new 1-2 KB session each, sequentially, with tracing
off, on (OTLP/HTTP to a receiver on 127.0.0.1, the batch span processor), and on with one trace
in ten kept (``parentbased_traceidratio`` 0.1), in ``--rounds`` interleaved rounds; each mode
reports the median round. Also the off path's own
cost: a no-op span and the log filter with no provider, in nanoseconds. Figures only, no
verdict. DATABASE_URL / REDIS_URL as for ``make bench`` (its own queue and cache prefix; the
queued tasks are deleted at the end).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from bench.run import BIN, ROOT, cpu_seconds, descendants, ensure_database, free_port, log

RUN_ID = uuid.uuid4().hex[:8]
QUEUE = f"nexus-bench-tracing-{RUN_ID}"
TURNS = [
    "Hola, me llamo Laura y estoy mirando vuestras oportunidades de inversión en vivienda",
    "Hola Laura, encantado. ¿Qué tipo de inversión te interesa y con qué horizonte?",
    "Algo a cinco años, con un ticket de unos 50.000 euros, y que no me quite mucho tiempo",
    "Perfecto. Tenemos un fondo con rentabilidad objetivo del 7 % y gestión completa incluida",
    "Me interesa, aunque me preocupa la liquidez si necesito el dinero antes de tiempo",
    "Se puede vender la participación en el mercado secundario con un preaviso de 90 días",
]


def env_for(
    args: argparse.Namespace, tmp: Path, port: int, endpoint: str | None, ratio: float | None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SENTRY_"))}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        DJANGO_ENV="production",
        DJANGO_SETTINGS_MODULE="nexus_project.settings",
        DJANGO_SECRET_KEY="bench-only-" + "x" * 50,
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_SECURE_SSL_REDIRECT="false",
        DJANGO_STATIC_ROOT=str(tmp / "static"),
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        CELERY_TASK_DEFAULT_QUEUE=QUEUE,
        CACHE_KEY_PREFIX=QUEUE,
        NEXUS_THROTTLE_IP_RATE="off",
        NEXUS_THROTTLE_SESSION_RATE="off",
        NEXUS_VAR_DIR=str(tmp),
        GUNICORN_BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="1",
        LOG_LEVEL="WARNING",
    )
    if endpoint:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    if ratio is not None:
        env.update(OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG=str(ratio))
    return env


def post(base: str, session: str) -> float:
    body = {
        "messages": [{"role": ("user", "assistant")[i % 2], "content": t} for i, t in enumerate(TURNS)],
        "sessionId": session,
        "fingerprint": f"fp-{session}",
    }
    request = urllib.request.Request(
        f"{base}/api/nexus/producer",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
        if response.status != 202:
            raise SystemExit(f"POST answered {response.status}")
    return time.perf_counter() - started


def one_round(
    args: argparse.Namespace, tmp: Path, endpoint: str | None, label: str, ratio: float | None = None
) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    logfile = (tmp / f"gunicorn-{label}.log").open("ab")
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "nexus_project.wsgi:application", "-c", "gunicorn.conf.py"],
        cwd=ROOT,
        env=env_for(args, tmp, port, endpoint, ratio),
        stdout=logfile,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=2).read()
                break
            except (OSError, urllib.error.URLError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"gunicorn did not start; see {tmp}") from None
                time.sleep(0.1)
        for i in range(20):  # warm: imports, connections, the prepared INSERT
            post(base, f"warm-{label}-{RUN_ID}-{i}")
        pids = descendants(process.pid)
        cpu_before = cpu_seconds(pids)
        latencies = [post(base, f"b-{label}-{RUN_ID}-{i}-{uuid.uuid4().hex[:6]}") for i in range(args.posts)]
        cpu_ms = (cpu_seconds(pids) - cpu_before) * 1000 / args.posts
    finally:
        process.terminate()
        process.wait(timeout=40)
        logfile.close()
    latencies.sort()
    return {
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 3),
        "web_cpu_ms_per_request": round(cpu_ms, 3),
    }


def off_path_ns() -> dict[str, float]:
    """With no provider set: what the code added for tracing costs when tracing is off."""
    from opentelemetry import trace

    from ingestion.logcontext import TraceFilter

    tracer = trace.get_tracer("bench")
    record = logging.LogRecord("bench", logging.INFO, __file__, 1, "x", None, None)
    trace_filter = TraceFilter()

    def span() -> None:
        with tracer.start_as_current_span("nexus.job", attributes={"nexus.job.id": "x"}):
            pass

    n = 100_000
    return {
        "noop_span_ns": round(timeit.timeit(span, number=n) / n * 1e9, 1),
        "log_filter_ns": round(timeit.timeit(lambda: trace_filter.filter(record), number=n) / n * 1e9, 1),
    }


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round of median latency, and the median CPU per request over all rounds (the steadier
    figure on a shared machine: latency moves with other people's load, CPU per request less)."""
    middle = sorted(rounds, key=lambda r: r["mean_ms"])[len(rounds) // 2]
    cpu = [r["web_cpu_ms_per_request"] for r in rounds]
    return {
        **middle,
        "web_cpu_ms_per_request": statistics.median(cpu),
        "mean_ms_samples": [r["mean_ms"] for r in rounds],
        "web_cpu_ms_samples": cpu,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--posts", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/nexus_bench"),
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/11"))
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nexus_project.settings")
    sys.path.insert(0, str(ROOT))
    if "?host=" not in args.database_url:
        ensure_database(args.database_url)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": args.database_url, "DJANGO_ENV": "development"},
        check=True,
        capture_output=True,
    )
    from tests.fakes.otlp_receiver import OtlpReceiver

    tmp = Path(tempfile.mkdtemp(prefix="nexus-bench-tracing-"))
    log(f"logs in {tmp}")
    off, on, sampled = [], [], []
    with OtlpReceiver() as receiver:
        for number in range(args.rounds):
            log(f"round {number + 1}/{args.rounds}: tracing off")
            off.append(one_round(args, tmp, None, "off"))
            log(f"round {number + 1}/{args.rounds}: tracing on")
            on.append(one_round(args, tmp, receiver.url, "on"))
            log(f"round {number + 1}/{args.rounds}: tracing on, one trace in ten kept")
            sampled.append(one_round(args, tmp, receiver.url, "sampled", ratio=0.1))
        spans = len(receiver.spans())
    import redis

    redis.Redis.from_url(args.redis_url).delete(QUEUE)
    off_m, on_m, sampled_m = median_round(off), median_round(on), median_round(sampled)
    print(
        json.dumps(
            {
                "posts_per_round": args.posts,
                "rounds": args.rounds,
                "tracing_off": off_m,
                "tracing_on": on_m,
                "tracing_on_ratio_0_1": sampled_m,
                "overhead_ratio_0_1_web_cpu_ms_per_request": round(
                    sampled_m["web_cpu_ms_per_request"] - off_m["web_cpu_ms_per_request"], 3
                ),
                "overhead": {
                    "mean_ms": round(on_m["mean_ms"] - off_m["mean_ms"], 3),
                    "web_cpu_ms_per_request": round(
                        on_m["web_cpu_ms_per_request"] - off_m["web_cpu_ms_per_request"], 3
                    ),
                    "mean_ratio": round(on_m["mean_ms"] / off_m["mean_ms"], 3),
                },
                "spans_exported": spans,
                "off_path": off_path_ns(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

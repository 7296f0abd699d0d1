"""gunicorn settings for NEXUS web (``gunicorn nexus_project.wsgi:application -c gunicorn.conf.py``).

Everything can be overridden from the environment; the defaults suit `make run` and the
compose file (which sets GUNICORN_BIND=0.0.0.0:8000 inside the container).
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


# gunicorn is how the site is served in production (Procfile, image): a missing DJANGO_ENV
# means production, whose settings refuse to start without a secret, hosts and a database,
# rather than development with DEBUG on. `make run` and `make web` say development explicitly.
os.environ.setdefault("DJANGO_ENV", "production")

# --- Where -------------------------------------------------------------------------------------
# GUNICORN_BIND wins; PORT is the platform convention (Heroku-style Procfile runners); else
# loopback only, so a development server is never reachable from the network by accident.
if os.environ.get("GUNICORN_BIND"):
    bind = [os.environ["GUNICORN_BIND"]]
elif os.environ.get("PORT"):
    bind = [f"0.0.0.0:{os.environ['PORT']}"]
else:
    bind = ["127.0.0.1:8000"]

# --- How many ----------------------------------------------------------------------------------
# The write path is short (validate, one upsert, one publish) and CPU/DB-bound: sync workers
# measured fastest for it (SPEC §11). gthread with keep-alive clients pinned all connections to
# one worker, so threads stay at 1 unless GUNICORN_THREADS says otherwise (>1 means gthread).
worker_class = "sync"
workers = _int("WEB_CONCURRENCY", 2 * multiprocessing.cpu_count())
threads = _int("GUNICORN_THREADS", 1)

# --- Time limits -------------------------------------------------------------------------------
# A producer request takes milliseconds; a worker silent for 30 s is stuck (a hung DB
# connection), and killing it frees the slot. The DB pool waits at most 10 s for a connection.
timeout = _int("GUNICORN_TIMEOUT", 30)
# On SIGTERM (deploy, Ctrl-C) in-flight requests get this long to answer before workers die;
# the ledger write is one short transaction, so 30 s is generous.
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
# Seconds an idle keep-alive connection is held. Only gthread/async workers use it: sync
# workers close after each response, which is what keeps them from being pinned by one client.
keepalive = _int("GUNICORN_KEEPALIVE", 5)

# Restart each worker after this many requests to bound slow leaks; the jitter keeps workers
# from all restarting in the same second.
max_requests = _int("GUNICORN_MAX_REQUESTS", 10000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 1000)

# The worker heartbeat file is fchmod-ed every second: on a container's overlay disk that can
# stall; /dev/shm is memory-backed.
_SHM = "/dev/shm"  # noqa: S108 - gunicorn's own heartbeat files, not a shared temp path
if Path(_SHM).is_dir() and os.access(_SHM, os.W_OK):
    worker_tmp_dir = _SHM

# gunicorn's control socket defaults to one path per user (~/.gunicorn/gunicorn.ctl): two
# instances on one machine (two checkouts, tests) would fight over it. Nothing here uses it.
control_socket_disable = True

# --- Logs --------------------------------------------------------------------------------------
# The app already logs every request as a JSON line with its request_id; a second access log
# is off unless GUNICORN_ACCESS_LOG=1, and then it is JSON too.
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
accesslog: str | None = None
if os.environ.get("GUNICORN_ACCESS_LOG", "").lower() in {"1", "true", "yes"}:
    accesslog = "-"
    access_log_format = (
        '{"ts": "%(t)s", "logger": "gunicorn.access", "remote": "%(h)s", "method": "%(m)s", '
        '"path": "%(U)s", "status": %(s)s, "bytes": "%(B)s", "duration_us": %(D)s, '
        '"request_id": "%({x-request-id}i)s", "user_agent": "%(a)s"}'
    )

# --- Prometheus multiprocess hook --------------------------------------------------------------
# prometheus-client's multiprocess mode keeps one file per process in PROMETHEUS_MULTIPROC_DIR.
# Files from a previous run would be summed into this run's counters, so they go at start;
# a dead worker's live gauges are removed when it exits.
PROMETHEUS_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def on_starting(server: Any) -> None:
    if not PROMETHEUS_MULTIPROC_DIR:
        return
    directory = Path(PROMETHEUS_MULTIPROC_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):  # only prometheus' own files, never the whole folder
        stale.unlink(missing_ok=True)


def post_worker_init(worker: Any) -> None:
    # A cold worker served its first POST in 80-250 ms (imports, connections); see warmup.py.
    if os.environ.get("GUNICORN_WARM_UP", "1").lower() not in {"0", "false", "no"}:
        from ingestion.warmup import warm_up

        warm_up(worker.wsgi)


def child_exit(server: Any, worker: Any) -> None:
    if not PROMETHEUS_MULTIPROC_DIR:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)

"""gunicorn settings for NEXUS web (``gunicorn nexus_project.wsgi:application -c gunicorn.conf.py``).

Everything can be overridden from the environment; the defaults suit `make run` and the
compose file (which sets GUNICORN_BIND=0.0.0.0:8000 inside the container).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from nexus_project.env import env_bool, env_float, env_int

# gunicorn is how the site is served in production (Procfile, image): a missing DJANGO_ENV
# means production, whose settings refuse to start without a secret, hosts and a database,
# rather than development with DEBUG on. `make run` and `make web` say development explicitly.
os.environ.setdefault("DJANGO_ENV", "production")
# A web worker serves one request per thread and its pool has a connection per thread
# (DB_POOL_MAX >= GUNICORN_THREADS), so waiting for one means PostgreSQL is unreachable, not
# that the pool is busy: 3 s, not the workers' 10, before the POST's 503 with Retry-After
# (ingestion/api/dbgate.py then sheds the next second's POSTs at once).
os.environ.setdefault("DB_POOL_TIMEOUT", "3")

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
workers = env_int("WEB_CONCURRENCY", 2 * multiprocessing.cpu_count())
threads = env_int("GUNICORN_THREADS", 1)

# --- Time limits -------------------------------------------------------------------------------
# A producer request takes milliseconds; a worker silent for 30 s is stuck (a hung DB
# connection), and killing it frees the slot. The DB pool waits at most 10 s for a connection.
timeout = env_int("GUNICORN_TIMEOUT", 30)
# On SIGTERM (deploy, Ctrl-C) in-flight requests get this long to answer before workers die;
# the ledger write is one short transaction, so 30 s is generous.
graceful_timeout = env_int("GUNICORN_GRACEFUL_TIMEOUT", 30)
# Seconds an idle keep-alive connection is held. Only gthread/async workers use it: sync
# workers close after each response, which is what keeps them from being pinned by one client.
keepalive = env_int("GUNICORN_KEEPALIVE", 5)

# Restart each worker after this many requests to bound slow leaks; the jitter keeps workers
# from all restarting in the same second.
max_requests = env_int("GUNICORN_MAX_REQUESTS", 10000)
max_requests_jitter = env_int("GUNICORN_MAX_REQUESTS_JITTER", 1000)

# The worker heartbeat file is fchmod-ed every second: on a container's overlay disk that can
# stall; /dev/shm is memory-backed.
_SHM = "/dev/shm"  # noqa: S108 - gunicorn's own heartbeat files, not a shared temp path
_IN_MEMORY = _SHM if Path(_SHM).is_dir() and os.access(_SHM, os.W_OK) else None
if _IN_MEMORY:
    worker_tmp_dir = _IN_MEMORY

# gunicorn's control socket defaults to one path per user (~/.gunicorn/gunicorn.ctl): two
# instances on one machine (two checkouts, tests) would fight over it. Nothing here uses it.
control_socket_disable = True

# --- Logs --------------------------------------------------------------------------------------
# The app logs what goes wrong (refusals through django.request, pipeline events with their
# request_id) as JSON lines, not every request: an access log line per POST is off unless
# GUNICORN_ACCESS_LOG=1, and then it is JSON too.
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
accesslog: str | None = None
if env_bool("GUNICORN_ACCESS_LOG", False):
    accesslog = "-"
    access_log_format = (
        '{"ts": "%(t)s", "logger": "gunicorn.access", "remote": "%(h)s", "method": "%(m)s", '
        '"path": "%(U)s", "status": %(s)s, "bytes": "%(B)s", "duration_us": %(D)s, '
        '"request_id": "%({x-request-id}i)s", "user_agent": "%(a)s"}'
    )

# --- Prometheus multiprocess hook --------------------------------------------------------------
# Every worker answers /metrics for the whole server, so the request counters must be summed
# over the workers: prometheus-client's multiprocess mode, one file per process in
# PROMETHEUS_MULTIPROC_DIR. The variable has to be in the environment before a worker imports
# prometheus_client, i.e. here in the master before the fork. When the deployer does not set
# one, gunicorn makes a fresh private directory (in memory when /dev/shm is usable) and
# removes it at exit; without any, each worker would report only its own share.
# The owner's pid is kept beside it: a config reload (HUP) re-reads this file in the same
# master and keeps the directory; a new master after a binary upgrade (USR2) inherits the
# environment and makes its own, since the old master removes its directory when it exits.
_OWNER_KEY = "NEXUS_PROMETHEUS_DIR_OWNER"
_owner = os.environ.get(_OWNER_KEY, "")
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR") or _owner not in ("", str(os.getpid())):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(
        prefix=f"nexus-prometheus-{os.getpid()}-", dir=_IN_MEMORY
    )
    os.environ[_OWNER_KEY] = str(os.getpid())
PROMETHEUS_MULTIPROC_DIR = os.environ["PROMETHEUS_MULTIPROC_DIR"]
_OWN_MULTIPROC_DIR = os.environ.get(_OWNER_KEY) == str(os.getpid())


def on_starting(server: Any) -> None:
    # A directory the deployer chose may hold files from a previous run, which would be
    # summed into this run's counters: they go (only prometheus' own files, never the folder).
    directory = Path(PROMETHEUS_MULTIPROC_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)


def post_fork(server: Any, worker: Any) -> None:
    # Tracing (when the OTEL_* variables ask for it) per worker, after the fork and before the
    # application loads: the batch processor's thread does not survive a fork, and the Django
    # instrumentation adds its middleware before the handler is built.
    from nexus_project.tracing import tracing_setup

    tracing_setup("web")


def worker_exit(server: Any, worker: Any) -> None:
    from nexus_project.tracing import tracing_shutdown

    tracing_shutdown()


def post_worker_init(worker: Any) -> None:
    # A cold worker served its first POST in 80-250 ms (imports, connections); see warmup.py.
    if env_bool("GUNICORN_WARM_UP", True):
        from ingestion.api.warmup import warm_up

        warm_up(worker.wsgi)


# --- Lingering close (nexus_project/lingering.py) ----------------------------------------------
# A client that writes its whole body before reading (urllib, requests) gets a broken pipe
# instead of our 413 unless the unread body is read before close. Up to 16 MiB: 16 times the
# producer's 1 MiB limit, so a 10 MB paste still gets its 413, and about 0.1 s of a worker's
# time on loopback. Up to 5 s: a client on a slow link sending a large body; a stalled one must
# not hold a sync worker much longer than that. Past either bound the socket is closed.
DRAIN_MAX_BYTES = env_int("GUNICORN_DRAIN_MAX_BYTES", 16 * 1024 * 1024)
DRAIN_MAX_SECONDS = env_float("GUNICORN_DRAIN_MAX_SECONDS", 5.0)


def post_request(worker: Any, req: Any, environ: dict[str, Any], resp: Any) -> None:
    from nexus_project.lingering import drain_unread_body

    drain_unread_body(environ, max_bytes=DRAIN_MAX_BYTES, max_seconds=DRAIN_MAX_SECONDS)


def child_exit(server: Any, worker: Any) -> None:
    # A dead worker's live gauges go; its counters stay in the sum, as counters should.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    if _OWN_MULTIPROC_DIR:
        shutil.rmtree(PROMETHEUS_MULTIPROC_DIR, ignore_errors=True)

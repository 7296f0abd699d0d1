"""Development supervisor behind ``make run``: embedded PostgreSQL and valkey, migrate, then
web, worker, beat and Flower in the foreground, one prefixed log stream, and one clean stop on
Ctrl-C.

Run as ``.venv/bin/python -m nexus_project.devrun`` (``--servers``: the embedded servers alone,
``make servers``). It imports nothing from Django: the children load the settings, this process
only starts, watches and stops them.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from nexus_project.embedded import (
    DEV_DATABASE_NAME,
    EmbeddedPostgres,
    EmbeddedValkey,
    StartupError,
    dev_database_url,
    die_with_parent,
    port_in_use,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("NEXUS_VAR_DIR") or BASE_DIR / "var").resolve()
BIN_DIR = Path(sys.executable).parent  # the venv's bin: gunicorn and celery live beside python

# Children get this long after SIGTERM: a worker's warm shutdown waits for running tasks, and
# the offline extractor finishes in milliseconds; a Claude call is bounded by its 30 s timeout.
STOP_TIMEOUT_SECONDS = float(os.environ.get("NEXUS_DEV_STOP_TIMEOUT", "35"))
# After a Ctrl-C, how long the children get to exit on their own before the supervisor's TERM.
SIGINT_GRACE_SECONDS = 3.0
# The first start compiles nothing but imports Django, DRF and Celery in several processes at once.
READY_TIMEOUT_SECONDS = 90.0
# What "ready" waits for (a POST is processed at once); the other children start after it.
READY_CHILDREN = ("web", "worker")

# The README's seed conversation, printed as a ready-to-paste curl.
SEED_BODY = (
    '{"messages":[{"role":"user","content":"Hola, me llamo Juan Pérez"},'
    '{"role":"assistant","content":"Hola Juan, ¿en qué puedo ayudarte?"},'
    '{"role":"user","content":"Quiero saber sobre las oportunidades de inversión"}],'
    '"sessionId":"demo-1","fingerprint":"test-fingerprint-456"}'
)

_print_lock = threading.Lock()


def say(message: str) -> None:
    """One supervisor line, never interleaved with a child's line."""
    with _print_lock:
        sys.stdout.write(f"devrun | {message}\n")
        sys.stdout.flush()


def split_bind(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    return (host or "127.0.0.1"), int(port)


# --- Configuration shown to the person --------------------------------------------------------
def without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def database_description(env: dict[str, str], postgres: EmbeddedPostgres | None) -> str:
    if postgres is not None:
        return (
            f"embedded PostgreSQL 18, database {DEV_DATABASE_NAME}, data in {postgres.pgdata} "
            f"(manage.py in any terminal reaches it while this runs)"
        )
    url = env.get("DATABASE_URL", "")
    if url.startswith("sqlite"):
        return f"SQLite at {url.split(':///', 1)[-1]} (DATABASE_URL)"
    return f"{without_credentials(url)} (DATABASE_URL)"


_SUPERUSER_SQL = "SELECT EXISTS (SELECT 1 FROM auth_user WHERE is_superuser AND is_active)"


def superuser_exists(url: str) -> bool | None:
    """Whether the database (migrated) has an active superuser; None when it cannot tell.
    Read with the driver directly: a manage.py process would cost a second of a CPU-bound start."""
    if url.startswith("sqlite"):
        try:
            with sqlite3.connect(url.split(":///", 1)[-1]) as db:
                return bool(db.execute(_SUPERUSER_SQL).fetchone()[0])
        except sqlite3.Error:
            return None
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=5) as db:
            row = db.execute(_SUPERUSER_SQL).fetchone()
            return bool(row and row[0])
    except psycopg.Error:
        return None


def admin_line(web: str, has_superuser: bool | None) -> str:
    if has_superuser:
        return f"admin     {web}/admin/"
    return f"admin     {web}/admin/  (first login: `make superuser` in another terminal)"


def extractor_description(env: dict[str, str]) -> str:
    chosen = env.get("EXTRACTOR", "")
    model = env.get("ANTHROPIC_MODEL", "claude-haiku-5-5")
    if chosen == "offline" or (not chosen and not env.get("ANTHROPIC_API_KEY")):
        reason = "EXTRACTOR=offline" if chosen else "no ANTHROPIC_API_KEY"
        return f"offline (deterministic patterns; {reason})"
    return f"claude ({model})"


def flower_credential(env: dict[str, str]) -> str:
    """FLOWER_BASIC_AUTH, or in development a user:password generated once into var/."""
    if env.get("FLOWER_BASIC_AUTH"):
        return env["FLOWER_BASIC_AUTH"]
    if env.get("DJANGO_ENV", "development") == "production":
        raise StartupError("FLOWER_BASIC_AUTH=user:password must be set when DJANGO_ENV=production")
    path = VAR_DIR / "flower_basic_auth"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(f"admin:{secrets.token_urlsafe(18)}\n")
        path.chmod(0o600)
    return path.read_text().strip()


# --- Children ---------------------------------------------------------------------------------
@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str]) -> None:
        # Same process group as the supervisor (the terminal's foreground group): Ctrl-C reaches
        # everything at once, and the supervisor's SIGTERM follows for whatever ignored it.
        self.process = subprocess.Popen(
            self.argv,
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )

    def pump(self, width: int, out: IO[str]) -> threading.Thread:
        """Copy the child's output line by line, each line prefixed with its name."""
        assert self.process is not None and self.process.stdout is not None
        stream = self.process.stdout
        prefix = f"{self.name:<{width}} | "

        def run() -> None:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", errors="replace").rstrip("\n")
                with _print_lock:
                    out.write(prefix + line + "\n")
                    out.flush()

        thread = threading.Thread(target=run, name=f"pump-{self.name}", daemon=True)
        thread.start()
        return thread

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def children(env: dict[str, str], flower_port: int) -> list[Child]:
    celery = [str(BIN_DIR / "celery"), "-A", "nexus_project"]
    return [
        Child("web", [str(BIN_DIR / "gunicorn"), "nexus_project.wsgi:application", "-c", "gunicorn.conf.py"]),
        # Pool and thread count come from the settings (WORKER_POOL, WORKER_CONCURRENCY), so
        # make run, the Procfile and compose size the worker the same way.
        Child("worker", [*celery, "worker", "--loglevel", "INFO"]),
        # Exactly one beat: two would publish every sweep twice.
        Child("beat", [*celery, "beat", "--loglevel", "INFO"]),
        # The credential reaches Flower as FLOWER_BASIC_AUTH in its environment, not on the
        # command line, where `ps` would show it to every user of the machine.
        Child(
            "flower",
            [*celery, "flower", f"--port={flower_port}", "--address=127.0.0.1", "--max_tasks=10000"],
        ),
    ]


class Supervisor:
    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.stop_reason = ""
        self.valkey: EmbeddedValkey | None = None
        self.postgres: EmbeddedPostgres | None = None
        self.children: list[Child] = []

    def request_stop(self, signum: int, _frame: object) -> None:
        if not self.stopping.is_set():
            self.stop_reason = signal.Signals(signum).name
            self.stopping.set()

    def run(self) -> int:
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)
        started = time.monotonic()
        try:
            env, summary = self.prepare()
        except StartupError as exc:
            self.stop_servers()
            if self.stopping.is_set():  # Ctrl-C during migrate: not a failure
                say(f"{self.stop_reason} received during start-up: stopped")
                return 0
            say(f"ERROR: {exc}")
            return 2
        if self.stopping.is_set():
            self.stop_servers()
            return 0
        return self.supervise(env, summary, started)

    def prepare(self) -> tuple[dict[str, str], list[str]]:
        env = dict(os.environ)
        env.setdefault("DJANGO_SETTINGS_MODULE", "nexus_project.settings")
        # Said explicitly: gunicorn.conf.py assumes production when DJANGO_ENV is missing.
        env.setdefault("DJANGO_ENV", "development")
        env["PYTHONUNBUFFERED"] = "1"  # lines reach the prefixer as they are written
        web_host, web_port = split_bind(env.get("GUNICORN_BIND", "127.0.0.1:8000"))
        flower_port = int(env.get("FLOWER_PORT", "5555"))
        for what, host, port in (("web", web_host, web_port), ("Flower", "127.0.0.1", flower_port)):
            if port_in_use(host, port):
                raise StartupError(
                    f"port {port} ({what}) is already in use: is another `make run` running? "
                    f"Stop it first (Ctrl-C in its terminal)."
                )

        broker = self.start_servers(env)

        say("applying migrations (manage.py migrate --noinput)")
        migrate = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"], cwd=BASE_DIR, env=env, check=False
        )
        if migrate.returncode != 0:
            raise StartupError(f"manage.py migrate failed with exit code {migrate.returncode}; see above")

        credential = flower_credential(env)
        env["FLOWER_BASIC_AUTH"] = credential
        self.children = children(env, flower_port)
        web = f"http://{web_host}:{web_port}"
        production = env.get("DJANGO_ENV") == "production"
        worker_threads = env.get("WORKER_CONCURRENCY") or ("64" if production else "16")  # settings' default
        summary = [
            f"web       {web}/  (health {web}/api/nexus/producer, liveness {web}/healthz)",
            admin_line(web, superuser_exists(env.get("DATABASE_URL") or dev_database_url(VAR_DIR))),
            f"API docs  {web}/api/docs/",
            f"Flower    http://127.0.0.1:{flower_port}/  (basic auth {credential})",
            f"database  {database_description(env, self.postgres)}",
            f"broker    {broker}",
            f"worker    {env.get('WORKER_POOL', 'threads')} pool x {worker_threads}",
            f"extractor {extractor_description(env)}",
            f"try it    curl -sS {web}/api/nexus/producer -H 'Content-Type: application/json' "
            f"-d '{SEED_BODY}'",
        ]
        return env, summary

    def start_servers(self, env: dict[str, str]) -> str:
        """The embedded PostgreSQL and valkey, each unless its URL is set; the broker's line."""
        production = env.get("DJANGO_ENV") == "production"
        if not env.get("DATABASE_URL") and not production:  # production requires one (settings)
            self.postgres = EmbeddedPostgres(pgdata=VAR_DIR / "postgres", say=say)
            say(f"starting embedded PostgreSQL in {self.postgres.pgdata}")
            self.postgres.start()
            if self.postgres.create_database(DEV_DATABASE_NAME):
                say(f"created database {DEV_DATABASE_NAME}")
            # DATABASE_URL stays unset: the children reach it through the settings' default
            # (embedded.dev_database_url), the same way a manage.py in another terminal does.

        if env.get("REDIS_URL"):
            broker = f"{without_credentials(env['REDIS_URL'])} (REDIS_URL)"
        else:
            # Never adopt whatever Redis runs on 6379: it may be another project's, or flushed.
            self.valkey = EmbeddedValkey(
                port=int(env.get("NEXUS_DEV_REDIS_PORT", "6390")), data_dir=VAR_DIR / "valkey", say=say
            )
            say(f"starting embedded valkey on 127.0.0.1:{self.valkey.port} (AOF in {self.valkey.data_dir})")
            self.valkey.start()
            env["REDIS_URL"] = self.valkey.url
            broker = f"embedded valkey redis://127.0.0.1:{self.valkey.port}/0 (AOF in {self.valkey.data_dir})"
        if env.get("CELERY_BROKER_URL"):
            broker += f"; Celery broker {without_credentials(env['CELERY_BROKER_URL'])} (CELERY_BROKER_URL)"
        return broker

    def supervise(self, env: dict[str, str], summary: list[str], started: float) -> int:
        # Beat and Flower wait until web and worker are ready: the start is CPU-bound (every
        # process imports Django), and neither is needed for a POST to be processed.
        first = [c for c in self.children if c.name in READY_CHILDREN]
        later = [c for c in self.children if c not in first]
        width = max(len(c.name) for c in self.children)
        pumps = []
        for child in first:
            child.start(env)
            pumps.append(child.pump(width, sys.stdout))
        web_url = "http://{}:{}".format(*split_bind(env.get("GUNICORN_BIND", "127.0.0.1:8000")))
        announced = False
        failure = ""
        while not self.stopping.is_set():
            for child in self.children:
                if child.process is not None and not child.alive():
                    code = child.process.returncode if child.process else None
                    failure = f"{child.name} exited unexpectedly with code {code}; stopping the rest"
            failure = failure or self.server_failure()
            if failure:
                break
            # Ready means a POST gets processed at once: web answers and a worker's heartbeat
            # is in (health's checks.workers), not merely that gunicorn listens.
            if not announced and _pipeline_ready(web_url, time.monotonic() - started):
                announced = True
                say(f"ready in {time.monotonic() - started:.1f} s (starting beat and flower)")
                for child in later:
                    child.start(env)
                    pumps.append(child.pump(width, sys.stdout))
                for line in summary:
                    say(line)
                say("Ctrl-C stops everything")
            elif not announced and time.monotonic() - started > READY_TIMEOUT_SECONDS:
                failure = f"web and worker were not ready within {READY_TIMEOUT_SECONDS:.0f} s"
                break
            self.stopping.wait(0.25)

        if failure:
            say(f"ERROR: {failure}")
        else:
            say(f"{self.stop_reason} received: stopping web, worker, beat and flower")
        self.stop_children()
        for pump in pumps:
            pump.join(timeout=2)
        self.stop_servers()
        if failure:
            return 1
        say("all processes stopped")
        return 0

    def stop_children(self) -> None:
        if self.stop_reason == "SIGINT":
            # A terminal Ctrl-C already reached every child (one process group); a second
            # signal at once turns their clean exit into a noisy one. Give them a moment.
            deadline = time.monotonic() + SIGINT_GRACE_SECONDS
            while any(c.alive() for c in self.children) and time.monotonic() < deadline:
                time.sleep(0.1)
        for child in self.children:
            if child.alive() and child.process is not None:
                child.process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for child in self.children:
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"{child.name} did not stop within {STOP_TIMEOUT_SECONDS:.0f} s: killing it")
                child.process.kill()
                child.process.wait()

    def server_failure(self) -> str:
        if self.valkey and self.valkey.process and self.valkey.process.poll() is not None:
            return f"embedded valkey exited unexpectedly (code {self.valkey.process.returncode})"
        if self.postgres and not self.postgres.running():
            return f"embedded PostgreSQL stopped unexpectedly; see {self.postgres.pgdata / 'log'}"
        return ""

    def serve_servers(self) -> int:
        """``make servers``: the embedded PostgreSQL and valkey alone, in the foreground, for
        the parts run one by one (make migrate, shell, web, worker) in other terminals."""
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)
        env = dict(os.environ)
        try:
            broker = self.start_servers(env)
        except StartupError as exc:
            self.stop_servers()
            say(f"ERROR: {exc}")
            return 2
        say(f"database  {database_description(env, self.postgres)}")
        say(f"broker    {broker}")
        say("Ctrl-C stops them")
        failure = ""
        while not self.stopping.is_set() and not failure:
            failure = self.server_failure()
            self.stopping.wait(0.5)
        self.stop_servers()
        if failure:
            say(f"ERROR: {failure}")
            return 1
        say("servers stopped")
        return 0

    def stop_servers(self) -> None:
        """After the children: valkey (its AOF flushed), then PostgreSQL (a fast shutdown)."""
        if self.valkey is not None:
            self.valkey.stop()
        if self.postgres is not None:
            self.postgres.stop()


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - our own loopback URL
            return bool(response.status == 200)
    except OSError:
        return False


def _pipeline_ready(web_url: str, running_s: float) -> bool:
    """Web answers and a worker of this run beat: a heartbeat older than this run is a
    previous run's, still alive in the persisted valkey until its TTL runs out."""
    if not _http_ok(f"{web_url}/healthz"):
        return False
    try:
        with urllib.request.urlopen(f"{web_url}/api/nexus/producer", timeout=2) as response:  # noqa: S310
            report = json.load(response)
    except (OSError, ValueError):
        return False
    age = report.get("worker_heartbeat_age_s")
    return report.get("checks", {}).get("workers") == "up" and age is not None and age < running_s


def main() -> int:
    if sys.argv[1:] == ["--servers"]:
        return Supervisor().serve_servers()
    return Supervisor().run()


if __name__ == "__main__":
    sys.exit(main())

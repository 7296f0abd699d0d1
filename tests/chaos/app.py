"""The application's processes, started with the README's own commands (gunicorn, Celery
worker, Celery beat), each in its own process group so a scenario can SIGKILL it whole."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from .services import wait_until

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WORKERS = ("chaos1", "chaos2")


def commands() -> dict[str, list[str]]:
    """The Procfile's commands; workers get distinct node names, as two replicas would."""
    celery = [str(BIN / "celery"), "-A", "nexus_project"]
    processes = {"web": [str(BIN / "gunicorn"), "nexus_project.wsgi:application", "-c", "gunicorn.conf.py"]}
    for name in WORKERS:
        processes[name] = [*celery, "worker", "--loglevel", "INFO", "-n", f"{name}@%h"]
    processes["beat"] = [*celery, "beat", "--loglevel", "INFO"]
    return processes


def manage(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=_full_env(env), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")


def _full_env(env: dict[str, str]) -> dict[str, str]:
    # Only what a deployment would set: PATH/HOME/LANG from here, the rest from the profile.
    keep = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    return {**keep, **env}


class App:
    """web, two workers and beat for one scenario; logs in ``logdir``."""

    def __init__(
        self,
        env: dict[str, str],
        logdir: Path,
        web_port: int,
        process_env: dict[str, dict[str, str]] | None = None,
        process_prefix: dict[str, list[str]] | None = None,
    ) -> None:
        self.env = _full_env(env)
        # Extra environment for one process, as its host would differ (its clock: faketime).
        self.process_env = process_env or {}
        # A command to run one process under (``ip netns exec …``: a host of its own).
        self.process_prefix = process_prefix or {}
        self.logdir = logdir
        self.web_port = web_port
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.worker_starts = dict.fromkeys(WORKERS, 0)
        logdir.mkdir(parents=True, exist_ok=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self) -> None:
        for name in commands():
            self._spawn(name)
        wait_until(self._web_answers, 60, "gunicorn answering /healthz", 0.2)
        self.wait_workers_ready()

    def _spawn(self, name: str) -> None:
        log = (self.logdir / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [*self.process_prefix.get(name, []), *commands()[name]],
            cwd=ROOT,
            env={**self.env, **self.process_env.get(name, {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        if name in self.worker_starts:
            self.worker_starts[name] += 1

    def _web_answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base}/healthz", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def wait_workers_ready(self, timeout: float = 60) -> None:
        """Every worker logged Celery's "ready." as many times as it was started."""

        def ready() -> bool:
            for name in WORKERS:
                self.assert_running(name)
                if self.log(name).count(" ready.") < self.worker_starts[name]:
                    return False
            return True

        wait_until(ready, timeout, "Celery workers ready", 0.2)

    def assert_running(self, name: str) -> None:
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            tail = "\n".join(self.log(name).splitlines()[-30:])
            raise AssertionError(
                f"{name} is not running (exit {proc and proc.returncode}); log tail:\n{tail}"
            )

    def kill_workers(self) -> None:
        """SIGKILL every worker's whole process group: main process and pool, no goodbye."""
        for name in WORKERS:
            proc = self.procs[name]
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def signal_worker(self, name: str, signum: int) -> None:
        """Send ``signum`` to a worker's whole process group (SIGSTOP: a VM or GC freeze)."""
        os.killpg(self.procs[name].pid, signum)

    def start_workers(self) -> None:
        for name in WORKERS:
            self._spawn(name)

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)

    def log(self, name: str) -> str:
        path = self.logdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_records(self, name: str) -> list[dict[str, Any]]:
        """The JSON log lines a process wrote (Celery's own banner lines are not JSON)."""
        records = []
        for line in self.log(name).splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
        return records

    def sweeper_redispatches(self) -> int:
        """Jobs the sweeper published again, summed from the workers' own log lines."""
        return sum(
            int(record.get("count", 0))
            for name in WORKERS
            for record in self.log_records(name)
            if record.get("message") == "sweeper re-dispatched jobs"
        )

    def webhook_redispatches(self) -> dict[str, int]:
        """Events and deliveries the sweeper published again (their task was lost)."""
        total = {"events": 0, "deliveries": 0}
        for name in WORKERS:
            for record in self.log_records(name):
                if record.get("message") == "sweeper re-dispatched webhook deliveries":
                    for key in total:
                        total[key] += int(record.get(key, 0))
        return total

"""Waiting for a child server the test started: gunicorn answering HTTP, a Celery worker
logging "ready.". One loop for the tests that start real processes; a process that exits
while it is waited for fails the test at once, with the tail of its log."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Callable

import pytest

LOG_TAIL = 3000


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:  # refused, reset, timed out, or an HTTP error status
        return False


def wait_ready(
    process: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    log: Callable[[], str],
    *,
    what: str,
    timeout: float = 60.0,
    interval: float = 0.2,
) -> None:
    """Poll ``ready()`` until true; fail if ``process`` exits first or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            state = (
                f"exited {process.returncode}"
                if process.poll() is not None
                else f"not ready in {timeout:.0f}s"
            )
            pytest.fail(f"{what} {state}:\n{log()[-LOG_TAIL:]}")
        time.sleep(interval)


def wait_http_ready(
    process: subprocess.Popen[bytes],
    url: str,
    log: Callable[[], str],
    *,
    what: str = "gunicorn",
    timeout: float = 60.0,
) -> None:
    """Until ``url`` answers 2xx (gunicorn's /healthz: a worker booted and the app loaded)."""
    wait_ready(process, lambda: _answers(url), log, what=what, timeout=timeout)


def wait_celery_ready(
    process: subprocess.Popen[bytes], log: Callable[[], str], *, starts: int = 1, timeout: float = 90.0
) -> None:
    """Until the worker's log says Celery's " ready." (``starts`` times: once per start)."""
    wait_ready(process, lambda: log().count(" ready.") >= starts, log, what="Celery worker", timeout=timeout)

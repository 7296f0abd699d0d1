"""Imported at start-up only by processes run under libfaketime (tests/faketime.py puts this
folder on their PYTHONPATH).

libfaketime 0.9.10 (Debian 12) fails CPython's ``time.sleep`` with EINVAL when the monotonic
clock is left real (FAKETIME_DONT_FAKE_MONOTONIC=1): CPython sleeps with ``clock_nanosleep``
on an absolute CLOCK_MONOTONIC deadline, which the library mistranslates. Faking the monotonic
clock too is worse: condition-variable waits (``Event.wait``, ``Queue.get(timeout=…)``) then
hang. So the monotonic clock stays real and sleeping goes through ``select()``, whose relative
timeout libfaketime passes on untouched. Nothing else changes: the wall clock is the fake one.
"""

import select
import time


def _sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        select.select([], [], [], remaining)


time.sleep = _sleep  # type: ignore[assignment]

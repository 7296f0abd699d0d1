"""libfaketime (Debian's ``faketime`` package) for child processes: a host whose wall clock is
off by a fixed offset. Used by the clock-skew tests and the chaos suite."""

from __future__ import annotations

from pathlib import Path

import pytest

LIBFAKETIME = next(
    (
        path
        for path in (
            Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"),
            Path("/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"),
            Path("/usr/lib/faketime/libfaketime.so.1"),
        )
        if path.exists()
    ),
    None,
)
SITE = Path(__file__).resolve().parent / "faketime_site"
MISSING = "libfaketime missing: apt-get install faketime (.ci/run installs it)"
needs_faketime = pytest.mark.skipif(LIBFAKETIME is None, reason=MISSING)


def faketime_env(offset: str) -> dict[str, str]:
    """libfaketime preloaded with a fixed offset from the real clock (``+5m``, ``-5m``).

    NO_CACHE: every call reads the offset afresh (no cached time between calls). The
    monotonic clocks stay real, so timeouts and Celery's timers run at the real pace; only
    the wall clock (time.time, datetime.now) is off, as on a host whose clock drifted. The
    database and Redis servers are other processes: their clocks are untouched."""
    assert LIBFAKETIME is not None, MISSING
    return {
        # time.sleep through select(): libfaketime 0.9.10 breaks CPython's (faketime_site/).
        "PYTHONPATH": str(SITE),
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME": offset,
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }

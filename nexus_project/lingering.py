"""Lingering close for gunicorn: read what is left of a request body, up to a bound, before the
worker closes the socket, so a client that writes its whole body before reading (Python's
urllib and requests do) gets the 413 we answered instead of a broken pipe.

Closing a socket with unread data in its receive buffer makes the kernel send RST, and the
client, still writing, fails before it reads a byte of the response. gunicorn's own graceful
close drains only 64 KiB; nginx's lingering close is the model for the rest: keep reading (and
discarding) for a while, bounded in bytes and in seconds, then close anyway. Past the bound
the client does get the reset: a body that large, or that slow, is not worth a worker.

Called from gunicorn.conf.py's ``post_request``, after the response has been written.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from gunicorn.http.errors import ParseException

logger = logging.getLogger(__name__)

_CHUNK = 64 * 1024
# A body that cannot be read: the client went away, timed out, or sent a broken chunk.
_READ_ERRORS = (OSError, ValueError, ParseException)


def drain_unread_body(environ: dict[str, Any], *, max_bytes: int, max_seconds: float) -> int:
    """Read and discard the rest of the request body, at most ``max_bytes`` for at most
    ``max_seconds``; returns the bytes drained. Never raises for the client's failures."""
    body = environ.get("wsgi.input")
    if body is None or max_bytes <= 0:
        return 0
    sock = environ.get("gunicorn.socket")
    previous_timeout = sock.gettimeout() if sock is not None else None
    deadline = time.monotonic() + max_seconds
    drained = 0
    complete = False
    try:
        while drained < max_bytes:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if sock is not None:
                sock.settimeout(remaining)  # a stalled client cannot hold the worker longer
            chunk = body.read(min(_CHUNK, max_bytes - drained))
            if not chunk:
                complete = True
                break
            drained += len(chunk)
    except _READ_ERRORS:
        pass
    finally:
        if sock is not None:
            with contextlib.suppress(OSError):  # the client already closed it
                sock.settimeout(previous_timeout)
    if drained:
        logger.info(
            "unread request body drained before close"
            if complete
            else "unread request body over the drain bound; closing",
            extra={"bytes": drained, "path": environ.get("PATH_INFO", "")},
        )
    return drained

"""Oversize bodies reach the client as 413 through a real gunicorn (gunicorn.conf.py's
lingering close, nexus_project/lingering.py): a client that writes its whole body before it
reads gets the JSON answer; past the drain bound it gets the connection closed instead."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.test_gunicorn_conf import run_gunicorn

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

TEN_MB = 10 * 1000 * 1000


def post_whole_body(base: str, size: int) -> urllib.error.HTTPError:
    """urllib writes the whole body, then reads the answer: what Python clients do."""
    body = b'{"sessionId": "' + b"x" * (size - 20) + b'"}'
    request = urllib.request.Request(
        f"{base}/api/nexus/producer", data=body, headers={"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    return refused.value


def test_a_ten_megabyte_body_written_before_reading_gets_the_413_json(tmp_path: Path):
    with run_gunicorn(tmp_path) as (base, _):
        error = post_whole_body(base, TEN_MB)
        assert error.code == 413
        assert json.loads(error.read())["error"] == "payload_too_large"
        # The worker is free again for the next client.
        assert urllib.request.urlopen(f"{base}/healthz", timeout=10).status == 200


def test_a_body_past_the_drain_bound_gets_the_connection_closed(tmp_path: Path):
    with run_gunicorn(tmp_path, GUNICORN_DRAIN_MAX_BYTES=str(1024 * 1024)) as (base, _):
        body = b"x" * TEN_MB
        request = urllib.request.Request(
            f"{base}/api/nexus/producer", data=body, headers={"Content-Type": "application/json"}
        )
        # Past 1 MiB the server stops reading and closes: the writer sees the reset (a broken
        # pipe or a reset connection), not a hang and not a 413.
        with pytest.raises((ConnectionError, urllib.error.URLError)) as closed:
            urllib.request.urlopen(request, timeout=60)
        assert not isinstance(closed.value, urllib.error.HTTPError)
        assert urllib.request.urlopen(f"{base}/healthz", timeout=10).status == 200


def test_a_stalled_body_is_given_up_after_the_drain_seconds(tmp_path: Path):
    # The worker timeout is 30 s; a 1 s drain bound lets the server close well before it.
    with run_gunicorn(tmp_path, GUNICORN_DRAIN_MAX_SECONDS="1") as (base, _):
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=60) as client:
            client.sendall(
                b"POST /api/nexus/producer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n" + b"x" * 1000
            )
            started = time.monotonic()
            received = b""
            while True:  # the 413, then the close, while we send nothing more
                try:
                    chunk = client.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                received += chunk
            assert received.startswith(b"HTTP/1.1 413")
            assert time.monotonic() - started < 25, (
                "the server held the stalled connection to its worker timeout"
            )

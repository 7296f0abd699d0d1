"""Sentry as deployed: SENTRY_DSN set, the settings start sentry-sdk, and an exception whose text
carries an e-mail and a phone reaches a real DSN endpoint on 127.0.0.1 scrubbed, breadcrumbs,
extra and tags too; with no DSN nothing is started."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from nexus_project.sentry import before_breadcrumb, before_send

ROOT = Path(__file__).resolve().parent.parent.parent
EMAIL = "lucia.benitez@example.net"
PHONE = "+57 301 555 0199"

# What the subprocess does: the settings (with SENTRY_DSN) start Sentry; a log line becomes a
# breadcrumb; an exception quoting the visitor is captured with extra and a tag; then a flush.
SCRIPT = f"""
import logging, django
django.setup()
import sentry_sdk
logging.getLogger("ingestion.test").warning("calling {EMAIL} at {PHONE}")
sentry_sdk.set_extra("contact", {{"email": "{EMAIL}", "phone": "{PHONE}"}})
sentry_sdk.set_tag("visitor", "{EMAIL}")
def fold(transcript):
    raise ValueError("no prospect for {EMAIL} / {PHONE}")
try:
    fold("Hola, soy Lucía, escríbeme a {EMAIL}")
except ValueError:
    sentry_sdk.capture_exception()
sentry_sdk.flush(timeout=20)
"""


class DsnReceiver:
    """A Sentry ingest endpoint: keeps each envelope's items as (headers, payload)."""

    def __init__(self) -> None:
        self.items: list[tuple[dict[str, Any], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                receiver.parse(body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def dsn(self) -> str:
        return f"http://publickey@127.0.0.1:{self.server.server_address[1]}/1"

    def parse(self, body: bytes) -> None:
        lines = body.split(b"\n")
        index = 1  # lines[0] is the envelope's header
        while index < len(lines) and lines[index].strip():
            header = json.loads(lines[index])
            payload = lines[index + 1]
            self.items.append((header, payload))
            index += 2

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(payload) for header, payload in self.items if header.get("type") == "event"]


@pytest.fixture
def dsn_receiver() -> Iterator[DsnReceiver]:
    receiver = DsnReceiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SENTRY_", "OTEL_"))}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "nexus_project.settings", "DJANGO_ENV": "development", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_exception_with_an_email_and_a_phone_arrives_scrubbed(dsn_receiver):
    done = run({"SENTRY_DSN": dsn_receiver.dsn, "SENTRY_ENVIRONMENT": "staging"})
    assert done.returncode == 0, done.stderr[-3000:]
    (event,) = dsn_receiver.events()
    raw = json.dumps(event)
    for secret in (EMAIL, PHONE, "301 555 0199", "escríbeme"):
        assert secret not in raw, secret
    (exception,) = event["exception"]["values"]
    assert exception["type"] == "ValueError"
    assert exception["value"] == "no prospect for [email] / [phone]"
    assert event["extra"]["contact"] == {"email": "[email]", "phone": "[phone]"}
    assert event["tags"]["visitor"] == "[email]"
    crumbs = [c for c in event["breadcrumbs"]["values"] if c.get("category") == "ingestion.test"]
    assert crumbs[0]["message"] == "calling [email] at [phone]"
    # No frame locals (the transcript is a local), no user or IP.
    assert all("vars" not in frame for frame in exception["stacktrace"]["frames"])
    assert "user" not in event or not event["user"].get("ip_address")
    assert event["environment"] == "staging"
    assert event["release"].startswith("nexus-ingestion@")
    assert {"django", "celery"} <= set(event["sdk"]["integrations"])


def test_without_a_dsn_sentry_is_not_started(dsn_receiver):
    done = run({})
    assert done.returncode == 0, done.stderr[-3000:]
    assert dsn_receiver.items == []


def test_the_hooks_scrub_nested_values_and_keep_the_rest():
    event = {
        "message": f"write to {EMAIL}",
        "exception": {"values": [{"type": "KeyError", "value": f"'{PHONE}'"}]},
        "extra": {"ids": ["job-1", EMAIL], "count": 3},
    }
    assert before_send(event, {}) == {
        "message": "write to [email]",
        "exception": {"values": [{"type": "KeyError", "value": "'[phone]'"}]},
        "extra": {"ids": ["job-1", "[email]"], "count": 3},
    }
    assert before_breadcrumb({"message": f"{EMAIL}", "level": "info"}, {}) == {
        "message": "[email]",
        "level": "info",
    }

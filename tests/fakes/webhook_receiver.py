"""A webhook receiver on 127.0.0.1 that checks every request with the `standardwebhooks`
package (an implementation we did not write) and records what came: webhook-id, type,
prospectId, sequence, whether the signature held and what it answered.

Faults for the chaos suite, switched at run time: answer 500 to the first N tries of each
webhook-id (`fail_first`), hold each request open before answering (`hold_s`, so a kill lands
mid-delivery), or close the port altogether (`stop()`, then `start()` on the same port).

In a test: ``Receiver(secret).start()``. As a process (the quick-start smoke test, bench
figure 11):

    python -m tests.fakes.webhook_receiver --port 8766 --secret whsec_… [--out received.jsonl]

writes one JSON line per request to --out when given. ``GET /_stats`` answers the counts since
the last reset (`Receiver.stats`); ``POST /_reset`` forgets what came (not the --out file).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Received:
    webhook_id: str
    type: str | None
    prospect_id: int | None
    sequence: int | None
    verified: bool
    answered: int
    at: float


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Figure 11's ceiling run opens a new connection per POST from every worker thread at once;
    # the default backlog of 5 refuses some of them.
    request_queue_size = 128


class Receiver:
    def __init__(self, secret: str, port: int = 0, out: Path | None = None) -> None:
        self.secret = secret
        self.webhook = Webhook(secret)
        self.port = port
        self.out = out
        self.fail_first = 0
        self.hold_s = 0.0
        self.received: list[Received] = []
        self.tries: Counter[str] = Counter()
        self.in_flight = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path == "/_reset":
                    receiver.reset()
                    _answer_json(self, receiver.stats())
                else:
                    receiver._handle(self)

            def do_GET(self) -> None:
                if self.path == "/_stats":
                    _answer_json(self, receiver.stats())
                else:
                    self.send_error(404)

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = _Server(("127.0.0.1", self.port), Handler)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the port: a delivery now meets a refused connection."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("content-length") or 0))
        headers = {k.lower(): v for k, v in request.headers.items()}
        webhook_id = headers.get("webhook-id", "")
        try:
            payload = self.webhook.verify(body, headers)
            verified = True
        except WebhookVerificationError:
            payload, verified = {}, False
        data = payload.get("data") or {}
        with self._lock:
            self.tries[webhook_id] += 1
            tries = self.tries[webhook_id]
            self.in_flight += 1
        try:
            if self.hold_s:
                time.sleep(self.hold_s)
            status = 400 if not verified else 500 if tries <= self.fail_first else 200
            record = Received(
                webhook_id=webhook_id,
                type=payload.get("type"),
                prospect_id=data.get("prospectId"),
                sequence=data.get("sequence"),
                verified=verified,
                answered=status,
                at=time.time(),
            )
            with self._lock:
                self.received.append(record)
                if self.out is not None:
                    with self.out.open("a") as out:
                        out.write(json.dumps(asdict(record)) + "\n")
            request.send_response(status)
            request.send_header("content-length", "2")
            request.end_headers()
            request.wfile.write(b"ok")
        except OSError:
            pass  # the sender went away mid-answer (a killed worker): its retry will come
        finally:
            with self._lock:
                self.in_flight -= 1

    def accepted(self) -> dict[str, Received]:
        """The requests answered 2xx, by webhook-id (the last one of each)."""
        with self._lock:
            return {r.webhook_id: r for r in self.received if 200 <= r.answered < 300}

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def stats(self) -> dict[str, int]:
        """Counts of what came: requests, verified and bad signatures, and the verified
        webhook-ids (distinct, and how many of them came more than once)."""
        with self._lock:
            ids = Counter(r.webhook_id for r in self.received if r.verified)
            received = len(self.received)
        verified = ids.total()
        return {
            "received": received,
            "verified": verified,
            "bad_signature": received - verified,
            "distinct_ids": len(ids),
            "repeated_ids": sum(1 for n in ids.values() if n > 1),
        }

    def reset(self) -> None:
        """Forget what came (figure 11: the ceiling run's POSTs before the measured ones)."""
        with self._lock:
            self.received.clear()
            self.tries.clear()


def _answer_json(request: BaseHTTPRequestHandler, document: Any) -> None:
    body = json.dumps(document).encode()
    request.send_response(200)
    request.send_header("content-type", "application/json")
    request.send_header("content-length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--out", type=Path, help="append one JSON line per request to this file")
    args = parser.parse_args()
    Receiver(args.secret, args.port, args.out).start()
    threading.Event().wait()


if __name__ == "__main__":
    main()

"""A local webhook receiver for figure 11: verifies every POST with `standardwebhooks` and
answers 204 (401 for a bad signature). `GET /_stats` returns its counts; `POST /_reset` zeroes them.

    python -m bench.webhook_receiver --port 8999 --secret whsec_...
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class Receiver(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, port: int, secret: str) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.webhook = Webhook(secret)
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.received = self.verified = self.bad_signature = 0
        self.ids: dict[str, int] = {}  # webhook-id -> times received

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "received": self.received,
                "verified": self.verified,
                "bad_signature": self.bad_signature,
                "distinct_ids": len(self.ids),
                "repeated_ids": sum(1 for n in self.ids.values() if n > 1),
            }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Receiver

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, code: int, body: bytes = b"") -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        if body:
            self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(200, json.dumps(self.server.stats()).encode())

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/_reset":
            with self.server.lock:
                self.server.reset()
            self._answer(200, json.dumps(self.server.stats()).encode())
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            self.server.webhook.verify(body, headers)
        except WebhookVerificationError:
            ok = False
        else:
            ok = True
        with self.server.lock:
            self.server.received += 1
            if ok:
                self.server.verified += 1
                msg_id = headers.get("webhook-id", "")
                self.server.ids[msg_id] = self.server.ids.get(msg_id, 0) + 1
            else:
                self.server.bad_signature += 1
        self._answer(204 if ok else 401)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args()
    Receiver(args.port, args.secret).serve_forever()


if __name__ == "__main__":
    main()

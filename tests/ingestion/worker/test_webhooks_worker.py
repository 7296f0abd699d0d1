"""Signed webhooks through a real Celery worker to a real receiver on 127.0.0.1 (issue 14 C)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from prospects.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint
from prospects.webhooks import secret_new
from tests.conftest import producer_body, wait_for

pytestmark = [pytest.mark.redis]


class Receiver:
    def __init__(self, secret: str, fail_first: int = 0) -> None:
        self.secret, self.fail_first = secret, fail_first
        self.received: list[dict[str, Any]] = []  # every request, verified or not
        self.lock = threading.Lock()


@pytest.fixture
def receiver_factory() -> Iterator[Any]:
    servers: list[ThreadingHTTPServer] = []

    def start(secret: str, fail_first: int = 0) -> tuple[Receiver, str]:
        receiver = Receiver(secret, fail_first)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"])).decode()
                headers = {k.lower(): v for k, v in self.headers.items()}
                payload = Webhook(receiver.secret).verify(body, headers)  # raises if forged
                with receiver.lock:
                    receiver.received.append({"id": headers["webhook-id"], "payload": payload})
                    failing = len(receiver.received) <= receiver.fail_first
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return receiver, f"http://127.0.0.1:{server.server_address[1]}/hook"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_every_event_is_delivered_once_signed(api, celery_worker, receiver_factory):
    secret = secret_new()
    receiver, url = receiver_factory(secret)
    types = ["prospect.created", "prospect.updated", "prospect.stage_changed", "prospect.hot"]
    WebhookEndpoint.objects.create(url=url, events=types, secret=secret)

    assert (
        api.post("/api/nexus/producer", producer_body(session_id="hook-1"), format="json").status_code == 202
    )
    wait_for(
        lambda: Event.objects.exists() and not Event.objects.filter(delivered_at__isnull=True).exists(), 30
    )

    events = list(Event.objects.order_by("sequence"))
    assert len(receiver.received) == len(events)
    assert sorted(r["id"] for r in receiver.received) == sorted(f"evt_{e.pk}" for e in events)
    first = next(r["payload"] for r in receiver.received if r["id"] == f"evt_{events[0].pk}")
    assert first["type"] == "prospect.created"
    assert first["data"]["sequence"] == 1
    assert first["data"]["prospect"]["nombre"] == "Juan Pérez"
    assert "messages" not in json.dumps(first)  # no transcript
    assert set(Delivery.objects.values_list("status", flat=True)) == {"succeeded"}


def test_a_failing_receiver_gets_the_retries_with_the_same_webhook_id(
    api, celery_worker, receiver_factory, settings
):
    settings.NEXUS = {**settings.NEXUS, "WEBHOOK_RETRY_SCHEDULE": [0.2, 0.2, 0.2]}
    secret = secret_new()
    receiver, url = receiver_factory(secret, fail_first=2)
    WebhookEndpoint.objects.create(url=url, events=["prospect.created"], secret=secret)

    api.post("/api/nexus/producer", producer_body(session_id="hook-2"), format="json")
    delivery = wait_for(lambda: Delivery.objects.filter(status="succeeded").first(), 30)

    assert [r["id"] for r in receiver.received] == [delivery.webhook_id] * 3
    assert list(DeliveryAttempt.objects.order_by("at").values_list("status_code", flat=True)) == [
        500,
        500,
        204,
    ]
    assert Event.objects.get(type="prospect.created").delivered_at is not None

"""Webhook delivery failure paths, in-process against a real receiver on 127.0.0.1 (issue 14 B)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.utils import timezone

from ingestion import dispatch, tasks
from ingestion.models import Job
from ingestion.services import job_accept
from ingestion.worker import pipeline
from prospects import webhooks
from prospects.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint
from tests.conftest import transcript

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def answer() -> Iterator[Any]:
    """A receiver answering `status` (and a Location for 3xx); yields (setter, url, hits)."""
    state: dict[str, Any] = {"status": 204, "hits": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            state["hits"] += 1
            self.send_response(state["status"])
            self.send_header("Location", "http://127.0.0.1:1/elsewhere")
            self.end_headers()
            self.wfile.write(b"x" * 500)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def one_event() -> Event:
    accepted = job_accept(session_id="s-wh", fingerprint="w" * 64, messages=transcript("Hola"), metadata={})
    assert pipeline.job_process(job_id=accepted.job_id) == "completed"
    assert Job.objects.count() == 1
    return Event.objects.get(type="prospect.created")


def endpoint(url: str, **kwargs: Any) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(
        url=url, events=["prospect.created"], secret=webhooks.secret_new(), **kwargs
    )


def attempt(event: Event) -> webhooks.Outcome:
    (delivery_id,) = webhooks.deliveries_prepare(event.pk)
    return webhooks.delivery_attempt(delivery_id)


def test_410_disables_the_endpoint(answer):
    state, url = answer
    state["status"] = 410
    ep = endpoint(url)
    assert attempt(one_event()).status == "failed"
    ep.refresh_from_db()
    assert not ep.active and ep.disabled_reason == "410 Gone"


def test_a_redirect_is_not_followed_and_is_retried_with_the_excerpt_capped(answer, settings):
    state, url = answer
    state["status"] = 302
    endpoint(url)
    outcome = attempt(one_event())
    assert outcome.status == "retry"
    assert outcome.countdown == settings.NEXUS["WEBHOOK_RETRY_SCHEDULE"][0]
    (logged,) = DeliveryAttempt.objects.all()
    assert logged.status_code == 302 and len(logged.response_excerpt) == 200
    assert state["hits"] == 1


def test_the_delivery_is_given_up_after_the_schedule(answer, settings):
    settings.NEXUS = {**settings.NEXUS, "WEBHOOK_RETRY_SCHEDULE": [0.0]}
    state, url = answer
    state["status"] = 503
    endpoint(url)
    event = one_event()
    (delivery_id,) = webhooks.deliveries_prepare(event.pk)
    assert webhooks.delivery_attempt(delivery_id).status == "retry"
    assert webhooks.delivery_attempt(delivery_id).status == "failed"
    assert Delivery.objects.get().status == "failed"
    event.refresh_from_db()
    assert event.delivered_at is not None  # settled: nothing pending


def test_loopback_is_refused_unless_private_addresses_are_allowed(answer, settings):
    settings.NEXUS = {**settings.NEXUS, "WEBHOOK_ALLOW_PRIVATE": False}
    state, url = answer
    endpoint(url)
    with pytest.raises(webhooks.EndpointRefused):
        webhooks.endpoint_check(url)
    assert attempt(one_event()).status == "retry"
    assert state["hits"] == 0
    assert DeliveryAttempt.objects.get().response_excerpt.startswith("refused")


def test_an_endpoint_of_another_tenant_or_another_type_gets_nothing(answer):
    from tenants.models import Tenant

    _, url = answer
    other = Tenant.objects.create(slug="other-site", name="Other")
    endpoint(url, tenant=other)
    WebhookEndpoint.objects.create(url=url, events=["prospect.hot"], secret=webhooks.secret_new())
    event = one_event()
    assert webhooks.deliveries_prepare(event.pk) == []
    event.refresh_from_db()
    assert event.delivered_at is not None


def test_an_event_nobody_wants_is_written_settled_and_publishes_no_task(
    answer, django_capture_on_commit_callbacks
):
    """Issue 18: an event no endpoint and no mail will serve costs no delivery task."""
    from tenants.models import Tenant

    _, url = answer
    endpoint(url, tenant=Tenant.objects.create(slug="other-site", name="Other"))
    published: list[list[int]] = []
    with patch_hooks(published), django_capture_on_commit_callbacks(execute=True):
        event = one_event()
    assert event.delivered_at is not None
    assert published == []
    assert webhooks.deliveries_due(now=timezone.now() + timedelta(hours=1)) == ([], [])


def test_an_event_an_endpoint_wants_is_published_on_commit(answer, django_capture_on_commit_callbacks):
    _, url = answer
    endpoint(url)
    published: list[list[int]] = []
    with patch_hooks(published), django_capture_on_commit_callbacks(execute=True):
        event = one_event()
    assert event.delivered_at is None
    assert published == [[event.pk]]


def test_prospect_hot_is_wanted_while_the_hot_lead_mail_is_on(settings):
    settings.NEXUS = {**settings.NEXUS, "HOT_LEAD_EMAILS": ["ventas@example.com"]}
    from prospects.events import wanted_types
    from tenants.directory import default_tenant_id

    assert wanted_types(default_tenant_id()) == {"prospect.hot"}
    settings.NEXUS = {**settings.NEXUS, "HOT_LEAD_EMAILS": []}
    assert wanted_types(default_tenant_id()) == set()


@contextlib.contextmanager
def patch_hooks(published: list[list[int]]) -> Iterator[None]:
    """The outbox's on-commit hooks replaced by one that records the ids it is given."""
    from prospects import events

    saved = list(events._on_commit_hooks)
    events._on_commit_hooks[:] = [published.append]
    try:
        yield
    finally:
        events._on_commit_hooks[:] = saved


def test_the_sweeper_finds_events_never_prepared(answer):
    _, url = answer
    endpoint(url)
    event = one_event()
    events, _ = webhooks.deliveries_due(now=timezone.now() + timedelta(seconds=120))
    assert event.pk in events


def test_metrics_show_failed_attempts_and_failing_endpoints(answer, client):
    state, url = answer
    state["status"] = 500
    endpoint(url)
    assert attempt(one_event()).status == "retry"
    body = client.get("/metrics").content.decode()
    assert "nexus_webhook_failed_attempts_last_hour 1.0" in body
    assert "nexus_webhook_endpoints_failing 1.0" in body


# --- Retries and the broker's visibility timeout ---------------------------------------------
# A countdown of hours as a Celery ETA message would sit unacked in a worker past Redis's
# visibility timeout (3,600 s), which then hands copies of it to other workers, all run at the
# ETA. Retries longer than dispatch.eta_limit_seconds() publish nothing; the sweeper publishes
# them once due. The copies that shorter countdowns could still meet find the row claimed.


def _delivery_attempts_queued(redis_client: Any, queue: str) -> list[dict[str, Any]]:
    """The headers (task, eta, argsrepr) of the delivery_attempt messages waiting on ``queue``."""
    messages = [json.loads(m) for m in redis_client.lrange(queue, 0, -1)]
    return [m["headers"] for m in messages if m["headers"]["task"] == dispatch.DELIVERY_ATTEMPT]


def _failing_delivery(answer: Any, settings: Any, schedule: list[float]) -> int:
    settings.NEXUS = {**settings.NEXUS, "WEBHOOK_RETRY_SCHEDULE": schedule}
    state, url = answer
    state["status"] = 500
    endpoint(url)
    (delivery_id,) = webhooks.deliveries_prepare(one_event().pk)
    return delivery_id


def test_the_default_schedule_outlives_the_visibility_timeout(settings):
    longest = max(settings.NEXUS["WEBHOOK_RETRY_SCHEDULE"])
    assert longest > settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert dispatch.eta_limit_seconds() < settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]


@pytest.mark.redis
def test_a_retry_longer_than_the_eta_limit_is_left_on_the_row_for_the_sweeper(answer, settings, redis_client):
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    redis_client.delete(queue)
    delivery_id = _failing_delivery(answer, settings, [7200.0])  # the default schedule's 4th wait
    started = timezone.now()

    assert tasks.delivery_attempt(delivery_id) == "retry"

    assert _delivery_attempts_queued(redis_client, queue) == []  # no ETA message of 2 hours
    delivery = Delivery.objects.get()
    assert delivery.status == "pending" and delivery.attempts == 1
    assert delivery.next_attempt_at is not None
    assert abs((delivery.next_attempt_at - started).total_seconds() - 7200) < 60
    _, not_yet = webhooks.deliveries_due(now=delivery.next_attempt_at - timedelta(seconds=60))
    _, due = webhooks.deliveries_due(now=delivery.next_attempt_at + timedelta(seconds=6))
    assert (not_yet, due) == ([], [delivery_id])

    # Two hours on: the sweeper publishes the attempt, to run now.
    Delivery.objects.filter(pk=delivery_id).update(next_attempt_at=timezone.now() - timedelta(seconds=6))
    assert dispatch.events_sweep() == 1
    (message,) = _delivery_attempts_queued(redis_client, queue)
    assert message["eta"] is None
    redis_client.delete(queue)


@pytest.mark.redis
def test_a_retry_within_the_eta_limit_is_published_with_its_countdown(answer, settings, redis_client):
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    redis_client.delete(queue)
    delivery_id = _failing_delivery(answer, settings, [300.0])  # the default schedule's 2nd wait

    assert tasks.delivery_attempt(delivery_id) == "retry"

    (message,) = _delivery_attempts_queued(redis_client, queue)
    eta = datetime.fromisoformat(message["eta"])
    next_attempt_at = Delivery.objects.get().next_attempt_at
    assert next_attempt_at is not None
    assert abs((eta - next_attempt_at).total_seconds()) < 5
    redis_client.delete(queue)


def test_a_copy_of_a_retry_delivered_before_its_due_time_does_nothing(answer, settings):
    delivery_id = _failing_delivery(answer, settings, [7200.0])
    assert webhooks.delivery_attempt(delivery_id).status == "retry"
    before = Delivery.objects.values("status", "attempts", "next_attempt_at").get()

    # A copy Redis handed out after the visibility timeout, run an hour into the two hours.
    early = webhooks.delivery_attempt(delivery_id, now=timezone.now() + timedelta(seconds=3600))

    state, _ = answer
    assert early.status == "skipped"
    assert (state["hits"], DeliveryAttempt.objects.count()) == (1, 1)
    assert Delivery.objects.values("status", "attempts", "next_attempt_at").get() == before


def test_copies_of_a_retry_run_at_its_due_time_post_once(answer, settings):
    delivery_id = _failing_delivery(answer, settings, [300.0, 300.0])
    assert webhooks.delivery_attempt(delivery_id).status == "retry"
    due = Delivery.objects.get().next_attempt_at
    assert due is not None

    copies = [webhooks.delivery_attempt(delivery_id, now=due).status for _ in range(3)]

    state, _ = answer
    assert copies == ["retry", "skipped", "skipped"]
    assert (state["hits"], DeliveryAttempt.objects.count()) == (2, 2)
    assert Delivery.objects.get().attempts == 2

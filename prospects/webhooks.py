"""Webhook delivery of prospect events (issue 14 item B), signed per Standard Webhooks.

`deliveries_prepare(event_id)` creates one Delivery per active endpoint that wants the event;
`delivery_attempt(delivery_id)` claims a due delivery with a short lease (no transaction
is held during the HTTP call), POSTs it with the same webhook-id on every attempt, records the
attempt and schedules the next one on NEXUS_WEBHOOK_RETRY_SCHEDULE. A 410 disables the
endpoint. The caller (a Celery task) publishes what the returned countdown asks for.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from .models import Delivery, DeliveryAttempt, DeliveryStatus, Event, Prospect, WebhookEndpoint

PROSPECT_FIELDS = (
    "nombre",
    "email",
    "telefono",
    "ocupacion",
    "nivel_interes",
    "momento_optimo",
    "arquetipo",
    "objeciones",
    "stage",
    "constructor_id",
    "page_context",
    "channels",
    "is_returning",
    "consent_given",
    "first_seen_at",
    "last_seen_at",
    "session_count",
)


class EndpointRefused(Exception):
    """The endpoint's address is private, loopback or link-local and that is not allowed."""


def secret_new() -> str:
    import base64

    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def address_allowed(host: str) -> bool:
    """Every address `host` resolves to is public (or private ones are allowed)."""
    if settings.NEXUS["WEBHOOK_ALLOW_PRIVATE"]:
        return True
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast:
            return False
    return True


def endpoint_check(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointRefused("not an http(s) URL")
    if not address_allowed(parts.hostname):
        raise EndpointRefused("private, loopback or link-local address")


def event_body(event: Event, prospect: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "type": event.type,
        "timestamp": event.created_at.isoformat(),
        "data": {
            "prospectId": event.prospect_id,
            "tenant": event.tenant.slug,
            "sequence": event.sequence,
            "prospect": prospect or {},
            "changes": event.payload.get("changes", {}),
        },
    }


def deliveries_prepare(event_id: int) -> list[int]:
    """The ids of the event's pending deliveries, created for every endpoint that wants it."""
    event = Event.objects.select_related("tenant").filter(pk=event_id).first()
    if event is None:
        return []
    endpoints = WebhookEndpoint.objects.filter(active=True).filter(models_q_tenant(event.tenant_id))
    for endpoint in endpoints:
        if event.type in (endpoint.events or []):
            Delivery.objects.get_or_create(event=event, endpoint=endpoint)
    event_settle(event_id)
    return list(
        Delivery.objects.filter(event_id=event_id, status=DeliveryStatus.PENDING).values_list("pk", flat=True)
    )


def models_q_tenant(tenant_id: int) -> Any:
    from django.db.models import Q

    return Q(tenant__isnull=True) | Q(tenant_id=tenant_id)


def event_settle(event_id: int) -> None:
    """Mark the event delivered once no delivery of it is pending."""
    if not Delivery.objects.filter(event_id=event_id, status=DeliveryStatus.PENDING).exists():
        Event.objects.filter(pk=event_id, delivered_at__isnull=True).update(delivered_at=timezone.now())


@dataclass(frozen=True)
class Outcome:
    status: str  # "succeeded", "retry", "failed", "skipped"
    countdown: float | None = None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is an answer, not a hop: never followed


_opener = urllib.request.build_opener(_NoRedirect)


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - endpoint_check admitted only http(s)
    try:
        # endpoint_check admitted only http(s) URLs.
        with _opener.open(request, timeout=settings.NEXUS["WEBHOOK_TIMEOUT_SECONDS"]) as response:
            return response.status, response.read(200).decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read(200).decode("utf-8", "replace")
    except (OSError, ValueError) as error:
        return None, type(error).__name__


def delivery_attempt(delivery_id: int, *, now: datetime | None = None) -> Outcome:
    now = now or timezone.now()
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("endpoint", "event__tenant")
            .filter(pk=delivery_id, status=DeliveryStatus.PENDING)
            .first()
        )
        if delivery is None or (delivery.next_attempt_at and delivery.next_attempt_at > now):
            return Outcome("skipped")
        # The lease: past it (a worker killed mid-POST) the sweeper publishes the delivery again.
        delivery.next_attempt_at = now + timedelta(seconds=settings.NEXUS["WEBHOOK_LEASE_SECONDS"])
        delivery.save(update_fields=["next_attempt_at"])
    endpoint, event = delivery.endpoint, delivery.event
    prospect = Prospect.objects.filter(pk=event.prospect_id).values(*PROSPECT_FIELDS).first()
    body = json.dumps(event_body(event, prospect), cls=DjangoJSONEncoder).encode()
    status_code: int | None
    if not endpoint.active:
        status_code, excerpt, latency = None, "endpoint disabled", 0
    else:
        try:
            endpoint_check(endpoint.url)  # again, on the address it resolves to now
        except EndpointRefused as error:
            status_code, excerpt, latency = None, f"refused: {error}", 0
        else:
            signature = Webhook(endpoint.secret).sign(delivery.webhook_id, now, body.decode())
            headers = {
                "content-type": "application/json",
                "webhook-id": delivery.webhook_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": signature,
                "user-agent": "nexus-webhooks",
            }
            started = time.monotonic()
            status_code, excerpt = _post(endpoint.url, body, headers)
            latency = int((time.monotonic() - started) * 1000)
    DeliveryAttempt.objects.create(
        delivery=delivery, status_code=status_code, latency_ms=latency, response_excerpt=excerpt[:200]
    )
    attempts = delivery.attempts + 1
    schedule = settings.NEXUS["WEBHOOK_RETRY_SCHEDULE"]
    if status_code is not None and 200 <= status_code < 300:
        outcome = Outcome("succeeded")
    elif status_code == 410:
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(active=False, disabled_reason="410 Gone")
        outcome = Outcome("failed")
    elif not endpoint.active or attempts > len(schedule):
        outcome = Outcome("failed")
    else:
        outcome = Outcome("retry", countdown=schedule[attempts - 1])
    # The delivery's end and the event's settle commit together: a worker killed between the
    # two left the event undelivered forever (the sweeper only looks for events with no
    # delivery), and a reader saw a succeeded delivery of an unsettled event.
    with transaction.atomic():
        Delivery.objects.filter(pk=delivery.pk).update(
            attempts=attempts,
            status=DeliveryStatus.PENDING if outcome.status == "retry" else outcome.status,
            next_attempt_at=now + timedelta(seconds=outcome.countdown)
            if outcome.countdown is not None
            else None,
        )
        if outcome.status != "retry":
            event_settle(event.pk)
    return outcome


def deliveries_due(
    *, now: datetime | None = None, grace_seconds: float | None = None
) -> tuple[list[int], list[int]]:
    """For the sweeper: events never prepared (older than the grace) and deliveries due.

    The grace is the jobs' dispatch grace (NEXUS_DISPATCH_GRACE_SECONDS): a task published on
    commit and not run after that long is presumed lost, for an event as for a job."""
    now = now or timezone.now()
    if grace_seconds is None:
        grace_seconds = settings.NEXUS["DISPATCH_GRACE_SECONDS"]
    events = list(
        Event.objects.filter(
            delivered_at__isnull=True,
            deliveries__isnull=True,
            created_at__lt=now - timedelta(seconds=grace_seconds),
        ).values_list("pk", flat=True)[:1000]
    )
    due = list(
        Delivery.objects.filter(
            status=DeliveryStatus.PENDING, next_attempt_at__lt=now - timedelta(seconds=5)
        ).values_list("pk", flat=True)[:1000]
    )
    fresh = list(
        Delivery.objects.filter(
            status=DeliveryStatus.PENDING,
            next_attempt_at__isnull=True,
            created_at__lt=now - timedelta(seconds=grace_seconds),
        ).values_list("pk", flat=True)[:1000]
    )
    return events, due + fresh


def test_send(endpoint: WebhookEndpoint) -> tuple[int | None, str]:
    """POST a signed `webhook.test` event now (the admin's "send test event")."""
    try:
        endpoint_check(endpoint.url)
    except EndpointRefused as error:
        return None, f"refused: {error}"
    now = timezone.now()
    msg_id = f"test_{secrets.token_hex(8)}"
    body = json.dumps({"type": "webhook.test", "timestamp": now.isoformat(), "data": {}})
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(endpoint.secret).sign(msg_id, now, body),
        "user-agent": "nexus-webhooks",
    }
    return _post(endpoint.url, body.encode(), headers)

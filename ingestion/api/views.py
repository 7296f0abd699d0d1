"""The API's views: validate, call one service or selector, serialize."""

from __future__ import annotations

import time
import uuid
from typing import Any

from django.conf import settings
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.authentication import BasicAuthentication, SessionAuthentication
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tenants.directory import TenantRef

from .. import selectors
from ..logcontext import request_id_var
from ..models import Job
from ..ops import health, metrics
from ..services import Attribution, Outcome, job_accept
from . import (
    dbgate,
    openapi,  # noqa: F401 - registers the key's security scheme
)
from .errors import DatabaseUnavailable, PayloadTooLarge
from .parsers import BoundedJSONParser, BoundedTextJSONParser
from .serializers import (
    TRUNCATED_KEY,
    AcceptedSerializer,
    ErrorSerializer,
    JobStatusSerializer,
    ProducerRequestSerializer,
    accepted_body,
)
from .tenancy import TenantKeyAuthentication, resolve
from .throttling import BatchedThrottlesMixin, ClientIpThrottle, KeyThrottle, SessionThrottle


class ProducerView(BatchedThrottlesMixin, APIView):
    """The widget's endpoint: record the conversation durably and answer at once."""

    # A server-side producer's key (Authorization: Bearer); browsers send none.
    authentication_classes: list[Any] = [TenantKeyAuthentication]
    permission_classes: list[Any] = []
    # text/plain is what navigator.sendBeacon sends for a JSON string; the same limits apply.
    parser_classes = [BoundedJSONParser, BoundedTextJSONParser]
    # The IP throttle bounds a machine (not a keyed server: it posts for all its visitors from
    # one address), the key throttle a keyed server, the session throttle (POST only) one
    # sessionId of one tenant.
    throttle_classes = [ClientIpThrottle, KeyThrottle, SessionThrottle]
    tenant: TenantRef | None = None
    started = 0.0  # monotonic, when initial() began: a POST's own time, for dbgate

    def check_permissions(self, request: Request) -> None:
        # After the key, before the throttles (which count per tenant): a request refused for
        # its tenant costs no throttle slot, no parse and no row.
        super().check_permissions(request)
        if request.method == "POST":
            self.tenant = resolve(request)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # A declared oversize body is refused before throttles or parsers read a byte of it.
        limit = settings.NEXUS["MAX_BODY_BYTES"]
        declared = request.META.get("CONTENT_LENGTH") or "0"
        if request.method == "POST" and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"Request body exceeds {limit} bytes.")
        if request.method == "POST" and dbgate.away():
            # This process just failed to reach PostgreSQL, or its last POST found a dependency
            # slow: 503 now, not after the pool's wait or behind a queue of slow POSTs.
            raise DatabaseUnavailable()
        self.started = time.monotonic()
        super().initial(request, *args, **kwargs)

    @extend_schema(
        operation_id="producer_accept",
        summary="Queue a conversation for prospect extraction",
        description=(
            "Send the whole conversation so far after every visitor message, always with the "
            "same sessionId for one chat. The answer comes at once: the conversation is stored "
            "before the 202 is sent, and a worker reads it afterwards to fill the visitor's "
            "prospect (name, contact, interest, archetype, objections). One chat session has one "
            "queueId; follow it with GET /api/nexus/jobs/{queueId}. Sending the same conversation "
            "again is harmless (duplicate: true), and an older, shorter one is ignored "
            "(stale: true). The body must be JSON (Content-Type: application/json). "
            "The tenant comes from the key (Authorization: Bearer), else the Origin's host "
            "among the tenants' domains (else the Referer's), else the X-Tenant-Id header, else the "
            "default tenant. An X-Tenant-Id naming another tenant than the key or origin is 403 "
            "tenant_mismatch; one naming no tenant is 400 unknown_tenant; an origin that is neither a "
            "tenant domain nor in CORS_ALLOWED_ORIGINS is 403 origin_not_allowed; an inactive "
            "tenant is 403 tenant_inactive. Nothing is recorded on any of these."
        ),
        request=ProducerRequestSerializer,
        responses={
            202: OpenApiResponse(AcceptedSerializer, description="Recorded durably; extraction queued."),
            400: OpenApiResponse(
                ErrorSerializer,
                description="Malformed JSON, a field over its limit, or an X-Tenant-Id naming no tenant.",
            ),
            401: OpenApiResponse(
                ErrorSerializer, description="Authorization: Bearer with an unknown or revoked key."
            ),
            403: OpenApiResponse(
                ErrorSerializer,
                description="tenant_mismatch (X-Tenant-Id against the key or origin), tenant_inactive, "
                "or origin_not_allowed; nothing recorded.",
            ),
            409: OpenApiResponse(
                ErrorSerializer,
                description=(
                    "This sessionId already belongs to another visitor (fingerprint); use a new sessionId."
                ),
            ),
            413: OpenApiResponse(ErrorSerializer, description="Body over the byte limit."),
            415: OpenApiResponse(
                ErrorSerializer, description="Body is neither application/json nor text/plain."
            ),
            429: OpenApiResponse(ErrorSerializer, description="Throttled; see Retry-After."),
            503: OpenApiResponse(
                ErrorSerializer,
                description="Database unavailable; nothing recorded. Retry after Retry-After.",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        payload = ProducerRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        # The correlation id is the client's X-Request-Id when it was accepted, else this id.
        correlation_id = request_id_var.get()
        client_id_kept = request.headers.get("X-Request-Id") == correlation_id
        message_id = uuid.uuid4().hex if client_id_kept else correlation_id
        assert self.tenant is not None  # check_permissions settled it for every POST
        messages = data["messages"]
        accepted = job_accept(
            tenant_id=self.tenant.id,
            session_id=data["sessionId"],
            fingerprint=data["fingerprint"],
            messages=messages,
            metadata=_enriched_metadata(request, data["metadata"], data["extra"]),
            attribution=Attribution(
                channel=data["channel"],
                constructor_id=data["constructorId"],
                page_context=data["pageContext"],
                is_returning=data["isReturningUser"],
                consent_given=data["consentGiven"],
            ),
        )
        dbgate.note_duration(time.monotonic() - self.started)  # throttles, the row, the publish
        truncated = sum(1 for m in messages if TRUNCATED_KEY in m)
        if truncated:
            metrics.record_truncated(truncated)
        body = accepted_body(
            message_id=message_id,
            queue_id=accepted.job_id,
            message=_ANSWERS[accepted.outcome],
            duplicate=accepted.outcome is Outcome.DUPLICATE,
            stale=accepted.outcome is Outcome.STALE,
            continued=accepted.continued,
        )
        return Response(
            body,
            status=status.HTTP_202_ACCEPTED,
            headers={
                "X-Message-Id": message_id,
                "X-Queue-Id": str(accepted.job_id),
                "Location": f"/api/nexus/jobs/{accepted.job_id}",
            },
        )

    @extend_schema(
        operation_id="producer_health",
        summary="Health of the pipeline",
        description=(
            "Whether conversations are being accepted and turned into prospects: the database, "
            "the task queue, the workers and the extractor, each up or down, the number of "
            "conversations waiting, and which alert thresholds are crossed (a long queue, old "
            "waiting conversations, failing or slow extractions). For a load balancer or a "
            "status page; it reads no conversation and changes nothing."
        ),
        responses={
            200: OpenApiResponse(
                description="healthy, or degraded (accepting conversations, but something needs a look)"
            ),
            429: OpenApiResponse(ErrorSerializer, description="Throttled; see Retry-After."),
            503: OpenApiResponse(description="unhealthy: the database is down, nothing can be accepted"),
        },
    )
    def get(self, request: Request) -> Response:
        report = health.report()
        code = status.HTTP_503_SERVICE_UNAVAILABLE if report["status"] == "unhealthy" else 200
        return Response(report, status=code)


# The 202's message by what job_accept decided: only a conversation with something new is queued.
_ANSWERS = {
    Outcome.CREATED: "Your message has been queued for processing",
    Outcome.REVISED: "Your message has been queued for processing",
    Outcome.DUPLICATE: "This conversation was already recorded; nothing new to process",
    Outcome.STALE: "A newer version of this conversation was already recorded; this one is ignored",
}


# Where a POST's unknown top-level fields are kept, inside the job's metadata.
EXTRA_FIELDS_KEY = "extraFields"


def _enriched_metadata(request: Request, metadata: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    enriched = {
        **metadata,
        "enqueuedAt": timezone.now().isoformat(),
        "url": metadata.get("url") or _header(request, "Referer"),
        "userAgent": metadata.get("userAgent") or _header(request, "User-Agent"),
    }
    if extra:
        enriched[EXTRA_FIELDS_KEY] = extra
    return enriched


# Headers are client input too: bounded, and without the NUL that PostgreSQL cannot store.
_HEADER_LIMIT = 2048


def _header(request: Request, name: str) -> str:
    return request.headers.get(name, "")[:_HEADER_LIMIT].replace("\x00", "")


@extend_schema_view(post=extend_schema(exclude=True), get=extend_schema(exclude=True))
class ProducerSlashView(ProducerView):
    """``/api/nexus/producer/``: the same endpoint (the schema documents it once)."""


class JobDetailView(APIView):
    """A job's progress by its queueId (no transcript, no prospect data)."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    throttle_classes = [ClientIpThrottle]

    @extend_schema(
        operation_id="job_status",
        summary="A job's progress (no transcript, no prospect data)",
        description=(
            "Where a chat session's extraction stands, by the queueId the POST returned: pending "
            "(waiting for a worker), processing, completed or failed (with an error category such "
            "as rate_limited or timeout). revision counts the conversation versions received; "
            "processedRevision is the latest one extracted. It never shows the conversation or "
            "what was extracted: that is in the admin."
        ),
        responses={
            200: JobStatusSerializer,
            404: OpenApiResponse(ErrorSerializer, description="No job with this queueId."),
            429: OpenApiResponse(ErrorSerializer, description="Throttled; see Retry-After."),
            503: OpenApiResponse(
                ErrorSerializer, description="Database unavailable. Retry after Retry-After."
            ),
        },
    )
    def get(self, request: Request, queue_id: uuid.UUID) -> Response:
        job = get_object_or_404(
            Job.objects.select_related("tenant").defer("messages", "metadata", "extracted"), id=queue_id
        )
        return Response(JobStatusSerializer(job).data)


class QueueMetricsView(APIView):
    """The queue as the ledger sees it: counts, ages, the last hour's calls, alerts (staff)."""

    authentication_classes: list[Any] = [SessionAuthentication, BasicAuthentication]
    permission_classes = [IsAdminUser]

    @extend_schema(
        operation_id="queue_metrics",
        summary="Queue figures for operators (staff only)",
        description=(
            "The queue as the database sees it: conversations waiting, being processed and "
            "failed, the age of the oldest waiting one, the last hour's extractions with their "
            "error rate and p95 latency, and the alerts crossed. Needs a staff login (admin "
            "session or basic auth)."
        ),
        responses={
            200: OpenApiResponse(description="The figures, as JSON."),
            403: OpenApiResponse(ErrorSerializer, description="Not logged in as staff."),
        },
    )
    def get(self, request: Request) -> Response:
        return Response(selectors.queue_metrics())

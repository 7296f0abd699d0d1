"""The API's views: validate, call one service or selector, serialize."""

from __future__ import annotations

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

from .. import selectors
from ..logcontext import request_id_var
from ..models import Job
from ..ops import health, metrics
from ..services import Attribution, Outcome, job_accept
from .errors import PayloadTooLarge
from .parsers import BoundedJSONParser, BoundedTextJSONParser
from .serializers import (
    TRUNCATED_KEY,
    AcceptedSerializer,
    ErrorSerializer,
    JobStatusSerializer,
    ProducerRequestSerializer,
)
from .throttling import BatchedThrottlesMixin, ClientIpThrottle, SessionThrottle


class ProducerView(BatchedThrottlesMixin, APIView):
    """The widget's endpoint: record the conversation durably and answer at once."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    # text/plain is what navigator.sendBeacon sends for a JSON string; the same limits apply.
    parser_classes = [BoundedJSONParser, BoundedTextJSONParser]
    # The IP throttle bounds a machine; the session throttle (POST only) bounds one sessionId.
    throttle_classes = [ClientIpThrottle, SessionThrottle]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # A declared oversize body is refused before throttles or parsers read a byte of it.
        limit = settings.NEXUS["MAX_BODY_BYTES"]
        declared = request.META.get("CONTENT_LENGTH") or "0"
        if request.method == "POST" and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"Request body exceeds {limit} bytes.")
        super().initial(request, *args, **kwargs)

    @extend_schema(
        operation_id="producer_accept",
        summary="Queue a conversation for prospect extraction",
        request=ProducerRequestSerializer,
        responses={
            202: OpenApiResponse(AcceptedSerializer, description="Recorded durably; extraction queued."),
            400: OpenApiResponse(ErrorSerializer, description="Malformed JSON or a field over its limit."),
            409: OpenApiResponse(ErrorSerializer, description="sessionId bound to another fingerprint."),
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
        messages = data["messages"]
        accepted = job_accept(
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
        truncated = sum(1 for m in messages if TRUNCATED_KEY in m)
        if truncated:
            metrics.record_truncated(truncated)
        body = AcceptedSerializer(
            {
                "messageId": message_id,
                "queueId": accepted.job_id,
                "duplicate": accepted.outcome is Outcome.DUPLICATE,
                "stale": accepted.outcome is Outcome.STALE,
                "continued": accepted.continued,
            }
        ).data
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
        responses={
            200: OpenApiResponse(description="healthy or degraded"),
            429: OpenApiResponse(ErrorSerializer, description="Throttled; see Retry-After."),
            503: OpenApiResponse(description="unhealthy: the database is down"),
        },
    )
    def get(self, request: Request) -> Response:
        report = health.report()
        code = status.HTTP_503_SERVICE_UNAVAILABLE if report["status"] == "unhealthy" else 200
        return Response(report, status=code)


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
        job = get_object_or_404(Job.objects.defer("messages", "metadata", "extracted"), id=queue_id)
        return Response(JobStatusSerializer(job).data)


class QueueMetricsView(APIView):
    """The queue as the ledger sees it: counts, ages, the last hour's calls, alerts (staff)."""

    authentication_classes: list[Any] = [SessionAuthentication, BasicAuthentication]
    permission_classes = [IsAdminUser]

    @extend_schema(responses={200: OpenApiResponse(description="Queue metrics"), 403: None})
    def get(self, request: Request) -> Response:
        return Response(selectors.queue_metrics())

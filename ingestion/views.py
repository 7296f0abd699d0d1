"""HTTP views: validate, call one service or selector, serialize."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import health
from .errors import PayloadTooLarge
from .models import Job
from .parsers import BoundedJSONParser
from .serializers import AcceptedSerializer, JobStatusSerializer, ProducerRequestSerializer
from .services import Outcome, job_accept


class ProducerView(APIView):
    """The widget's endpoint: record the conversation durably and answer at once."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    parser_classes = [BoundedJSONParser]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        limit = settings.NEXUS["MAX_BODY_BYTES"]
        declared = request.META.get("CONTENT_LENGTH") or "0"
        if request.method == "POST" and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"Request body exceeds {limit} bytes.")

    @extend_schema(
        request=ProducerRequestSerializer,
        responses={202: AcceptedSerializer, 400: OpenApiResponse(description="Invalid request")},
    )
    def post(self, request: Request) -> Response:
        payload = ProducerRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        # The correlation id is the client's X-Request-Id when it was accepted, else this id.
        correlation_id = request._request.request_id  # type: ignore[attr-defined]
        client_id_kept = request.headers.get("X-Request-Id") == correlation_id
        message_id = uuid.uuid4().hex if client_id_kept else correlation_id
        accepted = job_accept(
            session_id=data["sessionId"],
            fingerprint=data["fingerprint"],
            messages=data["messages"],
            metadata=_enriched_metadata(request, data["metadata"]),
        )
        body: dict[str, Any] = {
            "status": "accepted",
            "messageId": message_id,
            "queueId": str(accepted.job_id),
            "message": "Your message has been queued for processing",
            "estimatedProcessingTime": "<2 seconds",
        }
        if accepted.outcome is Outcome.DUPLICATE:
            body["duplicate"] = True
        elif accepted.outcome is Outcome.STALE:
            body["stale"] = True
        return Response(
            body,
            status=status.HTTP_202_ACCEPTED,
            headers={
                "X-Message-Id": message_id,
                "X-Queue-Id": str(accepted.job_id),
                "Location": f"/api/nexus/jobs/{accepted.job_id}",
            },
        )

    @extend_schema(responses={200: OpenApiResponse(description="Health report"), 503: None})
    def get(self, request: Request) -> Response:
        report = health.report()
        code = status.HTTP_503_SERVICE_UNAVAILABLE if report["status"] == "unhealthy" else 200
        return Response(report, status=code)


def _enriched_metadata(request: Request, metadata: dict[str, Any]) -> dict[str, Any]:
    return {
        **metadata,
        "enqueuedAt": timezone.now().isoformat(),
        "url": metadata.get("url") or request.headers.get("Referer", ""),
        "userAgent": metadata.get("userAgent") or request.headers.get("User-Agent", ""),
    }


class JobDetailView(APIView):
    """A job's progress by its queueId (no transcript, no prospect data)."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    @extend_schema(responses={200: JobStatusSerializer})
    def get(self, request: Request, queue_id: uuid.UUID) -> Response:
        job = get_object_or_404(Job.objects.defer("messages", "metadata", "extracted"), id=queue_id)
        return Response(JobStatusSerializer(job).data)


def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness: the process answers. No dependencies."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> HttpResponse:
    """Readiness: the database answers (the broker being down does not stop POSTs)."""
    ok = health.database_ok()
    return JsonResponse(
        {"status": "ready" if ok else "unavailable", "database": ok}, status=200 if ok else 503
    )

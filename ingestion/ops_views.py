"""Operator views: Prometheus text for scrapers, and the queue metrics as JSON for staff."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from rest_framework.authentication import BasicAuthentication, SessionAuthentication
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import metrics, selectors


def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    """``/metrics``: no personal data, only counts; keep it off the public internet at the proxy."""
    return HttpResponse(generate_latest(metrics.scrape_registry()), content_type=CONTENT_TYPE_LATEST)


class QueueMetricsView(APIView):
    """The queue as the ledger sees it (the seeds' pgmq_metrics and 24 h status summary)."""

    authentication_classes: list[Any] = [SessionAuthentication, BasicAuthentication]
    permission_classes = [IsAdminUser]

    @extend_schema(responses={200: OpenApiResponse(description="Queue metrics"), 403: None})
    def get(self, request: Request) -> Response:
        return Response(selectors.queue_metrics())

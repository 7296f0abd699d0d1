"""Probes for orchestrators and scrapers: liveness, readiness, Prometheus text.

They address the process, not the site, so ``ProbeMiddleware`` answers them before the host
check and the HTTPS redirect (see its docstring).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..ops import health, metrics


def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness: the process answers. No dependencies."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> HttpResponse:
    """Readiness: the database answers (the broker being down does not stop POSTs)."""
    ok = health.database_ok()
    return JsonResponse(
        {"status": "ready" if ok else "unavailable", "database": ok}, status=200 if ok else 503
    )


def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    """``/metrics``: no personal data, only counts; keep it off the public internet at the proxy."""
    return HttpResponse(generate_latest(metrics.scrape_registry()), content_type=CONTENT_TYPE_LATEST)

"""The API's middleware: probes answered before host validation, the request-scoped
correlation id (``X-Request-Id`` in, echoed out), the producer's request counters, and the
JSON 404 under /api/."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from ..logcontext import clean_request_id, request_id_var, tenant_var
from ..ops import metrics
from .probes import healthz, prometheus_metrics, readyz

logger = logging.getLogger(__name__)


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = clean_request_id(request.headers.get("X-Request-Id"))
        token = request_id_var.set(request_id)
        tenant_token = tenant_var.set("")
        try:
            response = self.get_response(request)
        finally:
            tenant_var.reset(tenant_token)
            request_id_var.reset(token)
        response["X-Request-Id"] = request_id
        return response


class ProbeMiddleware:
    """``/healthz``, ``/readyz`` and ``/metrics`` answered first, whatever the Host header.

    Probes and scrapers address the process, not the site: compose's healthcheck asks
    ``127.0.0.1:8000``, Prometheus ``web:8000``. With ``DJANGO_ALLOWED_HOSTS`` naming the public
    host, CommonMiddleware would refuse them with 400 (DisallowedHost) and the web container
    would never turn healthy. These views build no URLs from the host, so skipping the check
    for them is safe; every other path keeps it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.probes: dict[str, Callable[[HttpRequest], HttpResponse]] = {
            "/healthz": healthz,
            "/readyz": readyz,
            "/metrics": prometheus_metrics,
        }

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = self.probes.get(request.path_info)
        if probe is not None and request.method in ("GET", "HEAD"):
            return probe(request)
        return self.get_response(request)


# The producer's routes (with and without the trailing slash: ingestion.api.urls).
PRODUCER_ROUTES = frozenset({"producer", "producer-slash"})


class ProducerMetricsMiddleware:
    """Counts producer POSTs from their responses.

    A rejection can come from the byte limit, the parser, the throttle, the serializer or the
    fingerprint check; observing the finished response counts all of them by one rule, with
    no counting code in each of those places.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        match = request.resolver_match
        if request.method == "POST" and match is not None and match.url_name in PRODUCER_ROUTES:
            try:
                outcome, reason = metrics.post_outcome(response.status_code, getattr(response, "data", None))
                metrics.record_post(outcome, reason, tenant=tenant_var.get())
            except OSError as exc:  # multiprocess files unwritable: a lost count, not a lost POST
                logger.warning("producer metric not counted", extra={"error": type(exc).__name__})
        return response


class ApiNotFoundMiddleware:
    """A path under /api/ that names no endpoint answers the API's JSON error shape, not
    Django's HTML 404 page (``/api/nexus/jobs`` without an id, a typo). Outside
    CommonMiddleware, so the trailing-slash redirect is decided first."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        is_json = response.get("Content-Type", "").startswith("application/json")
        if response.status_code == 404 and request.path.startswith("/api/") and not is_json:
            return JsonResponse(
                {
                    "error": "not_found",
                    "message": "No endpoint at this path; the endpoints are in /api/docs/.",
                },
                status=404,
            )
        return response

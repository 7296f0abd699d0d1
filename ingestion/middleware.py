"""Request-scoped correlation id (``X-Request-Id`` in, echoed out), and probes that answer
before host validation."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from .logcontext import clean_request_id, request_id_var


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = clean_request_id(request.headers.get("X-Request-Id"))
        request.request_id = request_id  # type: ignore[attr-defined]
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
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
        from .ops_views import prometheus_metrics
        from .views import healthz, readyz

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

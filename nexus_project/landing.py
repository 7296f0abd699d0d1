"""The development landing page at ``/``."""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.http.request import split_domain_port
from django.shortcuts import render


def landing(request: HttpRequest) -> HttpResponse:
    """Where `make run`'s parts are, for whoever opens the banner's first URL. Development
    only: production has no page at ``/`` (it would only tell a scanner what runs here)."""
    if not settings.DEBUG and settings.DJANGO_ENV != "development":
        raise Http404
    host, _port = split_domain_port(request.get_host())  # Flower: the same host, its own port
    parts = [
        ("Admin", "/admin/", "prospects, jobs and extractions (make superuser for the first login)"),
        ("Prospects", "/admin/prospects/prospect/", "the result: one row per visitor"),
        ("Widget demo", "/demo/widget/", "a chat box on the browser client; watch each job complete"),
        ("API docs", "/api/docs/", "Swagger UI of the API (Redoc: /api/redoc/, schema: /api/schema/)"),
        ("Health", "/api/nexus/producer", "GET: healthy, degraded or unhealthy, with the reasons"),
        (
            "Flower",
            f"{request.scheme}://{host or '127.0.0.1'}:{settings.FLOWER_PORT}/",
            "Celery tasks and workers",
        ),
        ("Metrics", "/metrics", "Prometheus"),
    ]
    return render(request, "landing.html", {"parts": parts, "version": settings.VERSION})

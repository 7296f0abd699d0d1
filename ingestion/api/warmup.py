"""Warm a web worker before it takes traffic (gunicorn ``post_worker_init``).

A cold gunicorn worker paid its one-off costs on its first request: importing the URLconf,
DRF and kombu, opening the database, cache and broker connections. That made the first POST
each worker served take 80-250 ms against ~20 ms for the next ones. One side-effect-free
request through the real WSGI stack (the health report, which never enqueues) and one broker
connection pay them at boot instead. Nothing here may stop a worker from booting: every
failure is logged and ignored (the request path reports its own errors).
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)


def warm_up(application: Callable[..., Any]) -> float:
    """Run the warm-up against ``application`` (the WSGI callable); returns its seconds."""
    started = time.monotonic()
    for step in (_request, _serializer, _broker):
        try:
            step(application)
        except Exception as error:  # noqa: BLE001 - a warm-up step must never stop a worker booting
            logger.info("warm-up step skipped", extra={"step": step.__name__, "error": type(error).__name__})
    seconds = time.monotonic() - started
    logger.info("web worker warmed up", extra={"warm_up_ms": round(seconds * 1000)})
    return seconds


def _host() -> str:
    for host in settings.ALLOWED_HOSTS:
        if host and host != "*":
            return host.lstrip(".")
    return "localhost"


def _request(application: Callable[..., Any]) -> None:
    """GET the health report: middleware, URLconf, DRF, throttle cache, database, broker."""
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/api/nexus/producer",
        "QUERY_STRING": "",
        "SERVER_NAME": _host(),
        "SERVER_PORT": "443",
        "HTTP_HOST": _host(),
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_X_REQUEST_ID": "warm-up",
        "wsgi.url_scheme": "https",  # production redirects plain http before the view
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    statuses: list[str] = []
    body = application(environ, lambda status, headers, exc_info=None: statuses.append(status))
    try:
        b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()  # request_finished: the DB connection goes back as after any request


def _serializer(application: Callable[..., Any]) -> None:
    from .serializers import ProducerRequestSerializer

    sample = {"messages": [{"role": "user", "content": "hola"}], "sessionId": "warm-up"}
    ProducerRequestSerializer(data=sample).is_valid()


def _broker(application: Callable[..., Any]) -> None:
    """Celery's producer pool, its first connection and the task's routing."""
    from nexus_project.celery import app

    from ..tasks import process_session

    app.finalize(auto=True)
    app.amqp.router.route({}, process_session.name)
    with app.producer_or_acquire() as producer:
        producer.connection.ensure_connection(max_retries=0, timeout=1)  # broker down: skip at once

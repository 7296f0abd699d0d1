"""OpenTelemetry tracing: off unless the standard ``OTEL_*`` variables ask for it.

- On when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) or
  ``OTEL_TRACES_EXPORTER`` (not ``none``) is set, and ``OTEL_SDK_DISABLED`` is not ``true``.
  Everything else (endpoint, headers, timeout, sampler, batch sizes, resource attributes) is the
  SDK's own reading of its ``OTEL_*`` variables: nothing is re-read here.
- One provider per process, set up after the fork (gunicorn ``post_fork``, Celery
  ``worker_process_init`` / ``beat_init``): the batch processor's export thread does not survive
  a fork, so a provider made in a master would export nothing from its children.
- ``service.name`` is the process's role: ``web``, ``worker`` or ``beat``
  (``OTEL_RESOURCE_ATTRIBUTES`` adds the rest, e.g. ``service.namespace=nexus``).
- Instrumented with the official packages: Django, Celery (context across the broker), psycopg
  (statements only, never their parameters), redis (command names, arguments sanitized by the
  instrumentation to ``?``). The anthropic SDK emits its own client span (it uses ``httpx2``,
  which the httpx instrumentation does not patch); ``extraction/claude.py`` adds the GenAI span.
- Every span leaves through ``RedactingExporter``: e-mail- and phone-shaped text in any
  attribute, event or status is replaced (``ingestion.logcontext.redact``, the logs' own), and
  URL query strings are dropped (an admin search is an e-mail or a phone, percent-encoded), and
  so is the visitor's address on a request's span;
  Redis commands outside any trace (the broker's polling, Celery's events) are not exported.
- Span attribute names of our own spans are defined here, once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status

logger = logging.getLogger(__name__)

SERVICES = ("web", "worker", "beat")
_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
# The SDK's own registry of span exporters (opentelemetry-sdk: console; the OTLP/HTTP package:
# otlp_proto_http). "otlp" means OTLP over HTTP here: that is the exporter this image ships.
_EXPORTER_GROUP = "opentelemetry_traces_exporter"
_EXPORTER_ALIASES = {"otlp": "otlp_proto_http"}

# Attributes of our own spans (never a transcript, an e-mail or a phone: ids, counts, categories).
ATTR_JOB_ID = "nexus.job.id"
ATTR_JOB_REVISION = "nexus.job.revision"
ATTR_JOB_OUTCOME = "nexus.job.outcome"
ATTR_JOB_TRIGGER = "nexus.job.trigger"
ATTR_ERROR_CATEGORY = "nexus.error.category"
# The job's tenant, by slug (set by the pipeline once the job is claimed).
ATTR_TENANT = "nexus.tenant.id"

_configured_pid: int | None = None


def tracing_enabled(environ: Any = None) -> bool:
    """Whether the ``OTEL_*`` variables ask for traces (no SDK is imported to answer)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters:
        return exporters != "none"
    return any(env.get(name, "").strip() for name in _ENDPOINT_VARIABLES)


def tracing_setup(service: str) -> bool:
    """Give this process its tracer provider and instrumentations, once; False when off."""
    global _configured_pid
    if service not in SERVICES:
        raise ValueError(f"service must be one of {SERVICES}, not {service!r}")
    if not tracing_enabled():
        return False
    if _configured_pid == os.getpid():
        return True
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Resource.create adds OTEL_RESOURCE_ATTRIBUTES; TracerProvider reads OTEL_TRACES_SAMPLER,
    # the exporter OTEL_EXPORTER_OTLP_*, the processor OTEL_BSP_*.
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    for exporter in _exporters():
        provider.add_span_processor(BatchSpanProcessor(RedactingExporter(exporter)))
    trace.set_tracer_provider(provider)
    _instrument(web=service == "web")
    _configured_pid = os.getpid()
    logger.info("tracing on", extra={"service": service})
    return True


def tracing_shutdown() -> None:
    """Export what is still buffered (a process about to exit: the worker child, beat)."""
    if _configured_pid != os.getpid():
        return
    from opentelemetry import trace

    shutdown = getattr(trace.get_tracer_provider(), "shutdown", None)
    if shutdown is not None:
        shutdown()


# Attributes that hold a URL or its query (old and current HTTP conventions).
_QUERY_ATTRIBUTES = frozenset({"url.query", "http.query"})
_URL_ATTRIBUTES = frozenset({"url.full", "http.url", "http.target"})
_REDIS_SCOPE = "opentelemetry.instrumentation.redis"
# On a request's span these are the visitor's address (personal data, as Sentry's default PII
# treats it); on a client span (SQL, Redis) they are our servers' and stay.
_VISITOR_ADDRESS_ATTRIBUTES = frozenset(
    {"client.address", "client.port", "http.client_ip", "net.peer.ip", "net.peer.port",
     "net.sock.peer.addr", "net.sock.peer.port", "network.peer.address", "network.peer.port"}
)  # fmt: skip


class RedactingExporter(SpanExporter):
    """Hands the wrapped exporter copies of the spans with contact data redacted and URL
    queries dropped: the last line of defence for what an instrumentation records (an
    exception's text quoting a row, a search URL)."""

    def __init__(self, exporter: SpanExporter) -> None:
        self.exporter = exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        kept = [redact_span(span) for span in spans if not _orphan_redis_command(span)]
        return self.exporter.export(kept) if kept else SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)


def _orphan_redis_command(span: ReadableSpan) -> bool:
    """A Redis command outside any trace: the broker's polling, Celery's events and pidbox, a
    heartbeat; thousands an hour per worker, and nobody's request."""
    scope = span.instrumentation_scope
    return span.parent is None and scope is not None and scope.name == _REDIS_SCOPE


def redact_span(span: ReadableSpan) -> ReadableSpan:
    status = span.status
    if status.description:
        status = Status(status.status_code, _redact_text(status.description))
    return ReadableSpan(
        name=_redact_text(span.name),
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=redact_attributes(span.attributes, server=span.kind is SpanKind.SERVER),
        events=[
            Event(event.name, redact_attributes(event.attributes), event.timestamp) for event in span.events
        ],
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def redact_attributes(attributes: Any, *, server: bool = False) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for key, value in (attributes or {}).items():
        if key in _QUERY_ATTRIBUTES or (server and key in _VISITOR_ADDRESS_ATTRIBUTES):
            continue
        if key in _URL_ATTRIBUTES and isinstance(value, str):
            value = value.split("?", 1)[0]
        cleaned[key] = _redact_value(value)
    return cleaned


def _redact_value(value: Any) -> Any:
    from ingestion.logcontext import redact  # the one redaction; it imports nothing of ours

    if isinstance(value, tuple | list):
        return tuple(redact(item) if isinstance(item, str) else item for item in value)
    return redact(value) if isinstance(value, str) else value


def _redact_text(text: str) -> str:
    return str(_redact_value(text))


def _exporters() -> list[Any]:
    names = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() or "otlp"
    available = {point.name: point for point in entry_points(group=_EXPORTER_GROUP)}
    exporters = []
    for raw in (name.strip() for name in names.split(",")):
        name = _EXPORTER_ALIASES.get(raw, raw)
        if name not in available:
            raise ImproperlyConfigured(
                f"OTEL_TRACES_EXPORTER: unknown span exporter {raw!r} "
                f"(installed: {', '.join(sorted(available))}, or 'otlp', or 'none')"
            )
        exporters.append(available[name].load()())
    return exporters


def _instrument(*, web: bool) -> None:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    if web:
        # Before the WSGI handler is built: the instrumentor adds its middleware to the settings.
        from opentelemetry.instrumentation.django import DjangoInstrumentor

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nexus_project.settings")
        DjangoInstrumentor().instrument()
    # The web publishes the task (a producer span, the context in the message's headers); the
    # worker continues that trace in its task span.
    CeleryInstrumentor().instrument()
    # Statements with their placeholders only: the parameters are transcripts and contact data.
    PsycopgInstrumentor().instrument(capture_parameters=False, enable_commenter=False)
    RedisInstrumentor().instrument()

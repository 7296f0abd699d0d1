"""Log lines as an operator reads them: JSON, correlated from the request into the task,
carrying job and session ids, never carrying contact data."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from ingestion.logcontext import ContextFilter, RedactFilter
from ingestion.models import Job, JobStatus
from tests.conftest import producer_body, transcript, wait_for


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the configured console handler (settings.LOGGING) writes, captured."""
    (handler,) = [
        h for h in logging.getLogger().handlers if any(isinstance(f, ContextFilter) for f in h.filters)
    ]
    assert any(isinstance(f, RedactFilter) for f in handler.filters)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    # The test worker (conftest) sets the root level to WARNING; production runs at LOG_LEVEL=INFO.
    ingestion = logging.getLogger("ingestion")
    level = ingestion.level
    ingestion.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        ingestion.setLevel(level)
        handler.setStream(previous)


def records(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.mark.redis
def test_request_id_reaches_the_task_log_lines_with_job_and_session(celery_worker, api, log_lines):
    messages = transcript(
        "Hola, me llamo Ana Ruiz", "¿Cómo te contacto?", "ana.ruiz@example.com o +57 300 123 4567"
    )

    response = api.post(
        "/api/nexus/producer",
        producer_body(messages, session_id="log-1"),
        format="json",
        HTTP_X_REQUEST_ID="abc-123",
    )
    job_id = response.json()["queueId"]
    wait_for(lambda: Job.objects.filter(id=job_id, status=JobStatus.COMPLETED).exists())

    pipeline_lines = [r for r in records(log_lines) if r["logger"] == "ingestion.worker.pipeline"]
    assert {r["message"] for r in pipeline_lines} >= {"job claimed", "job completed"}
    for line in pipeline_lines:
        assert line["request_id"] == "abc-123"
        assert line["job_id"] == job_id
        assert line["session_id"] == "log-1"
        assert {"ts", "level"} <= line.keys()
    output = log_lines.getvalue()
    assert "ana.ruiz@example.com" not in output
    assert "300 123 4567" not in output


@pytest.mark.redis
@pytest.mark.parametrize("header", [None, "not plain: spaces\nand a newline"], ids=["absent", "refused"])
def test_without_a_usable_request_id_the_message_id_is_the_correlation_id(
    celery_worker, api, log_lines, header
):
    extra = {"HTTP_X_REQUEST_ID": header} if header else {}

    response = api.post("/api/nexus/producer", producer_body(session_id="log-2"), format="json", **extra)
    body = response.json()
    wait_for(lambda: Job.objects.filter(id=body["queueId"], status=JobStatus.COMPLETED).exists())

    assert response["X-Request-Id"] == body["messageId"]
    pipeline_lines = [r for r in records(log_lines) if r["logger"] == "ingestion.worker.pipeline"]
    assert pipeline_lines
    assert {line["request_id"] for line in pipeline_lines} == {body["messageId"]}


def test_contact_data_is_redacted_from_messages_extras_and_tracebacks(log_lines):
    logger = logging.getLogger("ingestion.test")
    logger.warning(
        "visitor wrote %s",
        "escríbeme a Ana.Ruiz+x@Example.co o al (300) 123-4567",
        extra={"job_id": "12345678-aaaa-bbbb-cccc-1234567890ab", "figures": {"tel": ["+573001234567"]}},
    )
    try:
        raise ValueError("bad contact juan@example.com")
    except ValueError:
        logger.exception("failed at 2026-11-22 04:33:03 from 192.168.100.200 after 12.5 s")

    first, second = records(log_lines)
    assert first["message"] == "visitor wrote escríbeme a [email] o al [phone]"
    assert first["figures"] == {"tel": ["[phone]"]}
    assert first["job_id"] == "12345678-aaaa-bbbb-cccc-1234567890ab"  # ids are not phones
    assert second["message"] == "failed at 2026-11-22 04:33:03 from 192.168.100.200 after 12.5 s"
    assert "juan@example.com" not in second["exc_info"] and "[email]" in second["exc_info"]


def test_log_lines_carry_the_active_spans_trace_and_span_ids(log_lines):
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    context = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0x00F067AA0BA902B7,
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    log = logging.getLogger("ingestion.test")
    with trace.use_span(NonRecordingSpan(context)):
        log.warning("inside a span")
    log.warning("outside any span")  # tracing off looks the same: the current span is invalid

    inside, outside = records(log_lines)
    assert (inside["trace_id"], inside["span_id"]) == ("0af7651916cd43dd8448eb211c80319c", "00f067aa0ba902b7")
    assert "trace_id" not in outside
    assert "span_id" not in outside

"""Log context and hygiene: the correlation id and job/session ids on every line, set per
request or per task; the active span's ``trace_id``/``span_id``; and a last-line redaction of
e-mail- and phone-shaped text."""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace

request_id_var: ContextVar[str] = ContextVar("request_id", default="")
# The tenant a producer request settled on (its slug; empty until then or outside a request).
tenant_var: ContextVar[str] = ContextVar("tenant", default="")
# The job being worked on in this task: {"job_id": …, "session_id": …} (empty outside a task).
job_context_var: ContextVar[dict[str, str]] = ContextVar("job_context", default={})  # noqa: B039 - never mutated

# Accepted from clients only if short and plain, so it cannot inject into logs or headers.
_PLAIN_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def clean_request_id(value: str | None) -> str:
    """The client's X-Request-Id when it is short and plain, else a new id."""
    if value and _PLAIN_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


def bind_job(**fields: str) -> None:
    """Add ids to every later log line of this task (the task resets the context at its end)."""
    job_context_var.set({**job_context_var.get(), **fields})


class ContextFilter(logging.Filter):
    """Adds ``request_id`` to every record (empty outside a request or task), and the job's
    ``job_id`` / ``session_id`` inside a task when the line does not carry them already."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = request_id_var.get()
        if not getattr(record, "tenant", None) and tenant_var.get():
            record.tenant = tenant_var.get()
        for key, value in job_context_var.get().items():
            if not getattr(record, key, None):
                setattr(record, key, value)
        return True


class TraceFilter(logging.Filter):
    """Adds ``trace_id`` and ``span_id`` (hex, as trace backends show them) while a span is
    recording; with tracing off the current span is the invalid one and nothing is added."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True


# Redaction. Code never logs contact data on purpose; this catches what slips through (an
# exception message quoting input, a debug extra). Emails are unambiguous; a phone is a run of
# 7-15 digits with the usual separators, not part of a longer token (uuids, hashes), and not
# an ISO date-time or an IPv4 address.
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w.:-])\+?\(?\d[\d ().-]{5,}\d(?![\w:-])")
_NOT_PHONE = re.compile(r"^\d{4}-\d{2}-\d{2}|^\d{1,3}(?:\.\d{1,3}){3}$")
REDACTED_EMAIL = "[email]"
REDACTED_PHONE = "[phone]"
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(c.isdigit() for c in text)
    if not 7 <= digits <= 15 or _NOT_PHONE.match(text):
        return text
    return REDACTED_PHONE


def redact(value: Any) -> Any:
    """The value with e-mail- and phone-shaped text replaced, through dicts, lists and tuples."""
    if isinstance(value, str):
        return _PHONE.sub(_phone, _EMAIL.sub(REDACTED_EMAIL, value))
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v) for v in value)
    return value


class RedactFilter(logging.Filter):
    """Redacts contact data in the message, its arguments, extras and traceback text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string: keep the raw parts, redacted
            message = f"{record.msg} {record.args}"
        record.msg, record.args = redact(message), None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRS:
                setattr(record, key, redact(value))
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None  # formatters prefer exc_info; leave them the redacted text
        return True

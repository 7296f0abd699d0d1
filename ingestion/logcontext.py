"""The correlation id: set per request or per task, added to every log line."""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("request_id", default="")

# Accepted from clients only if short and plain, so it cannot inject into logs or headers.
_PLAIN_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def clean_request_id(value: str | None) -> str:
    """The client's X-Request-Id when it is short and plain, else a new id."""
    if value and _PLAIN_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


class ContextFilter(logging.Filter):
    """Adds ``request_id`` to every record (empty outside a request or task)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = request_id_var.get()
        return True

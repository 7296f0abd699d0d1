"""One JSON error shape for every 4xx: ``{"error", "message", "field"?, "detail"?}``.

DRF's handler already turns parse errors, validation errors and throttling into responses;
this reshapes them so a widget developer always meets the same body, naming the field.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.db import InterfaceError, OperationalError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ..services import FingerprintConflict
from . import dbgate

logger = logging.getLogger(__name__)

# How long a client should wait before retrying while the database is away: a PostgreSQL
# restart or failover takes seconds, and the widget retries on 503 anyway.
DATABASE_RETRY_AFTER_SECONDS = 2


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"
    default_detail = "Request body too large."
    field = "body"


class DatabaseUnavailable(exceptions.APIException):
    """The database cannot be reached: nothing was recorded, so the client must retry (SPEC §10)."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "database_unavailable"
    default_detail = "The database is unavailable; nothing was recorded. Retry shortly."


class FingerprintConflictError(exceptions.APIException):
    """``services.FingerprintConflict`` as the API answers it."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "fingerprint_conflict"
    default_detail = "This sessionId is bound to another fingerprint."


# A lone surrogate cannot be encoded as UTF-8: in stored text or in an error body that echoes
# client input it would turn a 400 into a 500 further down.
UNPAIRED_SURROGATE = re.compile("[\ud800-\udfff]")
# Error bodies echo client input (an unknown key, a bad choice); long input is cut to keep
# bodies small.
_ECHO_LIMIT = 200


def _printable(value: Any) -> Any:
    """``value`` with every string safe to render as UTF-8 JSON."""
    if isinstance(value, str):
        value = UNPAIRED_SURROGATE.sub("\ufffd", value)
        return value if len(value) <= _ECHO_LIMIT else value[:_ECHO_LIMIT] + "…"
    if isinstance(value, dict):
        return {_printable(str(k)): _printable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_printable(v) for v in value]
    return value


def first_error(detail: Any, path: str = "") -> tuple[str, str]:
    """The first (field path, message) in DRF's nested error detail, e.g. messages[2].role."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key == "non_field_errors":
                return first_error(value, path)
            sub = f"{path}.{key}" if path else str(key)
            if isinstance(key, int) or str(key).isdigit():
                sub = f"{path}[{key}]"
            return first_error(value, sub)
    if isinstance(detail, list):
        for index, value in enumerate(detail):
            if isinstance(value, (dict, list)) and value:
                return first_error(value, f"{path}[{index}]" if isinstance(value, dict) else path)
            if value:
                return path, str(value)
    return path, str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, (OperationalError, InterfaceError)):
        # A lost or refused connection, not a bug: answer 503 with Retry-After instead of a
        # 500, so the widget retries the same transcript and nothing is lost.
        view = type(context.get("view")).__name__
        logger.warning("database unavailable", extra={"view": view, "error": type(exc).__name__})
        dbgate.note_failure()
        exc = DatabaseUnavailable()
    elif isinstance(exc, FingerprintConflict):
        exc = FingerprintConflictError()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, DatabaseUnavailable):
        response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
    code = getattr(exc, "default_code", "error")
    if isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else code
    body: dict[str, Any] = {"error": code}
    if isinstance(exc, exceptions.ValidationError):
        field, message = first_error(exc.detail)
        body.update(error="validation_error", message=message, detail=exc.detail)
        if field:
            body["field"] = field
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        body["message"] = str(detail)
        named_field = getattr(exc, "field", None)
        if named_field:
            body["field"] = named_field
    response.data = _printable(body)
    return response

"""One JSON error shape for every 4xx: ``{"error", "message", "field"?, "detail"?}``.

DRF's handler already turns parse errors, validation errors and throttling into responses;
this reshapes them so a widget developer always meets the same body, naming the field.
"""

from __future__ import annotations

import re
from typing import Any

from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"
    default_detail = "Request body too large."
    field = "body"


class FingerprintConflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "fingerprint_conflict"
    default_detail = "This sessionId is bound to another fingerprint."


# Error bodies echo client input (an unknown key, a bad choice). A lone surrogate in it would
# make the UTF-8 renderer raise, turning a 400 into a 500; long input is cut to keep bodies small.
_SURROGATE = re.compile("[\ud800-\udfff]")
_ECHO_LIMIT = 200


def _printable(value: Any) -> Any:
    """``value`` with every string safe to render as UTF-8 JSON."""
    if isinstance(value, str):
        value = _SURROGATE.sub("\ufffd", value)
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
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
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

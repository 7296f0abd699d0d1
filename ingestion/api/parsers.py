"""A JSON parser that enforces the byte limit before parsing (413, not a memory spike).

Beyond the byte limit it refuses what Python's ``json`` would accept but nothing downstream
can store or agree on: NaN/Infinity and numbers that overflow to infinity (PostgreSQL's jsonb
refuses them), duplicate keys (a proxy and this app could read different values), and nesting
deep enough to exhaust the parser's recursion.
"""

from __future__ import annotations

import json
import math
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from .errors import PayloadTooLarge


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:32]} is out of range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        raise ValueError(f"duplicate key {duplicate[:64]!r}")
    return result


def parse_json_strict(raw: bytes) -> Any:
    """Decode one JSON document, raising ParseError for anything this API will not accept."""
    try:
        return json.loads(
            raw.decode("utf-8"),
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            object_pairs_hook=_unique_keys,
        )
    except RecursionError as exc:
        raise ParseError("JSON parse error - nesting too deep") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        # ValueError covers integers past Python's digit limit as well.
        raise ParseError(f"JSON parse error - {exc}") from exc


class BoundedJSONParser(JSONParser):
    """application/json, bounded and strict."""

    def parse(self, stream: IO[bytes] | None, media_type: Any = None, parser_context: Any = None) -> Any:
        limit = settings.NEXUS["MAX_BODY_BYTES"]
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(f"Request body exceeds {limit} bytes.")
        return parse_json_strict(raw)


class BoundedTextJSONParser(BoundedJSONParser):
    """A ``text/plain`` body holding JSON, under the same limits: what ``navigator.sendBeacon``
    sends for a string (a page being closed cannot wait for a CORS preflight, and text/plain
    needs none)."""

    media_type = "text/plain"

"""Input and output shapes of the public API (validation only; no logic, no writes).

Every limit here is checked before the service runs, so a hostile body costs a parse and a
walk, never a row, a task or a Claude call. Limits live in ``settings.NEXUS`` (SPEC §3).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from rest_framework import serializers
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from .errors import UNPAIRED_SURROGATE

# Ids end up in cache keys, log lines and the admin: plain characters only, so they cannot
# smuggle control characters, markup or whitespace look-alikes.
# ID_PATTERN is the schema's (ECMA) form; the validator ends with \Z because Python's $ also
# matches before a trailing newline, which would let "abc\n" through.
ID_PATTERN = r"^[A-Za-z0-9._:-]+$"
_ID_CHARSET = RegexValidator(
    ID_PATTERN[:-1] + r"\Z", "Only letters, digits and . _ : - are allowed.", "invalid_charset"
)
# NUL cannot be stored in PostgreSQL text/jsonb, and a lone surrogate cannot be encoded as
# UTF-8: either would turn into a 500 further down, so both are refused at the door.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class _SurrogateValidator(ProhibitSurrogateCharactersValidator):
    """DRF's check with the same error, found by a regex instead of a Python loop over every
    character (a third of the producer's validation time on a 1-2 KB transcript)."""

    def __call__(self, value: Any) -> None:
        match = UNPAIRED_SURROGATE.search(str(value))
        if match is not None:
            raise serializers.ValidationError(
                self.message.format(code_point=ord(match.group())), code=self.code
            )


class StrictCharField(serializers.CharField):
    """A string field that refuses numbers and booleans instead of coercing them.

    DRF's CharField already refuses NUL and surrogate characters (its validators run after
    the length check)."""

    default_error_messages = {"not_a_string": "Must be a string."}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validators = [
            _SurrogateValidator() if isinstance(v, ProhibitSurrogateCharactersValidator) else v
            for v in self.validators
        ]

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class MessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["user", "assistant"])
    # Whitespace is the visitor's text; keep it as sent.
    content = StrictCharField(trim_whitespace=False)

    def to_internal_value(self, data: Any) -> Any:
        _refuse_unknown_keys(data, self.fields)
        return super().to_internal_value(data)

    def validate_content(self, value: str) -> str:
        limit = settings.NEXUS["MAX_MESSAGE_CHARS"]
        if len(value) > limit:
            raise serializers.ValidationError(f"Ensure this field has no more than {limit} characters.")
        return value


class MessageListSerializer(serializers.ListSerializer):
    """Counts the messages before validating any of them: 10,000 items cost one len()."""

    def to_internal_value(self, data: Any) -> Any:
        limit = settings.NEXUS["MAX_MESSAGES"]
        if isinstance(data, list) and len(data) > limit:
            raise serializers.ValidationError(f"Ensure this field has no more than {limit} messages.")
        return super().to_internal_value(data)


class MetadataField(serializers.DictField):
    """Free-form context from the widget (url, userAgent, …), bounded in size and depth.

    Its keys are the widget's to choose, so unlike the top level it is not closed; instead it
    is bounded: serialized bytes, nesting depth, and storable strings in keys and values."""

    default_error_messages = {
        "too_deep": "Nesting deeper than {limit} levels.",
        "too_large": "Serialized size exceeds {limit} bytes.",
        "unstorable": "Contains a NUL byte or an unpaired surrogate at {path}.",
    }

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        value: dict[str, Any] = super().to_internal_value(data)
        depth_limit = settings.NEXUS["MAX_METADATA_DEPTH"]
        path = _first_unstorable(value, depth_limit)
        if path == "<depth>":
            self.fail("too_deep", limit=depth_limit)
        if path is not None:
            self.fail("unstorable", path=path)
        size_limit = settings.NEXUS["MAX_METADATA_BYTES"]
        if len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()) > size_limit:
            self.fail("too_large", limit=size_limit)
        return value


def _first_unstorable(value: Any, depth_limit: int) -> str | None:
    """The path of the first unstorable string, ``"<depth>"`` when nested too deep, else None.

    Iterative, so a hostile nesting cannot exhaust the interpreter's stack."""
    stack: list[tuple[Any, str, int]] = [(value, "metadata", 1)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, dict | list) and depth > depth_limit:
            return "<depth>"
        if isinstance(node, dict):
            for key, item in node.items():
                if _UNSTORABLE.search(key):
                    return f"{path} (a key)"
                stack.append((item, f"{path}.{key}", depth + 1))
        elif isinstance(node, list):
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(node))
        elif isinstance(node, str) and _UNSTORABLE.search(node):
            return path
    return None


def _refuse_unknown_keys(data: Any, fields: Mapping[str, Any]) -> None:
    """Unknown properties are refused, not ignored.

    The widget is ours, so a refused key shows up at once in its console; an ignored one is
    data silently lost (the earlier attempt lost every prospect to a misnamed key, SPEC §5).
    It also keeps the OpenAPI schema honest (``additionalProperties: false``) for the fuzzer.
    """
    if not isinstance(data, Mapping):
        return  # DRF reports the wrong type itself
    unknown = sorted(str(key) for key in data if key not in fields)
    if unknown:
        allowed = ", ".join(fields)
        raise serializers.ValidationError({unknown[0]: [f"Unknown field; allowed fields are {allowed}."]})


class ProducerRequestSerializer(serializers.Serializer):
    messages = MessageListSerializer(child=MessageSerializer(), allow_empty=False)
    sessionId = StrictCharField(min_length=1, max_length=128, trim_whitespace=False, validators=[_ID_CHARSET])
    fingerprint = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=128,
        default="",
        trim_whitespace=False,  # ids are exact: "fp\n" is refused, not silently another id
        validators=[_ID_CHARSET],
    )
    metadata = MetadataField(required=False, default=dict)

    def to_internal_value(self, data: Any) -> Any:
        _refuse_unknown_keys(data, self.fields)
        return super().to_internal_value(data)

    def validate_messages(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"role": m["role"], "content": m["content"]} for m in value]


class AcceptedSerializer(serializers.Serializer):
    """The 202 body (SPEC §3). The view serializes every answer through it, so the OpenAPI
    document and the wire cannot disagree; a false flag is left out of the body."""

    status = serializers.CharField(default="accepted", help_text='Always "accepted".')
    messageId = serializers.CharField(help_text="A new id for this request (or the X-Request-Id sent).")
    queueId = serializers.UUIDField(help_text="The session's job: GET /api/nexus/jobs/<queueId>.")
    message = serializers.CharField(help_text="What happened, for a person.")
    estimatedProcessingTime = serializers.CharField(default="<2 seconds")
    duplicate = serializers.BooleanField(
        required=False, help_text="The exact transcript was already received."
    )
    stale = serializers.BooleanField(required=False, help_text="An older transcript (a late retry), ignored.")

    _FLAGS = ("duplicate", "stale")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        body: dict[str, Any] = super().to_representation(instance)
        for flag in self._FLAGS:
            if not body.get(flag):
                body.pop(flag, None)
        return body


class ErrorSerializer(serializers.Serializer):
    """The one error body of every 4xx (see ingestion.errors)."""

    error = serializers.CharField(help_text="Machine-readable code, e.g. validation_error, throttled.")
    message = serializers.CharField(help_text="What went wrong, for a person; names the limit.")
    field = serializers.CharField(
        required=False, help_text="Path of the offending field, e.g. messages[2].role."
    )
    detail = serializers.JSONField(required=False, help_text="All validation errors, by field.")


class JobStatusSerializer(serializers.Serializer):
    """What the public may know of a job: no transcript, no prospect data, no raw error."""

    queueId = serializers.UUIDField(source="id")
    tenant = serializers.CharField(source="tenant.slug", help_text="The site or channel the job belongs to.")
    status = serializers.ChoiceField(choices=["pending", "processing", "completed", "failed"])
    revision = serializers.IntegerField()
    processedRevision = serializers.IntegerField(source="processed_revision")
    attempts = serializers.IntegerField(
        help_text="Failed extraction calls for the current revision: 0 when the first call succeeded. "
        "They are retried with backoff; a new revision starts again at 0."
    )
    errorCategory = serializers.CharField(
        source="error_category", allow_blank=True, help_text="rate_limited, timeout, auth, … never raw text."
    )
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")
    revisedAt = serializers.DateTimeField(source="revised_at")
    startedAt = serializers.DateTimeField(source="started_at", allow_null=True)
    processedAt = serializers.DateTimeField(source="processed_at", allow_null=True)
    nextAttemptAt = serializers.DateTimeField(source="next_attempt_at", allow_null=True)

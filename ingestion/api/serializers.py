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


class ShallowCopiedField:
    """A field whose per-request copy is a shallow one.

    DRF deep-copies every declared field for each serializer instance, and a field's deep copy
    runs its ``__init__`` again (validators rebuilt, a nested serializer's child rebuilt and its
    fields copied in turn): half of the producer's validation time. These fields are read-only
    once built (their validators, choices, messages and child are only read while validating,
    never written), so a shallow copy of the unbound declared field is the same field; ``bind``
    then sets the copy's own name and parent. A nested list or dict keeps sharing its declared
    child, which DRF's ListSerializer already reuses for every item: validation keeps no state
    on it (its errors and data live on the root serializer)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return _shallow_copy(self)


def _shallow_copy(field: Any) -> Any:
    """``copy.copy`` without its reduce protocol: a new instance sharing the field's state."""
    twin = object.__new__(type(field))
    twin.__dict__.update(field.__dict__)
    return twin


class ShallowFieldsSerializer(serializers.Serializer):
    """A serializer whose declared fields are all ``ShallowCopiedField``: its per-request copy
    of them skips ``copy.deepcopy``'s memo and dispatch (DRF's ``get_fields``)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        deep = [name for name, f in cls._declared_fields.items() if not isinstance(f, ShallowCopiedField)]  # type: ignore[attr-defined]
        if deep:
            raise TypeError(f"{cls.__name__}: fields {deep} are not ShallowCopiedField")

    def get_fields(self) -> dict[str, Any]:
        return {name: _shallow_copy(f) for name, f in self._declared_fields.items()}  # type: ignore[attr-defined]


class StrictCharField(ShallowCopiedField, serializers.CharField):
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


class ChoiceField(ShallowCopiedField, serializers.ChoiceField):
    pass


class MessageSerializer(ShallowFieldsSerializer):
    """One turn. Keys other than role and content are tolerated and not kept (SPEC §3): the
    transcript is its roles and texts. An empty text is allowed here and dropped by the
    request (a failed stream leaves an empty assistant turn)."""

    role = ChoiceField(choices=["user", "assistant"])
    # Whitespace is the visitor's text; keep it as sent.
    content = StrictCharField(trim_whitespace=False, allow_blank=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        limit = settings.NEXUS["MAX_MESSAGE_CHARS"]
        content = attrs["content"]
        if len(content) <= limit:
            return {"role": attrs["role"], "content": content}
        if attrs["role"] == "user":
            # The visitor's words are the prospect's data: never cut them silently.
            raise serializers.ValidationError(
                {"content": [f"Ensure this field has no more than {limit} characters."]}
            )
        # The assistant's scripted answers reach 5-13k characters; what the visitor reveals
        # is in their own turns, so the head is kept and the cut is marked on the turn.
        return {"role": "assistant", "content": content[:limit], TRUNCATED_KEY: len(content)}


# The stored turn's mark of a truncated assistant text: its length as sent.
TRUNCATED_KEY = "truncatedFrom"


class MessageListSerializer(ShallowCopiedField, serializers.ListSerializer):
    """Counts the messages before validating any of them: 10,000 items cost one len()."""

    def to_internal_value(self, data: Any) -> Any:
        limit = settings.NEXUS["MAX_MESSAGES"]
        if isinstance(data, list) and len(data) > limit:
            raise serializers.ValidationError(f"Ensure this field has no more than {limit} messages.")
        return super().to_internal_value(data)


class MetadataField(ShallowCopiedField, serializers.DictField):
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
        if len(_compact(value)) > size_limit:
            self.fail("too_large", limit=size_limit)
        return value


def _first_unstorable(value: Any, depth_limit: int, root: str = "metadata") -> str | None:
    """The path of the first unstorable string, ``"<depth>"`` when nested too deep, else None.

    Iterative, so a hostile nesting cannot exhaust the interpreter's stack."""
    stack: list[tuple[Any, str, int]] = [(value, root, 1)]
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


class StrictBooleanField(ShallowCopiedField, serializers.BooleanField):
    """true, false or null; DRF's "yes"/1/"on" coercions are refused (wrong types are 400)."""

    default_error_messages = {"invalid": "Must be a boolean."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


CHANNELS = ("web", "whatsapp", "api")


class ProducerRequestSerializer(ShallowFieldsSerializer):
    """The POST body. Unknown top-level fields are accepted and returned under ``extra``,
    bounded like metadata (the widget adds a field every few months: SPEC §12)."""

    messages = MessageListSerializer(child=MessageSerializer(), allow_empty=False)
    sessionId = StrictCharField(min_length=1, max_length=128, trim_whitespace=False, validators=[_ID_CHARSET])
    fingerprint = StrictCharField(
        required=False,
        allow_blank=True,
        allow_null=True,  # some widget paths send null: the same as absent
        max_length=128,
        default="",
        trim_whitespace=False,  # ids are exact: "fp\n" is refused, not silently another id
        validators=[_ID_CHARSET],
    )
    metadata = MetadataField(required=False, default=dict)
    # Attribution (REAL_SITE.md): the referring distributor's slug from the page URL, or null.
    constructorId = StrictCharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        default=None,
        max_length=128,
        trim_whitespace=False,
        validators=[_ID_CHARSET],
    )
    # Which page the chat runs on (catalogo_productos, 12_niveles, default, …); free text, bounded.
    pageContext = StrictCharField(
        required=False, allow_null=True, allow_blank=True, default="", max_length=128
    )
    isReturningUser = StrictBooleanField(required=False, allow_null=True, default=None)
    consentGiven = StrictBooleanField(required=False, allow_null=True, default=None)
    channel = ChoiceField(choices=CHANNELS, required=False, default="web")

    def to_internal_value(self, data: Any) -> Any:
        extra = {k: v for k, v in data.items() if k not in self.fields} if isinstance(data, Mapping) else {}
        value = super().to_internal_value(data)
        value["extra"] = _bounded_extra(extra, value["metadata"])
        return value

    def validate_fingerprint(self, value: str | None) -> str:
        return value or ""

    def validate_constructorId(self, value: str | None) -> str | None:
        return value or None

    def validate_pageContext(self, value: str | None) -> str:
        return value or ""

    def validate_messages(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # Blank turns carry nothing (an empty assistant turn is a stream that returned no
        # bytes); duplicate and stale detection compare what is left.
        kept = [m for m in value if m["content"].strip()]
        if not any(m["role"] == "user" for m in kept):
            raise serializers.ValidationError("Must contain at least one non-blank user message.")
        return kept


def _bounded_extra(extra: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    """Unknown top-level fields, kept within metadata's bounds (together with metadata)."""
    if not extra:
        return extra
    first = sorted(str(key) for key in extra)[0]
    depth_limit = settings.NEXUS["MAX_METADATA_DEPTH"]
    # A top-level field is one level shallower than metadata's contents: same depth budget.
    path = _first_unstorable(extra, depth_limit, root="")
    if path == "<depth>":
        raise serializers.ValidationError({first: [f"Nesting deeper than {depth_limit} levels."]})
    if path is not None:
        name = path.lstrip(".") or first
        raise serializers.ValidationError(
            {first: [f"Contains a NUL byte or an unpaired surrogate at {name}."]}
        )
    size_limit = settings.NEXUS["MAX_METADATA_BYTES"]
    size = len(_compact(extra)) + (len(_compact(metadata)) if metadata else 0)
    if size > size_limit:
        raise serializers.ValidationError(
            {first: [f"Unknown fields and metadata together exceed {size_limit} bytes serialized."]}
        )
    return extra


def _compact(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


class AcceptedSerializer(serializers.Serializer):
    """The 202 body (SPEC §3), as the OpenAPI document shows it: a false duplicate or stale
    flag is left out of the body, ``continued`` is always there. The view builds the body with
    ``accepted_body`` (a dict, ~2 µs instead of this serializer's ~70 µs on every POST); a test
    holds the two equal for every outcome, so the document and the wire cannot disagree."""

    status = serializers.CharField(default="accepted", help_text='Always "accepted".')
    messageId = serializers.CharField(help_text="A new id for this request (or the X-Request-Id sent).")
    queueId = serializers.UUIDField(help_text="The session's job: GET /api/nexus/jobs/<queueId>.")
    message = serializers.CharField(help_text="What happened, for a person.")
    estimatedProcessingTime = serializers.CharField(default="<2 seconds")
    duplicate = serializers.BooleanField(
        required=False, help_text="The exact transcript was already received."
    )
    stale = serializers.BooleanField(required=False, help_text="An older transcript (a late retry), ignored.")
    continued = serializers.BooleanField(
        help_text="The transcript extends a recent job of another sessionId (same fingerprint "
        "when both have one): it became a revision of that job, whose queueId this is.",
    )

    _FLAGS = ("duplicate", "stale")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        body: dict[str, Any] = super().to_representation(instance)
        for flag in self._FLAGS:
            if not body.get(flag):
                body.pop(flag, None)
        return body


def accepted_body(
    *, message_id: str, queue_id: Any, message: str, duplicate: bool, stale: bool, continued: bool
) -> dict[str, Any]:
    """What ``AcceptedSerializer`` makes of these values, without its per-request field copies."""
    body: dict[str, Any] = {
        "status": "accepted",
        "messageId": message_id,
        "queueId": str(queue_id),
        "message": message,
        "estimatedProcessingTime": "<2 seconds",
    }
    if duplicate:
        body["duplicate"] = True
    if stale:
        body["stale"] = True
    body["continued"] = bool(continued)
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
    channel = serializers.ChoiceField(
        choices=["web", "whatsapp", "api"], help_text="Where the chat happens, as its POSTs said."
    )
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

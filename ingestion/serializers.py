"""Input and output shapes of the public API (validation only; no logic, no writes)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers


class StrictCharField(serializers.CharField):
    """A string field that refuses numbers and booleans instead of coercing them."""

    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class MessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["user", "assistant"])
    # Whitespace is the visitor's text; keep it as sent.
    content = StrictCharField(trim_whitespace=False)

    def validate_content(self, value: str) -> str:
        limit = settings.NEXUS["MAX_MESSAGE_CHARS"]
        if len(value) > limit:
            raise serializers.ValidationError(f"Ensure this field has no more than {limit} characters.")
        return value


class ProducerRequestSerializer(serializers.Serializer):
    messages = MessageSerializer(many=True, allow_empty=False)
    sessionId = StrictCharField(min_length=1, max_length=128, trim_whitespace=False)
    fingerprint = StrictCharField(required=False, allow_blank=True, max_length=128, default="")
    metadata = serializers.DictField(required=False, default=dict)

    def validate_messages(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        limit = settings.NEXUS["MAX_MESSAGES"]
        if len(value) > limit:
            raise serializers.ValidationError(f"Ensure this field has no more than {limit} messages.")
        return [{"role": m["role"], "content": m["content"]} for m in value]


class AcceptedSerializer(serializers.Serializer):
    status = serializers.CharField()
    messageId = serializers.CharField()
    queueId = serializers.UUIDField()
    message = serializers.CharField()
    estimatedProcessingTime = serializers.CharField()
    duplicate = serializers.BooleanField(required=False)
    stale = serializers.BooleanField(required=False)


class JobStatusSerializer(serializers.Serializer):
    """What the public may know of a job: no transcript, no prospect data, no raw error."""

    queueId = serializers.UUIDField(source="id")
    status = serializers.CharField()
    revision = serializers.IntegerField()
    processedRevision = serializers.IntegerField(source="processed_revision")
    attempts = serializers.IntegerField()
    errorCategory = serializers.CharField(source="error_category", allow_blank=True)
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")
    revisedAt = serializers.DateTimeField(source="revised_at")
    startedAt = serializers.DateTimeField(source="started_at", allow_null=True)
    processedAt = serializers.DateTimeField(source="processed_at", allow_null=True)
    nextAttemptAt = serializers.DateTimeField(source="next_attempt_at", allow_null=True)

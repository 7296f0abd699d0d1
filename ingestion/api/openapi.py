"""OpenAPI details drf-spectacular cannot infer, and who may read the schema.

The served schema is what the fuzzer generates requests from, so it states the limits the
API really enforces: the message count from settings, the visitor turn a transcript must hold,
the per-turn length rule and the metadata bounds in words (JSON Schema cannot say "serialized
bytes" or "truncated").
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from .serializers import ID_PATTERN


class DocsAccess(BasePermission):
    """Schema and docs: anyone when ``NEXUS_PUBLIC_DOCS`` (development), else staff only."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if settings.NEXUS_PUBLIC_DOCS:
            return True
        user = getattr(request, "user", None)
        return bool(user is not None and user.is_active and user.is_staff)


class TenantKeyScheme(OpenApiAuthenticationExtension):
    """The producer key as an optional bearer scheme (browsers send none)."""

    target_class = "ingestion.api.tenancy.TenantKeyAuthentication"
    name = "tenantKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A server-side producer's key (manage.py tenant_key create): the request "
            "gets the key's tenant, skips the origin check and the per-IP throttle. 401 when unknown "
            "or revoked.",
        }


def postprocess_strict_request(result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    """Write the settings' limits and the tolerant parts of the contract into the request."""
    limits = settings.NEXUS
    schemas = result.get("components", {}).get("schemas", {})
    request = schemas.get("ProducerRequest")
    message = schemas.get("Message")
    if request is None or message is None:
        return result
    # Unknown top-level fields are kept within metadata's bound; other keys of a turn are
    # ignored (SPEC §12): both objects are open.
    request["additionalProperties"] = True
    message["additionalProperties"] = True
    message["description"] = "One turn. Keys other than role and content are accepted and not kept."
    for name in ("sessionId", "fingerprint", "constructorId"):
        _set_pattern(request["properties"][name], ID_PATTERN)
    messages = request["properties"]["messages"]
    messages.update(minItems=1, maxItems=limits["MAX_MESSAGES"])
    # At least one visitor turn with text (JSON Schema's contains, as OpenAPI 3.1 has it).
    messages["contains"] = {
        "type": "object",
        "required": ["role", "content"],
        "properties": {"role": {"enum": ["user"]}, "content": {"type": "string", "pattern": r"\S"}},
    }
    messages["description"] = (
        "The whole conversation so far. Blank turns are dropped before anything else (an empty "
        "assistant turn is a failed stream); what is left must hold a non-blank user turn (400)."
    )
    content = message["properties"]["content"]
    content["description"] = (
        f"The turn's text. A user turn over {limits['MAX_MESSAGE_CHARS']} characters is refused "
        "(400); an assistant turn over it is accepted with its head kept, the stored turn marked "
        "truncatedFrom (its length as sent) and counted in nexus_producer_truncated_turns. NUL "
        "characters and unpaired surrogates are refused."
    )
    metadata = request["properties"]["metadata"]
    metadata["description"] = (
        "Free-form context (url, userAgent, timestamp, …). At most "
        f"{limits['MAX_METADATA_BYTES']} bytes serialized (together with unknown top-level "
        f"fields) and {limits['MAX_METADATA_DEPTH']} levels deep; no NUL characters or unpaired "
        "surrogates in keys or values. The server adds enqueuedAt, and url/userAgent from the "
        "Referer/User-Agent headers when absent."
    )
    _describe(request, "fingerprint", "The visitor's id. null is the same as absent.")
    _describe(
        request,
        "constructorId",
        "The referring distributor's slug, or null. A prospect's first non-null referrer keeps the credit.",
    )
    _describe(
        request, "pageContext", "The page the chat runs on (e.g. catalogo_productos); the latest is kept."
    )
    _describe(request, "isReturningUser", "The widget's returning-visitor flag.")
    _describe(request, "consentGiven", "The visitor's consent; its time is recorded when first true.")
    _describe(request, "channel", "Where the chat happens: web (default), whatsapp or api.")
    _document_headers(result)
    _key_optional(result)
    request["description"] = (
        f"The whole conversation so far. The body may be at most {limits['MAX_BODY_BYTES']} bytes "
        "(413 beyond), as application/json or as text/plain holding JSON (navigator.sendBeacon). "
        "Unknown top-level fields are accepted and kept in the job's metadata under extraFields, "
        "within the metadata byte bound (400 beyond). The path also answers with a trailing slash."
    )
    return result


def _key_optional(result: dict[str, Any]) -> None:
    """The producer's key is optional (browsers send none): ``{}`` beside the bearer scheme."""
    for operation in result.get("paths", {}).get("/api/nexus/producer", {}).values():
        security = operation.get("security") if isinstance(operation, dict) else None
        if security and {} not in security:
            security.append({})


def _describe(request: dict[str, Any], name: str, text: str) -> None:
    request["properties"][name]["description"] = text


def _set_pattern(schema: dict[str, Any], pattern: str) -> None:
    """The id pattern in its ECMA form, wherever spectacular put the validator's (\\Z) form."""
    for option in [schema, *schema.get("oneOf", [])]:
        if "pattern" in option:
            option["pattern"] = pattern


_ACCEPTED_HEADERS = {
    "X-Message-Id": {"schema": {"type": "string"}, "description": "This request's messageId."},
    "X-Queue-Id": {"schema": {"type": "string", "format": "uuid"}, "description": "The job's queueId."},
    "Location": {"schema": {"type": "string"}, "description": "/api/nexus/jobs/<queueId>"},
}
_RETRY_AFTER = {
    "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds until a retry may succeed."}
}


def _document_headers(result: dict[str, Any]) -> None:
    """Response headers drf-spectacular cannot see: the 202's ids, the 429's and 503's Retry-After."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {}) if isinstance(operation, dict) else {}
            if "202" in responses:
                responses["202"]["headers"] = _ACCEPTED_HEADERS
            for code in ("429", "503"):
                if code in responses and "content" in responses[code]:
                    responses[code]["headers"] = _RETRY_AFTER

"""Error reports to Sentry, off unless ``SENTRY_DSN`` is set (settings.py calls ``sentry_init``).

sentry-sdk with its Django and Celery integrations; no personal data leaves: no default PII
(user, cookies, IP), no request bodies (the POST is the transcript), no frame locals (they hold
it too), and ``before_send`` / ``before_breadcrumb`` pass the whole event through the logs' own
redaction of e-mails and phones (``ingestion.logcontext.redact``): messages, exception values,
extra, tags, breadcrumbs. Performance tracing stays with OpenTelemetry (nexus_project/tracing.py).
"""

from __future__ import annotations

from typing import Any

from ingestion.logcontext import redact

# Ours, not a visitor's: "nexus-ingestion@1.0.0" is e-mail-shaped, and Sentry reads it whole.
_KEPT = ("release",)


def before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    scrubbed: dict[str, Any] = redact(event)
    scrubbed.update({key: event[key] for key in _KEPT if key in event})
    return scrubbed


def before_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    return redact(crumb)  # type: ignore[no-any-return]


def sentry_init(*, dsn: str, environment: str, release: str, transport: Any = None) -> None:
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        send_default_pii=False,
        max_request_body_size="never",
        include_local_variables=False,
        before_send=before_send,  # type: ignore[arg-type]
        before_breadcrumb=before_breadcrumb,  # type: ignore[arg-type]
        transport=transport,
    )

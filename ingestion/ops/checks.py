"""System checks for limits that only make sense together (run by `manage.py check`)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register


@register()
def timers_fit_together(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    nexus = settings.NEXUS
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
    errors: list[CheckMessage] = []
    # Redis redelivers an unacked (delayed) message after the visibility timeout: a countdown
    # longer than that would run twice.
    for name in ("BACKOFF_CAP_SECONDS", "BREAKER_CAP_SECONDS"):
        if nexus[name] >= visibility:
            errors.append(
                Error(
                    f"NEXUS {name}={nexus[name]} must stay below the broker "
                    f"visibility_timeout ({visibility})",
                    id="nexus.E001",
                )
            )
    # A lease shorter than the Claude timeout lets a second worker take a job mid-call.
    if nexus["LEASE_SECONDS"] <= settings.ANTHROPIC_TIMEOUT_SECONDS:
        errors.append(
            Error(
                f"NEXUS_LEASE_SECONDS={nexus['LEASE_SECONDS']} must exceed "
                f"ANTHROPIC_TIMEOUT_SECONDS={settings.ANTHROPIC_TIMEOUT_SECONDS}",
                id="nexus.E002",
            )
        )
    # A webhook lease no longer than the POST's timeout lets a second attempt start mid-POST.
    if nexus["WEBHOOK_LEASE_SECONDS"] <= nexus["WEBHOOK_TIMEOUT_SECONDS"]:
        errors.append(
            Error(
                f"NEXUS_WEBHOOK_LEASE_SECONDS={nexus['WEBHOOK_LEASE_SECONDS']} must exceed "
                f"NEXUS_WEBHOOK_TIMEOUT_SECONDS={nexus['WEBHOOK_TIMEOUT_SECONDS']}",
                id="nexus.E003",
            )
        )
    return errors

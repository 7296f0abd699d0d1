"""The hot-lead mail (issue 14, optional): on ``prospect.hot``, a short message through Django's
e-mail backend to the addresses of ``NEXUS_HOT_LEAD_EMAILS`` (comma-separated; ``owner`` means
the prospect's owner, when it has one with an e-mail).

Called from the outbox's delivery task, so only for a committed event. ``Event.mailed_at`` is
claimed before sending: a redelivered task or a sweeper's republish sends nothing twice. A
send that fails releases the claim and is logged (a redelivery of the task tries again); the
webhook deliveries do not wait on it. The body names no contact and carries no transcript:
whoever reads it opens the admin, where the permissions apply.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse
from django.utils import timezone

from .models import Event, EventType

logger = logging.getLogger(__name__)

OWNER = "owner"


def hot_lead_recipients(event: Event) -> list[str]:
    """The addresses the event's mail goes to, in the setting's order, each once."""
    addresses: list[str] = []
    for target in settings.NEXUS["HOT_LEAD_EMAILS"]:
        if target == OWNER:
            owner = event.prospect.owner
            if owner is not None and owner.email:
                addresses.append(owner.email)
        else:
            addresses.append(target)
    return list(dict.fromkeys(addresses))


def hot_lead_body(event: Event) -> str:
    prospect = event.prospect
    owner = prospect.owner.get_username() if prospect.owner is not None else "nobody yet"
    page = reverse("admin:prospects_prospect_change", args=[prospect.pk])
    return "\n".join(
        [
            f"Prospect #{prospect.pk} of {prospect.tenant.slug} has just turned hot.",
            "",
            f"Interest: {prospect.nivel_interes if prospect.nivel_interes is not None else '-'}"
            f" ({prospect.get_momento_optimo_display() or '-'}); stage: {prospect.get_stage_display()}.",
            f"Referred by: {prospect.constructor_id or '-'}. Owner: {owner}.",
            "",
            f"Open it in the admin: {page}",
            "(Contacts and the conversation are there, for those allowed to see them.)",
        ]
    )


def hot_lead_mail(event_id: int) -> int:
    """Mail a committed prospect.hot event to its recipients once; the number of mails sent."""
    if not settings.NEXUS["HOT_LEAD_EMAILS"]:
        return 0
    event = (
        Event.objects.select_related("prospect__tenant", "prospect__owner")
        .filter(pk=event_id, type=EventType.HOT, mailed_at__isnull=True)
        .first()
    )
    if event is None:
        return 0
    recipients = hot_lead_recipients(event)
    if not recipients:
        return 0
    if not Event.objects.filter(pk=event_id, mailed_at__isnull=True).update(mailed_at=timezone.now()):
        return 0  # another run of the task took it
    subject = f"Hot lead: prospect #{event.prospect_id} ({event.prospect.tenant.slug})"
    try:
        return send_mail(subject, hot_lead_body(event), None, recipients)
    except Exception as error:  # noqa: BLE001 - any backend failure: release and report
        Event.objects.filter(pk=event_id).update(mailed_at=None)
        logger.warning("hot-lead mail failed", extra={"event_id": event_id, "error": type(error).__name__})
        return 0

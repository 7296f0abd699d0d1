"""Prospects: one per visitor, the fold of what their sessions' extractions found."""

from __future__ import annotations

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from tenants.directory import default_tenant_id

from .vocabulary import Arquetipo, Momento, Stage


class ReviewStatus(models.TextChoices):
    """Where the sales team stands with the visitor (the review desk), set by people only."""

    NUEVO = "nuevo", "Nuevo"
    CONTACTADO = "contactado", "Contactado"
    EN_SEGUIMIENTO = "en_seguimiento", "En seguimiento"
    CONVERTIDO = "convertido", "Convertido"
    DESCARTADO = "descartado", "Descartado"


# The review desk's fields: written by people in the admin, never by the fold
# (services.prospect_refold updates only the fields it derives).
REVIEW_FIELDS = ("review_status", "owner", "notes", "contacted_at")


class Prospect(models.Model):
    # The site or channel the visitor came through: a visitor is per (tenant, key).
    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.PROTECT, related_name="prospects", default=default_tenant_id
    )
    # services.prospect_key: "fp:<fingerprint>", or "sid:<sessionId>" for a session without
    # fingerprint, so nothing is dropped and the two namespaces cannot collide.
    key = models.CharField(max_length=140)
    fingerprint = models.CharField(max_length=128, blank=True, default="", db_index=True)

    nombre = models.CharField(max_length=200, null=True, blank=True)
    email = models.CharField(max_length=254, null=True, blank=True)
    telefono = models.CharField(max_length=32, null=True, blank=True)
    ocupacion = models.CharField(max_length=200, null=True, blank=True)
    nivel_interes = models.PositiveSmallIntegerField(null=True, blank=True)
    momento_optimo = models.CharField(max_length=16, choices=Momento.choices, null=True, blank=True)
    arquetipo = models.CharField(max_length=40, choices=Arquetipo.choices, null=True, blank=True)
    objeciones = models.JSONField(default=list, blank=True)
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.INICIAR)

    # Attribution, folded from the sessions like the rest (prospects.services.attribution_fold).
    # The first non-null referrer keeps the credit (the business pays the first referrer).
    constructor_id = models.CharField(max_length=128, null=True, blank=True)
    page_context = models.CharField(max_length=128, blank=True, default="")  # the latest
    # The channels seen, sorted and comma-joined ("web,whatsapp"): a plain column so that
    # SQLite (make run) filters it as PostgreSQL does.
    channels = models.CharField(max_length=64, blank=True, default="")
    is_returning = models.BooleanField(null=True, blank=True)
    consent_given = models.BooleanField(null=True, blank=True)  # the latest sent
    consent_at = models.DateTimeField(null=True, blank=True)  # since when it has been given

    # The review desk (REVIEW_FIELDS): people's, not the fold's.
    review_status = models.CharField(
        max_length=16, choices=ReviewStatus.choices, default=ReviewStatus.NUEVO, db_index=True
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="owned_prospects",
        limit_choices_to={"is_staff": True},
    )
    notes = models.TextField(blank=True, default="")
    # When it was last marked contacted (the database's clock, functions.Now()).
    contacted_at = models.DateTimeField(null=True, blank=True)

    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    session_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-last_seen_at"]
        permissions = [
            # Without it the admin masks e-mails and phones and the CSV leaves them out.
            ("view_contacts", "Can see prospects' e-mails and phones"),
            ("export_prospects", "Can export prospects as CSV"),
        ]
        constraints = [
            # prospect_lock's INSERT … ON CONFLICT (tenant_id, key) relies on it.
            models.UniqueConstraint(fields=["tenant", "key"], name="prospect_tenant_key"),
        ]
        indexes = [
            models.Index(fields=["email"], name="prospect_email"),
            models.Index(fields=["telefono"], name="prospect_telefono"),
            models.Index(fields=["-nivel_interes"], name="prospect_interest"),
            models.Index(fields=["constructor_id"], name="prospect_constructor"),
        ]

    def __str__(self) -> str:
        return self.nombre or self.key


class EventType(models.TextChoices):
    CREATED = "prospect.created"
    UPDATED = "prospect.updated"
    STAGE_CHANGED = "prospect.stage_changed"
    HOT = "prospect.hot"


class Event(models.Model):
    """A change of a Prospect, written in the transaction that folded it (a transactional
    outbox): it exists if and only if the change committed. `sequence` counts the prospect's
    events from 1; `delivered_at` is set once every endpoint that wants it has been served."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    # Cascade: forgetting a person (ingestion.ops.erasure) deletes the prospect, so its events.
    prospect = models.ForeignKey(Prospect, on_delete=models.CASCADE, related_name="events")
    sequence = models.PositiveIntegerField()
    type = models.CharField(max_length=32, choices=EventType.choices)
    # {"changes": {field: {"old": …, "new": …}}}: folded fields only, never a transcript.
    payload = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # A prospect.hot event's mail (NEXUS_HOT_LEAD_EMAILS, prospects.notify) was sent: at most once.
    mailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["prospect_id", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["prospect", "sequence"], name="event_prospect_sequence"),
        ]
        indexes = [
            models.Index(
                fields=["created_at"], name="event_undelivered", condition=models.Q(delivered_at__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} #{self.sequence}"


class WebhookEndpoint(models.Model):
    """Where events are POSTed, signed per Standard Webhooks with `secret` (whsec_…)."""

    url = models.URLField(max_length=500)
    # The event types it wants (EventType values).
    events = models.JSONField(default=list, blank=True)
    # None: every tenant's events.
    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    secret = models.CharField(max_length=120)
    active = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.url


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Delivery(models.Model):
    """One event to one endpoint: the same webhook-id on every attempt."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # When the next attempt is due; also a lease while an attempt is under way.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["event", "endpoint"], name="delivery_event_endpoint")]

    def __str__(self) -> str:
        return f"{self.webhook_id} → endpoint {self.endpoint_id}"

    @property
    def webhook_id(self) -> str:
        return f"evt_{self.event_id}"


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    at = models.DateTimeField(auto_now_add=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    # ≤ 200 characters of the receiver's answer, or the error's class name.
    response_excerpt = models.CharField(max_length=200, blank=True, default="")

    def __str__(self) -> str:
        return f"{self.status_code or 'error'} in {self.latency_ms} ms"

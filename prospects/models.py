"""Prospects: one per visitor, the fold of what their sessions' extractions found."""

from __future__ import annotations

from django.db import models

from tenants.directory import default_tenant_id

from .vocabulary import Arquetipo, Momento, Stage


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

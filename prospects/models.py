"""Prospects (one per visitor) and the Extraction record of every Claude/offline run."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class Stage(models.TextChoices):
    INICIAR = "iniciar", "Iniciar"
    ACOGER = "acoger", "Acoger"
    ACTIVAR = "activar", "Activar"


class Arquetipo(models.TextChoices):
    PROFESIONAL_VISION = "profesional_vision"
    EMPRENDEDOR_DUENO_NEGOCIO = "emprendedor_dueno_negocio"
    INDEPENDIENTE_FREELANCER = "independiente_freelancer"
    LIDER_HOGAR = "lider_hogar"
    LIDER_COMUNIDAD = "lider_comunidad"
    JOVEN_AMBICION = "joven_ambicion"


class Momento(models.TextChoices):
    CALIENTE = "caliente"
    TIBIO = "tibio"
    FRIO = "frio"


class Prospect(models.Model):
    # "fp:<fingerprint>", or "sid:<sessionId>" for a session without fingerprint, so nothing
    # is dropped and the two namespaces cannot collide.
    key = models.CharField(max_length=140, unique=True)
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

    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    session_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-last_seen_at"]
        indexes = [
            models.Index(fields=["email"], name="prospect_email"),
            models.Index(fields=["telefono"], name="prospect_telefono"),
            models.Index(fields=["-nivel_interes"], name="prospect_interest"),
        ]

    def __str__(self) -> str:
        return self.nombre or self.key


class ExtractionOutcome(models.TextChoices):
    OK = "ok", "OK"
    FAILED = "failed", "Failed"


class Extraction(models.Model):
    """One extractor call for one revision of one job: its usage, and on success its result
    and the Prospect's data as it stood right after the merge."""

    job = models.ForeignKey("ingestion.Job", on_delete=models.CASCADE, related_name="extractions")
    prospect = models.ForeignKey(
        Prospect, null=True, blank=True, on_delete=models.CASCADE, related_name="extractions"
    )
    revision = models.PositiveIntegerField()
    trigger = models.CharField(max_length=48, default="auto")
    outcome = models.CharField(max_length=8, choices=ExtractionOutcome.choices)
    error_category = models.CharField(max_length=32, blank=True, default="")

    extractor = models.CharField(max_length=16)
    model = models.CharField(max_length=64, blank=True, default="")
    prompt_version = models.CharField(max_length=32, blank=True, default="")
    stop_reason = models.CharField(max_length=32, blank=True, default="")
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cache_creation_tokens = models.PositiveIntegerField(default=0)
    cache_read_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    latency_ms = models.PositiveIntegerField(default=0, help_text="Extractor call duration.")
    # From the revision's POST to this result being merged (the pipeline's end-to-end latency).
    pipeline_latency_ms = models.PositiveIntegerField(null=True, blank=True)

    result = models.JSONField(null=True, blank=True)
    merged = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # A redelivered task adds no row; a deliberate re-extraction has its own trigger.
            models.UniqueConstraint(
                fields=["job", "revision", "prompt_version", "trigger"],
                condition=Q(outcome="ok"),
                name="extraction_once_per_revision",
            )
        ]
        indexes = [models.Index(fields=["created_at", "outcome"], name="extraction_recent")]

    def __str__(self) -> str:
        return f"{self.job_id} r{self.revision} {self.outcome}"

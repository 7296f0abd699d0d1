from django.contrib import admin

from .models import Extraction, Prospect


@admin.register(Prospect)
class ProspectAdmin(admin.ModelAdmin):
    list_display = ["key", "nombre", "nivel_interes", "momento_optimo", "arquetipo", "stage", "last_seen_at"]


@admin.register(Extraction)
class ExtractionAdmin(admin.ModelAdmin):
    list_display = ["job", "revision", "outcome", "extractor", "created_at"]

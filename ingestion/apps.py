from django.apps import AppConfig
from django.db.models.signals import post_migrate


class IngestionConfig(AppConfig):
    name = "ingestion"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, heartbeat  # noqa: F401 - registers checks, connects worker signals
        from .schedules import sync_schedules

        post_migrate.connect(sync_schedules, sender=self, dispatch_uid="nexus-schedules")

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class IngestionConfig(AppConfig):
    name = "ingestion"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from corsheaders.signals import check_request_enabled

        from prospects.events import register_on_commit

        from .api.cors import allow_tenant_origins
        from .dispatch import events_publish
        from .ops import checks  # noqa: F401 - registers the system checks
        from .ops.schedules import sync_schedules
        from .worker import heartbeat  # noqa: F401 - connects the worker signals

        register_on_commit(events_publish)
        post_migrate.connect(sync_schedules, sender=self, dispatch_uid="nexus-schedules")
        check_request_enabled.connect(allow_tenant_origins, dispatch_uid="nexus-tenant-cors")

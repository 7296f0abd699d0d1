from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate, post_save


class TenantsConfig(AppConfig):
    name = "tenants"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import directory
        from .models import Tenant, TenantKey
        from .services import bootstrap_on_migrate

        post_migrate.connect(bootstrap_on_migrate, sender=self, dispatch_uid="nexus-tenants")

        # A change made in this process (the admin) is seen here at once; other processes
        # read again within NEXUS_TENANT_CACHE_SECONDS.
        def _changed(**kwargs: object) -> None:
            directory.forget()

        for model in (Tenant, TenantKey):
            post_save.connect(
                _changed, sender=model, weak=False, dispatch_uid=f"nexus-forget-{model.__name__}"
            )
            post_delete.connect(
                _changed, sender=model, weak=False, dispatch_uid=f"nexus-forget-d-{model.__name__}"
            )

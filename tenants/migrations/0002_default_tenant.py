"""The default tenant, so the rows that existed before tenants can be given to it."""

from django.conf import settings
from django.db import migrations


def create_default(apps, schema_editor):
    Tenant = apps.get_model("tenants", "Tenant")
    slug = settings.NEXUS_DEFAULT_TENANT
    Tenant.objects.get_or_create(slug=slug, defaults={"name": slug, "domains": []})


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]

    operations = [migrations.RunPython(create_default, migrations.RunPython.noop)]

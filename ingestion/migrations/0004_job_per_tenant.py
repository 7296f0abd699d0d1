"""Jobs belong to a tenant: existing ones to the default tenant; a sessionId is unique per
(tenant, sessionId) instead of globally."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import tenants.directory


def to_default_tenant(apps, schema_editor):
    Tenant = apps.get_model("tenants", "Tenant")
    Job = apps.get_model("ingestion", "Job")
    slug = settings.NEXUS_DEFAULT_TENANT
    default, _ = Tenant.objects.get_or_create(slug=slug, defaults={"name": slug, "domains": []})
    Job.objects.filter(tenant__isnull=True).update(tenant=default)
    if schema_editor.connection.vendor == "postgresql":
        # The FK checks are deferred: run them now, or the ALTER that follows in this
        # transaction fails with "pending trigger events".
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


class Migration(migrations.Migration):
    dependencies = [
        ("ingestion", "0003_extraction_moves_in"),
        ("prospects", "0003_prospect_per_tenant"),
        ("tenants", "0002_default_tenant"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="tenant",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.PROTECT, related_name="jobs", to="tenants.tenant"
            ),
        ),
        migrations.RunPython(to_default_tenant, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="job",
            name="tenant",
            field=models.ForeignKey(
                default=tenants.directory.default_tenant_id,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="jobs",
                to="tenants.tenant",
            ),
        ),
        migrations.AlterField(model_name="job", name="session_id", field=models.CharField(max_length=128)),
        migrations.AddConstraint(
            model_name="job",
            constraint=models.UniqueConstraint(fields=("tenant", "session_id"), name="job_tenant_session"),
        ),
    ]

"""Prospects belong to a tenant: existing ones to the default tenant; a visitor is unique per
(tenant, key) instead of per key."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import tenants.directory


def to_default_tenant(apps, schema_editor):
    Tenant = apps.get_model("tenants", "Tenant")
    Prospect = apps.get_model("prospects", "Prospect")
    slug = settings.NEXUS_DEFAULT_TENANT
    default, _ = Tenant.objects.get_or_create(slug=slug, defaults={"name": slug, "domains": []})
    Prospect.objects.filter(tenant__isnull=True).update(tenant=default)
    if schema_editor.connection.vendor == "postgresql":
        # The FK checks are deferred: run them now, or the ALTER that follows in this
        # transaction fails with "pending trigger events".
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


class Migration(migrations.Migration):
    dependencies = [
        ("prospects", "0002_vocabulary_labels_extraction_moves_out"),
        ("tenants", "0002_default_tenant"),
    ]

    operations = [
        migrations.AddField(
            model_name="prospect",
            name="tenant",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.PROTECT, related_name="prospects", to="tenants.tenant"
            ),
        ),
        migrations.RunPython(to_default_tenant, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="prospect",
            name="tenant",
            field=models.ForeignKey(
                default=tenants.directory.default_tenant_id,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="prospects",
                to="tenants.tenant",
            ),
        ),
        migrations.AlterField(model_name="prospect", name="key", field=models.CharField(max_length=140)),
        migrations.AddConstraint(
            model_name="prospect",
            constraint=models.UniqueConstraint(fields=("tenant", "key"), name="prospect_tenant_key"),
        ),
    ]

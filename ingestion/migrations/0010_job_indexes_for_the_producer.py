"""Three indexes fewer on the producer's INSERT (issue 18, bench figure 1).

The two foreign-key indexes on ``tenant_id`` duplicate the leading column of the unique
(tenant, session_id) keys; ``job_constructor`` serves no query. Only the indexes are dropped:
Django's own AlterField would also drop and re-add the foreign key constraint, which validates
every row of the table under lock, for a change that is the index alone.
"""

import django.db.models.deletion
from django.db import migrations, models

import tenants.directory

_FK_INDEXES = [
    ("ingestion_job", "ingestion_job_tenant_id_ded0b634"),
    ("ingestion_sessionalias", "ingestion_sessionalias_tenant_id_e7335bd9"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("ingestion", "0009_session_alias"),
        ("tenants", "0003_tenant_membership"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="job", name="job_constructor"),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="job",
                    name="tenant",
                    field=models.ForeignKey(
                        db_index=False,
                        default=tenants.directory.default_tenant_id,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="jobs",
                        to="tenants.tenant",
                    ),
                ),
                migrations.AlterField(
                    model_name="sessionalias",
                    name="tenant",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="tenants.tenant",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{index}"',
                    reverse_sql=f'CREATE INDEX IF NOT EXISTS "{index}" ON "{table}" ("tenant_id")',
                )
                for table, index in _FK_INDEXES
            ],
        ),
    ]

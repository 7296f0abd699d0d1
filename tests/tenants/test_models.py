"""Jobs and prospects belong to a tenant: a sessionId is unique per tenant, a Prospect is per
(tenant, fingerprint), and the rows that existed before tenants went to the default one."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from ingestion.models import Job
from ingestion.services import Outcome, job_accept
from prospects.models import Prospect
from prospects.services import prospect_key, prospect_lock
from tenants.models import Tenant
from tests.conftest import SEED_MESSAGES

pytestmark = pytest.mark.django_db(transaction=True)


def accept(tenant: Tenant | None, session_id: str = "s-1"):
    return job_accept(
        tenant_id=tenant.id if tenant else None,
        session_id=session_id,
        fingerprint="fp-1",
        messages=SEED_MESSAGES,
        metadata={},
    )


def test_one_session_id_in_two_tenants_is_two_jobs():
    shop = Tenant.objects.create(slug="ecommerce", domains=["shop.example"])

    first, second = accept(None), accept(shop)
    again = accept(shop)

    assert first.job_id != second.job_id
    assert again.job_id == second.job_id and again.outcome is Outcome.DUPLICATE
    assert sorted(Job.objects.values_list("tenant__slug", flat=True)) == ["default", "ecommerce"]


def test_one_fingerprint_in_two_tenants_is_two_prospects():
    shop = Tenant.objects.create(slug="ecommerce")
    default = Tenant.objects.get(slug="default")
    key = prospect_key(fingerprint="fp-1")
    now = timezone.now()

    ids = {
        prospect_lock(tenant_id=t.id, key=key, fingerprint="fp-1", seen_at=now) for t in (default, shop, shop)
    }

    assert len(ids) == 2
    assert sorted(Prospect.objects.values_list("tenant__slug", flat=True)) == ["default", "ecommerce"]


def test_the_job_endpoint_shows_its_tenant(api):
    shop = Tenant.objects.create(slug="ecommerce")
    queue_id = accept(shop).job_id

    assert api.get(f"/api/nexus/jobs/{queue_id}").json()["tenant"] == "ecommerce"


@pytest.mark.postgres
def test_rows_from_before_tenants_go_to_the_default_tenant():
    executor = MigrationExecutor(connection)
    before = [
        ("ingestion", "0003_extraction_moves_in"),
        ("prospects", "0002_vocabulary_labels_extraction_moves_out"),
        ("tenants", "0002_default_tenant"),
    ]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    now = timezone.now()
    old.get_model("ingestion", "Job").objects.create(session_id="old-1", transcript_hash="h", revised_at=now)
    old.get_model("prospects", "Prospect").objects.create(key="fp:old", first_seen_at=now, last_seen_at=now)
    old.get_model("tenants", "Tenant").objects.filter(slug="default").delete()

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert Job.objects.get(session_id="old-1").tenant.slug == "default"
    assert Prospect.objects.get(key="fp:old").tenant.slug == "default"

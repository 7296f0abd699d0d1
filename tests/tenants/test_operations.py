"""The tenant wherever operations look: reprocess and forget take --tenant, queue_stats and
the admin lists show and filter it, the prospects CSV carries it, /metrics labels intake by it
(a bounded label: the tenants' slugs and one fixed value for the rest)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from ingestion.models import Job, JobStatus
from prospects.models import Prospect
from tenants.models import Tenant
from tests.conftest import producer_body, transcript

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shop() -> Tenant:
    return Tenant.objects.create(slug="ecommerce", domains=["shop.example"])


def job(session_id: str, tenant: Tenant | None = None, **fields) -> Job:
    extra = {"tenant": tenant} if tenant else {}
    return Job.objects.create(
        session_id=session_id,
        transcript_hash=session_id,
        messages=transcript("Hola"),
        message_count=1,
        revised_at=timezone.now(),
        status=fields.pop("status", JobStatus.FAILED),
        **extra,
        **fields,
    )


def prospect(key: str, tenant: Tenant | None = None, **fields) -> Prospect:
    now = timezone.now()
    extra = {"tenant": tenant} if tenant else {}
    return Prospect.objects.create(key=key, first_seen_at=now, last_seen_at=now, **extra, **fields)


def command(name: str, *args: str) -> str:
    out = io.StringIO()
    call_command(name, *args, stdout=out)
    return out.getvalue()


def test_reprocess_takes_a_tenant_and_shows_it(shop):
    job("s-1")
    job("s-1", shop)

    out = command("reprocess", "--tenant", "ecommerce", "--status", "failed", "--dry-run")

    assert "would queue 1 job(s)" in out
    assert "ecommerce  s-1  failed" in out and "default" not in out


def test_forget_takes_a_tenant(shop):
    for tenant in (None, shop):
        owner = prospect("fp:fp-ana", tenant, fingerprint="fp-ana")
        job("ana-1", tenant, fingerprint="fp-ana", prospect=owner)

    out = command("forget", "--fingerprint", "fp-ana", "--tenant", "ecommerce")

    assert "Erased 1 prospect(s), 1 job(s)" in out
    assert list(Prospect.objects.values_list("tenant__slug", flat=True)) == ["default"]
    assert list(Job.objects.values_list("tenant__slug", flat=True)) == ["default"]
    assert "Erased 1 prospect(s), 1 job(s)" in command("forget", "--fingerprint", "fp-ana")


def test_forget_without_a_tenant_reaches_every_tenant(shop):
    for tenant in (None, shop):
        prospect("fp:fp-ana", tenant, fingerprint="fp-ana")

    assert "Erased 2 prospect(s)" in command("forget", "--fingerprint", "fp-ana")


def test_queue_stats_shows_open_jobs_by_tenant(shop):
    job("p-1", shop, status=JobStatus.PENDING)
    job("f-1")

    stats = json.loads(command("queue_stats"))

    assert stats["by_tenant"]["ecommerce"] == {"pending": 1, "processing": 0, "failed": 0}
    assert stats["by_tenant"]["default"] == {"pending": 0, "processing": 0, "failed": 1}


@pytest.fixture
def staff(client):
    client.force_login(get_user_model().objects.create_superuser("ops", "ops@example.test", "pw"))
    return client


def test_the_admin_lists_filter_by_tenant(staff, shop):
    job("in-default")
    job("in-shop", shop)
    prospect("fp:a", nombre="Ana")
    prospect("fp:b", shop, nombre="Beto")

    jobs = staff.get(f"/admin/ingestion/job/?tenant__id__exact={shop.id}").content.decode()
    prospects = staff.get(f"/admin/prospects/prospect/?tenant__id__exact={shop.id}").content.decode()

    assert "in-shop" in jobs and "in-default" not in jobs
    assert "Beto" in prospects and "Ana" not in prospects


def test_the_prospects_csv_carries_the_tenant_and_follows_its_filter(staff, shop):
    prospect("fp:a", nombre="Ana")
    prospect("fp:b", shop, nombre="Beto")

    response = staff.get(f"/admin/prospects/prospect/export.csv?tenant__id__exact={shop.id}")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))

    assert [(r["tenant"], r["nombre"]) for r in rows] == [("ecommerce", "Beto")]


def intake(client) -> dict[tuple[str, str, str], float]:
    text = client.get("/metrics").content.decode()
    return {
        (s.labels["tenant"], s.labels["outcome"], s.labels["reason"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "nexus_producer_posts_total"
    }


def test_intake_counters_are_labelled_by_tenant_with_one_label_for_the_unresolved(api, client, shop):
    before = intake(client)
    api.post("/api/nexus/producer", producer_body(), format="json", HTTP_ORIGIN="https://shop.example")
    api.post("/api/nexus/producer", producer_body(), format="json")
    api.post("/api/nexus/producer", {"messages": []}, format="json", HTTP_X_TENANT_ID="ecommerce")
    api.post("/api/nexus/producer", producer_body(), format="json", HTTP_X_TENANT_ID="made-up-1")
    api.post("/api/nexus/producer", producer_body(), format="json", HTTP_X_TENANT_ID="made-up-2")
    after = intake(client)

    def grew(*labels: str) -> float:
        return after.get(labels, 0.0) - before.get(labels, 0.0)

    assert grew("ecommerce", "accepted", "") == 1
    assert grew("default", "accepted", "") == 1
    assert grew("ecommerce", "rejected", "validation_error") == 1
    assert grew("unknown", "rejected", "unknown_tenant") == 2
    assert not {"made-up-1", "made-up-2"} & {tenant for tenant, _, _ in after}  # never client input

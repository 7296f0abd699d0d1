"""The access log: an entry for each audited action, never the personal data itself,
append-only, superusers only, purged after its retention by the daily cleanup."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from audit.models import AccessLogEntry
from audit.services import access_log_purge, fingerprint_of
from ingestion import tasks
from tests.privacy.test_access import LIST, job, login, prospect, read_csv

pytestmark = pytest.mark.django_db

EMAIL = "ana@example.test"
PHONE = "+573001234567"


@pytest.fixture
def shop():
    from tenants.models import Tenant

    return Tenant.objects.create(slug="shop-a")


@pytest.fixture
def ana(shop):
    return prospect("fp:fp-ana", shop, fingerprint="fp-ana", nombre="Ana Alfa", email=EMAIL, telefono=PHONE)


def entries(action: str) -> list[AccessLogEntry]:
    return list(AccessLogEntry.objects.filter(action=action))


def no_personal_data() -> None:
    dump = json.dumps(list(AccessLogEntry.objects.values("actor", "target", "object_ids", "filters")))
    for secret in (EMAIL, PHONE, "fp-ana", "Ana Alfa", "3001234567"):
        assert secret not in dump


def test_viewing_contacts_is_logged_and_a_masked_view_is_not(shop, ana):
    login(["Sales"], [shop], "masked").get(f"{LIST}{ana.pk}/change/")
    assert entries("view_contacts") == []

    login(["Sales lead"], [shop], "lead").get(f"{LIST}{ana.pk}/change/")
    (entry,) = entries("view_contacts")
    assert (
        entry.actor == "lead" and entry.object_ids == [str(ana.pk)] and entry.target == "prospects.prospect"
    )
    no_personal_data()


def test_a_csv_export_logs_its_filters_and_row_count_with_the_search_hashed(shop, ana):
    client = login(["Sales lead"], [shop], "lead")
    rows = read_csv(client.get(f"{LIST}export.csv", {"q": EMAIL, "stage__exact": "iniciar"}))

    (entry,) = entries("export_csv")
    assert entry.row_count == len(rows) == 1
    assert entry.filters == {"q": fingerprint_of(EMAIL), "stage__exact": "iniciar"}
    no_personal_data()


def test_an_admin_action_logs_its_name_ids_and_count(shop, ana):
    client = login(["Sales lead"], [shop], "lead")
    client.post(LIST, {"action": "export_selected_csv", "_selected_action": [ana.pk]})

    (entry,) = entries("admin_action")
    assert entry.filters == {"action": "export_selected_csv"}
    assert entry.object_ids == [str(ana.pk)] and entry.row_count == 1 and entry.actor == "lead"


def test_a_job_action_is_logged(shop, ana):
    failed = job("s-ana", shop, ana)
    root = get_user_model().objects.create_superuser("root", "root@example.test", "pw")
    client = Client()
    client.force_login(root)
    client.post("/admin/ingestion/job/", {"action": "requeue", "_selected_action": [str(failed.pk)]})

    (entry,) = entries("admin_action")
    assert entry.target == "ingestion.job" and entry.object_ids == [str(failed.pk)]
    assert entry.filters == {"action": "requeue"}


def test_forget_logs_that_the_erasure_happened_without_the_person(shop, ana):
    call_command("forget", "--fingerprint", "fp-ana", stdout=io.StringIO())

    (entry,) = entries("forget")
    assert entry.filters == {"fingerprint": fingerprint_of("fp-ana")}
    assert entry.row_count == 1 and entry.actor == ""
    # A second erasure (and anything else) leaves the first entry in place.
    call_command("forget", "--email", EMAIL, stdout=io.StringIO())
    assert len(entries("forget")) == 2
    no_personal_data()


def test_reprocess_logs_its_arguments_with_the_fingerprint_hashed(shop, ana):
    failed = job("s-ana", shop, ana)
    type(failed).objects.filter(pk=failed.pk).update(fingerprint="fp-ana")
    call_command("reprocess", "--fingerprint", "fp-ana", "--dry-run", stdout=io.StringIO())

    (entry,) = entries("reprocess")
    assert entry.filters == {"fingerprint": fingerprint_of("fp-ana"), "dry_run": True}
    assert entry.row_count == 1
    no_personal_data()


def test_the_log_is_append_only():
    entry = AccessLogEntry.objects.create(action="export_csv")
    entry.row_count = 5
    with pytest.raises(ValueError):
        entry.save()
    with pytest.raises(ValueError):
        entry.delete()


def test_only_superusers_see_the_log_and_nobody_edits_it(shop):
    entry = AccessLogEntry.objects.create(action="export_csv", actor="lead")
    lead = login(["Sales lead"], [shop], "lead")
    assert lead.get("/admin/audit/accesslogentry/").status_code == 403

    root = get_user_model().objects.create_superuser("root", "root@example.test", "pw")
    client = Client()
    client.force_login(root)
    assert "export_csv" in client.get("/admin/audit/accesslogentry/").content.decode()
    assert client.get(f"/admin/audit/accesslogentry/{entry.pk}/change/").status_code == 200
    assert client.post(f"/admin/audit/accesslogentry/{entry.pk}/delete/").status_code == 403


def test_the_daily_cleanup_purges_entries_past_the_retention(settings):
    settings.NEXUS = {**settings.NEXUS, "ACCESS_LOG_RETENTION_DAYS": 30}
    AccessLogEntry.objects.create(action="export_csv", at=timezone.now() - timedelta(days=31))
    kept = AccessLogEntry.objects.create(action="export_csv", at=timezone.now() - timedelta(days=29))

    tasks.cleanup()

    assert list(AccessLogEntry.objects.values_list("pk", flat=True)) == [kept.pk]
    assert access_log_purge() == 0

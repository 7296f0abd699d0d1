"""Who may see what in the admin: staff see only their tenants' prospects, jobs and
extractions (list, page, CSV, actions); contacts are masked without prospects.view_contacts;
the CSV needs prospects.export_prospects; the "Sales" and "Sales lead" groups."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from ingestion.models import Extraction, Job, JobStatus
from prospects.masking import mask_email, mask_phone
from prospects.models import Prospect
from tenants.models import Tenant, TenantMembership
from tests.conftest import transcript

pytestmark = pytest.mark.django_db

LIST = "/admin/prospects/prospect/"


@pytest.fixture
def shops() -> tuple[Tenant, Tenant]:
    return Tenant.objects.create(slug="shop-a"), Tenant.objects.create(slug="shop-b")


def prospect(key: str, tenant: Tenant, **fields) -> Prospect:
    now = timezone.now()
    return Prospect.objects.create(key=key, tenant=tenant, first_seen_at=now, last_seen_at=now, **fields)


def job(session_id: str, tenant: Tenant, prospect: Prospect | None = None) -> Job:
    return Job.objects.create(
        session_id=session_id, tenant=tenant, transcript_hash=session_id, messages=transcript("Hola"),
        message_count=1, revised_at=timezone.now(), status=JobStatus.FAILED, prospect=prospect,
    )  # fmt: skip


def extraction(of: Job) -> Extraction:
    return Extraction.objects.create(
        job=of, prospect=of.prospect, revision=1, outcome="ok", extractor="offline"
    )


def login(groups: list[str], tenants: list[Tenant], name: str = "vendedor") -> Client:
    user = get_user_model().objects.create_user(name, password="pw", is_staff=True)
    user.groups.set(Group.objects.filter(name__in=groups))
    for tenant in tenants:
        TenantMembership.objects.create(user=user, tenant=tenant)
    client = Client()
    client.force_login(user)
    return client


def read_csv(response) -> list[dict[str, str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


@pytest.fixture
def world(shops):
    a, b = shops
    pa = prospect("fp:a", a, nombre="Ana Alfa", email="ana@example.test", telefono="+573001234567")
    pb = prospect("fp:b", b, nombre="Beto Beta", email="beto@example.test", telefono="+573009876543")
    ja, jb = job("s-a", a, pa), job("s-b", b, pb)
    return {
        "a": a,
        "b": b,
        "pa": pa,
        "pb": pb,
        "ja": ja,
        "jb": jb,
        "ea": extraction(ja),
        "eb": extraction(jb),
    }


def test_masks_keep_the_country_and_the_last_digits():
    assert mask_phone("+573001234567") == "+57 *** *** 4567"
    assert mask_email("juan@example.com") == "j***@example.com"
    assert mask_email("not-an-email") == "***"
    assert mask_phone(None) is None and mask_email("") == ""


def test_the_migration_makes_the_two_groups():
    sales = set(Group.objects.get(name="Sales").permissions.values_list("codename", flat=True))
    lead = set(Group.objects.get(name="Sales lead").permissions.values_list("codename", flat=True))
    assert sales == {"view_prospect", "change_prospect"}
    assert lead == {"view_prospect", "change_prospect", "view_contacts", "export_prospects"}


def test_a_user_sees_only_their_tenants_prospects_jobs_and_extractions(world):
    client = login(["Sales lead"], [world["a"]])
    body = client.get(LIST).content.decode()
    assert "Ana Alfa" in body and "Beto Beta" not in body
    # The tenant filter offers only the user's tenants.
    assert "shop-a" in body and "shop-b" not in body

    lead = get_user_model().objects.get(username="vendedor")
    lead.user_permissions.add(*_perms("ingestion", "view_job", "view_extraction"))
    jobs = client.get("/admin/ingestion/job/").content.decode()
    assert "s-a" in jobs and "s-b" not in jobs
    extractions = client.get("/admin/ingestion/extraction/").content.decode()
    assert "s-a" in extractions and "s-b" not in extractions


def _perms(app: str, *codenames: str):
    from django.contrib.auth.models import Permission

    return Permission.objects.filter(content_type__app_label=app, codename__in=codenames)


def test_another_tenants_ids_answer_404_on_every_page(world):
    client = login(["Sales lead"], [world["a"]])
    user = get_user_model().objects.get(username="vendedor")
    user.user_permissions.add(*_perms("ingestion", "view_job", "view_extraction"))

    assert client.get(f"{LIST}{world['pa'].pk}/change/").status_code == 200
    assert client.get(f"{LIST}{world['pb'].pk}/change/").status_code == 404
    assert client.get(f"{LIST}{world['pb'].pk}/history/").status_code == 404
    assert client.get(f"/admin/ingestion/job/{world['jb'].pk}/change/").status_code == 404
    assert client.get(f"/admin/ingestion/extraction/{world['eb'].pk}/change/").status_code == 404
    assert client.get(f"/admin/ingestion/job/{world['ja'].pk}/change/").status_code == 200


def test_the_csv_and_the_actions_hold_only_the_users_tenants(world):
    client = login(["Sales lead"], [world["a"]])

    rows = read_csv(client.get(f"{LIST}export.csv"))
    assert [r["nombre"] for r in rows] == ["Ana Alfa"]
    # Another tenant's id in the filter or the action's selection brings nothing of it.
    filtered = read_csv(client.get(f"{LIST}export.csv?tenant__id__exact={world['b'].pk}"))
    assert all(r["tenant"] == "shop-a" for r in filtered)
    picked = client.post(
        LIST, {"action": "export_selected_csv", "_selected_action": [world["pa"].pk, world["pb"].pk]}
    )
    assert [r["nombre"] for r in read_csv(picked)] == ["Ana Alfa"]

    only_b = client.post(LIST, {"action": "export_selected_csv", "_selected_action": [world["pb"].pk]})
    assert read_csv(only_b) == []


def test_a_staff_user_without_a_membership_sees_no_rows(world):
    client = login(["Sales lead"], [])
    body = client.get(LIST).content.decode()
    assert "Ana Alfa" not in body and "Beto Beta" not in body
    assert client.get(f"{LIST}{world['pa'].pk}/change/").status_code == 404


def test_a_user_of_two_tenants_sees_both(world):
    body = login(["Sales lead"], [world["a"], world["b"]]).get(LIST).content.decode()
    assert "Ana Alfa" in body and "Beto Beta" in body


def test_a_superuser_sees_every_tenant(world):
    user = get_user_model().objects.create_superuser("root", "root@example.test", "pw")
    client = Client()
    client.force_login(user)
    body = client.get(LIST).content.decode()
    assert "Ana Alfa" in body and "Beto Beta" in body
    assert "ana@example.test" in body


def test_sales_sees_contacts_masked_and_cannot_search_or_export_them(world):
    client = login(["Sales"], [world["a"]])

    body = client.get(LIST).content.decode()
    assert "Ana Alfa" in body
    assert "a***@example.test" in body and "+57 *** *** 4567" in body
    assert "ana@example.test" not in body and "3001234567" not in body

    page = client.get(f"{LIST}{world['pa'].pk}/change/").content.decode()
    assert "a***@example.test" in page and "+57 *** *** 4567" in page
    assert "ana@example.test" not in page and "3001234567" not in page

    # Searching by the e-mail does not tell the person is there.
    assert "Ana Alfa" not in client.get(LIST, {"q": "ana@example.test"}).content.decode()

    assert client.get(f"{LIST}export.csv").status_code == 403
    assert "export_selected_csv" not in body
    assert "Export CSV" not in body  # no link to a 403


def test_sales_lead_sees_contacts_and_exports_them(world):
    client = login(["Sales lead"], [world["a"]])
    body = client.get(LIST).content.decode()
    assert "ana@example.test" in body and "+573001234567" in body
    assert "export_selected_csv" in body
    assert "Export CSV (filtered list)" in body
    assert "Ana Alfa" in client.get(LIST, {"q": "ana@example.test"}).content.decode()

    rows = read_csv(client.get(f"{LIST}export.csv"))
    assert (
        rows[0]["email"] == "ana@example.test" and rows[0]["telefono"] == "'+573001234567"
    )  # CSV-injection guard


def test_export_without_contacts_leaves_them_out_of_the_csv(world):
    client = login(["Sales"], [world["a"]])
    user = get_user_model().objects.get(username="vendedor")
    user.user_permissions.add(*_perms("prospects", "export_prospects"))

    rows = read_csv(client.get(f"{LIST}export.csv"))
    assert [r["nombre"] for r in rows] == ["Ana Alfa"]
    assert "email" not in rows[0] and "telefono" not in rows[0]
    picked = client.post(LIST, {"action": "export_selected_csv", "_selected_action": [world["pa"].pk]})
    assert "email" not in read_csv(picked)[0]


def test_a_superuser_gives_a_user_a_tenant_on_the_users_page(shops):
    root = get_user_model().objects.create_superuser("root", "root@example.test", "pw")
    user = get_user_model().objects.create_user("vendedor", password="pw", is_staff=True)
    client = Client()
    client.force_login(root)
    page = client.get(f"/admin/auth/user/{user.pk}/change/")
    assert page.status_code == 200 and "tenant membership" in page.content.decode().lower()

    added = client.post("/admin/tenants/tenantmembership/add/", {"user": user.pk, "tenant": shops[0].pk})
    assert added.status_code == 302
    assert list(user.tenant_memberships.values_list("tenant__slug", flat=True)) == ["shop-a"]

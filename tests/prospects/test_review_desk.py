"""The review desk in the admin (issue 14 part 3): review status, owner, notes and
contacted_at on a prospect; the list's actions, filters and order; contact links and the
conversation by permission; every review change in the admin's history and the access log;
and the fold never touching what people set."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.utils import timezone

from audit.models import AccessLogEntry
from ingestion.models import Job, JobStatus
from ingestion.services import job_accept
from ingestion.worker import pipeline
from prospects.models import Prospect, ReviewStatus
from tenants.models import Tenant, TenantMembership
from tests.conftest import SEED_MESSAGES, transcript, wait_for
from tests.privacy.conftest import sales_groups  # noqa: F401 - autouse: the Sales groups

pytestmark = pytest.mark.django_db

LIST = "/admin/prospects/prospect/"
PHONE = "+573001234567"


def prospect(key: str, tenant: Tenant, *, ago: int = 0, **fields) -> Prospect:
    seen = timezone.now() - timedelta(minutes=ago)
    return Prospect.objects.create(key=key, tenant=tenant, first_seen_at=seen, last_seen_at=seen, **fields)


def staff(name: str, groups: list[str], tenants: list[Tenant]):
    user = get_user_model().objects.create_user(name, password="pw", is_staff=True)
    user.groups.set(Group.objects.filter(name__in=groups))
    for tenant in tenants:
        TenantMembership.objects.create(user=user, tenant=tenant)
    return user


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def shops() -> tuple[Tenant, Tenant]:
    return Tenant.objects.create(slug="shop-a"), Tenant.objects.create(slug="shop-b")


@pytest.fixture
def desk(shops):
    a, b = shops
    hot = prospect(
        "fp:hot", a, ago=30, nombre="Ana Caliente", email="ana@example.test", telefono=PHONE,
        nivel_interes=8, momento_optimo="caliente", constructor_id="dist-uno",
    )  # fmt: skip
    warm = prospect("fp:warm", a, ago=1, nombre="Beto Tibio", nivel_interes=9, momento_optimo="caliente")
    Prospect.objects.filter(pk=warm.pk).update(review_status=ReviewStatus.CONTACTADO)
    cold = prospect("fp:cold", a, ago=0, nombre="Carla Fria", nivel_interes=2, momento_optimo="frio")
    other = prospect(
        "fp:other",
        b,
        nombre="Dora Otra",
        email="dora@example.test",
        nivel_interes=9,
        momento_optimo="caliente",
    )
    sales = staff("vendedor", ["Sales"], [a])
    lead = staff("jefa", ["Sales lead"], [a])
    return {
        "a": a,
        "b": b,
        "hot": hot,
        "warm": warm,
        "cold": cold,
        "other": other,
        "sales": sales,
        "lead": lead,
    }


def act(client: Client, action: str, *ids: int):
    return client.post(LIST, {"action": action, "_selected_action": list(ids)}, follow=True)


def history(obj: Prospect) -> list[str]:
    entries = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(Prospect), object_id=str(obj.pk)
    ).order_by("action_time", "pk")
    return [entry.get_change_message() for entry in entries]


def audit(action: str) -> list[AccessLogEntry]:
    return list(AccessLogEntry.objects.filter(action=action).order_by("at", "pk"))


def test_a_new_prospect_is_nuevo_with_nobody_on_it(desk):
    hot = Prospect.objects.get(pk=desk["hot"].pk)
    assert (hot.review_status, hot.owner, hot.notes, hot.contacted_at) == ("nuevo", None, "", None)


def test_assign_to_me_then_mark_contacted_then_discard(desk):
    client = client_for(desk["sales"])
    hot, cold = desk["hot"], desk["cold"]

    page = act(client, "assign_to_me", hot.pk, cold.pk).content.decode()
    assert "2 prospect(s) assigned to you." in page
    assert set(Prospect.objects.filter(owner=desk["sales"]).values_list("pk", flat=True)) == {hot.pk, cold.pk}

    before = timezone.now()
    page = act(client, "mark_contacted", hot.pk).content.decode()
    assert "1 prospect(s) marked contacted." in page
    hot.refresh_from_db()
    assert hot.review_status == ReviewStatus.CONTACTADO
    assert hot.contacted_at is not None and abs(hot.contacted_at - before) < timedelta(seconds=30)

    act(client, "discard", cold.pk)
    assert Prospect.objects.get(pk=cold.pk).review_status == ReviewStatus.DESCARTADO

    assert history(hot) == ["Changed Owner.", "Changed Review status and Contacted at."]
    assert history(cold) == ["Changed Owner.", "Changed Review status."]
    owners = audit("owner_changed")
    assert len(owners) == 1 and set(owners[0].object_ids) == {str(hot.pk), str(cold.pk)}
    assert owners[0].actor == "vendedor" and owners[0].filters == {"owner_id": desk["sales"].pk}
    statuses = audit("review_status_changed")
    assert [(e.object_ids, e.filters["review_status"]) for e in statuses] == [
        ([str(hot.pk)], "contactado"),
        ([str(cold.pk)], "descartado"),
    ]
    # No personal data in the access log.
    logged = json.dumps([[e.object_ids, e.filters] for e in AccessLogEntry.objects.all()])
    assert "Ana" not in logged and "ana@example.test" not in logged and "3001234567" not in logged


def test_an_action_on_rows_already_there_changes_and_logs_nothing(desk):
    client = client_for(desk["sales"])
    page = act(client, "mark_contacted", desk["warm"].pk).content.decode()
    assert "0 prospect(s) marked contacted." in page
    assert history(desk["warm"]) == [] and audit("review_status_changed") == []


def test_actions_on_another_tenants_ids_change_nothing(desk):
    client = client_for(desk["sales"])
    other = desk["other"]

    for action in ("assign_to_me", "mark_contacted", "discard"):
        act(client, action, other.pk, desk["hot"].pk)

    other.refresh_from_db()
    assert (other.review_status, other.owner_id, other.contacted_at) == ("nuevo", None, None)
    assert history(other) == []
    assert all(str(other.pk) not in e.object_ids for e in AccessLogEntry.objects.all())
    assert Prospect.objects.get(pk=desk["hot"].pk).review_status == ReviewStatus.DESCARTADO


def test_a_user_without_change_permission_has_no_review_actions(desk):
    viewer = staff("mirón", [], [desk["a"]])
    viewer.user_permissions.add(*_perms("view_prospect"))
    client = client_for(viewer)
    body = client.get(LIST).content.decode()
    assert "assign_to_me" not in body
    act(client, "assign_to_me", desk["hot"].pk)
    assert Prospect.objects.get(pk=desk["hot"].pk).owner_id is None


def _perms(*codenames: str):
    from django.contrib.auth.models import Permission

    return Permission.objects.filter(content_type__app_label="prospects", codename__in=codenames)


def names(body: str, *candidates: str) -> list[str]:
    """The candidates in the order the page shows them (absent ones left out)."""
    found = [name for name in candidates if name in body]
    return sorted(found, key=body.index)


ALL = ("Ana Caliente", "Beto Tibio", "Carla Fria", "Dora Otra")


def test_uncontacted_hot_leads_come_first(desk):
    body = client_for(desk["sales"]).get(LIST).content.decode()
    # Beto is hotter and more recent, but already contacted.
    assert names(body, *ALL) == ["Ana Caliente", "Beto Tibio", "Carla Fria"]


def test_filters_mine_hot_tenant_and_referrer(desk):
    client = client_for(desk["sales"])
    act(client, "assign_to_me", desk["cold"].pk)

    assert names(client.get(LIST, {"mine": "yes"}).content.decode(), *ALL) == ["Carla Fria"]
    assert names(client.get(LIST, {"mine": "nobody"}).content.decode(), *ALL) == [
        "Ana Caliente",
        "Beto Tibio",
    ]
    assert names(client.get(LIST, {"hot": "yes"}).content.decode(), *ALL) == ["Ana Caliente"]
    tenant = client.get(LIST, {"tenant__id__exact": desk["a"].pk}).content.decode()
    assert names(tenant, *ALL) == ["Ana Caliente", "Beto Tibio", "Carla Fria"]
    referred = client.get(LIST, {"constructor_id": "dist-uno"}).content.decode()
    assert names(referred, *ALL) == ["Ana Caliente"]
    assert "?constructor_id=dist-uno" in referred  # the filter offers the referrer by name

    root = get_user_model().objects.create_superuser("root", "root@example.test", "pw")
    by_tenant = client_for(root).get(LIST, {"tenant__id__exact": desk["b"].pk}).content.decode()
    assert names(by_tenant, *ALL) == ["Dora Otra"]


def test_contact_links_only_with_the_contacts_permission(desk):
    hot = desk["hot"]
    links = (
        'href="https://wa.me/573001234567"',
        'href="tel:+573001234567"',
        'href="mailto:ana@example.test"',
    )

    for url in (LIST, f"{LIST}{hot.pk}/change/"):
        lead_body = client_for(desk["lead"]).get(url).content.decode()
        assert all(link in lead_body for link in links), url

        sales_body = client_for(desk["sales"]).get(url).content.decode()
        assert not any(link in sales_body for link in links), url
        assert "wa.me" not in sales_body and "mailto:" not in sales_body and "tel:" not in sales_body
        assert "+57 *** *** 4567" in sales_body and "a***@example.test" in sales_body
        assert "3001234567" not in sales_body


def test_everything_shown_is_escaped(desk):
    evil = prospect(
        "fp:evil", desk["a"], nombre="<b>Eva</b>", email='e"><script>x</script>@example.test',
        telefono="+573005550000",
    )  # fmt: skip
    job = _job("s-evil", evil, transcript("<script>alert(1)</script>", "<img src=x onerror=y>"))
    client = client_for(desk["lead"])
    for url in (LIST, f"{LIST}{evil.pk}/change/"):
        body = client.get(url).content.decode()
        assert "<script>x</script>" not in body and "<b>Eva</b>" not in body
        assert "&lt;b&gt;Eva&lt;/b&gt;" in body
    page = client.get(f"{LIST}{evil.pk}/change/").content.decode()
    assert "<script>alert(1)</script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert job.session_id in page


def _job(session_id: str, of: Prospect, messages, *, purged: bool = False) -> Job:
    return Job.objects.create(
        session_id=session_id, tenant=of.tenant, transcript_hash=session_id, messages=messages,
        message_count=len(messages), revised_at=timezone.now(), status=JobStatus.COMPLETED,
        prospect=of, purged_at=timezone.now() if purged else None,
    )  # fmt: skip


def test_the_conversation_is_shown_with_the_contacts_permission_only(desk):
    hot = desk["hot"]
    _job("s-live", hot, transcript("Me interesa invertir", "¡Genial! ¿Cuándo te llamo?"))
    _job("s-old", hot, [], purged=True)
    page = f"{LIST}{hot.pk}/change/"

    lead_page = client_for(desk["lead"]).get(page).content.decode()
    assert "<strong>user</strong>: Me interesa invertir" in lead_page
    assert "<strong>assistant</strong>: ¡Genial! ¿Cuándo te llamo?" in lead_page
    assert "s-live" in lead_page and "<h4>s-old" not in lead_page  # a purged transcript is gone
    # The page's view is audited as a contacts view.
    views = audit("view_contacts")
    assert [(e.actor, e.object_ids) for e in views] == [("jefa", [str(hot.pk)])]

    sales_page = client_for(desk["sales"]).get(page).content.decode()
    assert "Me interesa invertir" not in sales_page
    assert "hidden: needs the permission to see contacts" in sales_page


def _inline_management(response) -> dict[str, str]:
    """The inlines' management forms as the page rendered them (a browser posts them back)."""
    data: dict[str, str] = {}
    for inline in response.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        for name, field in management.fields.items():
            data[f"{management.prefix}-{name}"] = str(management.initial.get(name, field.initial or 0))
    return data


def test_editing_status_owner_and_notes_on_the_page_is_kept_in_history_and_audit(desk):
    hot = desk["hot"]
    client = client_for(desk["sales"])
    page = f"{LIST}{hot.pk}/change/"
    form = client.get(page)
    owners = form.context["adminform"].form.fields["owner"].queryset
    # The owner list names the tenant's staff only.
    assert {u.username for u in owners} == {"vendedor", "jefa"}
    staff("ajeno", ["Sales"], [desk["b"]])
    response = client.post(
        page,
        {
            **_inline_management(form),
            "review_status": "contactado",
            "owner": desk["sales"].pk,
            "notes": "Llamar el lunes a Ana",
            "nombre": "Cambiado",  # read-only: ignored
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]

    hot.refresh_from_db()
    assert (hot.review_status, hot.owner_id, hot.notes) == (
        "contactado",
        desk["sales"].pk,
        "Llamar el lunes a Ana",
    )
    assert hot.contacted_at is not None and hot.nombre == "Ana Caliente"
    assert history(hot) == ["Changed Review status, Owner and Notes."]
    assert [e.filters for e in audit("review_status_changed")] == [{"review_status": "contactado"}]
    assert [e.filters for e in audit("owner_changed")] == [{"owner_id": desk["sales"].pk}]
    assert "Llamar" not in json.dumps([e.filters for e in AccessLogEntry.objects.all()])

    # Another tenant's staff cannot be made the owner.
    ajeno = get_user_model().objects.get(username="ajeno")
    refused = client.post(page, {**_inline_management(form), "review_status": "nuevo", "owner": ajeno.pk})
    assert refused.status_code == 200 and Prospect.objects.get(pk=hot.pk).owner_id == desk["sales"].pk


@pytest.mark.django_db(transaction=True)
def test_a_re_extraction_keeps_the_review_fields(desk):
    first = job_accept(session_id="s-fold", fingerprint="fp-fold", messages=SEED_MESSAGES, metadata={}).job_id
    if pipeline.job_process(job_id=first) != "completed":
        wait_for(lambda: Job.objects.filter(id=first, status=JobStatus.COMPLETED).exists())
    folded = Prospect.objects.get(jobs__id=first)
    assert folded.nombre == "Juan Pérez"
    Prospect.objects.filter(pk=folded.pk).update(
        review_status=ReviewStatus.EN_SEGUIMIENTO, owner=desk["lead"], notes="Prefiere la tarde",
        contacted_at=timezone.now(),
    )  # fmt: skip

    more = [*SEED_MESSAGES, *transcript("Mi correo es juan.perez@example.test")]
    again = job_accept(session_id="s-fold", fingerprint="fp-fold", messages=more, metadata={}).job_id
    assert again == first
    if pipeline.job_process(job_id=again) != "completed":
        wait_for(lambda: Job.objects.filter(id=again, status=JobStatus.COMPLETED, revision=2).exists())
    wait_for(lambda: Prospect.objects.get(pk=folded.pk).email == "juan.perez@example.test")

    after = Prospect.objects.get(pk=folded.pk)
    assert after.review_status == ReviewStatus.EN_SEGUIMIENTO
    assert after.owner_id == desk["lead"].pk and after.notes == "Prefiere la tarde"
    assert after.contacted_at is not None

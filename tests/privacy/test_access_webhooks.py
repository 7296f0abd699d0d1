"""Tenant scoping of the events, webhook endpoints and deliveries admins: a staff user sees
and acts on their tenants' rows only; an endpoint of no tenant (global) only a superuser."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from prospects.models import Delivery, Event, WebhookEndpoint
from tests.privacy.test_access import login, prospect, shops  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db

EVENTS = "/admin/prospects/event/"
ENDPOINTS = "/admin/prospects/webhookendpoint/"
DELIVERIES = "/admin/prospects/delivery/"


def grant(*codenames: str) -> None:
    user = get_user_model().objects.get(username="vendedor")
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="prospects", codename__in=codenames)
    )


@pytest.fixture
def hooks(shops):  # noqa: F811
    a, b = shops
    rows: dict[str, dict[str, Any]] = {}
    for name, tenant in (("a", a), ("b", b)):
        p = prospect(f"fp:{name}", tenant, nombre=f"Persona {name}", telefono="+573001234567")
        event = Event.objects.create(
            tenant=tenant, prospect=p, sequence=1, type="prospect.created",
            payload={"changes": {"telefono": {"old": None, "new": "+573001234567"}}},
        )  # fmt: skip
        endpoint = WebhookEndpoint.objects.create(
            url=f"https://crm-{name}.example.test/hook", tenant=tenant, secret="s"
        )
        rows[name] = {
            "event": event,
            "endpoint": endpoint,
            "delivery": Delivery.objects.create(event=event, endpoint=endpoint),
        }
    glob = WebhookEndpoint.objects.create(url="https://global.example.test/hook", secret="s")
    rows["global"] = {
        "endpoint": glob,
        "delivery": Delivery.objects.create(event=rows["a"]["event"], endpoint=glob),
    }
    return a, b, rows


def test_lists_hold_only_the_users_tenants_and_no_global_endpoint(hooks):
    a, _, rows = hooks
    client = login([], [a])
    grant("view_event", "view_webhookendpoint", "view_delivery")
    endpoints = client.get(ENDPOINTS).content.decode()
    assert "crm-a.example.test" in endpoints
    assert "crm-b.example.test" not in endpoints and "global.example.test" not in endpoints
    deliveries = client.get(DELIVERIES).content.decode()
    assert f"evt_{rows['a']['event'].pk}" in deliveries and f"evt_{rows['b']['event'].pk}" not in deliveries
    assert "global.example.test" not in deliveries  # nor in the endpoint filter
    events = client.get(EVENTS).content.decode()
    assert "Persona a" in events and "Persona b" not in events


def test_another_tenants_or_a_global_id_answers_404(hooks):
    a, _, rows = hooks
    client = login([], [a])
    grant("view_event", "view_webhookendpoint", "change_webhookendpoint", "view_delivery")
    assert client.get(f"{ENDPOINTS}{rows['a']['endpoint'].pk}/change/").status_code == 200
    for url in (
        f"{ENDPOINTS}{rows['b']['endpoint'].pk}/change/",
        f"{ENDPOINTS}{rows['global']['endpoint'].pk}/change/",
        f"{DELIVERIES}{rows['b']['delivery'].pk}/change/",
        f"{DELIVERIES}{rows['global']['delivery'].pk}/change/",
        f"{EVENTS}{rows['b']['event'].pk}/change/",
    ):
        assert client.get(url).status_code == 404, url


def test_actions_on_another_tenants_ids_do_nothing(hooks):
    a, _, rows = hooks
    client = login([], [a])
    grant("view_webhookendpoint", "change_webhookendpoint", "view_delivery", "change_delivery")
    picked = [rows[n]["endpoint"].pk for n in ("a", "b", "global")]
    client.post(ENDPOINTS, {"action": "disable", "_selected_action": picked})
    active = dict(WebhookEndpoint.objects.values_list("url", "active"))
    assert active == {
        "https://crm-a.example.test/hook": False,
        "https://crm-b.example.test/hook": True,
        "https://global.example.test/hook": True,
    }
    Delivery.objects.update(status="failed", attempts=3)
    picked = [rows[n]["delivery"].pk for n in ("a", "b", "global")]
    client.post(DELIVERIES, {"action": "redeliver", "_selected_action": picked})
    assert dict(Delivery.objects.values_list("pk", "attempts")) == {
        rows["a"]["delivery"].pk: 0, rows["b"]["delivery"].pk: 3, rows["global"]["delivery"].pk: 3,
    }  # fmt: skip


def test_a_staff_user_adds_endpoints_only_for_their_tenants(hooks):
    a, b, _ = hooks
    client = login([], [a])
    grant("view_webhookendpoint", "add_webhookendpoint")
    form = client.get(f"{ENDPOINTS}add/").content.decode()
    assert "shop-a" in form and "shop-b" not in form
    base = {
        "url": "https://new.example.test/hook",
        "events": "[]",
        "secret": "whsec_dGVzdA==",
        "active": "on",
    }
    assert client.post(f"{ENDPOINTS}add/", {**base, "tenant": ""}).status_code == 200  # refused: no global
    assert client.post(f"{ENDPOINTS}add/", {**base, "tenant": b.pk}).status_code == 200  # refused
    assert not WebhookEndpoint.objects.filter(url=base["url"]).exists()
    assert client.post(f"{ENDPOINTS}add/", {**base, "tenant": a.pk}).status_code == 302
    assert WebhookEndpoint.objects.get(url=base["url"]).tenant == a


def test_the_event_payload_masks_contacts_without_view_contacts(hooks):
    a, _, rows = hooks
    client = login([], [a])
    grant("view_event")
    page = client.get(f"{EVENTS}{rows['a']['event'].pk}/change/").content.decode()
    assert "+57 *** *** 4567" in page and "+573001234567" not in page
    grant("view_contacts")
    fresh = Client()  # the user's permissions, read again
    fresh.force_login(get_user_model().objects.get(username="vendedor"))
    clear = fresh.get(f"{EVENTS}{rows['a']['event'].pk}/change/").content.decode()
    assert "+573001234567" in clear


def test_a_superuser_sees_the_global_endpoint(hooks):
    _, _, rows = hooks
    boss = get_user_model().objects.create_superuser("jefa", "jefa@example.test", "pw")
    client = Client()
    client.force_login(boss)
    assert "global.example.test" in client.get(ENDPOINTS).content.decode()
    assert client.get(f"{DELIVERIES}{rows['global']['delivery'].pk}/change/").status_code == 200

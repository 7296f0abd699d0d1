"""``manage.py tenant_key``: a key printed once (the last line), stored as its SHA-256 only,
listed without secrets, revoked by id (and in the admin); its lookup is one indexed query."""

from __future__ import annotations

import hashlib
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from tenants import directory
from tenants.models import Tenant, TenantKey

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("tenant_key", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def whatsapp() -> Tenant:
    return Tenant.objects.create(slug="whatsapp")


def test_create_prints_the_key_once_on_its_last_line_and_stores_only_its_hash(whatsapp):
    out = run("create", "whatsapp", "--label", "webhook")
    key = out.strip().splitlines()[-1]

    row = TenantKey.objects.get()
    assert key.startswith("nxk_") and len(key) >= 40
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert (row.tenant, row.label, row.prefix) == (whatsapp, "webhook", key[:12])
    assert key not in str(list(TenantKey.objects.values()))
    assert key not in run("list")


def test_two_keys_are_different(whatsapp):
    first = run("create", "whatsapp").strip().splitlines()[-1]
    second = run("create", "whatsapp").strip().splitlines()[-1]

    assert first != second


def test_create_for_an_unknown_tenant_fails_with_a_message():
    with pytest.raises(CommandError, match="no tenant 'nope'"):
        run("create", "nope")


def test_list_shows_each_key_its_tenant_and_state(whatsapp):
    Tenant.objects.create(slug="ecommerce")
    run("create", "whatsapp", "--label", "webhook")
    run("create", "ecommerce")
    revoked = TenantKey.objects.get(tenant__slug="ecommerce")
    run("revoke", str(revoked.id))

    everything = run("list")
    only_whatsapp = run("list", "--tenant", "whatsapp")

    assert "whatsapp" in everything and "ecommerce" in everything and "revoked" in everything
    assert "ecommerce" not in only_whatsapp and "live" in only_whatsapp and "webhook" in only_whatsapp


def test_revoke_stops_the_key_and_an_unknown_id_fails(whatsapp):
    key = run("create", "whatsapp").strip().splitlines()[-1]
    assert directory.key_lookup(key) is not None
    key_id = TenantKey.objects.get().id

    assert "Revoked key" in run("revoke", str(key_id))
    assert directory.key_lookup(key) is None
    with pytest.raises(CommandError, match="no live key"):
        run("revoke", str(key_id))


def test_a_key_lookup_is_one_query_then_none_while_cached(whatsapp, django_assert_num_queries):
    key = run("create", "whatsapp").strip().splitlines()[-1]
    directory.forget()
    directory.default_tenant()  # the tenants snapshot is read on its own schedule

    with django_assert_num_queries(1):
        first = directory.key_lookup(key)
    with django_assert_num_queries(0):
        again = directory.key_lookup(key)
    assert first == again and first is not None and first.tenant_id == whatsapp.id


def test_the_admin_lists_and_revokes_keys(whatsapp, client):
    client.force_login(get_user_model().objects.create_superuser("ops", "ops@example.test", "pw"))
    run("create", "whatsapp", "--label", "webhook")
    key = TenantKey.objects.get()

    listing = client.get("/admin/tenants/tenantkey/")
    client.post("/admin/tenants/tenantkey/", {"action": "revoke", "_selected_action": [key.id]})

    assert listing.status_code == 200 and key.prefix in listing.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_the_admin_edits_a_tenant_s_domains(client):
    client.force_login(get_user_model().objects.create_superuser("ops", "ops@example.test", "pw"))
    Tenant.objects.create(slug="main", domains=["creatuactivo.example"])

    added = client.post(
        "/admin/tenants/tenant/add/",
        {"slug": "ecommerce", "name": "Shop", "domains": "Shop.example, tienda.example", "active": "on",
         "keys-TOTAL_FORMS": "0", "keys-INITIAL_FORMS": "0"},
    )  # fmt: skip
    clash = client.post(
        "/admin/tenants/tenant/add/",
        {
            "slug": "other",
            "domains": "creatuactivo.example",
            "keys-TOTAL_FORMS": "0",
            "keys-INITIAL_FORMS": "0",
        },
    )

    assert added.status_code == 302, added.content.decode()[:2000]
    assert Tenant.objects.get(slug="ecommerce").domains == ["shop.example", "tienda.example"]
    assert clash.status_code == 200 and "Already another tenant" in clash.content.decode()
    assert directory.by_domain("tienda.example").slug == "ecommerce"

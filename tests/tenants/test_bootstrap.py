"""NEXUS_TENANTS at migrate: tenants created or updated, never deleted, the default always
there; a malformed value stops the process naming the variable and what is wrong."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from nexus_project.env import env_tenants
from tenants import directory
from tenants.models import Tenant
from tenants.services import tenants_bootstrap
from tests.nexus_project.test_settings import manage, production_env

pytestmark = pytest.mark.django_db


def parse(monkeypatch, value: str) -> dict[str, list[str]]:
    monkeypatch.setenv("NEXUS_TENANTS", value)
    return env_tenants("NEXUS_TENANTS")


def test_the_format_reads_slugs_domains_and_domainless_tenants(monkeypatch):
    parsed = parse(
        monkeypatch,
        " creatuactivo_marketing=creatuactivo.com, www.creatuactivo.com ; ecommerce=Shop.Example;whatsapp=;",
    )

    assert parsed == {
        "creatuactivo_marketing": ["creatuactivo.com", "www.creatuactivo.com"],
        "ecommerce": ["shop.example"],
        "whatsapp": [],
    }


def test_unset_means_no_configured_tenants(monkeypatch):
    monkeypatch.delenv("NEXUS_TENANTS", raising=False)

    assert env_tenants("NEXUS_TENANTS") == {}


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("ecommerce", "is not slug=domain1,domain2"),
        ("Ecommerce=shop.example", "is not slug=domain1,domain2"),
        ("=shop.example", "is not slug=domain1,domain2"),
        ("ecommerce=https://shop.example", "is not a domain"),
        ("ecommerce=shop.example:8443", "is not a domain"),
        ("ecommerce=shop.example/path", "is not a domain"),
        ("a=shop.example;b=shop.example", "is in both 'a' and 'b'"),
        ("a=x.example;a=y.example", "listed twice"),
    ],
)
def test_a_malformed_value_fails_loudly(monkeypatch, value, says):
    with pytest.raises(ImproperlyConfigured, match="NEXUS_TENANTS") as error:
        parse(monkeypatch, value)

    assert says in str(error.value)


def test_a_malformed_value_stops_manage_py_with_the_message():
    result = manage("check", env=production_env(NEXUS_TENANTS="ecommerce=https://shop.example"))

    assert result.returncode != 0
    assert "NEXUS_TENANTS" in result.stderr and "is not a domain" in result.stderr


def test_migrate_made_the_default_tenant():
    assert Tenant.objects.filter(slug="default").exists()
    assert directory.default_tenant().slug == "default"


def test_bootstrap_creates_then_updates_and_never_deletes():
    tenants_bootstrap(configured={"ecommerce": ["shop.example"], "whatsapp": []})
    shop = Tenant.objects.get(slug="ecommerce")
    shop.name = "La tienda"
    shop.active = False
    shop.save()

    tenants_bootstrap(configured={"ecommerce": ["shop.example", "tienda.example"]})

    shop.refresh_from_db()
    assert shop.domains == ["shop.example", "tienda.example"]
    assert (shop.name, shop.active) == ("La tienda", False)  # the admin's choices stay
    assert Tenant.objects.filter(slug="whatsapp", domains=[]).exists()  # not listed: kept
    assert Tenant.objects.filter(slug="default").exists()


def test_bootstrap_refuses_a_domain_another_tenant_holds():
    Tenant.objects.create(slug="main", domains=["shop.example"])

    with pytest.raises(
        ImproperlyConfigured, match=r"'shop\.example' of tenant 'ecommerce' already belongs to tenant 'main'"
    ):
        tenants_bootstrap(configured={"ecommerce": ["shop.example"]})


def test_the_default_tenant_is_created_under_its_configured_name(settings):
    settings.NEXUS_DEFAULT_TENANT = "creatuactivo_marketing"

    tenants_bootstrap(configured={})

    assert directory.default_tenant().slug == "creatuactivo_marketing"


def test_a_default_tenant_lost_to_a_flush_comes_back_on_first_use(settings):
    settings.NEXUS_DEFAULT_TENANT = "brand-new"

    assert directory.default_tenant().slug == "brand-new"
    assert Tenant.objects.filter(slug="brand-new").exists()

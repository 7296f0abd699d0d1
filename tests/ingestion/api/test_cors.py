"""CORS for the tenants' domains beside CORS_ALLOWED_ORIGINS, through django-cors-headers: a
real preflight from a tenant domain passes and one from elsewhere does not; the page may read
Retry-After and the ids; a domain added later is allowed without a restart."""

from __future__ import annotations

import pytest

from ingestion.models import Job
from tenants.models import Tenant
from tests.conftest import producer_body

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/nexus/producer"
SHOP = "https://shop.example"


@pytest.fixture
def shop():
    return Tenant.objects.create(slug="ecommerce", domains=["shop.example"])


def preflight(api, origin: str, headers: str = "content-type,x-tenant-id"):
    return api.options(
        URL,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS=headers,
    )


def listed(value: str) -> set[str]:
    return {item.strip().lower() for item in value.split(",")}


def test_a_preflight_from_a_tenant_domain_passes(api, shop):
    response = preflight(api, SHOP)

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == SHOP
    assert {"content-type", "x-request-id", "x-tenant-id", "authorization"} <= listed(
        response["Access-Control-Allow-Headers"]
    )
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Credentials" not in response


def test_a_preflight_from_an_unknown_origin_does_not_pass(api, shop):
    response = preflight(api, "https://evil.example")

    assert "Access-Control-Allow-Origin" not in response
    assert "Access-Control-Allow-Headers" not in response


def test_a_tenant_domain_over_http_does_not_pass(api, shop):
    assert "Access-Control-Allow-Origin" not in preflight(api, "http://shop.example")


def test_a_cross_origin_post_exposes_retry_after_and_the_ids(api, shop):
    response = api.post(URL, producer_body(), format="json", HTTP_ORIGIN=SHOP, HTTP_X_TENANT_ID="ecommerce")

    assert response.status_code == 202
    assert response["Access-Control-Allow-Origin"] == SHOP
    assert {"retry-after", "x-queue-id", "x-message-id", "location"} <= listed(
        response["Access-Control-Expose-Headers"]
    )
    assert Job.objects.get().tenant == shop


def test_cors_allowed_origins_still_pass_beside_the_tenants(api, shop, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://partner.example"]

    assert (
        preflight(api, "https://partner.example")["Access-Control-Allow-Origin"] == "https://partner.example"
    )
    assert preflight(api, SHOP)["Access-Control-Allow-Origin"] == SHOP


def test_the_admin_never_gets_cors_headers_for_a_tenant_domain(api, shop):
    assert "Access-Control-Allow-Origin" not in api.get("/admin/login/", HTTP_ORIGIN=SHOP)


def test_a_domain_another_process_added_is_allowed_once_the_cache_expires(api, shop, settings):
    """No restart: the tenants are read again every NEXUS_TENANT_CACHE_SECONDS. The UPDATE
    sends no signal, as a write from another process (the admin's) would not reach this one."""
    assert "Access-Control-Allow-Origin" not in preflight(api, "https://tienda.example")  # cached now
    Tenant.objects.filter(id=shop.id).update(domains=["shop.example", "tienda.example"])

    still_cached = preflight(api, "https://tienda.example")
    settings.NEXUS_TENANT_CACHE_SECONDS = 0  # as if the cache time had passed
    read_again = preflight(api, "https://tienda.example")

    assert "Access-Control-Allow-Origin" not in still_cached
    assert read_again["Access-Control-Allow-Origin"] == "https://tienda.example"


def test_a_domain_added_in_this_process_is_allowed_at_once(api, shop):
    assert "Access-Control-Allow-Origin" not in preflight(api, "https://tienda.example")
    shop.domains = ["shop.example", "tienda.example"]
    shop.save()

    assert preflight(api, "https://tienda.example")["Access-Control-Allow-Origin"] == "https://tienda.example"

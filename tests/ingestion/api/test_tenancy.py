"""A producer request's tenant: from its Origin (else Referer) among the tenants' domains, an
X-Tenant-Id that must agree, the default tenant without either; refusals in the house's JSON
shape, with nothing recorded. The real site's bodies (REAL_SITE.md) land where they belong."""

from __future__ import annotations

import pytest

from ingestion.models import Job
from tenants.models import Tenant
from tests.conftest import producer_body

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/nexus/producer"
SHOP = "https://shop.example"

# REAL_SITE.md's bodies, with invented content.
SHOP_BODY = {
    "messages": [{"role": "user", "content": "¿Cuánto cuesta el Ganocafé 3 en 1?"}],
    "fingerprint": "gc-k2j3h4g5lxyz12",
    "sessionId": "gc-k2j3h4g5lxyz12",
}
WHATSAPP_BODY = {
    "messages": [
        {"role": "user", "content": "Me interesa iniciar. Mi nombre es Rosa Díaz para la ciudad de Cali"}
    ],
    "sessionId": "wa_573001234567",
    "fingerprint": "wa_573001234567",
}


@pytest.fixture
def tenants():
    Tenant.objects.create(
        slug="creatuactivo_marketing", domains=["creatuactivo.example", "www.creatuactivo.example"]
    )
    Tenant.objects.create(slug="ecommerce", domains=["shop.example"])
    Tenant.objects.create(slug="whatsapp", domains=[])


def post(api, body=None, **headers):
    body = body or producer_body()
    response = api.post(URL, body, format="json", **headers)
    response.sent_session = body["sessionId"]
    return response


def tenant_of(response) -> str:
    assert response.status_code == 202, response.content
    return Job.objects.get(id=response.json()["queueId"]).tenant.slug


def refused(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] == code and body["message"]
    assert not Job.objects.filter(session_id=response.sent_session).exists()  # nothing recorded
    return body


def test_the_shop_widget_lands_in_its_tenant(api, tenants):
    response = post(api, SHOP_BODY, HTTP_ORIGIN=SHOP, HTTP_X_TENANT_ID="ecommerce")

    assert tenant_of(response) == "ecommerce"
    assert response["Access-Control-Allow-Origin"] == SHOP


def test_the_whatsapp_webhook_lands_in_its_tenant_without_an_origin(api, tenants):
    response = post(api, WHATSAPP_BODY, HTTP_X_TENANT_ID="whatsapp")

    assert tenant_of(response) == "whatsapp"


def test_the_main_site_widget_is_its_domain_s_tenant_without_a_header(api, tenants):
    assert tenant_of(post(api, HTTP_ORIGIN="https://www.creatuactivo.example")) == "creatuactivo_marketing"


def test_no_origin_and_no_header_is_the_default_tenant(api, tenants):
    assert tenant_of(post(api)) == "default"


def test_an_x_tenant_id_against_the_origin_is_403_tenant_mismatch(api, tenants):
    body = refused(
        post(api, SHOP_BODY, HTTP_ORIGIN=SHOP, HTTP_X_TENANT_ID="whatsapp"), 403, "tenant_mismatch"
    )

    assert body["field"] == "X-Tenant-Id"


def test_an_x_tenant_id_naming_no_tenant_is_400_unknown_tenant(api, tenants):
    body = refused(post(api, HTTP_X_TENANT_ID="nope"), 400, "unknown_tenant")

    assert body["field"] == "X-Tenant-Id"
    refused(post(api, HTTP_X_TENANT_ID="<script>"), 400, "unknown_tenant")


def test_an_unknown_x_tenant_id_from_a_tenant_origin_is_a_mismatch(api, tenants):
    refused(post(api, HTTP_ORIGIN=SHOP, HTTP_X_TENANT_ID="nope"), 403, "tenant_mismatch")


def test_an_unknown_origin_is_403_origin_not_allowed(api, tenants):
    body = refused(
        post(api, HTTP_ORIGIN="https://evil.example", HTTP_X_TENANT_ID="ecommerce"), 403, "origin_not_allowed"
    )

    assert body["field"] == "Origin"
    assert "Access-Control-Allow-Origin" not in post(api, HTTP_ORIGIN="https://evil.example")


def test_an_origin_allowed_only_by_cors_allowed_origins_is_the_default_tenant(api, tenants, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://partner.example"]

    assert tenant_of(post(api, HTTP_ORIGIN="https://partner.example")) == "default"
    refused(
        post(api, HTTP_ORIGIN="https://partner.example", HTTP_X_TENANT_ID="ecommerce"), 403, "tenant_mismatch"
    )


def test_a_tenant_domain_over_plain_http_is_not_that_tenant(api, tenants):
    refused(post(api, HTTP_ORIGIN="http://shop.example"), 403, "origin_not_allowed")


def test_localhost_over_http_is_a_tenant_domain_in_development_only(api, settings):
    Tenant.objects.create(slug="dev", domains=["localhost"])

    assert tenant_of(post(api, HTTP_ORIGIN="http://localhost:3000")) == "dev"
    Job.objects.all().delete()
    settings.PRODUCTION = True
    refused(post(api, HTTP_ORIGIN="http://localhost:3000"), 403, "origin_not_allowed")


def test_the_service_s_own_origin_is_like_no_origin(api, tenants):
    # The API docs page posting to its own server ("Try it out").
    assert tenant_of(post(api, HTTP_ORIGIN="http://testserver", HTTP_X_TENANT_ID="whatsapp")) == "whatsapp"


def test_without_origin_a_tenant_referer_gives_the_tenant_and_another_is_ignored(api, tenants):
    assert tenant_of(post(api, HTTP_REFERER="https://shop.example/catalogo")) == "ecommerce"
    assert tenant_of(post(api, HTTP_REFERER="https://elsewhere.example/page")) == "default"
    refused_body = post(api, HTTP_REFERER="https://shop.example/", HTTP_X_TENANT_ID="whatsapp")
    assert refused_body.status_code == 403 and refused_body.json()["error"] == "tenant_mismatch"


def test_an_inactive_tenant_s_requests_are_403_and_nothing_is_recorded(api, tenants):
    Tenant.objects.filter(slug="ecommerce").update(active=False)

    refused(post(api, SHOP_BODY, HTTP_ORIGIN=SHOP, HTTP_X_TENANT_ID="ecommerce"), 403, "tenant_inactive")
    refused(post(api, SHOP_BODY, HTTP_X_TENANT_ID="ecommerce"), 403, "tenant_inactive")


def test_the_health_get_needs_no_tenant(api, tenants):
    assert api.get(URL, HTTP_ORIGIN="https://evil.example").status_code == 200


def test_log_lines_inside_a_request_carry_its_tenant():
    import logging

    from ingestion.logcontext import ContextFilter, tenant_var

    token = tenant_var.set("ecommerce")
    try:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "accepted", None, None)
        ContextFilter().filter(record)
    finally:
        tenant_var.reset(token)
    outside = logging.LogRecord("x", logging.INFO, __file__, 1, "idle", None, None)
    ContextFilter().filter(outside)

    assert record.tenant == "ecommerce"
    assert not hasattr(outside, "tenant")

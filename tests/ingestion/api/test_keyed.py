"""Server-to-server producers: ``Authorization: Bearer <key>`` gives the key's tenant, skips
the origin check and the per-IP throttle, and has its own per-key limit; a wrong or revoked
key is 401 JSON and records nothing."""

from __future__ import annotations

import uuid

import pytest

from ingestion.api import throttling
from ingestion.models import Job
from tenants.models import Tenant
from tenants.services import tenant_key_create, tenant_key_revoke
from tests.conftest import producer_body
from tests.ingestion.api.test_tenancy import WHATSAPP_BODY

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/nexus/producer"


@pytest.fixture
def key() -> str:
    Tenant.objects.create(slug="ecommerce", domains=["shop.example"])
    Tenant.objects.create(slug="whatsapp")
    return tenant_key_create(slug="whatsapp", label="webhook").key


def post(api, key: str | None, body=None, **headers):
    if key is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return api.post(URL, body or producer_body(), format="json", **headers)


def job_tenant(response) -> str:
    assert response.status_code == 202, response.content
    return Job.objects.get(id=response.json()["queueId"]).tenant.slug


def test_a_keyed_request_lands_in_the_key_s_tenant(api, key):
    assert job_tenant(post(api, key, WHATSAPP_BODY)) == "whatsapp"
    assert job_tenant(post(api, key, HTTP_X_TENANT_ID="whatsapp")) == "whatsapp"


def test_a_keyed_request_ignores_its_origin(api, key):
    # A server may forward any Origin; the key, which no page can forge, decides.
    assert job_tenant(post(api, key, HTTP_ORIGIN="https://shop.example")) == "whatsapp"
    assert job_tenant(post(api, key, HTTP_ORIGIN="https://unknown.example")) == "whatsapp"


def test_an_x_tenant_id_against_the_key_is_403_tenant_mismatch(api, key):
    response = post(api, key, HTTP_X_TENANT_ID="ecommerce")

    assert response.status_code == 403 and response.json()["error"] == "tenant_mismatch"
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    "authorization",
    ["Bearer nxk_not-a-key", "Bearer ", "Basic dXNlcjpwdw==", "nxk_no-scheme", "Bearer " + "x" * 500],
)
def test_a_wrong_key_is_401_json_and_records_nothing(api, key, authorization):
    response = api.post(URL, producer_body(), format="json", HTTP_AUTHORIZATION=authorization)

    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "invalid_key" and body["message"] and body["field"] == "Authorization"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not Job.objects.exists()


def test_a_revoked_key_is_401(api, key):
    assert post(api, key).status_code == 202
    tenant_key_revoke(key_id=Tenant.objects.get(slug="whatsapp").keys.get().id)

    response = post(api, key)

    assert response.status_code == 401 and response.json()["error"] == "invalid_key"


def test_an_inactive_tenant_s_key_is_403_tenant_inactive(api, key):
    Tenant.objects.filter(slug="whatsapp").update(active=False)

    response = post(api, key)

    assert response.status_code == 403 and response.json()["error"] == "tenant_inactive"
    assert not Job.objects.exists()


@pytest.fixture
def rates(settings, clean_cache):
    throttling._cache_down_until = 0.0

    def apply(**rates: str | None) -> None:
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {
                "producer_ip": None,
                "producer_session": None,
                "producer_key": None,
                **rates,
            },
        }

    yield apply
    throttling._cache_down_until = 0.0


@pytest.mark.redis
def test_a_keyed_server_skips_the_per_ip_throttle_and_meets_its_own(api, key, rates):
    rates(producer_ip="2/min", producer_key="4/min")
    address = f"10.9.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"

    keyed = [post(api, key, REMOTE_ADDR=address).status_code for _ in range(5)]
    unkeyed = [post(api, None, REMOTE_ADDR=address).status_code for _ in range(3)]
    limited = post(api, key, REMOTE_ADDR=address)

    assert keyed == [202, 202, 202, 202, 429]
    assert unkeyed == [202, 202, 429]  # the IP's own budget was untouched by the keyed posts
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    assert limited.json()["error"] == "throttled"


@pytest.mark.redis
def test_one_session_id_in_two_tenants_is_throttled_apart(api, key, rates):
    rates(producer_session="1/min")
    session = f"wa_{uuid.uuid4().hex[:10]}"

    first = post(api, key, producer_body(session_id=session)).status_code
    other_tenant = post(api, None, producer_body(session_id=session)).status_code
    again = post(api, key, producer_body(session_id=session)).status_code

    assert (first, other_tenant, again) == (202, 202, 429)


@pytest.mark.redis
def test_one_fingerprint_through_two_tenants_ends_as_two_prospects(celery_worker, api, key):
    """End to end through a real worker: the shop's widget and the keyed WhatsApp webhook, the
    same visitor id in both, give one Prospect in each tenant."""
    from prospects.models import Prospect
    from tests.conftest import transcript, wait_for

    body = {"messages": transcript("Hola, me llamo Rosa Díaz"), "fingerprint": "wa_573001234567"}
    shop = api.post(
        URL,
        {**body, "sessionId": "gc-1"},
        format="json",
        HTTP_ORIGIN="https://shop.example",
        HTTP_X_TENANT_ID="ecommerce",
    )
    whatsapp = post(api, key, {**body, "sessionId": "wa_573001234567"})
    assert (shop.status_code, whatsapp.status_code) == (202, 202)

    wait_for(lambda: Job.objects.filter(status="completed").count() == 2)

    prospects = {p.tenant.slug: p for p in Prospect.objects.select_related("tenant")}
    assert set(prospects) == {"ecommerce", "whatsapp"}
    assert all(p.nombre == "Rosa Díaz" and p.fingerprint == "wa_573001234567" for p in prospects.values())


@pytest.mark.redis
def test_a_keyed_post_s_throttles_are_decided_in_one_redis_round_trip(api, key, rates, redis_client):
    rates(producer_ip="100/min", producer_key="100/min", producer_session="100/min")
    assert post(api, key).status_code == 202  # loads the script
    redis_client.config_resetstat()

    assert post(api, key).status_code == 202

    stats = redis_client.info("commandstats")
    scripts = sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "eval"))
    assert scripts == 1

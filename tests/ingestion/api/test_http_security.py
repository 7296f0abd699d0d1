"""CORS only for allow-listed origins and only under /api/; OpenAPI schema and docs public in
development, staff-only in production; no personal data on the public jobs endpoint."""

from __future__ import annotations

import json
import logging

import pytest

from tests.conftest import producer_body, transcript

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/nexus/producer"
ALLOWED = "https://shop.example"


@pytest.fixture
def cors(settings):
    settings.CORS_ALLOWED_ORIGINS = [ALLOWED]


def test_allowed_origin_gets_cors_headers_on_the_api(api, cors):
    response = api.post(URL, producer_body(), format="json", HTTP_ORIGIN=ALLOWED)

    assert response.status_code == 202
    assert response["Access-Control-Allow-Origin"] == ALLOWED


def test_preflight_from_allowed_origin_is_answered(api, cors):
    response = api.options(
        URL,
        HTTP_ORIGIN=ALLOWED,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type, x-request-id",
    )

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ALLOWED
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert "x-request-id" in response["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in response


def test_widget_can_read_the_ids_it_is_answered_with(api, cors):
    response = api.post(URL, producer_body(), format="json", HTTP_ORIGIN=ALLOWED)

    exposed = response["Access-Control-Expose-Headers"].lower()
    assert {"x-queue-id", "x-message-id", "location", "retry-after"} <= set(
        exposed.replace(" ", "").split(",")
    )


def test_disallowed_origin_gets_no_cors_headers(api, cors):
    response = api.post(URL, producer_body(), format="json", HTTP_ORIGIN="https://evil.example")

    assert "Access-Control-Allow-Origin" not in response


def test_admin_never_gets_cors_headers(api, cors):
    response = api.get("/admin/login/", HTTP_ORIGIN=ALLOWED)

    assert "Access-Control-Allow-Origin" not in response


def test_schema_and_docs_are_public_in_development(api, settings):
    settings.NEXUS_PUBLIC_DOCS = True

    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert schema.status_code == 200
    assert api.get("/api/docs/").status_code == 200


def test_schema_and_docs_are_staff_only_in_production(api, client, settings, django_user_model):
    settings.NEXUS_PUBLIC_DOCS = False
    staff = django_user_model.objects.create_user("ops", password="pw", is_staff=True)
    visitor = django_user_model.objects.create_user("visitor", password="pw")

    anonymous = [api.get("/api/schema/").status_code, api.get("/api/docs/").status_code]
    client.force_login(visitor)
    not_staff = client.get("/api/schema/").status_code
    client.force_login(staff)
    as_staff = [client.get("/api/schema/").status_code, client.get("/api/docs/").status_code]

    assert all(code in {401, 403} for code in anonymous)
    assert not_staff in {401, 403}
    assert as_staff == [200, 200]


def test_served_schema_states_the_limits(api, settings):
    settings.NEXUS_PUBLIC_DOCS = True

    schema = json.loads(api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").content)

    request = schema["components"]["schemas"]["ProducerRequest"]
    message = schema["components"]["schemas"]["Message"]
    role = schema["components"]["schemas"]["RoleEnum"]
    # Open objects (SPEC §12: unknown fields are kept, bounded), the limits in numbers or words.
    assert request["additionalProperties"] is True and message["additionalProperties"] is True
    assert set(request["required"]) == {"messages", "sessionId"}
    assert request["properties"]["messages"]["maxItems"] == settings.NEXUS["MAX_MESSAGES"]
    assert request["properties"]["sessionId"]["maxLength"] == 128
    assert str(settings.NEXUS["MAX_MESSAGE_CHARS"]) in message["properties"]["content"]["description"]
    assert role["enum"] == ["user", "assistant"]
    post = schema["paths"]["/api/nexus/producer"]["post"]
    assert {"202", "400", "409", "413", "429"} <= set(post["responses"])
    assert {"X-Queue-Id", "Location"} <= set(post["responses"]["202"]["headers"])
    assert "Retry-After" in post["responses"]["429"]["headers"]
    assert post["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
    assert "/api/nexus/jobs/{queue_id}" in schema["paths"]


def test_job_endpoint_shows_error_category_never_the_transcript(api):
    from ingestion.models import Job

    secret = "me llamo Ana, mi correo es ana@example.com, tel 600123456"
    queue_id = api.post(URL, producer_body(transcript(secret)), format="json").json()["queueId"]
    Job.objects.filter(id=queue_id).update(
        status="failed", last_error=f"Claude said: {secret}", error_category="invalid_output"
    )

    body = api.get(f"/api/nexus/jobs/{queue_id}").json()

    assert body["errorCategory"] == "invalid_output"
    text = json.dumps(body)
    assert "ana@example.com" not in text and "600123456" not in text and "Ana" not in text


def test_no_transcript_or_contact_data_reaches_the_logs(api, caplog):
    secret = "Me llamo Ana Ruiz, ana.ruiz@example.com, +34 600 123 456"
    with caplog.at_level(logging.DEBUG):
        api.post(URL, producer_body(transcript(secret)), format="json")
        api.post(URL, producer_body([{"role": "system", "content": secret}]), format="json")  # a 400
        api.post(URL, producer_body(transcript(secret), fingerprint="bad fp"), format="json")  # a 400

    logged = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    for fragment in ("Ana Ruiz", "ana.ruiz@example.com", "600 123 456"):
        assert fragment not in logged

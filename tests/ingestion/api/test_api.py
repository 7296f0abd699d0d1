"""The HTTP contract of SPEC §3, through Django's test client and the real database."""

from __future__ import annotations

import json
import uuid

import pytest

from ingestion.models import Job
from tests.conftest import SEED_MESSAGES, producer_body, transcript

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/nexus/producer"


def post(api, body, **headers):
    return api.post(URL, body, format="json", **headers)


def test_accepted_body_and_headers(api):
    response = post(api, producer_body(session_id="test-1700000000"))

    assert response.status_code == 202
    body = response.json()
    job = Job.objects.get(session_id="test-1700000000")
    assert body == {
        "status": "accepted",
        "messageId": body["messageId"],
        "queueId": str(job.id),
        "message": "Your message has been queued for processing",
        "estimatedProcessingTime": "<2 seconds",
        "continued": False,
    }
    assert body["messageId"]
    assert response["X-Message-Id"] == body["messageId"]
    assert response["X-Queue-Id"] == str(job.id)
    assert response["Location"] == f"/api/nexus/jobs/{job.id}"


def test_each_request_gets_a_new_message_id(api):
    first = post(api, producer_body(session_id="s")).json()["messageId"]
    second = post(api, producer_body(session_id="s")).json()["messageId"]

    assert first != second


def test_duplicate_and_stale_are_flagged(api):
    longer = [*SEED_MESSAGES, {"role": "assistant", "content": "¡Claro!"}]
    post(api, producer_body(longer, session_id="s"))

    duplicate = post(api, producer_body(longer, session_id="s")).json()
    stale = post(api, producer_body(SEED_MESSAGES, session_id="s")).json()

    assert duplicate["duplicate"] is True and "stale" not in duplicate
    assert stale["stale"] is True and "duplicate" not in stale
    assert Job.objects.get(session_id="s").revision == 1
    # Neither was queued, and the answer says so instead of "queued for processing".
    assert duplicate["message"] == "This conversation was already recorded; nothing new to process"
    assert stale["message"].startswith("A newer version of this conversation was already recorded")


def test_server_adds_metadata_from_headers_when_body_lacks_it(api):
    post(api, producer_body(session_id="m"), HTTP_REFERER="https://shop.example/page", HTTP_USER_AGENT="UA/1")
    post(
        api,
        producer_body(transcript("Hola"), session_id="m2", metadata={"url": "https://body.example"}),
        HTTP_REFERER="https://ignored.example",
    )

    meta = Job.objects.get(session_id="m").metadata
    assert meta["url"] == "https://shop.example/page"
    assert meta["userAgent"] == "UA/1"
    assert meta["enqueuedAt"]
    assert Job.objects.get(session_id="m2").metadata["url"] == "https://body.example"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"messages": [', None),  # malformed JSON
        ("[]", None),  # not an object
        (json.dumps({"sessionId": "x"}), "messages"),
        (json.dumps({"messages": [], "sessionId": "x"}), "messages"),
        (
            json.dumps({"messages": [{"role": "system", "content": "hi"}], "sessionId": "x"}),
            "messages[0].role",
        ),
        (
            # The blank turn is dropped, leaving no visitor turn.
            json.dumps({"messages": [{"role": "user", "content": ""}], "sessionId": "x"}),
            "messages",
        ),
        (json.dumps({"messages": [{"role": "user", "content": 5}], "sessionId": "x"}), "messages[0].content"),
        (json.dumps({"messages": "hola", "sessionId": "x"}), "messages"),
        (json.dumps({"messages": [{"role": "user", "content": "hi"}]}), "sessionId"),
        (json.dumps({"messages": [{"role": "user", "content": "hi"}], "sessionId": ""}), "sessionId"),
        (json.dumps({"messages": [{"role": "user", "content": "hi"}], "sessionId": "x" * 129}), "sessionId"),
        (
            json.dumps({"messages": [{"role": "user", "content": "hi"}], "sessionId": "x", "metadata": []}),
            "metadata",
        ),
        ('{"messages": [{"role": "user", "content": "hi"}], "sessionId": "x", "n": NaN}', None),
    ],
)
def test_malformed_input_is_a_400_json_error_and_stores_nothing(api, raw, field):
    response = api.post(URL, raw, content_type="application/json")

    assert response.status_code == 400
    body = response.json()
    assert body["error"] in {"validation_error", "parse_error"}
    assert body["message"]
    if field:
        assert body["field"] == field
    assert Job.objects.count() == 0


def test_limits_name_the_field_and_the_limit(api, settings):
    settings.NEXUS = {**settings.NEXUS, "MAX_MESSAGES": 3, "MAX_MESSAGE_CHARS": 10}

    too_many = post(api, producer_body(transcript(*["hola"] * 4)))
    too_long = post(api, producer_body(transcript("x" * 11)))

    assert too_many.status_code == 400
    assert too_many.json()["field"] == "messages" and "3" in too_many.json()["message"]
    assert too_long.status_code == 400
    assert too_long.json()["field"] == "messages[0].content" and "10" in too_long.json()["message"]


def test_body_over_the_byte_limit_is_413(api, settings):
    settings.NEXUS = {**settings.NEXUS, "MAX_BODY_BYTES": 2000}

    response = post(api, producer_body(transcript("x" * 3000)))

    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert "2000" in response.json()["message"]
    assert Job.objects.count() == 0


def test_fingerprint_change_is_409(api):
    post(api, producer_body(session_id="s", fingerprint="a"))

    response = post(api, producer_body(transcript("otro"), session_id="s", fingerprint="b"))

    assert response.status_code == 409
    assert response.json()["error"] == "fingerprint_conflict"


def test_job_endpoint_shows_progress_without_personal_data(api):
    queue_id = post(api, producer_body(session_id="s")).json()["queueId"]

    response = api.get(f"/api/nexus/jobs/{queue_id}")

    assert response.status_code == 200
    body = response.json()
    assert body["queueId"] == queue_id
    assert (body["status"], body["revision"], body["attempts"]) == ("pending", 1, 0)
    assert "Juan" not in json.dumps(body)
    assert "messages" not in body
    assert api.get(f"/api/nexus/jobs/{uuid.uuid4()}").status_code == 404


def test_health_reports_and_never_enqueues(api):
    response = api.get(URL)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] in {"healthy", "degraded"}
    assert set(body["checks"]) >= {"database", "broker", "workers"}
    assert set(body["queue"]) >= {"pending", "processing", "failed", "oldest_pending_age_s"}
    assert "@" not in body["transport"] or "**" not in body["transport"]
    assert body["transport"].startswith("celery+redis://")
    assert Job.objects.count() == 0


def test_liveness_and_readiness(api):
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] is True


def test_request_id_is_echoed_when_plain_and_replaced_when_not(api):
    plain = post(api, producer_body(), HTTP_X_REQUEST_ID="abc-123")
    hostile = post(api, producer_body(), HTTP_X_REQUEST_ID="bad id\nX-Injected: 1")

    assert plain["X-Request-Id"] == "abc-123"
    assert hostile["X-Request-Id"] != "bad id\nX-Injected: 1"
    assert hostile.json()["messageId"] == hostile["X-Request-Id"]

"""The tolerant, still bounded contract of SPEC §12: what the real site's clients send is
accepted, kept and normalised the same way on every resend."""

from __future__ import annotations

import json

import pytest

from ingestion.models import Job
from ingestion.ops import metrics
from tests.conftest import producer_body, transcript

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/nexus/producer"
GREETING = {"role": "assistant", "content": "Le doy la bienvenida. ¿Por dónde quiere empezar?"}


def post(api, body, url=URL):
    response = api.post(url, body, format="json")
    assert response.status_code == 202, response.content[:300]
    return response.json()


def truncated_turns() -> float:
    return (
        metrics.request_registry().get_sample_value(
            "nexus_producer_truncated_turns_total", {"limit": "message_chars"}
        )
        or 0.0
    )


def test_unknown_top_level_fields_are_kept_in_metadata(api):
    body = producer_body(session_id="tol-1", widgetVersion="4.2", experiment={"arm": "b", "n": [1, 2]})

    answer = post(api, body)

    job = Job.objects.get(id=answer["queueId"])
    assert job.metadata["extraFields"] == {"widgetVersion": "4.2", "experiment": {"arm": "b", "n": [1, 2]}}
    assert answer["continued"] is False


def test_no_unknown_fields_leave_no_extra_key(api):
    post(api, producer_body(session_id="tol-2"))

    assert "extraFields" not in Job.objects.get().metadata


def test_null_fingerprint_is_absent(api):
    post(api, producer_body(session_id="tol-3", fingerprint=None))
    post(api, producer_body(session_id="tol-3", fingerprint=None))  # the same session, no 409

    assert Job.objects.get().fingerprint == ""


def test_blank_turns_are_dropped_and_a_resend_is_a_duplicate(api):
    messages = [GREETING, {"role": "user", "content": "Hola"}, {"role": "assistant", "content": ""}]
    messages += [{"role": "user", "content": "Sigo aquí"}, {"role": "assistant", "content": " \n"}]

    first = post(api, producer_body(messages, session_id="tol-4"))
    again = post(api, producer_body(messages, session_id="tol-4"))
    # The same conversation without the empty turns is the same transcript.
    kept = [m for m in messages if m["content"].strip()]
    third = post(api, producer_body(kept, session_id="tol-4"))

    job = Job.objects.get(id=first["queueId"])
    assert job.messages == kept
    assert (job.message_count, job.revision) == (3, 1)
    assert again.get("duplicate") is True and third.get("duplicate") is True


def test_extra_keys_of_a_turn_are_ignored(api):
    messages = [{"role": "user", "content": "Hola", "id": "m1", "ts": 1764612345678}]

    post(api, producer_body(messages, session_id="tol-5"))

    assert Job.objects.get().messages == [{"role": "user", "content": "Hola"}]


def test_long_assistant_turn_is_truncated_marked_and_counted(api, settings):
    limit = settings.NEXUS["MAX_MESSAGE_CHARS"]
    reply = "Paquete ESP-1. " * 800  # 12,000 characters, a scripted knowledge-base answer
    messages = [*transcript("¿Qué paquetes hay?", reply), {"role": "user", "content": "El ESP-2"}]
    before = truncated_turns()

    first = post(api, producer_body(messages, session_id="tol-6"))
    again = post(api, producer_body(messages, session_id="tol-6"))

    job = Job.objects.get(id=first["queueId"])
    stored = job.messages[1]
    assert stored == {"role": "assistant", "content": reply[:limit], "truncatedFrom": len(reply)}
    assert job.messages[2] == messages[2]
    assert again.get("duplicate") is True  # the cut is deterministic
    assert truncated_turns() == before + 2


def test_long_visitor_turn_is_still_refused(api, settings):
    limit = settings.NEXUS["MAX_MESSAGE_CHARS"]

    response = api.post(URL, producer_body(transcript("x" * (limit + 1)), session_id="tol-7"), format="json")

    assert response.status_code == 400
    assert response.json()["field"] == "messages[0].content"
    assert str(limit) in response.json()["message"]
    assert not Job.objects.exists()


def test_trailing_slash_is_the_same_endpoint(api):
    first = post(api, producer_body(session_id="tol-8"), url=URL + "/")
    again = post(api, producer_body(session_id="tol-8"), url=URL)

    assert again["queueId"] == first["queueId"] and again.get("duplicate") is True
    assert api.get(URL + "/").status_code == 200


def test_attribution_fields_are_stored_as_columns(api):
    body = producer_body(
        session_id="tol-9",
        constructorId="maria-lopez",
        pageContext="catalogo_productos",
        isReturningUser=True,
        consentGiven=True,
        channel="whatsapp",
    )

    post(api, body)

    job = Job.objects.get()
    assert (job.constructor_id, job.page_context, job.is_returning, job.consent_given, job.channel) == (
        "maria-lopez",
        "catalogo_productos",
        True,
        True,
        "whatsapp",
    )
    assert job.constructor_at is not None and job.consent_at is not None


def test_attribution_defaults(api):
    post(api, producer_body(session_id="tol-10", constructorId=None, pageContext=None))

    job = Job.objects.get()
    assert (job.constructor_id, job.page_context, job.is_returning, job.consent_given, job.channel) == (
        None,
        "",
        None,
        None,
        "web",
    )


def test_a_revision_keeps_the_first_referrer_and_takes_the_latest_context(api):
    one = transcript("Hola, soy Ana")
    two = transcript("Hola, soy Ana", "Hola Ana", "Quiero empezar")
    three = transcript("Hola, soy Ana", "Hola Ana", "Quiero empezar", "¡Bien!", "¿Precio?")
    post(api, producer_body(one, session_id="tol-11", pageContext="default", consentGiven=True))
    consent_at = Job.objects.get().consent_at
    post(api, producer_body(two, session_id="tol-11", constructorId="pedro", pageContext="12_niveles"))
    post(api, producer_body(three, session_id="tol-11", constructorId="otro", consentGiven=True))

    job = Job.objects.get()
    assert (job.revision, job.constructor_id, job.page_context) == (3, "pedro", "12_niveles")
    assert job.consent_given is True and job.consent_at == consent_at  # since when, not latest


def test_withdrawn_consent_clears_its_time(api):
    post(api, producer_body(transcript("Hola"), session_id="tol-12", consentGiven=True))
    post(api, producer_body(transcript("Hola", "¿Sí?", "Ya no"), session_id="tol-12", consentGiven=False))

    job = Job.objects.get()
    assert (job.consent_given, job.consent_at) == (False, None)


def test_schema_states_the_tolerant_contract(api, settings):
    settings.NEXUS_PUBLIC_DOCS = True

    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    request = schema["components"]["schemas"]["ProducerRequest"]
    assert request["additionalProperties"] is True
    for name in ("constructorId", "pageContext", "isReturningUser", "consentGiven", "channel"):
        assert name in request["properties"]
    assert "null" in json.dumps(request["properties"]["fingerprint"])
    assert request["properties"]["messages"]["contains"]["properties"]["role"] == {"enum": ["user"]}
    content = schema["paths"]["/api/nexus/producer"]["post"]["requestBody"]["content"]
    assert {"application/json", "text/plain"} <= set(content)
    assert "truncatedFrom" in json.dumps(schema["components"]["schemas"]["Message"])
    assert "continued" in schema["components"]["schemas"]["Accepted"]["required"]

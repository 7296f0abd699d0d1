"""Every request body the real site's clients send (../shared/REAL_SITE.md) is accepted.

The shapes are the real ones, the conversations are invented. Headers that name a tenant
(x-tenant-id, Origin, the preflight) belong to the tenants' tests."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ingestion.models import Job

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/nexus/producer"
GREETING = {
    "role": "assistant",
    "content": "Le doy la bienvenida a NEXUS. Puedo contarle cómo funciona el plan. ¿Por dónde quiere empezar?",
}
FINGERPRINT = "3f9a" * 16  # a SHA-256 hex, as the widget computes it
# A scripted knowledge-base answer: 9-13k characters, past the 8,000 per-message limit.
LONG_REPLY = "Paquete ESP-2: incluye la guía de inicio, el kit de productos y la mentoría semanal. " * 140


def widget(*turns: dict[str, str], **fields: Any) -> dict[str, Any]:
    """The web widget's body: the whole history from the greeting, attribution fields."""
    body = {
        "messages": [GREETING, *turns],
        "fingerprint": FINGERPRINT,
        "sessionId": "session_1764612345678",
        "constructorId": None,
        "isReturningUser": False,
        "pageContext": "default",
    }
    body.update(fields)
    return body


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


FIRST = user("Hola, me llamo Juan Pérez, soy ingeniero")

BODIES = {
    "web widget, first message, null constructorId": widget(FIRST),
    "web widget with a referrer": widget(
        FIRST, constructorId="maria-lopez", pageContext="catalogo_productos"
    ),
    "web widget, null fingerprint": widget(FIRST, fingerprint=None, sessionId="session_1764612345001"),
    "web widget, no fingerprint": {
        k: v for k, v in widget(FIRST, sessionId="session_1764612345002").items() if k != "fingerprint"
    },
    "web widget, pending fingerprint stub": widget(FIRST, fingerprint="pending_1764612345003"),
    "web widget, empty assistant turn from a failed stream": widget(
        FIRST, assistant(""), user("¿Sigue ahí?"), sessionId="session_1764612345004"
    ),
    "web widget, earlier error bubble as an assistant turn": widget(
        FIRST,
        assistant("Lo siento, hubo un error. Escríbanos por WhatsApp: https://wa.me/000"),
        user("Vale, le decía que soy ingeniero"),
        sessionId="session_1764612345005",
    ),
    "web widget, 12k assistant reply": widget(
        FIRST,
        assistant(LONG_REPLY),
        user("Confirmo el ESP-2. Juan Pérez"),
        sessionId="session_1764612345006",
        pageContext="12_niveles",
    ),
    "web widget, returning visitor, consent": widget(
        FIRST, isReturningUser=True, consentGiven=True, sessionId="session_1764612345007"
    ),
    "shop widget (cross-origin)": {
        "messages": [user("¿Cuánto cuesta el Ganocafé 3 en 1?")],
        "fingerprint": "gc-k2j3h4g5lxyz12",
        "sessionId": "gc-k2j3h4g5lxyz12",
    },
    "WhatsApp webhook": {
        "messages": [
            user("Me interesa iniciar. Mi nombre es Rosa Díaz, cédula 1020304050, para la ciudad de Cali")
        ],
        "sessionId": "wa_573009998877",
        "fingerprint": "wa_573009998877",
        "pageContext": "whatsapp_inbound",
    },
    "README seed POST": {
        "messages": [
            user("Hola, me llamo Juan Pérez"),
            assistant("Hola Juan, ¿en qué puedo ayudarte?"),
            user("Quiero saber sobre las oportunidades de inversión"),
        ],
        "sessionId": "test-1700000000",
        "fingerprint": "test-fingerprint-456",
    },
}


@pytest.mark.parametrize("name", list(BODIES))
def test_real_body_is_accepted(api, name):
    body = BODIES[name]

    response = api.post(URL, body, format="json")

    assert response.status_code == 202, (name, response.content[:300])
    assert Job.objects.filter(id=response.json()["queueId"]).exists()


@pytest.mark.parametrize("name", ["web widget, first message, null constructorId", "README seed POST"])
def test_real_body_with_a_trailing_slash_is_accepted(api, name):
    response = api.post(URL + "/", BODIES[name], format="json")

    assert response.status_code == 202, response.content[:300]


def test_real_body_as_text_plain_is_accepted(api):
    raw = json.dumps(BODIES["web widget, 12k assistant reply"])

    response = api.post(URL, raw, content_type="text/plain;charset=UTF-8")

    assert response.status_code == 202, response.content[:300]
    job = Job.objects.get(id=response.json()["queueId"])
    assert job.messages[2]["truncatedFrom"] == len(LONG_REPLY)


def test_the_widget_s_whole_chat_is_one_job(api):
    """One request per visitor message, a new sessionId each time, the whole history each time."""
    history = [FIRST]
    answers = []
    for n, (reply, visitor) in enumerate(
        [
            ("Mucho gusto, Juan. ¿Busca un ingreso extra?", "Sí, quiero empezar"),
            ("", "¿Hola?"),  # a failed stream left an empty assistant turn
            (LONG_REPLY, "Confirmo el ESP-2"),
            ("Perfecto. ¿Su nombre completo?", "Juan Pérez"),
        ]
    ):
        body = widget(*history, sessionId=f"session_{1764612345678 + n * 9000}")
        answers.append(api.post(URL, body, format="json"))
        history += [assistant(reply), user(visitor)]

    assert [a.status_code for a in answers] == [202] * 4
    assert len({a.json()["queueId"] for a in answers}) == 1
    assert Job.objects.count() == 1

"""The attribution part of the fold: a pure function of the sessions (SPEC §12)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from prospects.services import SessionData, attribution_fold

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def session(minute: int, **fields) -> SessionData:
    at = T0 + timedelta(minutes=minute)
    return SessionData(extracted=None, created_at=at, revised_at=at, **fields)


def test_no_sessions_no_attribution():
    assert attribution_fold([]) == {
        "constructor_id": None,
        "page_context": "",
        "channels": "",
        "is_returning": None,
        "consent_given": None,
        "consent_at": None,
    }


def test_the_first_named_referrer_keeps_the_credit():
    # Session b started first but named its referrer later than session a did.
    a = session(5, constructor_id="ana", constructor_at=T0 + timedelta(minutes=5))
    b = session(1, constructor_id="beto", constructor_at=T0 + timedelta(minutes=9))
    none = session(0)

    assert attribution_fold([none, b, a])["constructor_id"] == "ana"
    assert attribution_fold([a, none, b])["constructor_id"] == "ana"


def test_latest_page_context_every_channel_and_returning_if_ever():
    sessions = [
        session(0, page_context="catalogo_productos", channel="web", is_returning=False),
        session(1, page_context="12_niveles", channel="whatsapp"),
        session(2, page_context="", channel="web", is_returning=True),
    ]

    folded = attribution_fold(sessions)

    assert (folded["page_context"], folded["channels"], folded["is_returning"]) == (
        "12_niveles",
        "web,whatsapp",
        True,
    )


def test_consent_is_the_latest_said_with_the_start_of_its_run():
    t1, t2 = T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)
    given = [
        session(0, consent_given=True, consent_at=t1),
        session(1),
        session(2, consent_given=True, consent_at=t2),
    ]
    withdrawn = [*given, session(3, consent_given=False)]

    assert (attribution_fold(given)["consent_given"], attribution_fold(given)["consent_at"]) == (True, t1)
    assert (attribution_fold(withdrawn)["consent_given"], attribution_fold(withdrawn)["consent_at"]) == (
        False,
        None,
    )


def test_the_referrer_does_not_depend_on_the_order_sessions_are_read_in():
    sessions = [
        session(i, constructor_id=name, constructor_at=T0 + timedelta(minutes=10 - i))
        for i, name in enumerate(["c", "b", "a"])
    ]

    assert {attribution_fold(list(p))["constructor_id"] for p in itertools.permutations(sessions)} == {"a"}

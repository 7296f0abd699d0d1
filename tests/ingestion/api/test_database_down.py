"""The database down: the producer answers 503 with a JSON body and Retry-After, never 500,
so the widget retries and nothing is lost (SPEC §10). The chaos suite restarts a real
PostgreSQL under load; here the connection points at a closed port."""

from __future__ import annotations

import contextlib
import copy
import uuid
from collections.abc import Iterator

import pytest
from django.db import connections

from ingestion.api import dbgate
from ingestion.models import Job
from tests.conftest import producer_body, wait_for

pytestmark = [pytest.mark.postgres]

CLOSED_PORT = "9"  # discard: nothing listens there


@contextlib.contextmanager
def database_unreachable() -> Iterator[None]:
    """The default connection's pool re-created against a port where no PostgreSQL listens."""
    conn = connections["default"]
    saved = copy.deepcopy(conn.settings_dict)
    conn.close()
    conn.close_pool()
    conn.settings_dict["PORT"] = CLOSED_PORT
    conn.settings_dict["OPTIONS"] = {
        **conn.settings_dict["OPTIONS"],
        "pool": {**conn.settings_dict["OPTIONS"]["pool"], "timeout": 0.5},
        "connect_timeout": 1,
    }
    try:
        yield
    finally:
        conn.close()
        conn.close_pool()
        conn.settings_dict.clear()
        conn.settings_dict.update(saved)


@pytest.fixture(autouse=True)
def gate_reopened() -> Iterator[None]:
    """A test's failed connection must not shed the next test's POSTs."""
    yield
    dbgate.reopen()


@pytest.fixture
def database_down(transactional_db: None) -> Iterator[None]:
    with database_unreachable():
        yield


def test_post_answers_503_with_retry_after_when_the_database_is_down(api, database_down):
    response = api.post("/api/nexus/producer", producer_body(session_id="db-down"), format="json")

    assert response.status_code == 503
    assert response["Retry-After"] == "2"
    assert response.json()["error"] == "database_unavailable"
    assert "nothing was recorded" in response.json()["message"]


def test_job_status_answers_503_when_the_database_is_down(api, database_down):
    response = api.get(f"/api/nexus/jobs/{uuid.uuid4()}")

    assert response.status_code == 503
    assert response.json()["error"] == "database_unavailable"


def test_health_is_unhealthy_and_readyz_unavailable_when_the_database_is_down(api, database_down):
    health = api.get("/api/nexus/producer")
    ready = api.get("/readyz")

    assert health.status_code == 503
    assert health.json()["status"] == "unhealthy"
    assert ready.status_code == 503


def test_the_retried_post_is_accepted_once_the_database_is_back(api, transactional_db):
    body = producer_body(session_id="db-back")
    with database_unreachable():
        refused = api.post("/api/nexus/producer", body, format="json")

    wait_for(lambda: not dbgate.away(), 10)  # as Retry-After says
    retried = api.post("/api/nexus/producer", body, format="json")

    assert refused.status_code == 503
    assert retried.status_code == 202
    assert "duplicate" not in retried.json()  # the refused POST recorded nothing
    assert Job.objects.filter(session_id="db-back").count() == 1


def test_after_a_failed_connection_posts_answer_503_at_once_then_the_next_one_tries_again(
    api, transactional_db, monkeypatch
):
    monkeypatch.setattr(dbgate, "AWAY_SECONDS", 600.0)  # no race with the clock on a busy machine
    body = producer_body(session_id="db-gate")
    with database_unreachable():
        first = api.post("/api/nexus/producer", body, format="json")
    # The database is back, but this process just failed to reach it: the gate answers 503
    # (with Retry-After) without trying, until its window passes; then the probe goes through.
    shed = api.post("/api/nexus/producer", body, format="json")
    dbgate.reopen()  # the window passed
    probe = api.post("/api/nexus/producer", body, format="json")

    assert (first.status_code, shed.status_code, probe.status_code) == (503, 503, 202)
    assert shed["Retry-After"] == "2" and shed.json()["error"] == "database_unavailable"
    assert Job.objects.filter(session_id="db-gate").count() == 1


def test_two_posts_slower_than_the_budget_shed_the_next_ones_with_503(api, transactional_db, monkeypatch):
    # The budget at 0 s makes every POST "slow" (a real slow dependency is the chaos suite's
    # slow_dependency); the window at 600 s keeps the clock out of it.
    monkeypatch.setattr(dbgate, "SLOW_POST_SECONDS", 0.0)
    monkeypatch.setattr(dbgate, "AWAY_SECONDS", 600.0)

    def post(n: int):
        return api.post(
            "/api/nexus/producer",
            producer_body(session_id=f"slow-{n}", fingerprint=f"fp-slow-{n}"),
            format="json",
        )

    try:
        answers = [post(1), post(2), post(3)]
    finally:
        dbgate.reopen()
    after = post(3)

    # One slow POST is an outlier; the second in a row closes the gate.
    assert [a.status_code for a in answers] == [202, 202, 503]
    assert after.status_code == 202
    assert answers[2]["Retry-After"] == "2"
    assert set(Job.objects.filter(session_id__startswith="slow-").values_list("session_id", flat=True)) == {
        "slow-1",
        "slow-2",
        "slow-3",
    }


def test_one_slow_post_between_quick_ones_leaves_the_gate_open(api, db, monkeypatch):
    monkeypatch.setattr(dbgate, "AWAY_SECONDS", 600.0)
    dbgate.note_duration(dbgate.SLOW_POST_SECONDS + 1)  # a cold start, a GC pause
    dbgate.note_duration(0.01)
    dbgate.note_duration(dbgate.SLOW_POST_SECONDS + 1)
    assert not dbgate.away()
    dbgate.note_duration(dbgate.SLOW_POST_SECONDS + 1)
    assert dbgate.away()


def test_a_post_within_the_budget_leaves_the_gate_open(api, db):
    dbgate.reopen()
    assert (
        api.post("/api/nexus/producer", producer_body(session_id="quick"), format="json").status_code == 202
    )
    assert not dbgate.away()


def test_a_query_error_on_a_live_connection_leaves_the_gate_open(api, db):
    from django.db import connection

    connection.ensure_connection()
    dbgate.note_failure()

    assert not dbgate.away()


def test_connections_carry_the_connect_and_tcp_user_timeouts(db):
    from django.db import connection

    connection.ensure_connection()
    parameters = connection.connection.info.get_parameters()

    # A partition (packets dropped) fails a pooled connection's query after this many ms
    # instead of TCP's ~15 min of retransmissions; a new connection gives up after 5 s.
    assert parameters["tcp_user_timeout"] == "10000"
    assert parameters["connect_timeout"] == "5"

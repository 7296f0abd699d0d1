"""The circuit breaker's state machine on real Redis: growing pauses, one probe, closing."""

from __future__ import annotations

import pytest

from ingestion.worker import breaker

pytestmark = [pytest.mark.redis]


@pytest.fixture
def timers(settings, clean_cache):
    settings.NEXUS = {**settings.NEXUS, "BREAKER_BASE_SECONDS": 30.0, "BREAKER_CAP_SECONDS": 100.0}


def test_each_trip_doubles_the_pause_up_to_the_cap(timers):
    assert [breaker.trip(category="auth") for _ in range(4)] == [30.0, 60.0, 100.0, 100.0]
    state = breaker.state()
    assert state is not None and state["trips"] == 4


def test_while_open_jobs_wait_and_once_due_exactly_one_probes(timers):
    assert breaker.pause_remaining() is None  # closed: go ahead
    breaker.trip(category="spend_limit")
    pause = breaker.pause_remaining()
    assert pause is not None and 29 < pause <= 30

    state = breaker.state()
    assert state is not None
    breaker.cache.set("breaker:state", {**state, "until": state["until"] - 31}, timeout=None)  # due now
    assert breaker.pause_remaining() is None  # this caller is the probe
    assert breaker.pause_remaining() == 30.0  # everyone else waits for the probe's verdict
    breaker.release_probe()  # the probe had nothing to run
    assert breaker.pause_remaining() is None


def test_a_success_closes_the_breaker_and_the_next_outage_starts_short_again(timers):
    breaker.trip(category="auth")
    breaker.trip(category="auth")
    breaker.record_success()
    assert breaker.state() is None and breaker.pause_remaining() is None
    assert breaker.trip(category="auth") == 30.0


def test_two_workers_tripping_at_once_log_one_alert(timers, caplog):
    caplog.set_level("WARNING", logger="ingestion.worker.breaker")
    breaker.trip(category="auth")
    # The second worker read "closed" before the first one stored its state: it counts trip 1.
    breaker.cache.delete("breaker:state")
    breaker.trip(category="auth")

    opened = [r for r in caplog.records if "opened" in r.getMessage()]
    assert len(opened) == 1
    breaker.record_success()
    breaker.trip(category="auth")  # a new outage alerts again
    assert len([r for r in caplog.records if "opened" in r.getMessage()]) == 2

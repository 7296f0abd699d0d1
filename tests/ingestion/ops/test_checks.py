"""The system checks that keep the timers consistent."""

from __future__ import annotations

from ingestion.ops.checks import timers_fit_together


def test_default_timers_pass():
    assert timers_fit_together() == []


def test_backoff_cap_above_visibility_timeout_is_an_error(settings):
    settings.NEXUS = {**settings.NEXUS, "BACKOFF_CAP_SECONDS": 4000.0}

    assert [e.id for e in timers_fit_together()] == ["nexus.E001"]


def test_lease_not_longer_than_claude_timeout_is_an_error(settings):
    settings.NEXUS = {**settings.NEXUS, "LEASE_SECONDS": 20.0}
    settings.ANTHROPIC_TIMEOUT_SECONDS = 30.0

    assert [e.id for e in timers_fit_together()] == ["nexus.E002"]


def test_webhook_lease_not_longer_than_the_post_timeout_is_an_error(settings):
    settings.NEXUS = {**settings.NEXUS, "WEBHOOK_LEASE_SECONDS": 5.0, "WEBHOOK_TIMEOUT_SECONDS": 5.0}

    assert [e.id for e in timers_fit_together()] == ["nexus.E003"]

"""The web worker warm-up (gunicorn post_worker_init): harmless, and never fatal."""

from __future__ import annotations

import logging

import pytest
from django.core.handlers.wsgi import WSGIHandler

from ingestion.api.warmup import warm_up
from ingestion.models import Job

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def test_warm_up_runs_the_real_stack_and_changes_nothing(caplog, clean_cache):
    caplog.set_level(logging.INFO, logger="ingestion.api.warmup")

    warm_up(WSGIHandler())

    assert not Job.objects.exists()
    assert not [r for r in caplog.records if "skipped" in r.getMessage()]
    assert any("warmed up" in r.getMessage() for r in caplog.records)


def test_a_failing_step_is_logged_and_the_worker_boots_anyway(caplog, settings):
    caplog.set_level(logging.INFO, logger="ingestion.api.warmup")
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:9/0"  # nothing listens there

    def broken(environ, start_response):
        raise RuntimeError("app not importable")

    assert warm_up(broken) < 5
    skipped = {r.step for r in caplog.records if "skipped" in r.getMessage()}
    assert "_request" in skipped

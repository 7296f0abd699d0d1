"""Throttling per client IP and per sessionId on the shared Redis cache (SPEC §3, §10)."""

from __future__ import annotations

import logging
import time
import uuid

import pytest
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.test import override_settings
from django.utils.module_loading import import_string

from ingestion.api import throttling
from ingestion.models import Job
from tests.conftest import producer_body, transcript

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

URL = "/api/nexus/producer"


@pytest.fixture
def rates(settings, redis_client):
    """Set throttle rates (and proxies) for one test.

    Counters go to their own Redis database under this run's key prefix, and every test uses
    fresh sessionIds and a fresh client address, so no flush is needed (other suites sharing
    the Redis flush database 0 with cache.clear()).
    """
    throttling._cache_down_until = 0.0
    own_db = settings.REDIS_URL.rsplit("/", 1)[0] + "/15"
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": own_db}}

    def apply(ip: str | None = None, session: str | None = None, proxies: int = 0) -> None:
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {"producer_ip": ip, "producer_session": session},
            "NUM_PROXIES": proxies,
        }

    yield apply
    throttling._cache_down_until = 0.0


@pytest.fixture
def api(api):
    """The test client from one fresh address per test."""
    api.defaults["REMOTE_ADDR"] = (
        f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    )
    return api


RUN = uuid.uuid4().hex[:8]


def post(api, session_id: str, turn: int = 0, **headers):
    messages = transcript(*[f"mensaje {i}" for i in range(turn + 1)])
    return api.post(URL, producer_body(messages, session_id=f"{RUN}-{session_id}"), format="json", **headers)


def assert_throttled(response) -> None:
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    body = response.json()
    assert body["error"] == "throttled"
    assert body["message"]


def test_the_cache_is_the_shared_redis(settings):
    # nexus_project.cache.RedisCache is Django's RedisCache reusing its client (speed only).
    backend = import_string(settings.CACHES["default"]["BACKEND"])
    assert issubclass(backend, DjangoRedisCache)
    assert isinstance(caches["default"], DjangoRedisCache)


def test_a_session_posting_too_fast_is_throttled_others_are_not(api, rates):
    rates(session="3/min")

    statuses = [post(api, "busy", turn).status_code for turn in range(3)]
    throttled = post(api, "busy", 3)
    other = post(api, "calm")

    assert statuses == [202, 202, 202]
    assert_throttled(throttled)
    assert other.status_code == 202
    assert Job.objects.get(session_id=f"{RUN}-busy").revision == 3  # the throttled POST changed nothing


def test_retry_after_is_the_time_until_the_window_has_room(api, rates):
    rates(session="1/min")

    assert post(api, "wait", 0).status_code == 202
    throttled = post(api, "wait", 1)

    assert_throttled(throttled)
    assert 55 <= int(throttled["Retry-After"]) <= 60


def test_a_request_is_admitted_again_once_the_window_slides_past(api, rates):
    rates(session="1/s")

    first, second = post(api, "slide", 0), post(api, "slide", 1)
    time.sleep(1.1)
    third = post(api, "slide", 2)

    assert (first.status_code, third.status_code) == (202, 202)
    assert_throttled(second)


def test_one_address_is_throttled_across_sessions(api, rates):
    rates(ip="2/min")

    assert [post(api, f"s{i}").status_code for i in range(2)] == [202, 202]
    assert_throttled(post(api, "s2"))
    assert_throttled(api.get(URL))  # the health GET counts against the same address


def test_forged_x_forwarded_for_does_not_dodge_the_ip_limit(api, rates):
    rates(ip="2/min", proxies=0)

    responses = [post(api, f"s{i}", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}") for i in range(3)]

    assert [r.status_code for r in responses[:2]] == [202, 202]
    assert_throttled(responses[2])


def test_behind_one_proxy_the_forwarded_client_address_counts(api, rates):
    rates(ip="1/min", proxies=1)

    first = post(api, "a", HTTP_X_FORWARDED_FOR="203.0.113.1")
    second = post(api, "b", HTTP_X_FORWARDED_FOR="203.0.113.2")
    # A client-written entry before the proxy's own is ignored: the proxy's last entry counts.
    forged = post(api, "c", HTTP_X_FORWARDED_FOR="198.51.100.9, 203.0.113.1")

    assert (first.status_code, second.status_code) == (202, 202)
    assert_throttled(forged)


def test_rate_none_switches_throttling_off(api, rates):
    rates(ip=None, session=None)

    assert {post(api, "load", turn).status_code for turn in range(40)} == {202}


def test_throttling_fails_open_when_the_cache_is_down(api, rates, settings, caplog):
    rates(ip="1/min", session="1/min")
    dead = {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}  # nothing listens

    # A context manager, so the live cache is back before the fixtures clear it.
    with (
        override_settings(CACHES={"default": dead}),
        caplog.at_level(logging.WARNING, "ingestion.api.throttling"),
    ):
        statuses = [post(api, "s", turn).status_code for turn in range(3)]

    assert statuses == [202, 202, 202]
    assert Job.objects.get(session_id=f"{RUN}-s").revision == 3
    assert any("fail open" in r.getMessage() for r in caplog.records)

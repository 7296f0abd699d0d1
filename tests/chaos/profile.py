"""The chaos settings profile: production settings with the timers shortened so a scenario
fits in about a minute. Only durations change; every mechanism is the production one.

Each value keeps the production relations the system checks insist on (ingestion/checks.py):
the lease outlives the Claude timeout, every countdown stays below the broker visibility
timeout (left at production's 3600 s, so only the sweeper can recover a lost message).
"""

from __future__ import annotations

# Production value in the comment; the ratio between them is what the scenarios rely on.
TIMERS = {
    "ANTHROPIC_TIMEOUT_SECONDS": "2",  # 30: a hung call frees its thread after this
    "NEXUS_LEASE_SECONDS": "6",  # 120: > the Claude timeout, so a slow call is never taken over
    "NEXUS_DISPATCH_GRACE_SECONDS": "3",  # 60: an unclaimed task older than this is presumed lost
    "NEXUS_SWEEP_INTERVAL_SECONDS": "1",  # 30
    "NEXUS_BACKOFF_BASE_SECONDS": "0.2",  # 2
    "NEXUS_BACKOFF_CAP_SECONDS": "2",  # 300
    "NEXUS_BREAKER_BASE_SECONDS": "1",  # 30
    "NEXUS_BREAKER_CAP_SECONDS": "4",  # 600
    "NEXUS_HEARTBEAT_SECONDS": "1",  # 5
    "NEXUS_HEARTBEAT_TTL_SECONDS": "4",  # 20
    "DB_CONNECT_TIMEOUT_SECONDS": "2",  # 5: an unreachable PostgreSQL costs a POST this, then 503
    "DB_TCP_USER_TIMEOUT_SECONDS": "2",  # 10: a pooled connection into a partition is dropped
    # Webhooks (tests/chaos/test_webhooks_chaos.py): seven retries within ~25 s, not ~28 h.
    "NEXUS_WEBHOOK_RETRY_SCHEDULE": "1,1,2,2,3,5,8",  # 5,300,1800,7200,18000,36000,36000
    "NEXUS_WEBHOOK_TIMEOUT_SECONDS": "3",  # 5: longer than the receiver's 1.5 s hold
    "NEXUS_WEBHOOK_LEASE_SECONDS": "5",  # 60: > the timeout, so no second attempt mid-POST
}

# Throttling out of the way: one client address drives the whole load, and the widget-side
# retry policy of the load client is what is under test, not the per-IP rate.
THROTTLES_OFF = {"NEXUS_THROTTLE_IP_RATE": "off", "NEXUS_THROTTLE_SESSION_RATE": "off"}

# Two gunicorn workers and two Celery workers of 16 threads: enough parallelism to race
# (two workers on one session, concurrent POSTs) on a two-core machine, little enough to
# leave CPU for PostgreSQL, Redis, the fake Claude and the load client.
SIZES = {"WEB_CONCURRENCY": "2", "WORKER_CONCURRENCY": "16", "DB_POOL_MAX": "8"}


def environment(
    *,
    database_url: str,
    redis_url: str,
    broker_url: str,
    queue: str,
    claude_url: str,
    web_port: int,
) -> dict[str, str]:
    """The whole environment of one scenario's web, worker and beat processes."""
    return {
        "DJANGO_ENV": "production",
        "DJANGO_SECRET_KEY": "chaos-only-" + "k" * 50,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SECURE_SSL_REDIRECT": "false",  # plain HTTP on loopback (TLS ends at a proxy)
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": broker_url,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "CACHE_KEY_PREFIX": queue,
        "EXTRACTOR": "claude",
        "ANTHROPIC_API_KEY": "chaos-key",
        "ANTHROPIC_BASE_URL": claude_url,
        "GUNICORN_BIND": f"127.0.0.1:{web_port}",
        "PYTHONUNBUFFERED": "1",
        **TIMERS,
        **THROTTLES_OFF,
        **SIZES,
    }

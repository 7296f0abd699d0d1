"""NEXUS ingestion settings, read from the environment only.

Three profiles, chosen by DJANGO_ENV:
- ``development`` (the default, what ``make run`` uses): DEBUG on, the embedded PostgreSQL and
  Redis-protocol server that ``make run`` starts under var/ unless DATABASE_URL / REDIS_URL
  are set (never whatever runs on 5432 or 6379), a secret key generated once into var/.
- ``production`` (compose, gunicorn docs): DEBUG off; DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS
  and DATABASE_URL are required and the process refuses to start without them.
- ``test``: like development, with fast hashing; the pytest suite selects it.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from .embedded import dev_database_missing_hint, dev_database_url
from .env import TENANT_SLUG, env_bool, env_float, env_int, env_list, env_str, env_tenants
from .prices import ANTHROPIC_PRICES as _DEFAULT_PRICES
from .staticfiles import CLIENT_IMMUTABLE, client_cache_headers

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("NEXUS_VAR_DIR", str(BASE_DIR / "var")))

DJANGO_ENV = env_str("DJANGO_ENV", "development")
if DJANGO_ENV not in {"development", "production", "test"}:
    raise ImproperlyConfigured(f"DJANGO_ENV must be development, production or test, not {DJANGO_ENV!r}")
PRODUCTION = DJANGO_ENV == "production"

# Port of the embedded Redis-protocol server that `make run` starts under var/ in development.
DEV_REDIS_PORT = env_int("NEXUS_DEV_REDIS_PORT", 6390)


def _required(name: str) -> str:
    value = env_str(name)
    if not value:
        raise ImproperlyConfigured(f"{name} must be set when DJANGO_ENV=production")
    return value


def _dev_secret_key() -> str:
    """A key generated once into var/, so sessions survive restarts of `make run`."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


# --- Core -------------------------------------------------------------------------------------
if PRODUCTION:
    SECRET_KEY = _required("DJANGO_SECRET_KEY")
    ALLOWED_HOSTS = [h.strip() for h in _required("DJANGO_ALLOWED_HOSTS").split(",") if h.strip()]
    _database_url = _required("DATABASE_URL")
else:
    SECRET_KEY = env_str("DJANGO_SECRET_KEY") or _dev_secret_key()
    ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
    # The embedded PostgreSQL `make run` starts in var/postgres: the same engine as production,
    # and reached the same way from any terminal. SQLite stays a choice on purpose
    # (DATABASE_URL=sqlite:///var/nexus.sqlite3): no server process, one file to copy.
    _database_url = env_str("DATABASE_URL")
    if not _database_url:
        _database_url = dev_database_url(VAR_DIR)
        # For a person at a manage.py (not mypy, gunicorn or celery loading the settings): on
        # stderr, since stdout may be the command's output.
        if Path(sys.argv[0]).name == "manage.py" and (_hint := dev_database_missing_hint(VAR_DIR)):
            sys.stderr.write(f"{_hint}\n")

DEBUG = env_bool("DJANGO_DEBUG", not PRODUCTION and DJANGO_ENV != "test")
VERSION = "1.0.0"

INSTALLED_APPS = [
    # The admin site with a second factor (nexus_project/admin_site.py).
    "nexus_project.admin_apps.NexusAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc as static files: the docs work offline
    "corsheaders",
    "django_celery_beat",
    "axes",  # login lockout (README → Operations → Logins)
    "django_otp",  # TOTP second factor for the admin (README → Operations → Logins)
    "django_otp.plugins.otp_totp",
    "tenants",
    "audit",
    "prospects",
    "ingestion",
]

MIDDLEWARE = [
    # Probes first: they answer whatever the Host header (see the class docstring).
    "ingestion.api.middleware.ProbeMiddleware",
    "ingestion.api.middleware.RequestIdMiddleware",
    # Counts producer POSTs by outcome from their responses; right inside the request id so it
    # sees every answer, rejections from parser, throttle and limits included.
    "ingestion.api.middleware.ProducerMetricsMiddleware",
    "ingestion.api.middleware.ApiNotFoundMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): whether this session gave a TOTP code (django-otp).
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: answers a locked-out login with its 429 page.
    "axes.middleware.AxesMiddleware",
]

# Logins that resist guessing (django-axes): after NEXUS_LOGIN_FAILURE_LIMIT failed logins for
# one username from one IP, that pair is locked out for NEXUS_LOGIN_COOLOFF_MINUTES (429, "Account
# locked: too many login attempts"). A superuser unlocks in the admin (Axes → Access attempts:
# delete the row) or with `manage.py axes_reset_username USER`.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("NEXUS_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_float("NEXUS_LOGIN_COOLOFF_MINUTES", 30.0) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The client IP as the API throttles take it (NEXUS_NUM_PROXIES, below): behind N trusted
# proxies the address the N-th appended to X-Forwarded-For; with 0 the socket's, so a forged
# X-Forwarded-For neither dodges a lockout nor locks someone else out.
AXES_CLIENT_IP_CALLABLE = "nexus_project.client_ip.client_ip"
# Second factor (django-otp, TOTP): a staff user with a confirmed device gives its code at
# login; with NEXUS_ADMIN_REQUIRE_2FA (on in production, off in development and test) a
# superuser without one cannot use the admin until enrolled (`manage.py enrol_totp USER`).
NEXUS_ADMIN_REQUIRE_2FA = env_bool("NEXUS_ADMIN_REQUIRE_2FA", PRODUCTION)
OTP_TOTP_ISSUER = env_str("NEXUS_OTP_ISSUER", "NEXUS ingestion")
# The admin's session: how long a login lasts (seconds; default 12 h), not a fortnight.
SESSION_COOKIE_AGE = env_int("NEXUS_SESSION_COOKIE_AGE", 12 * 3600)
# Where the admin lives (default admin/): another path keeps it off the scanners' lists.
NEXUS_ADMIN_URL = (env_str("NEXUS_ADMIN_URL", "admin/").strip("/") or "admin") + "/"

ROOT_URLCONF = "nexus_project.urls"
WSGI_APPLICATION = "nexus_project.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "nexus_project" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# --- Database ---------------------------------------------------------------------------------
_db = environ.Env.db_url_config(_database_url)
if _db["ENGINE"] == "django.db.backends.sqlite3":
    Path(_db["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # Web and worker threads share one file: WAL lets readers run beside the writer, the busy
    # timeout waits instead of failing, IMMEDIATE takes the write lock at BEGIN so two writers
    # never deadlock upgrading read locks ("database is locked").
    _db["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
elif _db["ENGINE"] == "django.db.backends.postgresql":
    # A psycopg pool per process: the worker's threads (dozens, sized for Claude latency) share
    # a few connections, so the pool size, not the thread count, meets max_connections.
    _db["CONN_MAX_AGE"] = 0  # the pool owns connection lifetime (Django forbids both)
    # Django passes this to the pool as its checkout check: after a PostgreSQL restart a dead
    # pooled connection costs a reconnect, not an error.
    _db["CONN_HEALTH_CHECKS"] = True
    _db["OPTIONS"] = {
        "pool": {
            "min_size": env_int("DB_POOL_MIN", 1),
            "max_size": env_int("DB_POOL_MAX", 10),
            # Waiting longer than this for a connection means the pool is undersized: fail loudly.
            "timeout": env_float("DB_POOL_TIMEOUT", 10.0),
        },
        # A PostgreSQL that cannot be reached (down, or a partition dropping every packet) must
        # cost a POST seconds, then a 503 with Retry-After, not gunicorn's 30 s kill: a new
        # connection gives up after DB_CONNECT_TIMEOUT_SECONDS (libpq's minimum is 2), and a
        # pooled one whose packets go unacknowledged this long is dropped by the kernel
        # (TCP_USER_TIMEOUT) instead of waiting out TCP's ~15 min of retransmissions, which
        # would hang the pool's checkout check on every web worker (the chaos partition_web_postgres).
        "connect_timeout": max(2, round(env_float("DB_CONNECT_TIMEOUT_SECONDS", 5.0))),
        "tcp_user_timeout": int(1000 * env_float("DB_TCP_USER_TIMEOUT_SECONDS", 10.0)),
        # Every transaction of ours is short and makes no network call, so a session idle inside
        # one for this long belongs to a frozen or cut-off process (a VM paused, a partition):
        # PostgreSQL ends it and its row locks go, instead of every POST for that session (and
        # with sync web workers, all of them) waiting until the process wakes. Its late commit
        # then fails and the lease and the sweeper run the job again (the chaos paused_worker).
        "options": "-c idle_in_transaction_session_timeout="
        + str(int(1000 * env_float("DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS", 5.0))),
        # The URL's query options (?host=/socket/dir for the embedded server, ?sslmode=...) are
        # kept, and win: they were chosen for that server.
        **_db.get("OPTIONS", {}),
    }
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: broker, cache (throttling, heartbeat, circuit breaker) ----------------------------
REDIS_URL = env_str("REDIS_URL", f"redis://127.0.0.1:{DEV_REDIS_PORT}/0")
CACHES: dict[str, dict[str, Any]] = {
    "default": {
        # Django's RedisCache reusing its redis-py client (nexus_project/cache.py: building one
        # per call cost more CPU than the round trip).
        "BACKEND": "nexus_project.cache.RedisCache",
        "LOCATION": env_str("CACHE_URL", REDIS_URL),
        "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "nexus"),
        # Health and throttling must not hang on a dead Redis: fail fast, then fail open.
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
}

# --- Celery (applied by nexus_project/celery.py under the CELERY_ namespace) ------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
if CELERY_BROKER_URL.startswith("redis://"):
    # kombu's Redis transport reusing its redis-py client (nexus_project/broker.py: it built one
    # per publish, ack and event, on the consumer thread every task goes through).
    CELERY_BROKER_TRANSPORT = "nexus_project.broker:Transport"
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "nexus")
# Lanes: live work (a POST's revision) on the default queue, bulk work (reprocess, admin
# re-queue) on its own; every worker consumes both (the rate governor shares capacity).
NEXUS_BULK_QUEUE = env_str("NEXUS_BULK_QUEUE", f"{CELERY_TASK_DEFAULT_QUEUE}-bulk")
CELERY_TASK_QUEUES = (Queue(CELERY_TASK_DEFAULT_QUEUE), Queue(NEXUS_BULK_QUEUE))
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]  # never pickle: a broker message must not be able to run code
# The ledger row is the result; a result backend would only duplicate it and grow Redis.
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
# Ack after the task ran, and requeue if the worker process died mid-task, so a SIGKILL never
# loses a message; the claim on the row makes a second delivery harmless.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One message per pool slot: a long Claude call must not sit on messages others could run.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Threads, sized for Claude latency: a job is ~1 s of waiting on the network and a few ms of
# CPU under the process's GIL. 64 threads per process, one process per core (compose scales
# the worker to 2): make bench measured 1 x 128 threads at ~80 extractions/s with Claude at
# 1 s (the 128 merges and the consumer's refill queue on one GIL between waves of calls) and
# 2 x 64 at ~114/s (ideal 128). Threads share the process's small DB pool (they release it
# across the Claude call).
CELERY_WORKER_POOL = env_str("WORKER_POOL", "threads")
CELERY_WORKER_CONCURRENCY = env_int("WORKER_CONCURRENCY", 64 if PRODUCTION else 16)
# Hard/soft limits bind prefork and gevent pools only; under threads the SDK timeout (30 s)
# and the lease (120 s) are the real bounds. Both sit above the SDK timeout so a slow but
# healthy call is never cut.
CELERY_TASK_SOFT_TIME_LIMIT = 90
CELERY_TASK_TIME_LIMIT = 110
# Backoff countdowns are capped at 300 s; an unacked message is redelivered by Redis after the
# visibility timeout, which must exceed every countdown or delayed tasks run twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 3600,
    # Above the thread pool size: with acks_late every slot acks through this pool, and
    # kombu's default of 10 made acks fail with MaxConnectionsError under load.
    "max_connections": env_int("CELERY_BROKER_MAX_CONNECTIONS", 200),
    "socket_connect_timeout": 1,
    "socket_timeout": 5,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Publishing from a request: a bounded retry (under 1 s) and then give up; the ledger row is
# the promise and the sweeper publishes later.
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.3,
    "interval_max": 0.3,
}
# After a broker reconnect Celery cuts the prefetch to 1 and restores it with a basic.qos per
# finished task; in the chaos suite's RabbitMQ restart that synchronous basic.qos wedged both
# workers' event loops for ~3 minutes (until RabbitMQ dropped them for missed heartbeats).
# Over-fetching after a reconnect costs us nothing (a second delivery finds no claimable
# row), so the reduction stays off (celery#9512 is the same path).
CELERY_WORKER_ENABLE_PREFETCH_COUNT_REDUCTION = False
# AMQP heartbeats (RabbitMQ): a connection whose peer went silent is dropped after about two
# intervals, bounding any wedge like the one above to ~1 minute instead of the default ~4.
CELERY_BROKER_HEARTBEAT = 30
# Celery's consumer with one kombu race made survivable: a Redis restart under a busy threads
# pool made a worker exit instead of reconnecting (nexus_project/worker_consumer.py).
CELERY_WORKER_CONSUMER = "nexus_project.worker_consumer:Consumer"
CELERY_WORKER_SEND_TASK_EVENTS = True  # Flower
# "task-sent" events let Flower show a task from the moment it is published (issue 5 asks for
# them). They cost the producer a second Redis publish per POST (~0.3 ms of web CPU in make
# bench's figure 1); NEXUS_TASK_SENT_EVENTS=false trades that state in Flower for throughput,
# and the ledger's pending count and oldest pending age (health, /metrics) still tell it.
CELERY_TASK_SEND_SENT_EVENT = env_bool("NEXUS_TASK_SENT_EVENTS", True)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"

# --- Pipeline ---------------------------------------------------------------------------------
NEXUS: dict[str, Any] = {
    # Request limits (SPEC §3). The byte limit is checked before parsing.
    "MAX_BODY_BYTES": env_int("NEXUS_MAX_BODY_BYTES", 1024 * 1024),
    "MAX_MESSAGES": env_int("NEXUS_MAX_MESSAGES", 500),
    "MAX_MESSAGE_CHARS": env_int("NEXUS_MAX_MESSAGE_CHARS", 8000),
    # Metadata is free-form context (url, userAgent, timestamp: a few hundred bytes); the
    # bounds stop it from becoming a second, unbounded transcript or a parser stress test.
    "MAX_METADATA_BYTES": env_int("NEXUS_MAX_METADATA_BYTES", 16 * 1024),
    "MAX_METADATA_DEPTH": env_int("NEXUS_MAX_METADATA_DEPTH", 5),
    # A POST whose transcript extends a job's under another sessionId (the real widget makes a
    # new sessionId per message) is that job's next revision if the job was revised within
    # this window: a day covers a chat left open in a tab and picked up later, while an older
    # job is a finished chat (and the window bounds how far back the lookup's index reaches).
    "CONTINUATION_WINDOW_HOURS": env_float("NEXUS_CONTINUATION_WINDOW_HOURS", 24.0),
    # Spend caps (abuse of a public endpoint with guessable sessionIds). A long real chat
    # coalesces to a few dozen extractions a day; 0 switches a cap off. Jobs over a cap wait
    # for the next UTC day (pending, next_attempt_at set); nothing is dropped.
    "MAX_EXTRACTIONS_PER_SESSION_PER_DAY": env_int("NEXUS_MAX_EXTRACTIONS_PER_SESSION_PER_DAY", 100),
    # ~2k tokens per extraction uncached: 20M tokens is ~10k extractions, ~$2-3 on Haiku 5.5
    # (~$20-25 on Haiku 4.5). Cache reads are not counted against it.
    "DAILY_TOKEN_BUDGET": env_int("NEXUS_DAILY_TOKEN_BUDGET", 20_000_000),
    # A claimed job belongs to its worker this long; longer than the Claude timeout so a slow
    # call finishes before another worker may take the job over.
    "LEASE_SECONDS": env_float("NEXUS_LEASE_SECONDS", 120.0),
    # A published task not yet claimed after this long is presumed lost and published again.
    "DISPATCH_GRACE_SECONDS": env_float("NEXUS_DISPATCH_GRACE_SECONDS", 60.0),
    "SWEEP_INTERVAL_SECONDS": env_float("NEXUS_SWEEP_INTERVAL_SECONDS", 30.0),
    # Webhooks (issue 14): seconds before each retry of a failed delivery; after the last, the
    # delivery is given up. A wait longer than dispatch.eta_limit_seconds() (900 s: below the
    # visibility timeout) is not a Celery countdown: the sweeper publishes it once due.
    # Private/loopback/link-local endpoints are refused in production.
    "WEBHOOK_RETRY_SCHEDULE": [
        float(x)
        for x in env_list(
            "NEXUS_WEBHOOK_RETRY_SCHEDULE", ["5", "300", "1800", "7200", "18000", "36000", "36000"]
        )
    ],
    "WEBHOOK_ALLOW_PRIVATE": env_bool("NEXUS_WEBHOOK_ALLOW_PRIVATE", not PRODUCTION),
    "WEBHOOK_TIMEOUT_SECONDS": env_float("NEXUS_WEBHOOK_TIMEOUT_SECONDS", 5.0),
    # Who is mailed on prospect.hot (prospects.notify): addresses, and "owner" for the
    # prospect's owner; empty: nobody.
    "HOT_LEAD_EMAILS": env_list("NEXUS_HOT_LEAD_EMAILS", []),
    # An attempt holds its delivery this long (longer than the timeout); a worker killed
    # mid-POST leaves the delivery to the sweeper once it has passed.
    "WEBHOOK_LEASE_SECONDS": env_float("NEXUS_WEBHOOK_LEASE_SECONDS", 60.0),
    # Exponential backoff with full jitter for transient failures; the cap stays far below the
    # broker visibility timeout (3600 s).
    "BACKOFF_BASE_SECONDS": env_float("NEXUS_BACKOFF_BASE_SECONDS", 2.0),
    "BACKOFF_CAP_SECONDS": env_float("NEXUS_BACKOFF_CAP_SECONDS", 300.0),
    "MAX_ATTEMPTS": env_int("NEXUS_MAX_ATTEMPTS", 8),
    # A job whose workers keep dying mid-run is a poison job: fail it instead of looping.
    "MAX_CLAIMS": env_int("NEXUS_MAX_CLAIMS", 20),
    # Circuit breaker for account-wide failures (bad key, spend limit): first and longest pause.
    "BREAKER_BASE_SECONDS": env_float("NEXUS_BREAKER_BASE_SECONDS", 30.0),
    "BREAKER_CAP_SECONDS": env_float("NEXUS_BREAKER_CAP_SECONDS", 600.0),
    # Cleanup: transcripts are personal data; keep them only as long as they help.
    "COMPLETED_RETENTION_DAYS": env_int("NEXUS_COMPLETED_RETENTION_DAYS", 7),
    # Delivered prospect events (and their delivery records) are deleted after this many days.
    "EVENT_RETENTION_DAYS": env_int("NEXUS_EVENT_RETENTION_DAYS", 30),
    "FAILED_RETENTION_DAYS": env_int("NEXUS_FAILED_RETENTION_DAYS", 30),
    # The access log (audit app): who saw contacts, exported, erased; purged by the cleanup.
    "ACCESS_LOG_RETENTION_DAYS": env_int("NEXUS_ACCESS_LOG_RETENTION_DAYS", 365),
    # Alert thresholds (SPEC §4).
    "ALERT_QUEUE_LENGTH": env_int("NEXUS_ALERT_QUEUE_LENGTH", 100),
    "ALERT_OLDEST_PENDING_SECONDS": env_float("NEXUS_ALERT_OLDEST_PENDING_SECONDS", 300.0),
    "ALERT_ERROR_RATE": env_float("NEXUS_ALERT_ERROR_RATE", 0.05),
    "ALERT_P95_LATENCY_SECONDS": env_float("NEXUS_ALERT_P95_LATENCY_SECONDS", 5.0),
    # Workers refresh a heartbeat this often; health calls them down after the TTL.
    "HEARTBEAT_SECONDS": env_float("NEXUS_HEARTBEAT_SECONDS", 5.0),
    "HEARTBEAT_TTL_SECONDS": env_float("NEXUS_HEARTBEAT_TTL_SECONDS", 20.0),
    # The rate governor (ingestion/worker/governor.py): the account's per-minute limits on
    # Claude requests, input and output tokens, for all workers together (0 = no limit; the
    # API's rate-limit headers still tighten it). Set them to the account's tier.
    "CLAUDE_RPM": env_int("NEXUS_CLAUDE_RPM", 0),
    "CLAUDE_ITPM": env_int("NEXUS_CLAUDE_ITPM", 0),
    "CLAUDE_OTPM": env_int("NEXUS_CLAUDE_OTPM", 0),
    # A few seconds of the limit may go at once: the API's bucket holds a minute, but it may
    # enforce the limit over shorter intervals, so ours stays far smaller.
    "GOVERNOR_BURST_SECONDS": env_float("NEXUS_GOVERNOR_BURST_SECONDS", 5.0),
    # With its Redis unreachable each worker process keeps limit / this many (compose runs 2).
    "GOVERNOR_PROCESSES": env_int("NEXUS_GOVERNOR_PROCESSES", 2),
    # Its own Redis, if not the cache's (empty = the cache's).
    "GOVERNOR_REDIS_URL": env_str("NEXUS_GOVERNOR_REDIS_URL", ""),
    # While live work waits, bulk work (reprocess, admin re-queue) gets at most this share.
    "BULK_SHARE": env_float("NEXUS_BULK_SHARE", 0.3),
}
if not 0 < NEXUS["BULK_SHARE"] <= 1:
    raise ImproperlyConfigured("NEXUS_BULK_SHARE must be above 0 and at most 1")
if NEXUS["GOVERNOR_BURST_SECONDS"] <= 0:
    raise ImproperlyConfigured("NEXUS_GOVERNOR_BURST_SECONDS must be above 0")

# --- Tenants ---------------------------------------------------------------------------------
# The sites and channels served: "slug=domain1,domain2;slug2=domain3" ("whatsapp=" is a tenant
# without domains). Created or updated at migrate, never deleted; the admin edits them after.
NEXUS_TENANTS = env_tenants("NEXUS_TENANTS")
# Requests with no origin (and no key or X-Tenant-Id) land here; it always exists.
# Outgoing e-mail (the hot-lead mail): EMAIL_URL as django-environ reads it
# (smtp+tls://user:password@host:587, consolemail://); the console in development.
_email = environ.Env.email_url_config(
    env_str("EMAIL_URL", "smtp://localhost:25" if PRODUCTION else "consolemail://")
)
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email.get("EMAIL_HOST") or "localhost"
EMAIL_PORT = _email.get("EMAIL_PORT") or 25
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = bool(_email.get("EMAIL_USE_TLS", False))
EMAIL_USE_SSL = bool(_email.get("EMAIL_USE_SSL", False))
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "nexus@localhost")

NEXUS_DEFAULT_TENANT = env_str("NEXUS_DEFAULT_TENANT", "default")
if not TENANT_SLUG.fullmatch(NEXUS_DEFAULT_TENANT):
    raise ImproperlyConfigured(
        f"NEXUS_DEFAULT_TENANT={NEXUS_DEFAULT_TENANT!r} is not a slug (lower-case letters, digits, _ and -)"
    )
# Each process reads the tenants (and remembers a used key) for this long: how soon a tenant
# or domain added in the admin, or a key revoked, takes effect everywhere. Short, so no
# restart is needed; long enough that a POST never pays a query for them.
NEXUS_TENANT_CACHE_SECONDS = env_float("NEXUS_TENANT_CACHE_SECONDS", 10.0)

# --- Extraction -------------------------------------------------------------------------------
ANTHROPIC_API_KEY = env_str("ANTHROPIC_API_KEY")
ANTHROPIC_BASE_URL = env_str("ANTHROPIC_BASE_URL") or None
# The current Haiku (Claude Haiku 5.5, Oct 2026; Haiku 4.5 is a legacy model): fast and cheap,
# built for extraction, and it caches prompts from 512 tokens (Haiku 4.5: 4,096, which the
# system prompt never reached), so the cache mark pays.
ANTHROPIC_MODEL = env_str("ANTHROPIC_MODEL", "claude-haiku-5-5")
# Short, so a hung call frees its thread and Celery (not the SDK) decides about retrying.
ANTHROPIC_TIMEOUT_SECONDS = env_float("ANTHROPIC_TIMEOUT_SECONDS", 30.0)
ANTHROPIC_MAX_TOKENS = env_int("ANTHROPIC_MAX_TOKENS", 512)
# "disabled" | "adaptive" | "" (send nothing: the model's default). Haiku 5.5 thinks by default
# (adaptive, effort medium) and bills the thinking as output tokens that also count against
# ANTHROPIC_MAX_TOKENS; filling eight fields needs no reasoning, so it is off. Models that
# cannot turn thinking off (Fable 5, Mythos 5) need "".
ANTHROPIC_THINKING = env_str("ANTHROPIC_THINKING", "disabled")
# "claude" | "offline"; empty means claude when a key is set, else offline.
EXTRACTOR = env_str("EXTRACTOR")


def _phone_region(name: str, default: str) -> str:
    """An ISO 3166 region libphonenumber knows ("CO"); anything else stops the process."""
    import phonenumbers

    value = (env_str(name) or default).upper()  # set but empty: the default
    if value not in phonenumbers.SUPPORTED_REGIONS:
        raise ImproperlyConfigured(f"{name}={value!r} is not a region code libphonenumber knows (e.g. CO)")
    return value


# A phone written without a country code is read in this region's numbering plan, and one that
# is not valid there is no phone: that keeps a Colombian ID number (cédula, 8-10 digits) out of
# telefono. CO because the one real site is Colombian (WhatsApp ids +57, visitors give a
# cédula); a visitor abroad who writes +<country code> is read in their own country's plan.
NEXUS_DEFAULT_PHONE_REGION = _phone_region("NEXUS_DEFAULT_PHONE_REGION", "CO")
# USD per million tokens by model (nexus_project/prices.py); the cost recorded per Extraction
# is computed from these, per call.
ANTHROPIC_PRICES = _DEFAULT_PRICES


# --- HTTP -------------------------------------------------------------------------------------
# Only the widget's sites may call the API from a browser, and only under /api/ (never admin):
# these origins, and the tenants' domains (https; http too for localhost outside production),
# which ingestion/api/cors.py allows through django-cors-headers' check_request_enabled signal,
# read from the tenants' cache so a domain added in the admin needs no restart.
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS")
CORS_URLS_REGEX = r"^/api/.*$"
# The widget only reads health and posts; credentials are never sent (the API has no cookies).
CORS_ALLOW_METHODS = ["GET", "POST", "OPTIONS"]
CORS_ALLOW_CREDENTIALS = False
# The widget may send its own correlation id, and its script may read the ids we answer with.
# x-tenant-id: the shop widget names its tenant; authorization: a keyed producer (its key, not
# CORS, is what admits it, but a page may still send one).
CORS_ALLOW_HEADERS = ["accept", "content-type", "x-request-id", "x-tenant-id", "authorization"]
CORS_EXPOSE_HEADERS = ["x-request-id", "x-message-id", "x-queue-id", "location", "retry-after"]


def _rate(name: str, default: str) -> str | None:
    """A throttle rate like "30/min" from the environment; empty or "none" turns it off."""
    value = env_str(name, default)
    return None if value.lower() in {"", "none", "off", "0"} else value


# The widget posts once per visitor message: 30/min per session is far above any typist and
# 300/min per address leaves room for a busy office behind one NAT. The test profile starts
# with throttling off (one client address runs the whole suite); its own tests turn it on.
_THROTTLE_DEFAULTS = ("", "", "") if DJANGO_ENV == "test" else ("300/min", "30/min", "1200/min")
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "ingestion.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_RATES": {
        "producer_ip": _rate("NEXUS_THROTTLE_IP_RATE", _THROTTLE_DEFAULTS[0]),
        "producer_session": _rate("NEXUS_THROTTLE_SESSION_RATE", _THROTTLE_DEFAULTS[1]),
        # A keyed server (the WhatsApp webhook) posts for all its visitors from one address, so
        # it skips the per-IP limit and gets this one per key: 20/s is ~200 people typing at
        # once, and still bounds what a leaked key can spend before it is revoked.
        "producer_key": _rate("NEXUS_THROTTLE_KEY_RATE", _THROTTLE_DEFAULTS[2]),
    },
    # Proxies in front of the app that append to X-Forwarded-For (1 behind one nginx/ALB).
    # 0 trusts only the socket address: a client-sent X-Forwarded-For is then ignored, so it
    # cannot be forged to dodge the per-IP throttle. Set it to exactly the proxies you run.
    "NUM_PROXIES": env_int("NEXUS_NUM_PROXIES", 0),
}
# Only for the development landing page's link; `make run` and `make flower` listen there.
FLOWER_PORT = env_int("FLOWER_PORT", 5555)
# OpenAPI schema and docs: open in development, staff only (admin login) in production.
NEXUS_PUBLIC_DOCS = env_bool("NEXUS_PUBLIC_DOCS", not PRODUCTION)
SPECTACULAR_SETTINGS = {
    "TITLE": "NEXUS ingestion API",
    "DESCRIPTION": "Turns website chat conversations into sales prospects.",
    "VERSION": VERSION,
    # OpenAPI 3.1 (JSON Schema 2020-12): its "contains" states that a transcript must hold a
    # visitor turn, which 3.0 cannot say, so the fuzzer generates what the API accepts.
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Served from our own static files (drf-spectacular-sidecar), never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_PERMISSIONS": ["ingestion.api.openapi.DocsAccess"],
    "SERVE_AUTHENTICATION": ["rest_framework.authentication.SessionAuthentication"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "ingestion.api.openapi.postprocess_strict_request",
    ],
}
# The producer's own byte limit (413) applies first; Django's is a backstop for other views.
DATA_UPLOAD_MAX_MEMORY_SIZE = NEXUS["MAX_BODY_BYTES"] + 1024

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(VAR_DIR / "static")))
if not PRODUCTION:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns about a missing root
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = not PRODUCTION  # dev serves admin assets without collectstatic
# The browser client: its versioned name is immutable, its plain name cached for a day
# (nexus_project/staticfiles.py says why).
WHITENOISE_IMMUTABLE_FILE_TEST = CLIENT_IMMUTABLE
WHITENOISE_ADD_HEADERS_FUNCTION = client_cache_headers

# --- Security (production) --------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", PRODUCTION)
# Probes (/healthz, /readyz, /metrics) speak plain HTTP: ProbeMiddleware answers them before
# this redirect and the host check.
SESSION_COOKIE_SECURE = env_bool("DJANGO_SESSION_COOKIE_SECURE", PRODUCTION)
CSRF_COOKIE_SECURE = env_bool("DJANGO_CSRF_COOKIE_SECURE", PRODUCTION)
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31536000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
# Preloading is a decision for the owner of the registrable domain (it binds every subdomain
# and is slow to undo); this API normally runs on a subdomain, so it is off by default and
# check --deploy is not asked to nag about it. Setting DJANGO_SECURE_HSTS_PRELOAD turns it on.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

# --- Logging: JSON lines with the correlation id ----------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "ingestion.logcontext.ContextFilter"},
        # Contact data never reaches a log line, whatever a message or an extra carries.
        "redact": {"()": "ingestion.logcontext.RedactFilter"},
        # After the redaction, which has no business with hex ids.
        "trace": {"()": "ingestion.logcontext.TraceFilter"},
    },
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "ts", "levelname": "level", "name": "logger"},
        }
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["context", "redact", "trace"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "celery": {"level": "INFO"},
    },
}

# --- Error reports (Sentry) ---------------------------------------------------------------------
# Off unless SENTRY_DSN is set; scrubbed of contact data and bodies (nexus_project/sentry.py).
# Tracing is not configured here: it is per process, after the fork (nexus_project/tracing.py).
SENTRY_DSN = env_str("SENTRY_DSN")
SENTRY_ENVIRONMENT = env_str("SENTRY_ENVIRONMENT", DJANGO_ENV)
if SENTRY_DSN:
    from nexus_project.sentry import sentry_init

    sentry_init(dsn=SENTRY_DSN, environment=SENTRY_ENVIRONMENT, release=f"nexus-ingestion@{VERSION}")

if DJANGO_ENV == "test":
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

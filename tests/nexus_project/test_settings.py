"""Production settings (SPEC §7, §10): `check --deploy` is clean with the documented env, and
production refuses to start without its secrets. Each case runs manage.py in a subprocess,
because settings are read once per process."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def production_env(**overrides: str | None) -> dict[str, str]:
    """The documented production environment (see .env.example), minus anything ambient."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "NEXUS_", "CORS_"))}
    env.pop("DATABASE_URL", None)
    env.update(
        DJANGO_ENV="production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="nexus.example.com",
        DATABASE_URL="postgres://nexus:nexus@127.0.0.1:5432/nexus",
        DJANGO_STATIC_ROOT=str(ROOT / "var" / "static"),
    )
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_check_deploy_is_clean_in_production():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())

    print(result.stdout, result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


# What README's "Deploying with docker compose" tells the operator to export.
README_EXPORTS = {
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_ALLOWED_HOSTS": "nexus.example.com",
    "POSTGRES_PASSWORD": "a-postgres-password",
    "FLOWER_BASIC_AUTH": "admin:a-flower-password",
}
_SUBSTITUTION = re.compile(r"\$\{(\w+)(?::([?-])([^}]*))?\}")


def compose_env(service: str) -> dict[str, str]:
    """The environment compose gives ``service``, with README's exports substituted."""
    yaml = pytest.importorskip("yaml")
    environment = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"][service][
        "environment"
    ]

    def substitute(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if name in README_EXPORTS:
            return README_EXPORTS[name]
        assert kind != "?", f"compose requires {name}, which README does not export"
        return rest if kind == "-" else ""

    return {key: _SUBSTITUTION.sub(substitute, str(value)) for key, value in environment.items()}


def test_check_deploy_is_clean_with_the_compose_environment():
    env = {k: v for k, v in production_env().items() if k not in {"DJANGO_STATIC_ROOT"}}
    env.update(compose_env("web"))

    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)

    print(result.stdout, result.stderr)
    assert env["DJANGO_ENV"] == "production"
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "DATABASE_URL"])
def test_production_refuses_to_start_without_its_secrets(missing):
    result = manage("check", env=production_env(**{missing: None}))

    assert result.returncode != 0
    assert f"{missing} must be set" in result.stderr


SHOW = (
    "from django.conf import settings as s; "
    "print(s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, "
    "s.SECURE_SSL_REDIRECT, s.NEXUS_PUBLIC_DOCS, s.REST_FRAMEWORK['NUM_PROXIES'], "
    "s.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES'], s.CORS_ALLOWED_ORIGINS)"
)


def test_production_defaults_are_the_safe_ones():
    result = manage("shell", "-c", SHOW, env=production_env(CORS_ALLOWED_ORIGINS="https://shop.example"))

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == (
        "False True True 31536000 True False 0 "
        "{'producer_ip': '300/min', 'producer_session': '30/min', 'producer_key': '1200/min'} "
        "['https://shop.example']"
    )


def test_production_settings_follow_the_environment():
    env = production_env(
        DJANGO_DEBUG="true",
        DJANGO_SESSION_COOKIE_SECURE="false",
        DJANGO_SECURE_HSTS_SECONDS="60",
        NEXUS_PUBLIC_DOCS="true",
        NEXUS_NUM_PROXIES="1",
        NEXUS_THROTTLE_IP_RATE="none",
        NEXUS_THROTTLE_SESSION_RATE="5/s",
        NEXUS_THROTTLE_KEY_RATE="50/s",
    )

    result = manage("shell", "-c", SHOW, env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == (
        "True False True 60 True True 1 "
        "{'producer_ip': None, 'producer_session': '5/s', 'producer_key': '50/s'} []"
    )


PROBE = (
    "import json; from django.test import Client; c = Client(); "
    "print(json.dumps([c.get(path, HTTP_HOST=host).status_code for host, path in ["
    "('127.0.0.1:8000', '/healthz'), ('web:8000', '/metrics'), ('127.0.0.1:8000', '/readyz'), "
    "('127.0.0.1:8000', '/api/nexus/producer'), ('evil.example', '/admin/login/'), "
    "('nexus.example.com', '/healthz')]]))"
)


def test_probes_answer_any_host_and_everything_else_keeps_the_host_check():
    """compose's healthcheck asks 127.0.0.1:8000 and a scraper web:8000, not the public host."""
    # The suite's PostgreSQL when there is one, so /readyz answers at once rather than after
    # the pool's 10 s wait for the documented (absent) database.
    ambient = os.environ.get("DATABASE_URL", "")
    database = {"DATABASE_URL": ambient} if ambient.startswith("postgres") else {}
    result = manage("shell", "-c", PROBE, env=production_env(REDIS_URL="redis://127.0.0.1:9/0", **database))

    assert result.returncode == 0, result.stderr
    healthz, metrics, readyz, producer, admin, public = json.loads(result.stdout.strip().splitlines()[-1])
    assert (healthz, metrics, public) == (200, 200, 200)
    assert readyz in {200, 503}  # answered (503 when no database is reachable), not refused
    assert (producer, admin) == (400, 400)  # DisallowedHost: not a probe, the check stays


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("DJANGO_SECURE_SSL_REDIRECT", "ture", "DJANGO_SECURE_SSL_REDIRECT='ture' is not a boolean"),
        ("NEXUS_PUBLIC_DOCS", "maybe", "NEXUS_PUBLIC_DOCS='maybe' is not a boolean"),
        ("NEXUS_LEASE_SECONDS", "12O", "NEXUS_LEASE_SECONDS='12O' is not a number"),
        ("NEXUS_MAX_MESSAGES", "5oo", "NEXUS_MAX_MESSAGES='5oo' is not a whole number"),
        ("NEXUS_DEFAULT_PHONE_REGION", "Colombia", "NEXUS_DEFAULT_PHONE_REGION='COLOMBIA' is not a region"),
    ],
)
def test_a_setting_that_does_not_parse_stops_the_process_naming_it(variable, value, complaint):
    # A typo must never read as "off": before, DJANGO_SECURE_SSL_REDIRECT=ture turned the
    # redirect off without a word.
    result = manage("check", "--deploy", env=production_env(**{variable: value}))

    assert result.returncode != 0
    assert complaint in result.stderr
    assert "System check identified" not in result.stdout


def test_booleans_read_the_usual_spellings_and_empty_means_the_default():
    result = manage(
        "shell", "-v", "0", "-c", "from django.conf import settings; print(settings.SECURE_SSL_REDIRECT, settings.NEXUS_PUBLIC_DOCS)",
        env=production_env(DJANGO_SECURE_SSL_REDIRECT="", NEXUS_PUBLIC_DOCS="Yes"),
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]  # production's default, and "Yes"

"""Settings from the environment, read strictly.

A boolean or number that does not parse stops the process with a message naming the variable
(healthchecks' ``envbool`` is the model): ``DJANGO_SECURE_SSL_REDIRECT=ture`` must never read
as "off". For booleans and numbers an empty value counts as unset, so compose's ``${VAR:-}``
gives the default; for strings an empty value is a value (``NEXUS_THROTTLE_IP_RATE=`` turns a
throttle off, ``ANTHROPIC_THINKING=`` sends no thinking parameter).
"""

from __future__ import annotations

import os
import re

from django.core.exceptions import ImproperlyConfigured

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def env_str(name: str, default: str = "") -> str:
    value = os.environ.get(name)
    return default if value is None else value.strip()


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in TRUE:
        return True
    if value.lower() in FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={value!r} is not a boolean: use true or false (also 1/0, yes/no, on/off)"
    )


def env_int(name: str, default: int) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a whole number") from None


def env_float(name: str, default: float) -> float:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ImproperlyConfigured(f"{name}={value!r} is not a finite number")
    return number


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    """Comma-separated values, blanks dropped."""
    value = _raw(name)
    if value is None:
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


# A tenant slug: what X-Tenant-Id carries and what labels metrics; plain and short.
TENANT_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
# A host name as an Origin carries it: letters, digits, dots and hyphens, no scheme or port.
TENANT_DOMAIN = re.compile(
    r"(?=.{1,253}\Z)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
)


def env_tenants(name: str) -> dict[str, list[str]]:
    """``slug=domain1,domain2;slug2=domain3`` as {slug: [domains]}; ``slug=`` is a tenant
    without domains (a server-only channel). Anything else stops the process, naming it."""
    value = _raw(name)
    tenants: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    for entry in (value or "").split(";"):
        entry = entry.strip()
        if not entry:
            continue
        slug, sep, domains = entry.partition("=")
        slug = slug.strip()
        if not sep or not TENANT_SLUG.fullmatch(slug):
            raise ImproperlyConfigured(
                f"{name}: {entry!r} is not slug=domain1,domain2 (a slug is lower-case letters, digits, "
                "_ and -, up to 64; entries are separated by ;)"
            )
        if slug in tenants:
            raise ImproperlyConfigured(f"{name}: tenant {slug!r} is listed twice")
        hosts = [d.strip().lower() for d in domains.split(",") if d.strip()]
        for host in hosts:
            if not TENANT_DOMAIN.fullmatch(host):
                raise ImproperlyConfigured(
                    f"{name}: {host!r} (tenant {slug!r}) is not a domain: give the host alone, "
                    "e.g. shop.example.com, without scheme, port or path"
                )
            if host in owner:
                raise ImproperlyConfigured(f"{name}: domain {host!r} is in both {owner[host]!r} and {slug!r}")
            owner[host] = slug
        tenants[slug] = hosts
    return tenants

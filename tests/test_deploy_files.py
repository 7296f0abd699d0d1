"""The deploy files agree: every compose app command is the Procfile's, character for character,
and the compose services keep the properties the spec asks for (SPEC §8)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent
# Procfile process type -> compose service
SERVICE_FOR_PROCESS = {
    "release": "migrate",
    "web": "web",
    "worker": "worker",
    "beat": "beat",
    "flower": "flower",
}


def _procfile() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_every_procfile_process_has_a_compose_service_with_the_same_command() -> None:
    procfile, services = _procfile(), _compose()
    assert set(procfile) == set(SERVICE_FOR_PROCESS)
    for process, command in procfile.items():
        assert services[SERVICE_FOR_PROCESS[process]]["command"] == command, process


def test_compose_runs_exactly_one_beat_and_app_services_wait_for_migrate() -> None:
    services = _compose()
    assert "replicas" not in str(services["beat"].get("deploy", {}))
    assert services["beat"].get("scale", 1) == 1
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_compose_backing_services_keep_data_and_refuse_eviction() -> None:
    services = _compose()
    assert services["postgres"]["image"].startswith("postgres:15")
    assert "healthcheck" in services["postgres"]
    assert services["redis"]["image"].startswith("redis:7")
    redis_command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_command
    assert "--maxmemory-policy noeviction" in redis_command


def test_compose_app_services_run_production_settings() -> None:
    services = _compose()
    for name in ("migrate", "web", "worker", "beat", "flower"):
        env = services[name]["environment"]
        assert env["DJANGO_ENV"] == "production", name
        for required in ("DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS"):
            assert ":?" in env[required], f"{name}: {required} must be required from the host"

"""The deploy files agree: every compose app command is the Procfile's, character for character,
and the compose services keep the properties the spec asks for (SPEC §8)."""

from __future__ import annotations

import os
import shutil
import subprocess
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


_COMPOSE_ENV = {
    "DJANGO_SECRET_KEY": "x",
    "DJANGO_ALLOWED_HOSTS": "h",
    "POSTGRES_PASSWORD": "p",
    "FLOWER_BASIC_AUTH": "a:b",
}


def _compose_config(path: Path) -> subprocess.CompletedProcess[str]:
    """Debian's docker-compose (v1) validates against the compose schema; .ci/run installs it."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose not installed (apt-get install docker-compose; .ci/run does)")
    env = {"PATH": os.environ.get("PATH", ""), **_COMPOSE_ENV}
    return subprocess.run(
        [binary, "-f", str(path), "config", "-q"], env=env, capture_output=True, text=True, timeout=60
    )


def test_compose_file_validates_with_docker_compose_config() -> None:
    result = _compose_config(ROOT / "docker-compose.yml")
    assert result.returncode == 0, result.stderr


def test_the_compose_validation_catches_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text((ROOT / "docker-compose.yml").read_text().replace("    restart:", "    restrat:", 1))
    result = _compose_config(broken)
    assert result.returncode != 0 and "restrat" in result.stderr

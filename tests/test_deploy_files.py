"""The deploy files agree: every compose app command is the Procfile's, character for character,
the compose services keep the properties the spec asks for (SPEC §8), and the `observability`
profile adds Prometheus, Grafana and Jaeger without changing the default services."""

from __future__ import annotations

import os
import re
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


# --- Profile `observability` (Prometheus, Grafana, Jaeger) ---------------------------------------
DEFAULT_SERVICES = {"postgres", "redis", "migrate", "web", "worker", "beat", "flower"}
OBSERVABILITY_SERVICES = {"prometheus", "grafana", "jaeger"}


def _resolved_compose(*args: str) -> dict[str, Any]:
    """The file as docker-compose resolves it (anchors merged, variables substituted)."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose not installed (apt-get install docker-compose; .ci/run does)")
    env = {"PATH": os.environ.get("PATH", ""), **_COMPOSE_ENV}
    result = subprocess.run(
        [binary, "-f", str(ROOT / "docker-compose.yml"), *args, "config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def _enabled(services: dict[str, Any], profiles: set[str]) -> set[str]:
    """Compose's rule: a service without `profiles` always runs; one with them only when one of
    its profiles is enabled. (Debian's docker-compose v1 prints every service for
    `config --services` whatever the profiles, and applies this rule only at `up`.)"""
    return {
        name
        for name, service in services.items()
        if not service.get("profiles") or profiles & set(service["profiles"])
    }


def test_the_default_profile_is_unchanged_and_observability_adds_three_services() -> None:
    services = _resolved_compose()["services"]

    assert _enabled(services, set()) == DEFAULT_SERVICES
    assert _enabled(services, {"observability"}) == DEFAULT_SERVICES | OBSERVABILITY_SERVICES
    # Valid with the profile enabled too (v1 prints the same services either way).
    assert set(_resolved_compose("--profile", "observability")["services"]) == set(services)


def test_each_profile_only_depends_on_services_it_runs() -> None:
    services = _resolved_compose()["services"]
    for profiles in (set(), {"observability"}):
        enabled = _enabled(services, profiles)
        for name in enabled:
            assert set(services[name].get("depends_on", {})) <= enabled, (name, profiles)


def test_observability_images_are_pinned_and_ports_stay_on_loopback() -> None:
    services = _compose()
    for name in OBSERVABILITY_SERVICES:
        image = services[name]["image"]
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), f"{name}: pin an exact tag, not {image}"
        for port in services[name].get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port} is published beyond the host"


def _bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> repository file, for the ./ bind mounts of a service."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            mounts[target] = ROOT / source
    return mounts


def test_observability_mounts_files_that_exist() -> None:
    services = _compose()
    for name in OBSERVABILITY_SERVICES:
        for target, source in _bind_mounts(services[name]).items():
            # A missing source would be created by docker as an empty directory.
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"


def test_prometheus_loads_the_rules_and_scrapes_web_and_flower_on_their_compose_ports() -> None:
    services = _compose()
    mounts = _bind_mounts(services["prometheus"])
    config_path = next(
        arg.split("=", 1)[1] for arg in services["prometheus"]["command"] if arg.startswith("--config.file=")
    )
    config = yaml.safe_load(mounts[config_path].read_text())
    config_dir = Path(config_path).parent

    for rule_file in config["rule_files"]:
        assert mounts[str(config_dir / rule_file)] == ROOT / "deploy/prometheus/alerts.yml"
    targets = {
        t for job in config["scrape_configs"] for static in job["static_configs"] for t in static["targets"]
    }
    assert targets == {"web:8000", "flower:5555"}
    assert services["web"]["environment"]["GUNICORN_BIND"] == "0.0.0.0:8000"
    assert "--port=5555" in services["flower"]["command"].split()


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard() -> None:
    services = _compose()
    mounts = _bind_mounts(services["grafana"])
    provisioning = mounts["/etc/grafana/provisioning"]
    datasources = yaml.safe_load((provisioning / "datasources" / "nexus.yml").read_text())["datasources"]
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "nexus.yml").read_text())["providers"]

    prometheus = next(d for d in datasources if d["type"] == "prometheus")
    assert prometheus["url"] == "http://prometheus:9090" and prometheus["isDefault"]
    dashboards = {
        target: source
        for target, source in mounts.items()
        if target.startswith(provider["options"]["path"] + "/")
    }
    assert list(dashboards.values()) == [ROOT / "deploy/grafana/nexus-ingestion.json"]

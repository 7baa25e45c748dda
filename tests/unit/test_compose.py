"""docker-compose.yml is valid Compose and wires everything the code reads; the twins agree."""

from __future__ import annotations

import json
import re
from importlib.metadata import version
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from shared import keys
from shared.config import Settings
from testkit.processes import REPO

APP_SERVICES = ("ingestor", "writer", "analytics", "dashboard")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


@pytest.fixture(scope="module")
def spec() -> jsonschema.Draft7Validator:
    """The Compose Specification schema (draft-07, as its `$schema` says)."""
    schema = json.loads((REPO / "tests/fixtures/compose-spec.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_compose_file_passes_the_specification_schema(
    compose: dict[str, Any], spec: jsonschema.Draft7Validator
) -> None:
    spec.validate(compose)


def test_compose_rejects_what_the_schema_forbids(
    compose: dict[str, Any], spec: jsonschema.Draft7Validator
) -> None:
    broken = {**compose, "services": {**compose["services"], "redis": {"image": 7}}}
    with pytest.raises(jsonschema.ValidationError):
        spec.validate(broken)


def test_every_setting_is_wired_to_every_service(compose: dict[str, Any]) -> None:
    variables = {name.upper() for name in Settings.model_fields}
    for name in APP_SERVICES:
        environment = set(compose["services"][name]["environment"])
        assert variables <= environment, f"{name} lacks {sorted(variables - environment)}"
        assert environment <= variables, f"{name} sets unknown {sorted(environment - variables)}"


def test_sqlite_path_is_on_the_named_volume(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    for name in APP_SERVICES:
        service = compose["services"][name]
        sqlite_dir = str(Path(service["environment"]["SQLITE_PATH"]).parent)
        mounts = {m.split(":")[1]: m.split(":")[0] for m in service["volumes"]}
        assert mounts.get(sqlite_dir) in declared, f"{name}: {sqlite_dir} not on a named volume"
        assert service["environment"]["REDIS_URL"].startswith("redis://redis:")


def test_redis_has_aof_on_a_volume_a_healthcheck_and_no_published_port(
    compose: dict[str, Any],
) -> None:
    redis = compose["services"]["redis"]
    assert "--appendonly" in redis["command"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert redis["volumes"][0].split(":")[0] in compose["volumes"]
    assert "healthcheck" in redis
    assert "ports" not in redis


def test_services_wait_for_healthy_dependencies_and_check_themselves(
    compose: dict[str, Any],
) -> None:
    for name in APP_SERVICES:
        service = compose["services"][name]
        assert service["command"] == ["python", "-m", f"services.{name}"]
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["healthcheck"]["test"][-1] == "--check"
        assert service["stop_grace_period"] == "10s"


def test_only_the_dashboard_is_published_and_only_on_loopback(compose: dict[str, Any]) -> None:
    published = {n: s["ports"] for n, s in compose["services"].items() if "ports" in s}
    assert published == {"dashboard": ["127.0.0.1:8050:8050"]}
    assert compose["services"]["dashboard"]["environment"]["DASH_PORT"] == 8050


def test_dockerfile_installs_requirements_and_copies_the_packages() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "pip install -r requirements.txt" in dockerfile
    for package in ("shared/", "services/"):
        assert re.search(rf"^COPY {package} ", dockerfile, re.MULTILINE), package
    assert re.search(r"^USER (?!root)", dockerfile, re.MULTILINE)


def test_procfile_runs_the_same_four_services() -> None:
    lines = [line for line in (REPO / "Procfile").read_text().splitlines() if line.strip()]
    commands = dict(line.split(": ", 1) for line in lines)
    assert set(commands) == set(APP_SERVICES) == set(keys.SERVICES)
    for name, command in commands.items():
        assert command == f"exec python -m services.{name}"


def test_requirements_are_pinned_and_installed_at_those_versions() -> None:
    for file in ("requirements.txt", "requirements-dev.txt"):
        for line in (REPO / file).read_text().splitlines():
            line = line.strip()
            if not line or line.startswith(("#", "-r")):
                continue
            name, _, pinned = line.partition("==")
            assert pinned, f"{file}: {line} is not pinned with =="
            assert version(name) == pinned, f"{name} installed {version(name)}, pinned {pinned}"

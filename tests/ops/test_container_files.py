"""The Dockerfile and docker-compose.yml agree with the code (Docker itself is
not needed: the files are parsed and compared with the settings and routes)."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from session_service.config import Settings

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "session-service"


def default(name: str) -> Any:
    return Settings.model_fields[name].default


def setting_names() -> set[str]:
    return {name.upper() for name in Settings.model_fields}


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = instructions((ROOT / "Dockerfile").read_text())
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def arguments(steps: list[tuple[str, str]], keyword: str) -> list[str]:
    return [rest for k, rest in steps if k == keyword]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def service(compose: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = compose["services"][SERVICE]
    return value


def test_dockerfile_is_multi_stage_with_a_slim_python_final_image() -> None:
    froms = arguments(instructions((ROOT / "Dockerfile").read_text()), "FROM")
    assert len(froms) >= 2
    assert re.fullmatch(r"python:3\.1[1-9]-slim", froms[-1]), froms[-1]


def test_final_image_installs_no_build_tools_and_copies_only_wheels() -> None:
    steps = final_stage()
    runs = " ".join(arguments(steps, "RUN"))
    for tool in ("apt-get", "gcc", "build-essential", "make ", "curl", "wget"):
        assert tool not in runs, tool
    assert arguments(steps, "COPY") == ["--from=builder /wheels /wheels"]


def test_final_image_runs_as_a_non_root_user() -> None:
    [user] = arguments(final_stage(), "USER")
    assert user not in ("root", "0")
    assert user in " ".join(arguments(final_stage(), "RUN")), "the user is created"


def test_dockerfile_exposes_the_default_port() -> None:
    assert arguments(final_stage(), "EXPOSE") == [str(default("port"))]


def test_healthcheck_probes_health_with_the_python_standard_library() -> None:
    [check] = arguments(final_stage(), "HEALTHCHECK")
    command = json.loads(check.split("CMD", 1)[1])
    assert command[:2] == ["python", "-c"]
    assert "urllib.request" in command[2]
    assert "/health" in command[2]
    assert str(default("port")) in command[2]
    spec = json.loads((ROOT / "docs/api/openapi.json").read_text())
    assert "/health" in spec["paths"]


def test_dockerfile_env_sets_only_settings_the_code_reads() -> None:
    names = re.findall(r"(\w+)=", " ".join(arguments(final_stage(), "ENV")))
    ours = [name for name in names if not name.startswith("PYTHON")]
    assert ours and set(ours) <= setting_names(), set(ours) - setting_names()


def test_dockerfile_runs_the_installed_cli() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    [cmd] = arguments(final_stage(), "CMD")
    assert json.loads(cmd)[0] in project["scripts"]


def test_build_context_keeps_secrets_and_local_state_out() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignored = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    assert {".env", ".venv", ".git", "data"} <= ignored
    steps = instructions((ROOT / "Dockerfile").read_text())
    copies = [shlex.split(rest) for keyword, rest in steps if keyword == "COPY"]
    sources = [s for args in copies if not args[0].startswith("--from") for s in args[:-1]]
    for source in sources:
        assert (ROOT / source).exists(), source
        assert source not in ignored, source


def test_compose_publishes_the_default_port(compose: dict[str, Any]) -> None:
    port = default("port")
    assert service(compose)["ports"] == [f"{port}:{port}"]
    assert service(compose)["environment"]["PORT"] == str(port)


def test_compose_sets_only_variables_the_code_reads(compose: dict[str, Any]) -> None:
    names = set(service(compose)["environment"])
    assert names <= setting_names(), names - setting_names()


def test_compose_variables_are_in_the_readme_configuration_table(
    compose: dict[str, Any],
) -> None:
    readme = (ROOT / "docs/configuration.md").read_text()
    for name in service(compose)["environment"]:
        assert f"| `{name}`" in readme or f"`{name}`," in readme, name


def test_compose_points_redis_url_at_its_redis_with_aof_on(compose: dict[str, Any]) -> None:
    url = urlsplit(service(compose)["environment"]["REDIS_URL"])
    assert url.scheme == "redis"
    redis = compose["services"][url.hostname]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert command[command.index("--port") + 1] == str(url.port)
    assert url.hostname in service(compose)["depends_on"]


def test_compose_waits_longer_than_the_shutdown_grace_before_killing(
    compose: dict[str, Any],
) -> None:
    grace = float(service(compose)["environment"].get("SHUTDOWN_GRACE_SECONDS", 0)) or float(
        default("shutdown_grace_seconds")
    )
    stop = service(compose)["stop_grace_period"]
    assert stop.endswith("s") and float(stop[:-1]) > grace

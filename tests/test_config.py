"""A bad configuration value stops the process at start with one line naming the
variable (issue 2, item 2). The real console script runs in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from session_service.config import Settings, load_settings

SCRIPT = str(Path(sys.executable).parent / "fm-session-service")


def _clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env.update(values)
    return env


def _run(cwd: Path, **values: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT], cwd=cwd, env=_clean_env(**values), capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORT", "abc"),
        ("DEFAULT_SESSION_TTL", "0"),
        ("REDIS_URL", "http://x"),
        ("SESSION_LIMIT_POLICY", "evict_newest"),
    ],
)
def test_a_bad_value_exits_non_zero_with_one_line_naming_the_variable(
    tmp_path: Path, variable: str, value: str
) -> None:
    result = _run(tmp_path, **{variable: value})
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_inconsistent_timeout_bounds_name_both_variables(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SESSION_MIN_TIMEOUT_MINUTES", "10")
    monkeypatch.setenv("SESSION_MAX_TIMEOUT_MINUTES", "5")
    with pytest.raises(SystemExit):
        load_settings(_env_file=None)
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "SESSION_MIN_TIMEOUT_MINUTES" in line
    assert "SESSION_MAX_TIMEOUT_MINUTES" in line


def test_a_bad_value_in_the_env_file_is_reported_the_same_way(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DEFAULT_SESSION_TTL=soon\n", encoding="utf-8")
    result = _run(tmp_path)
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert "DEFAULT_SESSION_TTL" in line


def test_load_settings_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEFAULT_SESSION_TTL", "5")
    monkeypatch.setenv("REDIS_URL", "unix:///tmp/x.sock")
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    settings = load_settings(_env_file=None)
    assert settings.default_session_ttl == 5
    assert settings.redis_url == "unix:///tmp/x.sock"
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.embedded is False


def test_defaults_match_the_readme(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    settings = Settings(_env_file=None)
    assert settings.port == 8001
    assert settings.redis_url is None
    assert settings.embedded is True
    assert settings.default_session_ttl == 86400
    assert settings.archived_session_ttl == 7776000
    assert settings.max_sessions_per_user == 1000
    assert settings.cleanup_interval_seconds == 300
    assert settings.case_service_timeout == 2
    assert (settings.session_min_timeout_minutes, settings.session_max_timeout_minutes) == (
        1,
        10080,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORT", "70000"),
        ("LOG_LEVEL", "LOUD"),
        ("ARCHIVED_SESSION_TTL", "-1"),
        ("MAX_SESSIONS_PER_USER", "0"),
        ("CASE_SERVICE_TIMEOUT", "soon"),
        ("REDIS_MODE", "galaxy"),
        ("SESSION_MIN_TIMEOUT_MINUTES", "0"),
        ("CLEANUP_INTERVAL_SECONDS", "-1"),
        ("CASE_SERVICE_URL", "localhost:8003"),
    ],
)
def test_load_settings_exits_with_status_2_and_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as exited:
        load_settings(_env_file=None)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert variable in err


def test_an_empty_case_service_url_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASE_SERVICE_URL", "")
    assert load_settings(_env_file=None).case_service_url is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("reject", "reject"), ("evict_oldest", "evict_oldest"), (" Evict_Oldest ", "evict_oldest")],
)
def test_session_limit_policy_values(value: str, expected: str) -> None:
    settings = Settings(session_limit_policy=value, _env_file=None)  # type: ignore[arg-type]
    assert settings.session_limit_policy == expected
    assert Settings(_env_file=None).session_limit_policy == "reject"

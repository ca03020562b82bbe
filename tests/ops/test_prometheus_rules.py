"""deploy/prometheus/: the SLO recording rules and the alerts, checked by promtool
(`check rules`, and `test rules` on unit tests that fire and clear every alert),
each alert linked to its runbook section."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.ops.promql import ALERT_TESTS, ROOT, RULE_FILES, RUNBOOKS, alerts

RUNBOOK_BASE = "https://github.com/FaultMaven/fm-session-service/blob/main/docs/runbooks.md"
# What every runbook section answers (the issue: what it means, how to confirm, what to do).
RUNBOOK_PARTS = ("**Meaning.**", "**Confirm.**", "**Act.**")


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is not installed: run .ci/prometheus.sh (`make test` does)"
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_rule_files_pass_promtool_check(promtool: str) -> None:
    result = run(promtool, "check", "rules", *(str(p) for p in RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_FILES)


def test_alert_unit_tests_pass(promtool: str) -> None:
    result = run(promtool, "test", "rules", *(str(p) for p in ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(ALERT_TESTS)


def alert_cases() -> dict[str, list[tuple[str, bool]]]:
    """Per alert, its (test, fires?) evaluations in the order they are written."""
    cases: dict[str, list[tuple[str, bool]]] = {}
    for path in ALERT_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", ()):
                fired = bool(case["exp_alerts"])
                cases.setdefault(case["alertname"], []).append((test["name"], fired))
    return cases


@pytest.mark.parametrize("alert", [a["alert"] for a in alerts()])
def test_every_alert_is_tested_firing_then_clearing(alert: str) -> None:
    cases = alert_cases().get(alert, [])
    scenarios = {name for name, _ in cases}
    assert any(
        [fired for name, fired in cases if name == scenario][-2:] == [True, False]
        for scenario in scenarios
    ), f"{alert}: no test where it fires and then clears: {cases}"


def runbook_sections() -> dict[str, str]:
    """docs/runbooks.md's `## ` sections by their GitHub anchor."""
    text = RUNBOOKS.read_text()
    sections = {}
    for match in re.finditer(r"^## ([^\n]+)\n(.*?)(?=^## |\Z)", text, re.M | re.S):
        anchor = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
        sections[anchor] = match.group(2)
    return sections


@pytest.mark.parametrize("alert", alerts(), ids=lambda a: a["alert"])
def test_every_alert_links_its_runbook_section(alert: dict[str, Any]) -> None:
    url = alert["annotations"]["runbook_url"]
    assert url.startswith(f"{RUNBOOK_BASE}#"), url
    anchor = url.split("#", 1)[1]
    section = runbook_sections().get(anchor)
    assert section is not None, f"docs/runbooks.md has no section #{anchor}"
    for part in RUNBOOK_PARTS:
        assert part in section, f"#{anchor} lacks {part}"
    assert alert["labels"]["severity"] in ("critical", "warning")
    assert alert["annotations"]["summary"] and alert["annotations"]["description"]


def test_every_runbook_section_is_an_alert() -> None:
    names = {a["alert"].lower() for a in alerts()}
    assert set(runbook_sections()) - names == {"how-to-read-these-runbooks"}


def test_memory_alert_watches_the_deployments_memory_limit() -> None:
    [memory] = [a for a in alerts() if a["alert"] == "FmSessionMemoryGrowth"]
    deployment = yaml.safe_load((ROOT / "deploy/kubernetes/deployment.yaml").read_text())
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    limit = container["resources"]["limits"]["memory"]
    assert limit == "512Mi"
    assert "> 512 * 1024 * 1024" in memory["expr"]
    assert "512 MiB" in memory["annotations"]["description"]

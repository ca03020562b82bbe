"""What the dashboard and the rules ask Prometheus for: their queries, and the
metric names those queries read (without a PromQL parser: the names are what is
left once strings, label matchers, ranges, groupings and calls are taken out)."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy/grafana"
DASHBOARD_JSON = GRAFANA / "fm-session-service.json"
RULES = ROOT / "deploy/prometheus"
RULE_FILES = (RULES / "recording.yml", RULES / "alerts.yml")
ALERT_TESTS = (RULES / "tests/alerts_test.yml", RULES / "tests/slo_slow_test.yml")
RUNBOOKS = ROOT / "docs/runbooks.md"

#: Series Prometheus makes itself for every target.
SYNTHETIC = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})
_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"offset", "bool", "inf", "nan"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_OFFSET = re.compile(r"\boffset\s+\S+")
_NAME = re.compile(r"(?<![\w:.$])([A-Za-z_:][\w:]*)(\s*\()?")


def _load(name: str, path: Path) -> ModuleType:
    """A script of deploy/, imported from its path (deploy/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def load_generator() -> ModuleType:
    return _load("fm_dashboard", GRAFANA / "dashboard.py")


def load_renderer() -> ModuleType:
    return _load("fm_dashboard_render", GRAFANA / "render.py")


def metric_names(expr: str) -> set[str]:
    """The metric (or recorded series) names a PromQL expression reads."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    names = set()
    for match in _NAME.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue  # a function or an aggregation, or an operator
        names.add(name)
    return names


def dashboard() -> dict[str, Any]:
    board: dict[str, Any] = json.loads(DASHBOARD_JSON.read_text())
    return board


def dashboard_panels() -> list[dict[str, Any]]:
    """Every panel with queries (rows have none)."""
    return [p for p in dashboard()["panels"] if p.get("targets")]


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for path in RULE_FILES:
        groups += yaml.safe_load(path.read_text())["groups"]
    return groups


def rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def recorded() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("", "_count", "_sum"),
}


def exported_names(exposition: str) -> set[str]:
    """Every series name a /metrics answer declares (`_bucket`, `_count`, ... included),
    samples or not: a labelled counter has none before its first event."""
    names = set()
    for family in text_string_to_metric_families(exposition):
        names |= {family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return names


def unknown_metrics(exprs: dict[str, str], exposition: str) -> dict[str, set[str]]:
    """Per query (by where it is), the names it reads that nothing exports or records."""
    known = exported_names(exposition) | recorded() | SYNTHETIC
    found = {where: metric_names(expr) - known for where, expr in exprs.items()}
    return {where: names for where, names in found.items() if names}


def queries() -> dict[str, str]:
    """Every query of the dashboard and the rules, named by where it is."""
    out = {}
    for panel in dashboard_panels():
        for target in panel["targets"]:
            out[f"panel {panel['title']!r} {target['refId']}"] = target["expr"]
    for rule in rules():
        out[f"rule {rule.get('alert') or rule.get('record')}"] = rule["expr"]
    return out

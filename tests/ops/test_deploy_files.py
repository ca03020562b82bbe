"""Every file under deploy/ agrees with the code and with FaultMaven's deployment
(issue 12, item 2). No Docker or Kubernetes is needed: the files are parsed, their
variables are built into real `Settings`, and their ports, probes and grace
periods are compared with the settings and the generated API docs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from session_service.config import RedisMode, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DEPLOY_FILES = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml"))

# FaultMaven's facts (github.com/FaultMaven/faultmaven-deploy docker-compose.yml, its
# Kubernetes gateway example, and fm-core-lib's service registry).
PLATFORM_SERVICE = "fm-session-service"
PLATFORM_PORTS = "8002:8000"  # published 8002, 8000 in the container
PLATFORM_REDIS = ("redis", 6379)
PLATFORM_CASE_SERVICE = "http://fm-case-service:8000"
REGISTRY_SESSION_PORT = 8002  # the gateway's Kubernetes URL: fm-session-service...:8002
GATEWAY_LABELS = {"app": "fm-api-gateway"}
REDIS_SECRET = ("redis-credentials", "password")
# kube-prometheus: Prometheus runs in `monitoring`, its pods labelled as below.
PROMETHEUS_NAMESPACE = {"kubernetes.io/metadata.name": "monitoring"}
PROMETHEUS_LABELS = {"app.kubernetes.io/name": "prometheus"}
RULES = DEPLOY / "prometheus"


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def manifests() -> dict[str, dict[str, Any]]:
    by_kind: dict[str, dict[str, Any]] = {}
    for path in DEPLOY_FILES:
        for doc in documents(path):
            if "kind" in doc and "apiVersion" in doc and doc["kind"] != "Kustomization":
                assert doc["kind"] not in by_kind, f"two {doc['kind']} manifests"
                by_kind[doc["kind"]] = doc
    return by_kind


def settings_from(env: dict[str, str]) -> Settings:
    """The settings a container with exactly this environment would run with."""
    return Settings(_env_file=None, **{name.lower(): value for name, value in env.items()})


def setting_names() -> set[str]:
    return {name.upper() for name in Settings.model_fields}


def api_paths() -> set[str]:
    spec = json.loads((ROOT / "docs/api/openapi.json").read_text())
    return set(spec["paths"])


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    [doc] = documents(DEPLOY / "docker-compose.faultmaven.yml")
    service: dict[str, Any] = doc["services"][PLATFORM_SERVICE]
    return service


@pytest.fixture(scope="module")
def container() -> dict[str, Any]:
    [only] = manifests()["Deployment"]["spec"]["template"]["spec"]["containers"]
    value: dict[str, Any] = only
    return value


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """Plain values as they are; a value from a Secret as a placeholder."""
    return {e["name"]: e.get("value", f"<{e['name']} from a Secret>") for e in container["env"]}


@pytest.mark.parametrize("path", DEPLOY_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_deploy_file_is_yaml_with_content(path: Path) -> None:
    assert documents(path), path


def test_the_deploy_directory_ships_compose_and_kubernetes_files() -> None:
    assert set(manifests()) == {
        *("Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"),
        *("ServiceMonitor", "PrometheusRule"),  # deploy/kubernetes/monitoring/
    }
    # The monitoring resources need the Prometheus Operator's CRDs: a kustomization of
    # their own, so `kubectl apply -k deploy/kubernetes` works without them.
    for directory in (DEPLOY / "kubernetes", DEPLOY / "kubernetes/monitoring"):
        [kustomization] = documents(directory / "kustomization.yaml")
        listed = {directory / name for name in kustomization["resources"]}
        assert listed == {p for p in DEPLOY_FILES if p.parent == directory} - {
            directory / "kustomization.yaml"
        }


# ---- the compose override ------------------------------------------------


def test_compose_sets_only_settings_and_they_are_valid(compose: dict[str, Any]) -> None:
    env = compose["environment"]
    assert set(env) <= setting_names(), set(env) - setting_names()
    settings = settings_from(env)
    assert settings.embedded is False


def test_compose_listens_where_the_platform_expects(compose: dict[str, Any]) -> None:
    settings = settings_from(compose["environment"])
    target = PLATFORM_PORTS.split(":")[1]
    assert compose["ports"] == [PLATFORM_PORTS]
    assert settings.port == int(target)
    assert settings.port != Settings.model_fields["port"].default, "the default stays 8001"


def test_compose_uses_the_platforms_redis_and_case_service(compose: dict[str, Any]) -> None:
    settings = settings_from(compose["environment"])
    host, port = PLATFORM_REDIS
    assert (settings.redis_host, settings.redis_port) == (host, port)
    assert settings.redis_connection_url == f"redis://{host}:{port}/{settings.redis_db or 0}"
    assert settings.case_service_url == PLATFORM_CASE_SERVICE
    assert compose["depends_on"][host]["condition"] == "service_healthy"


def test_compose_healthcheck_probes_health_on_the_container_port(compose: dict[str, Any]) -> None:
    settings = settings_from(compose["environment"])
    command = compose["healthcheck"]["test"]
    assert command[:3] == ["CMD", "python", "-c"]
    [url] = re.findall(r"'(http://[^']+)'", command[3])
    assert url == f"http://127.0.0.1:{settings.port}/health"
    assert "/health" in api_paths()


def test_compose_waits_longer_than_the_shutdown_grace(compose: dict[str, Any]) -> None:
    grace = settings_from(compose["environment"]).shutdown_grace_seconds
    stop = compose["stop_grace_period"]
    assert stop.endswith("s") and float(stop[:-1]) > grace


# ---- the Kubernetes manifests ----------------------------------------------


def test_deployment_sets_only_settings_and_they_are_valid(container: dict[str, Any]) -> None:
    env = container_env(container)
    assert set(env) <= setting_names(), set(env) - setting_names()
    settings = settings_from(env)
    assert settings.redis_mode is RedisMode.SENTINEL
    assert settings.redis_sentinel_hosts and settings.redis_master_set
    assert settings.embedded is False


def test_redis_password_comes_from_the_platforms_secret(container: dict[str, Any]) -> None:
    [entry] = [e for e in container["env"] if e["name"] == "REDIS_PASSWORD"]
    ref = entry["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == REDIS_SECRET
    assert "value" not in entry


def test_probes_use_ready_and_health_on_the_container_port(container: dict[str, Any]) -> None:
    settings = settings_from(container_env(container))
    [port] = container["ports"]
    assert port["containerPort"] == settings.port
    readiness = container["readinessProbe"]["httpGet"]
    liveness = container["livenessProbe"]["httpGet"]
    assert (readiness["path"], readiness["port"]) == ("/ready", port["name"])
    assert (liveness["path"], liveness["port"]) == ("/health", port["name"])
    assert {"/ready", "/health"} <= api_paths()


def test_termination_grace_covers_the_pre_stop_and_the_shutdown_grace(
    container: dict[str, Any],
) -> None:
    settings = settings_from(container_env(container))
    pod = manifests()["Deployment"]["spec"]["template"]["spec"]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    assert (
        pod["terminationGracePeriodSeconds"] > float(command[1]) + settings.shutdown_grace_seconds
    )


def test_resources_are_requested(container: dict[str, Any]) -> None:
    requests = container["resources"]["requests"]
    assert requests["cpu"] and requests["memory"]


def test_runs_as_the_images_non_root_user(container: dict[str, Any]) -> None:
    pod = manifests()["Deployment"]["spec"]["template"]["spec"]["securityContext"]
    uid = re.search(r"--uid (\d+)", (ROOT / "Dockerfile").read_text())
    assert uid is not None
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == int(uid.group(1)) != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_service_is_where_the_gateway_looks_and_reaches_the_pods() -> None:
    found = manifests()
    deployment, service = found["Deployment"], found["Service"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["metadata"]["name"] == PLATFORM_SERVICE
    assert service["metadata"]["namespace"] == deployment["metadata"]["namespace"] == "faultmaven"
    assert service["spec"]["selector"].items() <= pod_labels.items()
    [port] = service["spec"]["ports"]
    [container_port] = deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert port["port"] == REGISTRY_SESSION_PORT
    assert port["targetPort"] == container_port["name"]


def test_disruption_budget_keeps_a_replica_serving() -> None:
    found = manifests()
    deployment, budget = found["Deployment"], found["PodDisruptionBudget"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert 1 <= budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]


def test_network_policy_admits_only_the_gateway_and_prometheus() -> None:
    found = manifests()
    deployment, policy = found["Deployment"], found["NetworkPolicy"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    [gateway, prometheus] = policy["spec"]["ingress"]
    assert gateway["from"] == [{"podSelector": {"matchLabels": GATEWAY_LABELS}}]
    # Prometheus pods of the monitoring namespace only (both selectors in one entry).
    assert prometheus["from"] == [
        {
            "namespaceSelector": {"matchLabels": PROMETHEUS_NAMESPACE},
            "podSelector": {"matchLabels": PROMETHEUS_LABELS},
        }
    ]
    [container_port] = deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    for rule in (gateway, prometheus):
        assert [p["port"] for p in rule["ports"]] == [container_port["name"]]


def test_readme_explains_the_deployment_and_every_variable_it_sets(
    compose: dict[str, Any], container: dict[str, Any]
) -> None:
    page = (ROOT / "docs/deploying.md").read_text()
    settings = (ROOT / "docs/configuration.md").read_text()
    assert page.startswith("# Deploying in FaultMaven")
    for path in DEPLOY_FILES:
        if path.name != "kustomization.yaml":
            assert str(path.relative_to(ROOT)) in page, path
    for name in {*compose["environment"], *container_env(container)}:
        assert f"| `{name}`" in settings, name


# ---- monitoring: scrape annotations, ServiceMonitor, PrometheusRule, compose ------


def alert_job() -> str:
    """The scrape job FmSessionDown watches (the one alert that names a job)."""
    alerts = yaml.safe_load((RULES / "alerts.yml").read_text())["groups"]
    [down] = [r for g in alerts for r in g["rules"] if r.get("alert") == "FmSessionDown"]
    jobs = set(re.findall(r'up\{job="([^"]+)"\}', down["expr"]))
    assert len(jobs) == 1, down["expr"]
    return jobs.pop()


def test_pods_are_annotated_for_scraping_on_the_container_port(container: dict[str, Any]) -> None:
    annotations = manifests()["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    [port] = container["ports"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port["containerPort"])
    assert annotations["prometheus.io/path"] == "/metrics"
    assert "/metrics" in api_paths()


def test_service_monitor_scrapes_the_service_under_the_alerts_job() -> None:
    found = manifests()
    service, monitor = found["Service"], found["ServiceMonitor"]
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [service["metadata"]["namespace"]]
    [endpoint] = monitor["spec"]["endpoints"]
    [port] = service["spec"]["ports"]
    assert (endpoint["port"], endpoint["path"]) == (port["name"], "/metrics")
    # Without a jobLabel, the Operator names the job after the Service.
    assert "jobLabel" not in monitor["spec"]
    assert service["metadata"]["name"] == alert_job()


def test_prometheus_rule_holds_exactly_the_rule_files() -> None:
    rule = manifests()["PrometheusRule"]
    groups = []
    for name in ("recording.yml", "alerts.yml"):
        groups += yaml.safe_load((RULES / name).read_text())["groups"]
    assert rule["spec"]["groups"] == groups
    assert rule["metadata"]["namespace"] == "faultmaven"
    result = subprocess.run(
        [sys.executable, str(RULES / "prometheusrule.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_compose_prometheus_is_optional_and_scrapes_the_service(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    [doc] = documents(DEPLOY / "docker-compose.faultmaven.yml")
    prometheus = doc["services"]["prometheus"]
    assert prometheus["profiles"] == ["monitoring"], "started only with --profile monitoring"
    [rules_volume] = [v for v in prometheus["volumes"] if v.endswith(":ro")]
    source, mounted, _ = rules_volume.rsplit(":", 2)
    assert source.endswith("/deploy/prometheus")
    config_arg = f"--config.file={mounted}/prometheus.yml"
    assert config_arg in prometheus["command"]
    assert prometheus["ports"] == ["127.0.0.1:9090:9090"]
    [config] = documents(RULES / "prometheus.yml")
    [job] = config["scrape_configs"]
    settings = settings_from(compose["environment"])
    assert job["job_name"] == alert_job()
    assert job["static_configs"] == [{"targets": [f"{PLATFORM_SERVICE}:{settings.port}"]}]
    assert [Path(f).parent for f in config["rule_files"]] == [Path(mounted)] * 2
    assert {Path(f).name for f in config["rule_files"]} == {"recording.yml", "alerts.yml"}
    # promtool accepts it, with the mount's paths pointed at this checkout.
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: run .ci/prometheus.sh (`make test` does)"
    local = tmp_path / "prometheus.yml"
    local.write_text((RULES / "prometheus.yml").read_text().replace(mounted, str(RULES)))
    result = subprocess.run(
        [promtool, "check", "config", str(local)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr

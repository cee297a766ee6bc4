"""Static checks of the deployment files (no container engine or cluster runs here): linters and
schemas where a validator installs from PyPI, and cross-file consistency checks everywhere else."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from glassbox.config import SchedulerSettings, Settings, load_settings
from pydantic import BaseModel
from support.model_repository import write_model_version
from support.servers import RunningServer

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: `make install-test` installs it (pyproject.toml test extra)")
    return path


def _stages(dockerfile: str) -> list[list[str]]:
    """Instructions (continuation lines joined) grouped by build stage."""
    logical = re.sub(r"\\\n", " ", dockerfile)
    stages: list[list[str]] = []
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def _manifests() -> list[dict[str, Any]]:
    documents = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            documents += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return documents


def _find(kind: str, name: str) -> dict[str, Any]:
    matches = [m for m in _manifests() if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}"
    return matches[0]


def test_dockerfile_passes_hadolint() -> None:
    done = subprocess.run([_tool("hadolint"), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_is_multi_stage_non_root_and_runtime_only() -> None:
    stages = _stages((ROOT / "Dockerfile").read_text())
    assert len(stages) >= 2
    build, runtime = stages[0], stages[-1]
    assert any("download.pytorch.org/whl/cpu" in line for line in build)
    assert any(line.startswith("ARG VARIANT=cpu") for line in build)
    user = [line.split()[1] for line in runtime if line.startswith("USER ")]
    assert user and user[-1].split(":")[0] not in ("0", "root")
    copies = [line for line in runtime if line.startswith("COPY ")]
    assert all("--from=build" in line or " models/ " in line for line in copies), copies
    assert not any(line.startswith("RUN pip") for line in runtime)
    healthcheck = next(line for line in runtime if line.startswith("HEALTHCHECK "))
    assert '"glassbox-client", "--address", "127.0.0.1:50051"' in healthcheck and '"health"]' in healthcheck


def test_dockerignore_keeps_only_what_the_image_copies() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert lines.count("**") == 1
    for needed in ("pyproject.toml", "service/", "clients/python/", "models/"):
        assert f"!{needed}" in lines


def test_the_image_healthcheck_command_reports_a_serving_server(
    start_server: Callable[..., RunningServer], tmp_path: Path
) -> None:
    write_model_version(tmp_path / "repository", "net", "1")
    running = start_server(model_repository=tmp_path / "repository")
    runtime = _stages((ROOT / "Dockerfile").read_text())[-1]
    healthcheck = next(line for line in runtime if line.startswith("HEALTHCHECK "))
    argv = yaml.safe_load(healthcheck.split("CMD", 1)[1])
    argv[argv.index("--address") + 1] = running.address
    argv[0] = _tool(argv[0])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "SERVING", done.stderr
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert compose["services"]["server"]["healthcheck"]["test"][1:] == yaml.safe_load(
        healthcheck.split("CMD", 1)[1]
    )


def test_compose_file_matches_the_compose_specification() -> None:
    done = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(DEPLOY / "compose.yaml")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_services_are_wired_together() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    expected = {"server", "worker", "gpu-worker", "redis-cache", "redis-jobs", "prometheus", "grafana"}
    assert expected <= set(services)
    for service in services.values():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{port} is published beyond loopback"
    assert services["worker"]["command"][0] == "worker" and services["server"]["command"] == ["serve"]
    gpu = services["gpu-worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"] and services["gpu-worker"]["profiles"] == ["gpu"]
    for name in ("server", "worker"):
        environment = services[name]["environment"]
        settings_env = {k: v for k, v in environment.items() if k.startswith("GLASSBOX_")}
        with pytest.MonkeyPatch.context() as patch:
            for key, value in settings_env.items():
                patch.setenv(key, str(value))
            settings = load_settings()
        assert settings.cache.redis_url.startswith("redis://redis-cache:")
        assert settings.jobs.redis_url.startswith("redis://redis-jobs:")
    for mount in services["grafana"]["volumes"]:
        source = mount.split(":")[0]
        if source.startswith("./"):
            assert (DEPLOY / source).exists(), source
    model_mount = services["server"]["volumes"][0].split(":")
    assert (DEPLOY / model_mount[0]).resolve() == ROOT / "models"


def test_grafana_provisioning_points_at_prometheus_and_the_dashboard() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    datasources = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    assert source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/glassbox.yaml").read_text())
    folder = providers["providers"][0]["options"]["path"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in compose["services"]["grafana"]["volumes"]}
    dashboard_targets = [target for target, src in mounts.items() if src.endswith("glassbox-dashboard.json")]
    assert dashboard_targets and os.path.dirname(dashboard_targets[0]) == folder
    scrape = yaml.safe_load(compose["configs"]["prometheus"]["content"])
    assert scrape["scrape_configs"][0]["job_name"] == "glassbox"


def test_kubernetes_manifests_match_the_api_schemas() -> None:
    custom = ("kustomization.yaml", "servicemonitor.yaml", "prometheusrule.yaml")
    files = [str(p) for p in sorted(K8S.glob("*.yaml")) if p.name not in custom]
    done = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", "--quiet", *files], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


def test_server_uses_native_grpc_probes_and_is_covered_by_service_hpa_and_pdb() -> None:
    deployment = _find("Deployment", "glassbox-server")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == 50051
    for service in ("glassbox", "glassbox-headless"):
        assert _find("Service", service)["spec"]["selector"].items() <= pod_labels.items()
    hpa = _find("HorizontalPodAutoscaler", "glassbox-server")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "glassbox-server" and hpa["spec"]["minReplicas"] >= 2
    pdb = _find("PodDisruptionBudget", "glassbox-server")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_workers_request_a_gpu_each_and_share_the_model_volume() -> None:
    worker = _find("Deployment", "glassbox-worker")
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    assert container["args"][0] == "worker"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    server = _find("Deployment", "glassbox-server")
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for d in (worker, server)
        for v in d["spec"]["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims == {"glassbox-models"} and _find("PersistentVolumeClaim", "glassbox-models")


def test_servicemonitor_selects_the_metrics_services() -> None:
    monitor = _find("ServiceMonitor", "glassbox")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = [m for m in _manifests() if m["kind"] == "Service"]
    selected = [s for s in services if selector.items() <= s["metadata"].get("labels", {}).items()]
    assert {s["metadata"]["name"] for s in selected} == {"glassbox", "glassbox-worker"}
    for service in selected:
        assert "metrics" in {p["name"] for p in service["spec"]["ports"]}
        assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "glassbox"


def test_configmap_settings_load_and_match_the_mounts(tmp_path: Path) -> None:
    configmap = _find("ConfigMap", "glassbox-settings")
    config = tmp_path / "glassbox.toml"
    config.write_text(configmap["data"]["glassbox.toml"])
    settings: Settings = load_settings(config)
    assert settings.address == "0.0.0.0:50051" and settings.metrics.port == 9464
    assert settings.security.token_file == Path("/etc/glassbox/tokens/tokens")
    server = _find("Deployment", "glassbox-server")
    (container,) = server["spec"]["template"]["spec"]["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert str(settings.model_repository) == mounts["models"]
    assert settings.security.token_file.parent == Path(mounts["tokens"])
    assert container["args"][container["args"].index("--config") + 1] == mounts["settings"]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _unknown_keys(values: dict[str, Any], model: type[BaseModel], prefix: str = "") -> list[str]:
    """Keys of a settings file that no field of `model` reads (sections are models: checked in turn)."""
    unknown = []
    for key, value in values.items():
        field = model.model_fields.get(key)
        if field is None:
            unknown.append(prefix + key)
        elif isinstance(value, dict) and _is_model(field.annotation):
            unknown += _unknown_keys(value, field.annotation, f"{prefix}{key}.")
    return unknown


def test_configmap_uses_only_existing_settings_and_spells_out_the_scheduler_defaults() -> None:
    toml = tomllib.loads(_find("ConfigMap", "glassbox-settings")["data"]["glassbox.toml"])
    assert _unknown_keys(toml, Settings) == []  # sections are plain models: a stale key would be ignored
    assert toml["scheduler"] == SchedulerSettings().model_dump()


def test_deployment_doc_settings_table_names_existing_settings() -> None:
    text = (ROOT / "docs" / "deployment.md").read_text()
    section = text.split("## Settings that matter in production", 1)[1].split("\n## ", 1)[0]
    keys = [
        key
        for line in section.splitlines()
        if line.startswith("| `")
        for key in re.findall(r"`([a-z_.]+)`", line.split("|")[1])
    ]
    assert "scheduler.max_queue_seconds" in keys
    for key in keys:
        model: type[BaseModel] = Settings
        *sections, name = key.split(".")
        for part in sections:
            annotation = model.model_fields[part].annotation
            assert _is_model(annotation), key
            model = annotation
        assert name in model.model_fields, f"docs/deployment.md documents {key}, which is no setting"

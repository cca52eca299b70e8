"""Reading deploy/: the Kubernetes manifests, the compose file, the Dockerfile and the
RabbitMQ definitions, as plain data for the tests to check against the code."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from gateway.settings import Settings

__all__ = [
    "COMPOSE",
    "DEFINITIONS",
    "DEPLOY",
    "DOCKERFILE",
    "K8S",
    "ROOT",
    "compose",
    "containers",
    "definitions",
    "dockerfile_instructions",
    "hub_services",
    "k8s_documents",
    "kustomization",
    "load_yaml",
    "project_version",
    "setting_names",
    "workloads",
]

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
DEFINITIONS = DEPLOY / "rabbitmq" / "definitions.json"
HUB_IMAGE = "escalation-hub"


def load_yaml(text: str) -> list[Any]:
    """Every non-empty document of a YAML stream (merge keys resolved)."""
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def setting_names() -> set[str]:
    """Every environment variable the hub reads: EH_ and the Settings field, upper case."""
    return {f"EH_{name.upper()}" for name in Settings.model_fields}


def project_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def kustomization() -> dict[str, Any]:
    [loaded] = load_yaml((K8S / "kustomization.yaml").read_text())
    return dict(loaded)


def k8s_documents(*, include_examples: bool = False) -> list[dict[str, Any]]:
    """The documents of every resource the kustomization lists (and the examples, if asked)."""
    files = [K8S / name for name in kustomization()["resources"]]
    if include_examples:
        files += sorted(K8S.glob("*.example.yaml"))
    return [doc for path in files for doc in load_yaml(path.read_text())]


def workloads() -> list[dict[str, Any]]:
    """The Deployments and Jobs."""
    return [d for d in k8s_documents() if d["kind"] in ("Deployment", "Job")]


def containers() -> Iterator[tuple[str, dict[str, Any]]]:
    """(workload name, container) for every container and init container."""
    for workload in workloads():
        pod = workload["spec"]["template"]["spec"]
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            yield workload["metadata"]["name"], container


def compose() -> dict[str, Any]:
    [loaded] = load_yaml(COMPOSE.read_text())
    return dict(loaded)


def hub_services() -> dict[str, dict[str, Any]]:
    """The compose services that run the hub's image."""
    services: dict[str, dict[str, Any]] = compose()["services"]
    return {n: s for n, s in services.items() if str(s.get("image", "")).startswith(HUB_IMAGE)}


def definitions() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DEFINITIONS.read_text())
    return loaded


def dockerfile_instructions(stage: int | None = None) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined; one stage if
    ``stage`` is given (0 for the first FROM)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found: list[tuple[str, str]] = []
    current = -1
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            current += 1
        if stage is None or stage == current:
            found.append((word.upper(), rest.strip()))
    return found

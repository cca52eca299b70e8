"""deploy/ checked against the code it runs: settings, CLI commands, routes, image, security.

Neither a Docker engine nor a Kubernetes cluster runs here, so the manifests are checked as
data: every EH_* variable is a real setting, every command parses with the hub's own CLI,
every probe path is a route of the app, one image at the project's version everywhere. Where
the tools exist offline they are used too: ``kubectl kustomize`` renders the kustomization,
and kubernetes-validate checks each resource against the Kubernetes API schemas.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic import SecretStr

from gateway.cli import build_parser
from gateway.runtime import Role
from gateway.settings import Settings
from tests.deploy.manifests import (
    DEPLOY,
    DOCKERFILE,
    K8S,
    ROOT,
    compose,
    containers,
    dockerfile_instructions,
    hub_services,
    k8s_documents,
    kustomization,
    load_yaml,
    project_version,
    setting_names,
    workloads,
)
from tests.integration.test_api_helpers import make_hub, serve

# Every SecretStr setting, and the URLs, which carry passwords.
SECRETS = {"EH_DATABASE_URL", "EH_BROKER_URL"} | {
    f"EH_{name.upper()}"
    for name, field in Settings.model_fields.items()
    if field.annotation is SecretStr
}


def test_every_file_in_deploy_parses() -> None:
    parsed = 0
    for path in sorted(DEPLOY.rglob("*")):
        if path.suffix in (".yaml", ".yml"):
            assert load_yaml(path.read_text()), f"{path} is empty"
            parsed += 1
        elif path.suffix == ".json":
            json.loads(path.read_text())
            parsed += 1
    assert parsed >= 10


def test_the_kustomization_lists_every_manifest_but_the_examples() -> None:
    listed = set(kustomization()["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == {n for n in on_disk if not n.endswith(".example.yaml")}


def test_every_environment_variable_named_is_a_setting_of_the_hub() -> None:
    known = setting_names()
    named: dict[str, set[str]] = {}
    for doc in k8s_documents(include_examples=True):
        if doc["kind"] in ("ConfigMap", "Secret"):
            keys = {*doc.get("data", {}), *doc.get("stringData", {})}
            named[doc["metadata"]["name"]] = keys
    for workload, container in containers():
        named[workload] = {e["name"] for e in container.get("env", [])}
    for name, service in hub_services().items():
        named[f"compose {name}"] = set(service["environment"])
    env = [a for op, a in dockerfile_instructions() if op == "ENV"]
    named["Dockerfile"] = {w.split("=")[0] for a in env for w in a.split() if w.startswith("EH_")}
    unknown = {where: sorted(keys - known) for where, keys in named.items() if keys - known}
    assert unknown == {}


def test_secrets_come_from_the_secret_and_everything_else_from_the_configmap() -> None:
    by_kind = {
        doc["kind"]: {*doc.get("data", {}), *doc.get("stringData", {})}
        for doc in k8s_documents(include_examples=True)
        if doc["kind"] in ("ConfigMap", "Secret")
    }
    assert by_kind["Secret"] == SECRETS
    assert not by_kind["ConfigMap"] & SECRETS
    for workload, container in containers():
        refs = {next(iter(r.values()))["name"] for r in container["envFrom"]}
        assert refs == {"escalation-hub-config", "escalation-hub-secrets"}, workload


def _answers(sqlite_url: str, paths: set[str]) -> dict[str, int]:
    """The status each path gets from the gateway's app, served on a working hub."""
    hub = make_hub(sqlite_url)
    try:
        with serve(hub, broker_ready=lambda: True) as client:
            return {path: client.get(path).status_code for path in sorted(paths)}
    finally:
        hub.close()


def _probe_paths() -> Iterator[tuple[str, str]]:
    for workload, container in containers():
        ports = {p["name"] for p in container.get("ports", [])}
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe = container.get(kind)
            if probe is not None:
                assert probe["httpGet"]["port"] in ports, f"{workload} {kind} names no port"
                yield f"{workload} {kind}", probe["httpGet"]["path"]
    for name, service in hub_services().items():
        test = service.get("healthcheck", {}).get("test", [])
        for url in (w.strip("'\"") for part in test for w in part.split("'")):
            if url.startswith("http://"):
                yield f"compose {name}", urlsplit(url).path


def test_every_probe_asks_a_real_route_of_the_gateway(sqlite_url: str) -> None:
    probes = dict(_probe_paths())
    assert {"/healthz", "/readyz"} <= set(probes.values())
    assert _answers(sqlite_url, set(probes.values())) == dict.fromkeys(set(probes.values()), 200)


def _commands() -> Iterator[tuple[str, list[str]]]:
    for workload, container in containers():
        assert "command" not in container, f"{workload} must keep the image's entrypoint"
        yield workload, [str(a) for a in container["args"]]
    for name, service in hub_services().items():
        yield f"compose {name}", [str(a) for a in service["command"]]


def test_every_container_runs_a_real_command_of_the_cli() -> None:
    parser = build_parser()
    roles: dict[str, list[str]] = {}
    for where, args in _commands():
        parsed = parser.parse_args(args)  # SystemExit (a failure) on an unknown command or role
        assert callable(parsed.handler), where
        if parsed.command == "serve":
            assert len(parsed.roles or []) == 1, f"{where} runs one role per process"
            roles.setdefault(where.split()[0], []).append(Role(parsed.roles[0]))
    everywhere = {Role.GATEWAY, Role.ROUTER, Role.DELIVERY, Role.SCHEDULER}
    assert set(roles["compose"]) == everywhere
    assert {r for k, v in roles.items() if k != "compose" for r in v} == everywhere
    entrypoint = dict(dockerfile_instructions(stage=1))["ENTRYPOINT"]
    assert json.loads(entrypoint) == ["escalation-hub"]


def test_the_database_is_migrated_before_any_role_starts() -> None:
    jobs = [d for d in workloads() if d["kind"] == "Job"]
    assert [j["spec"]["template"]["spec"]["containers"][0]["args"] for j in jobs] == [
        ["db", "upgrade"]
    ]
    assert jobs[0]["metadata"]["name"].endswith(project_version().replace(".", "-"))
    for name, service in hub_services().items():
        if name != "migrate":
            wanted = {"condition": "service_completed_successfully"}
            assert service["depends_on"]["migrate"] == wanted, name


def test_every_hub_container_runs_the_one_image_at_the_projects_version() -> None:
    version = project_version()
    assert {c["image"] for _, c in containers()} == {"escalation-hub"}
    assert kustomization()["images"] == [
        {"name": "escalation-hub", "newName": "escalation-hub", "newTag": version}
    ]
    assert {s["image"] for s in hub_services().values()} == {f"escalation-hub:{version}"}
    built = {json.dumps(s["build"], sort_keys=True) for s in hub_services().values()}
    assert built == {json.dumps({"context": "..", "dockerfile": "deploy/Dockerfile"})}


def test_every_pod_runs_as_a_non_root_user_on_a_read_only_root_with_limits() -> None:
    for workload in workloads():
        pod = workload["spec"]["template"]["spec"]
        name = workload["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 0, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), name
    for name, service in hub_services().items():
        assert service["read_only"] is True, name
        assert service["user"] != "0", name


def test_routers_and_delivery_workers_run_twice_and_keep_one_through_disruptions() -> None:
    docs = k8s_documents()
    replicas = {
        d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]: d["spec"][
            "replicas"
        ]
        for d in docs
        if d["kind"] == "Deployment"
    }
    assert replicas["router"] >= 2
    assert replicas["delivery"] >= 2
    assert replicas["gateway"] >= 2
    budgets = {
        d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]: d["spec"]
        for d in docs
        if d["kind"] == "PodDisruptionBudget"
    }
    assert {k: v["minAvailable"] for k, v in budgets.items()} == {
        "gateway": 1,
        "router": 1,
        "delivery": 1,
    }
    commands = [s["command"] for s in hub_services().values()]
    assert commands.count(["serve", "--role", "router"]) == 2
    assert commands.count(["serve", "--role", "delivery"]) == 2


def test_the_image_is_python_3_11_slim_running_as_a_numeric_non_root_user() -> None:
    final = dict(dockerfile_instructions(stage=1))
    assert [a for op, a in dockerfile_instructions() if op == "FROM"][-1] == "python:3.11-slim"
    user = final["USER"].split(":")[0]
    assert user.isdigit()
    assert int(user) > 0


def test_the_image_copies_every_package_the_project_ships() -> None:
    copied = set()
    for op, args in dockerfile_instructions(stage=0):
        if op == "COPY":
            *sources, _target = args.split()
            copied |= set(sources)
    assert all((ROOT / source).exists() for source in copied)
    with (ROOT / "pyproject.toml").open("rb") as f:
        include = tomllib.load(f)["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in include}
    assert packages <= copied
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().splitlines()
    assert {f"!{source}/" for source in packages} <= set(ignore)


def test_kubectl_kustomize_renders_the_manifests_offline(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; the manifests were still checked as data above")
    env = {"KUBECONFIG": str(tmp_path / "none"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, env=env, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    rendered = load_yaml(done.stdout.decode())
    assert {d["metadata"].get("namespace") for d in rendered if d["kind"] != "Namespace"} == {
        "escalation-hub"
    }
    images = {
        c["image"]
        for d in rendered
        if d["kind"] in ("Deployment", "Job")
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert images == {f"escalation-hub:{project_version()}"}


def test_every_resource_is_valid_against_the_kubernetes_schemas() -> None:
    import kubernetes_validate as validate

    version = validate.latest_version()
    problems: dict[str, str] = {}
    for doc in k8s_documents(include_examples=True):
        try:
            validate.validate(doc, version, strict=True)
        except validate.ValidationError as exc:
            problems[f"{doc['kind']} {doc['metadata']['name']}"] = str(exc).splitlines()[0]
    assert problems == {}


def test_compose_mounts_only_files_that_exist_and_volumes_it_declares() -> None:
    spec: dict[str, Any] = compose()
    declared = set(spec.get("volumes", {}))
    for name, service in spec["services"].items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).is_file(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} mounts undeclared volume {source}"
        for needed in service.get("depends_on", {}):
            assert needed in spec["services"], f"{name} depends on unknown {needed}"

"""The deploy files checked as an operator would meet them, without a cluster or a container: the Kubernetes manifests
against the API schemas of the version we target, every environment variable against the settings that read it,
production mode's requirements against what each process is given, the image's user, data volume and build context,
and search-attribute registration against its one list (workflows/search_attributes.py).
"""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from runtime.config import SECRETS_DIR_VARIABLE, Settings, env_names
from runtime.kommune_config import KommuneSettings
from runtime.production import Role, missing_settings
from workflows.search_attributes import REGISTRATION

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
# The oldest Kubernetes minor still in upstream support when this was written; a manifest valid for it is valid for
# the newer ones the schemas are bundled for.
KUBERNETES_VERSION = "1.33.0"
USER_ID = 10001
OUR_IMAGE = "registry.example.internal/sagsflow"
ROLES: dict[Role, str] = {"api": "sagsflow-api", "worker": "sagsflow-worker"}
# What the `temporal` CLI of compose's admin-tools container reads (deploy/register-search-attributes.sh).
TEMPORAL_CLI_ENV = {
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "TEMPORAL_API_KEY",
    "TEMPORAL_TLS_CERT",
    "TEMPORAL_TLS_KEY",
}
# Set in the image for Python and pip themselves, not for Sagsflow.
IMAGE_RUNTIME_ENV = {
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONUNBUFFERED",
    "PIP_NO_CACHE_DIR",
    "PIP_DISABLE_PIP_VERSION_CHECK",
    "HOME",
}


# --- reading the files -----------------------------------------------------------------------------------------------


def manifests() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def resource(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} in deploy/k8s"
    return found[0]


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in manifests():
        if doc["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet", "CronJob"):
            template = doc["spec"]["template"] if doc["kind"] != "CronJob" else doc["spec"]["jobTemplate"]["spec"]
            yield f"{doc['kind']}/{doc['metadata']['name']}", template["spec"]


def our_containers() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(where, pod spec, container) for every container that runs the Sagsflow image."""
    for where, spec in pod_specs():
        for container in spec.get("initContainers", []) + spec["containers"]:
            if container["image"].startswith(OUR_IMAGE):
                yield f"{where}/{container['name']}", spec, container


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """The environment a container starts with: its ConfigMaps' keys, then its own `env` (which wins)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert "configMapRef" in source, "environment from Secrets hides which settings are given; mount files"
        env |= {k: str(v) for k, v in resource("ConfigMap", source["configMapRef"]["name"])["data"].items()}
    for item in container.get("env", []):
        assert "value" in item, f"{item['name']}: secrets come as files (NAME_FILE), not as valueFrom"
        env[item["name"]] = str(item["value"])
    return env


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {str(k): str(v) for k, v in raw.items()}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(
        r"\\\n", " ", "\n".join(line for line in DOCKERFILE.read_text().splitlines() if not line.startswith("#"))
    )
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined.splitlines() if line.strip()]


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, args in dockerfile_instructions():
        if instruction == "ENV":
            env |= dict(pair.split("=", 1) for pair in shlex.split(args))
    return env


def setting_env_names() -> set[str]:
    """Every variable the settings read: each field's names, their NAME_FILE variants, and the secrets dir."""
    names = {SECRETS_DIR_VARIABLE}
    for cls in (Settings, KommuneSettings):
        prefix = str(cls.model_config.get("env_prefix", ""))
        for name, field in cls.model_fields.items():
            for env_name in env_names(name, field, prefix):
                names |= {env_name, f"{env_name}_FILE"}
    return names


# --- Kubernetes schemas ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", manifests(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_every_manifest_passes_kubernetes_validate_strict(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_strict_validation_rejects_a_misspelled_field() -> None:
    # So a green run above means the schemas were read, not that nothing was checked.
    worker = resource("Deployment", "sagsflow-worker")
    container = worker["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(worker, KUBERNETES_VERSION, strict=True)


# --- environment variables against the settings ---------------------------------------------------------------------


def test_every_variable_given_to_a_sagsflow_container_is_one_the_settings_read() -> None:
    known = setting_env_names()
    unknown = {where: sorted(set(container_env(container)) - known) for where, _, container in our_containers()}
    assert {where: names for where, names in unknown.items() if names} == {}
    configmaps = [d for d in manifests() if d["kind"] == "ConfigMap"]
    assert {d["metadata"]["name"]: sorted(set(d["data"]) - known) for d in configmaps} == {
        d["metadata"]["name"]: [] for d in configmaps
    }


def test_every_variable_compose_gives_our_services_is_one_they_read() -> None:
    known = setting_env_names()
    unknown = {}
    for name, service in compose()["services"].items():
        env = set(compose_env(service))
        ours = "build" in service or str(service.get("image", "")).startswith(OUR_IMAGE)
        registers = "register-search-attributes" in " ".join(map(str, service.get("entrypoint") or []))
        if ours:
            unknown[name] = sorted(env - known)
        elif registers:
            unknown[name] = sorted(env - TEMPORAL_CLI_ENV)
    assert unknown, "compose.yaml runs none of our services"
    assert {name: names for name, names in unknown.items() if names} == {}


def test_every_variable_the_image_sets_is_one_the_settings_read() -> None:
    assert sorted(set(dockerfile_env()) - setting_env_names() - IMAGE_RUNTIME_ENV) == []


@pytest.mark.parametrize("role", sorted(ROLES))
def test_kubernetes_gives_api_and_worker_every_setting_production_mode_requires(
    role: Role, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What production mode asks of an empty environment is named in the container's environment; and the container's
    environment, with its secret mounts stood in for by files, is one production mode starts with."""
    _clean_environment(monkeypatch)
    monkeypatch.setenv("SAGSFLOW_ENV", "production")
    required = missing_settings(Settings(), KommuneSettings(), role)
    assert required, "production mode requires nothing on an empty environment?"

    deployment = resource("Deployment", ROLES[role])
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    env = container_env(container)
    assert {name for name in required if name not in env and f"{name}_FILE" not in env} == set()

    # Every file a setting names must be inside a Secret the container mounts, or the pod would stop at start.
    secret_volumes = {v["name"] for v in spec["volumes"] if "secret" in v}
    mounts = [m["mountPath"] for m in container["volumeMounts"] if m["name"] in secret_volumes]
    _clean_environment(monkeypatch)
    for name, value in env.items():
        if name.endswith("_FILE"):
            assert len([m for m in mounts if value.startswith(f"{m}/")]) == 1, f"{name}={value} is in no secret mount"
            stand_in = tmp_path / value.lstrip("/")
            stand_in.parent.mkdir(parents=True, exist_ok=True)
            stand_in.write_text("postgresql://sagsflow@eventlog-db/sagsflow" if name == "DATABASE_URL_FILE" else "x")
            value = str(stand_in)
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.production
    assert settings.database_url == "postgresql://sagsflow@eventlog-db/sagsflow"
    assert missing_settings(settings, KommuneSettings(), role) == []


def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("SAGSFLOW_", "TEMPORAL_", "DATABASE_URL")):
            monkeypatch.delenv(name)


def test_worker_metrics_are_served_on_the_pod_ip_at_the_port_probed_and_scraped() -> None:
    worker = resource("Deployment", "sagsflow-worker")
    template = worker["spec"]["template"]
    (container,) = template["spec"]["containers"]
    env = container_env(container)
    assert env["SAGSFLOW_WORKER_METRICS_HOST"] == "0.0.0.0"
    port = int(env.get("SAGSFLOW_WORKER_METRICS_PORT", Settings.model_fields["worker_metrics_port"].default))
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        probed = container[probe]["httpGet"]["port"]
        assert named.get(probed, probed) == port, probe
    assert template["metadata"]["annotations"]["prometheus.io/port"] == str(port)


# --- images ---------------------------------------------------------------------------------------------------------


def _version(image: str) -> str | None:
    name = image.split("@", 1)[0]
    return name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else None


def test_kubernetes_images_are_pinned_to_a_release() -> None:
    project_version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for where, spec in pod_specs():
        for container in spec["containers"]:
            image = container["image"]
            version = _version(image)
            assert version is not None and re.fullmatch(r"v?\d+\.\d+\.\d+([-.+][\w.]+)?", version), f"{where}: {image}"
            if image.startswith(OUR_IMAGE):
                # The image built from this tree: its tag is the version the replay gate passed.
                assert version == project_version, f"{where}: {image}"
            assert container.get("imagePullPolicy") != "Always", where


def test_compose_images_name_a_version() -> None:
    for name, service in compose()["services"].items():
        if "image" in service:
            version = _version(service["image"])
            assert version is not None and version != "latest" and re.search(r"\d", version), (
                f"{name}: {service['image']}"
            )


def test_the_base_image_is_pinned_by_version_and_digest() -> None:
    (base,) = [args for instruction, args in dockerfile_instructions() if instruction == "FROM"]
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-\w+@sha256:[0-9a-f]{64}", base), base


# --- the image --------------------------------------------------------------------------------------------------------


def test_the_image_runs_as_the_non_root_user_the_manifests_name() -> None:
    users = [args for instruction, args in dockerfile_instructions() if instruction == "USER"]
    # Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert users and users[-1] == f"{USER_ID}:{USER_ID}"
    for where, spec in pod_specs():
        for container in spec["containers"]:
            context = spec.get("securityContext", {}) | container.get("securityContext", {})
            assert context.get("runAsUser") == USER_ID, where


def test_the_image_has_a_writable_data_volume_owned_by_its_user() -> None:
    instructions = dockerfile_instructions()
    data_dir = dockerfile_env()["SAGSFLOW_DATA_DIR"]
    assert data_dir.startswith("/")
    volumes = [v for instruction, args in instructions if instruction == "VOLUME" for v in _volume_paths(args)]
    assert data_dir in volumes
    created = [args for instruction, args in instructions if instruction == "RUN" and data_dir in args]
    assert any(f"-o {USER_ID}" in args and "install -d" in args for args in created), created
    # Its working directory is the data dir: anything written relative lands on the volume, not in a root-owned path.
    assert [args for instruction, args in instructions if instruction == "WORKDIR"][-1] == data_dir


def _volume_paths(args: str) -> list[str]:
    args = args.strip()
    return list(yaml.safe_load(args)) if args.startswith("[") else args.split()


def test_the_image_installs_the_lock_file_and_the_app_without_resolving() -> None:
    runs = " ; ".join(args for instruction, args in dockerfile_instructions() if instruction == "RUN")
    copies = [args for instruction, args in dockerfile_instructions() if instruction == "COPY"]
    assert (ROOT / "requirements.lock").is_file()
    assert any(args.split()[0] == "requirements.lock" for args in copies)
    assert re.search(r"pip install --no-deps -r \S*requirements\.lock", runs)
    assert re.search(r"pip install --no-deps /tmp/build\b", runs)
    # Every package pyproject installs is in the build context the Dockerfile copies.
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    copied = {args.split()[0] for args in copies}
    assert {p.split(".")[0] for p in packages} <= copied


DOCKERIGNORED = {
    ".git",
    ".venv",
    ".sagsflow",
    "**/.sagsflow",
    "**/__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    "tests",
    "bench/out",
    "deploy/secrets",
    "**/*.pem",
    "**/*.key",
    "**/*-keys.json",
}


def test_the_build_context_leaves_out_the_venv_caches_state_and_keys() -> None:
    lines = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert sorted(DOCKERIGNORED - lines) == []
    assert not any(line.startswith("!") for line in lines), "a re-included path may carry keys into the image"
    # And nothing the Dockerfile copies is left out of the context.
    sources = {
        src for instruction, args in dockerfile_instructions() if instruction == "COPY" for src in args.split()[:-1]
    }
    assert sources and sorted(sources & lines) == []


# --- probes, resources, security context ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ROLES.values()))
def test_api_and_worker_have_probes_and_resources(name: str) -> None:
    (container,) = resource("Deployment", name)["spec"]["template"]["spec"]["containers"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert "httpGet" in container[probe] or "exec" in container[probe], probe
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert {"cpu", "memory"} <= set(resources["limits"])


def test_the_api_is_ready_on_readyz_and_alive_on_healthz() -> None:
    (container,) = resource("Deployment", "sagsflow-api")["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "/readyz" not in str(container["livenessProbe"]), "a database outage must not restart every replica"


@pytest.mark.parametrize("where", [where for where, _, _ in our_containers()])
def test_every_container_runs_with_a_restrictive_security_context(where: str) -> None:
    (spec, container) = next((s, c) for w, s, c in our_containers() if w == where)
    pod = spec.get("securityContext", {})
    own = container.get("securityContext", {})
    merged = pod | own
    assert merged.get("runAsNonRoot") is True
    assert merged.get("runAsUser") == USER_ID
    assert merged.get("seccompProfile") == {"type": "RuntimeDefault"}
    assert own.get("allowPrivilegeEscalation") is False
    assert own.get("readOnlyRootFilesystem") is True
    assert own.get("capabilities", {}).get("drop") == ["ALL"]
    assert spec.get("automountServiceAccountToken") is False
    # A read-only root needs writable places where the process writes: the data dir and /tmp, as volumes.
    writable = {v["name"] for v in spec["volumes"] if "emptyDir" in v or "persistentVolumeClaim" in v}
    mounted = {m["mountPath"] for m in container["volumeMounts"] if m["name"] in writable and not m.get("readOnly")}
    assert {container_env(container).get("SAGSFLOW_DATA_DIR", dockerfile_env()["SAGSFLOW_DATA_DIR"]), "/tmp"} <= mounted
    # Secrets are mounted read-only.
    secrets = {v["name"] for v in spec["volumes"] if "secret" in v}
    assert all(m.get("readOnly") for m in container["volumeMounts"] if m["name"] in secrets)


# --- search-attribute registration ----------------------------------------------------------------------------------


def test_the_registration_job_runs_the_command_that_reads_the_one_list() -> None:
    job = resource("Job", "sagsflow-search-attributes")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"].startswith(OUR_IMAGE)
    assert container["args"][:2] == ["search-attributes", "register"]
    assert "command" not in container, "the image's entrypoint is `sagsflow`; a shell could swallow its exit code"
    assert job["spec"]["backoffLimit"] >= 1
    # No copy of the list in the manifests: the names appear in workflows/search_attributes.py only.
    text = "\n".join(p.read_text() for p in K8S.glob("*.yaml"))
    assert [name for name in REGISTRATION if name in text] == []


def test_the_compose_registration_script_holds_exactly_the_python_list() -> None:
    script = (DEPLOY / "register-search-attributes.sh").read_text()
    (listed,) = re.findall(r'^attributes="([^"]*)"$', script, flags=re.MULTILINE)
    assert listed.split() == [f"{name}={kind}" for name, kind in REGISTRATION.items()]
    assert re.search(r"^set -eu$", script, flags=re.MULTILINE)


def test_nothing_in_deploy_swallows_a_failure() -> None:
    swallowing = re.compile(r"\|\|\s*(true|:|exit 0)\b")
    offenders = [
        str(path.relative_to(ROOT))
        for path in DEPLOY.rglob("*")
        if path.is_file() and path.suffix in (".yaml", ".yml", ".sh", "") and swallowing.search(path.read_text())
    ]
    assert offenders == []


def test_the_replay_gate_job_replays_with_the_payload_keys_only() -> None:
    job = resource("Job", "sagsflow-replay-gate")
    spec = job["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["image"].startswith(OUR_IMAGE)
    assert container["args"][0] == "replay"
    # One failed replay stops the rollout; a retry would replay the same histories.
    assert job["spec"]["backoffLimit"] == 0
    env = container_env(container)
    assert env["SAGSFLOW_CODEC_KEY_FILE"].endswith("/codec-keys.json")
    (keys,) = [v for v in spec["volumes"] if "secret" in v]
    assert [item["key"] for item in keys["secret"]["items"]] == ["codec-keys.json"]

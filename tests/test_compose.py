"""The container setup agrees with the code: docker-compose.yml, Dockerfile, .dockerignore, .env.example.

Docker does not run in CI, so these are static checks: they read the files and
compare them with `graph.settings.Settings` and with each other.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import AliasChoices

from graph.settings import Settings

REPO = Path(__file__).resolve().parent.parent
SERVICES = {"neo4j", "chroma", "kgmem"}


# -- Reading the files ------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def service(compose: dict, name: str) -> dict:
    return compose["services"][name]


def environment(svc: dict) -> dict[str, str]:
    """A service's environment as a dict, whether written as a mapping or a KEY=VALUE list."""
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def port_mappings(svc: dict) -> list[tuple[str, int, int]]:
    """(host interface, host port, container port) for each short-syntax port."""
    mappings = []
    for spec in svc.get("ports", []):
        parts = str(spec).split("/")[0].split(":")
        assert len(parts) == 3, f"port {spec!r} should be written interface:host:container"
        mappings.append((parts[0], int(parts[1]), int(parts[2])))
    return mappings


def container_ports(svc: dict) -> set[int]:
    return {container for _, _, container in port_mappings(svc)}


def healthcheck_text(svc: dict) -> str:
    test = svc["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else test


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuations joined, comments dropped."""
    stages: list[list[tuple[str, str]]] = []
    logical, pending = [], ""
    for line in (REPO / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    for text in logical:
        instruction, _, args = text.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            stages.append([])
        assert stages, "the Dockerfile must start with FROM"
        stages[-1].append((instruction, args.strip()))
    return stages


def dockerfile_runtime() -> list[tuple[str, str]]:
    """The instructions of the last stage, the one the image runs."""
    return dockerfile_stages()[-1]


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, args in dockerfile_runtime():
        if instruction == "ENV":
            for token in shlex.split(args):
                key, _, value = token.partition("=")
                env[key] = value
    return env


def setting_env_names() -> dict[str, str]:
    """Every environment variable name Settings reads, mapped to its field."""
    names = {}
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update({choice: field_name for choice in alias.choices if isinstance(choice, str)})
        elif isinstance(alias, str):
            names[alias] = field_name
        else:
            names[f"KGMEM_{field_name.upper()}"] = field_name
    return names


# -- Services -----------------------------------------------------------------------


def test_compose_defines_exactly_neo4j_chroma_and_kgmem(compose):
    assert set(compose["services"]) == SERVICES


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_a_healthcheck(compose, name):
    healthcheck = service(compose, name).get("healthcheck")
    assert healthcheck, f"{name} has no healthcheck"
    assert not healthcheck.get("disable"), f"{name}'s healthcheck is disabled"
    test = healthcheck["test"]
    assert test and test != ["NONE"] and (not isinstance(test, list) or test[0] in ("CMD", "CMD-SHELL"))


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_keeps_its_data_in_a_declared_named_volume(compose, name):
    declared = set(compose.get("volumes") or {})
    sources = [str(volume).split(":")[0] for volume in service(compose, name).get("volumes", [])]
    named = [source for source in sources if source in declared]
    assert named, f"{name} mounts no named volume declared under top-level volumes: {sources}"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_published_ports_listen_on_localhost_only(compose, name):
    for interface, _, _ in port_mappings(service(compose, name)):
        assert interface == "127.0.0.1", f"{name} publishes on {interface}, not only on localhost"


def test_host_ports_do_not_collide(compose):
    host_ports = [host for name in SERVICES for _, host, _ in port_mappings(service(compose, name))]
    assert len(host_ports) == len(set(host_ports)), host_ports


# -- Neo4j ------------------------------------------------------------------------------


def test_neo4j_is_the_5_26_lts_community_image(compose):
    assert service(compose, "neo4j")["image"] == "neo4j:5.26-community"


def test_neo4j_password_comes_from_the_env_file_and_kgmem_uses_the_same_one(compose):
    user, _, password = environment(service(compose, "neo4j"))["NEO4J_AUTH"].partition("/")
    assert re.fullmatch(r"\$\{NEO4J_PASSWORD(:\?[^}]*)?\}", password), password
    kgmem = environment(service(compose, "kgmem"))
    assert kgmem["NEO4J_USERNAME"] == user
    assert re.fullmatch(r"\$\{NEO4J_PASSWORD(:\?[^}]*)?\}", kgmem["NEO4J_PASSWORD"])


def test_neo4j_healthcheck_logs_in_over_bolt(compose):
    neo4j = service(compose, "neo4j")
    text = healthcheck_text(neo4j)
    assert "cypher-shell" in text and "RETURN 1" in text
    # The image turns NEO4J_* variables into settings; the password must come from NEO4J_AUTH.
    assert "NEO4J_AUTH" in text
    assert "NEO4J_PASSWORD" not in environment(neo4j)


def test_neo4j_memory_uses_the_official_image_setting_names(compose):
    memory = {k: v for k, v in environment(service(compose, "neo4j")).items() if "memory" in k}
    assert set(memory) >= {"NEO4J_server_memory_heap_max__size", "NEO4J_server_memory_pagecache_size"}
    for key, value in memory.items():
        assert re.fullmatch(r"\d+[kmg]", value), f"{key}={value}"


# -- Chroma -------------------------------------------------------------------------------


def test_chroma_image_is_a_pinned_1x_release_like_the_client(compose):
    from importlib import metadata

    image, _, tag = service(compose, "chroma")["image"].partition(":")
    assert image == "chromadb/chroma"
    assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"pin a release, not {tag!r}"
    assert tag.split(".")[0] == metadata.version("chromadb").split(".")[0] == "1"


def test_chroma_persists_to_data(compose):
    targets = [str(volume).split(":")[1] for volume in service(compose, "chroma")["volumes"]]
    assert "/data" in targets


def test_chroma_healthcheck_asks_the_heartbeat_on_its_own_port(compose):
    chroma = service(compose, "chroma")
    text = healthcheck_text(chroma)
    assert "/api/v2/heartbeat" in text
    (port,) = container_ports(chroma)
    assert f"/dev/tcp/127.0.0.1/{port}" in text or f"/dev/tcp/localhost/{port}" in text
    assert not re.search(r"\b(curl|wget|python3?)\b", text), "the chroma 1.x image has none of these"


# -- kgmem --------------------------------------------------------------------------------


def test_kgmem_is_built_from_this_repository(compose):
    build = service(compose, "kgmem")["build"]
    context = build if isinstance(build, str) else build.get("context", ".")
    assert (REPO / context / "Dockerfile").resolve() == REPO / "Dockerfile"


def test_kgmem_environment_names_are_real_settings(compose):
    known = setting_env_names()
    names = [name for name in environment(service(compose, "kgmem")) if name.startswith(("KGMEM_", "NEO4J_"))]
    assert {"NEO4J_URI", "NEO4J_PASSWORD", "KGMEM_CHROMA_HOST", "KGMEM_CHROMA_PORT"} <= set(names)
    assert [name for name in names if name not in known] == []


def test_dockerfile_environment_names_are_real_settings():
    known = setting_env_names()
    names = [name for name in dockerfile_env() if name.startswith("KGMEM_")]
    assert {"KGMEM_HOME", "KGMEM_API_HOST", "KGMEM_API_PORT"} <= set(names)
    assert [name for name in names if name not in known] == []


def test_kgmem_environment_loads_into_settings(compose, monkeypatch, tmp_path):
    """The values, not just the names, are what Settings reads: types validate and land in the right fields."""
    env = {**dockerfile_env(), **environment(service(compose, "kgmem"))}
    env = {key: re.sub(r"\$\{[^}]*\}", "from-dot-env", value) for key, value in env.items()}
    known = setting_env_names()
    for name in [n for n in list(os.environ) if n in known]:
        monkeypatch.delenv(name)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KGMEM_CONFIG", str(tmp_path / "absent.toml"))

    settings = Settings(_env_file=None)
    assert settings.neo4j_uri == env["NEO4J_URI"]
    assert settings.neo4j_password.get_secret_value() == "from-dot-env"
    assert settings.chroma_host == env["KGMEM_CHROMA_HOST"]
    assert settings.chroma_port == int(env["KGMEM_CHROMA_PORT"])
    assert str(settings.home) == "/data"
    assert settings.api_host == "0.0.0.0"
    assert not settings.managed_neo4j, "without NEO4J_URI kgmem would try to start Neo4j inside its container"


def test_neo4j_uri_is_the_neo4j_service_bolt_port(compose):
    uri = urlsplit(environment(service(compose, "kgmem"))["NEO4J_URI"])
    assert uri.scheme in ("bolt", "neo4j")
    assert uri.hostname == "neo4j" and uri.hostname in compose["services"]
    assert uri.port == 7687
    assert 7687 in container_ports(service(compose, "neo4j"))


def test_kgmem_finds_chroma_by_service_name_on_its_container_port(compose):
    env = environment(service(compose, "kgmem"))
    assert env["KGMEM_CHROMA_HOST"] == "chroma" and env["KGMEM_CHROMA_HOST"] in compose["services"]
    # Inside the network the host-side 8001 does not exist; kgmem must use the container port.
    assert {int(env["KGMEM_CHROMA_PORT"])} == container_ports(service(compose, "chroma"))


def test_kgmem_starts_after_neo4j_and_chroma_are_healthy(compose):
    depends_on = service(compose, "kgmem")["depends_on"]
    assert isinstance(depends_on, dict), "the list form cannot wait for health"
    assert set(depends_on) == {"neo4j", "chroma"}
    for name, condition in depends_on.items():
        assert condition.get("condition") == "service_healthy", name


def test_kgmem_data_volume_is_its_home(compose):
    env = environment(service(compose, "kgmem"))
    targets = [str(volume).split(":")[1] for volume in service(compose, "kgmem")["volumes"]]
    assert env.get("KGMEM_HOME", dockerfile_env()["KGMEM_HOME"]) in targets


def test_kgmem_healthcheck_is_readiness_via_python(compose):
    test = service(compose, "kgmem")["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"], "the slim image has no curl"
    assert "/readyz" in " ".join(test)


def test_compose_variables_are_all_in_env_example(compose):
    # "$${...}" is escaped for the container's shell, not interpolated by compose.
    used = set(re.findall(r"(?<!\$)\$\{(\w+)", (REPO / "docker-compose.yml").read_text()))
    example = (REPO / ".env.example").read_text()
    defined = {line.split("=", 1)[0].strip() for line in example.splitlines() if "=" in line and not line.startswith("#")}
    assert "NEO4J_PASSWORD" in used
    assert used <= defined


# -- Dockerfile -----------------------------------------------------------------------------


def _runs() -> list[str]:
    return [args for stage in dockerfile_stages() for instruction, args in stage if instruction == "RUN"]


def test_dockerfile_base_is_python_3_11_slim():
    for stage in dockerfile_stages():
        assert stage[0][1].split()[0] == "python:3.11-slim"


def test_dockerfile_installs_cpu_torch_before_the_project_with_the_offline_model():
    runs = _runs()
    torch = [i for i, run in enumerate(runs)
             if "--index-url https://download.pytorch.org/whl/cpu" in run and re.search(r"\btorch\b", run)]
    project = [i for i, run in enumerate(runs) if re.search(r"pip install\s+[\"']?\.\[offline-model\][\"']?", run)]
    assert torch, "no pip install of torch from the CPU index"
    assert project, 'no pip install ".[offline-model]"'
    assert torch[0] < project[0], "torch must come first, or sentence-transformers pulls the CUDA build"


def test_dockerfile_runs_kgmem_serve():
    cmds = [args for instruction, args in dockerfile_runtime() if instruction == "CMD"]
    entrypoints = [args for instruction, args in dockerfile_runtime() if instruction == "ENTRYPOINT"]
    assert not entrypoints
    assert json.loads(cmds[-1]) == ["kgmem", "serve"]


def test_dockerfile_exposes_the_api_port_compose_publishes(compose):
    exposed = {int(port.split("/")[0]) for instruction, args in dockerfile_runtime()
               if instruction == "EXPOSE" for port in args.split()}
    kgmem = service(compose, "kgmem")
    api_port = int(environment(kgmem).get("KGMEM_API_PORT", dockerfile_env()["KGMEM_API_PORT"]))
    assert exposed == {api_port} == {int(dockerfile_env()["KGMEM_API_PORT"])}
    assert container_ports(kgmem) == {api_port}


def test_dockerfile_runtime_environment():
    env = dockerfile_env()
    assert env["KGMEM_HOME"] == "/data"
    assert env["KGMEM_API_HOST"] == "0.0.0.0", "127.0.0.1 is unreachable from outside the container"
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"


def test_dockerfile_runs_as_a_non_root_user_with_data_volume_and_healthz():
    runtime = dockerfile_runtime()
    users = [args for instruction, args in runtime if instruction == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    volumes = [args for instruction, args in runtime if instruction == "VOLUME"]
    assert any("/data" in args for args in volumes)
    workdirs = [args for instruction, args in runtime if instruction == "WORKDIR"]
    assert workdirs and workdirs[-1] == "/app"
    healthchecks = [args for instruction, args in runtime if instruction == "HEALTHCHECK"]
    assert healthchecks and "/healthz" in healthchecks[-1] and "python" in healthchecks[-1]


def test_dockerignore_keeps_the_venv_git_and_secrets_out():
    patterns = {line.strip().rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    assert {".venv", ".git", ".env", "*.tar.gz"} <= patterns
    assert "**/__pycache__" in patterns or "__pycache__" in patterns

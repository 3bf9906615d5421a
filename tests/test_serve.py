"""`kgmem serve` end to end: the embedded defaults come up ready, and exit cleans up only what it started."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from graph import Settings
from graph.neo4j_server import LocalNeo4j
from graph.neo4j_server.server import free_port, pid_alive

KGMEM = str(Path(sys.executable).parent / "kgmem")


def start_serve(home: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "KGMEM_HOME": str(home)}
    env.pop("NEO4J_URI", None)  # the embedded defaults
    env.pop("KGMEM_AUTH_DISABLED", None)
    process = subprocess.Popen(
        [KGMEM, "serve", "--port", str(port), "--pick-free-port", "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    process.lines = []  # everything it prints, read as it comes so the pipe never fills
    threading.Thread(target=lambda: process.lines.extend(process.stdout), daemon=True).start()
    return process


def bootstrap_tokens(process: subprocess.Popen) -> list[str]:
    return [line.rsplit(" ", 1)[-1].strip() for line in list(process.lines) if line.startswith("Bootstrap admin API key")]


def wait_ready(port: int, process: subprocess.Popen, timeout: float = 240) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            time.sleep(0.5)
            raise AssertionError(f"kgmem serve exited early: {''.join(process.lines)}")
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError("kgmem serve did not become ready")


def interrupt(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGINT)
    return process.wait(timeout=120)


def test_serve_starts_its_own_neo4j_and_stops_it_on_exit(tmp_path):
    port = free_port()
    process = start_serve(tmp_path, port)
    try:
        assert wait_ready(port, process).json()["checks"] == {"neo4j": "ok", "chroma": "ok", "embedder": "ok", "vectors": "ok"}
        version = httpx.get(f"http://127.0.0.1:{port}/version").json()
        assert version["neo4j_server"]["version"].startswith("5.26.")
        neo4j_pid = json.loads((tmp_path / "neo4j" / "run" / "kgmem-neo4j.json").read_text())["pid"]
        assert pid_alive(neo4j_pid)
        check_the_bootstrap_key(tmp_path, port, process)
    finally:
        exit_code = interrupt(process)
    assert exit_code == 0
    assert not pid_alive(neo4j_pid)
    assert not (tmp_path / "neo4j" / "run" / "kgmem-neo4j.json").exists()


def check_the_bootstrap_key(home: Path, port: int, process: subprocess.Popen) -> None:
    """A first run prints an admin key for the space `default` once; /v1 answers it, and 401 without it."""
    deadline = time.monotonic() + 60
    while not bootstrap_tokens(process) and time.monotonic() < deadline:
        time.sleep(0.5)
    [token] = bootstrap_tokens(process)
    base = f"http://127.0.0.1:{port}/v1/spaces/default"
    assert httpx.get(f"{base}/entities").status_code == 401
    auth = {"Authorization": f"Bearer {token}"}
    created = httpx.post(f"{base}/entities", headers=auth, json={"entities": [{"kind": "Project", "name": "Churn"}]})
    assert created.status_code == 200, created.text
    listed = httpx.get(f"{base}/entities", headers=auth).json()
    assert [e["name"] for e in listed["items"]] == ["Churn"]
    assert httpx.get(f"http://127.0.0.1:{port}/v1/spaces/other/entities", headers=auth).status_code == 404

    # Never again: a second server on the same data prints no key, and the first key still works.
    second_port = free_port()
    second = start_serve(home, second_port)
    try:
        wait_ready(second_port, second)
        assert httpx.get(f"http://127.0.0.1:{second_port}/v1/spaces/default/entities", headers=auth).status_code == 200
    finally:
        assert interrupt(second) == 0
    assert bootstrap_tokens(second) == []
    assert bootstrap_tokens(process) == [token]


def test_sigterm_shuts_down_like_ctrl_c_and_stops_the_neo4j_it_started(tmp_path):
    """How service managers stop it (systemctl stop, docker stop, kill): exit 0, and no Neo4j left behind."""
    home = tmp_path / "home"
    port = free_port()
    process = start_serve(home, port)
    try:
        wait_ready(port, process)
        neo4j_pid = json.loads((home / "neo4j" / "run" / "kgmem-neo4j.json").read_text())["pid"]
        assert pid_alive(neo4j_pid)
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=120)
        assert exit_code == 0, "".join(process.lines)[-3000:]
        assert not pid_alive(neo4j_pid)
        assert not (home / "neo4j" / "run" / "kgmem-neo4j.json").exists()
    finally:
        if process.poll() is None:
            interrupt(process)
        LocalNeo4j(Settings(home=home), show_progress=False).stop()  # whatever a failure left running


def test_serve_leaves_a_neo4j_it_did_not_start_running(managed_neo4j):
    port = free_port()
    process = start_serve(managed_neo4j.settings.home, port)
    try:
        wait_ready(port, process)
    finally:
        assert interrupt(process) == 0, "".join(process.lines)[-3000:]
    assert managed_neo4j.running() is not None

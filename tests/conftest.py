"""The test suite's real parts: one Neo4j per session, real Chroma, the real embedder.

Neo4j is `NEO4J_URI` when set, otherwise kgmem's managed local server, started by
the same `LocalNeo4j.start()` that `kgmem serve` uses, in a data directory of the
test session's own on free ports. If Neo4j cannot be provided the suite fails
with the cause; it never skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent

# Isolate the session from the user's own data directory and config before kgmem is imported.
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="kgmem-test-"))
os.environ["KGMEM_HOME"] = str(_SESSION_HOME)
os.environ.setdefault("KGMEM_CONFIG", str(_SESSION_HOME / "kgmem.toml"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from graph import Gateway, Neo4jTarget, Settings  # noqa: E402
from graph.neo4j_server import LocalNeo4j  # noqa: E402
from graph.neo4j_server.server import free_port  # noqa: E402


def _session_settings() -> Settings:
    # Free ports of its own, not 7687: test sessions (and a developer's own Neo4j) may run side by side.
    return Settings(home=_SESSION_HOME, neo4j_bolt_port=free_port(), neo4j_http_port=free_port(),
                    neo4j_pick_free_port=True)


@pytest.fixture(scope="session")
def managed_neo4j() -> Iterator[LocalNeo4j]:
    """kgmem's own local Neo4j, started by the code `kgmem serve` uses; fails the suite if it cannot start."""
    local = LocalNeo4j(_session_settings(), show_progress=False)
    try:
        _, started = local.start()
    except Exception as exc:  # noqa: BLE001 - report any cause, then fail
        pytest.fail(f"no Neo4j for the test suite: {exc}", pytrace=False)
    yield local
    if started:
        local.stop()
    shutil.rmtree(_SESSION_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def neo4j_server(request) -> Neo4jTarget:
    """The Neo4j the suite's data goes to: NEO4J_URI when set, else the managed one."""
    if os.environ.get("NEO4J_URI"):
        settings = Settings()
        password = settings.neo4j_password.get_secret_value() if settings.neo4j_password else ""
        return Neo4jTarget(os.environ["NEO4J_URI"], settings.neo4j_username, password, settings.neo4j_database)
    local: LocalNeo4j = request.getfixturevalue("managed_neo4j")
    uri, (user, password) = local.connection()
    return Neo4jTarget(uri, user, password, "neo4j")


@pytest.fixture(scope="session")
def gateway(neo4j_server: Neo4jTarget) -> Iterator[Gateway]:
    """The suite's door to Neo4j, the same one kgmem uses: tests read and seed through it."""
    opened = Gateway.to(neo4j_server)
    yield opened
    opened.close()


@pytest.fixture
def space(gateway) -> Iterator[str]:
    """A tenant of the test's own; everything written in it is removed afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    delete_space(gateway, name)


def delete_space(gateway: Gateway, name: str) -> None:
    while gateway.write("MATCH (n {space: $space}) WITH n LIMIT 5000 DETACH DELETE n RETURN count(*) AS deleted",
                        space=name)[0]["deleted"]:
        pass


@pytest.fixture
def settings(neo4j_server: Neo4jTarget, tmp_path: Path) -> Settings:
    """Settings for code under test: the session's Neo4j, an embedded Chroma in a fresh directory."""
    return Settings(
        home=tmp_path / "home",
        neo4j_uri=neo4j_server.uri,
        neo4j_username=neo4j_server.username,
        neo4j_password=neo4j_server.password,
        neo4j_database=neo4j_server.database,
        chroma_path=tmp_path / "chroma",
    )


@pytest.fixture(scope="session")
def embedder():
    from memory import Embedder

    return Embedder(Settings(home=_SESSION_HOME))


@pytest.fixture(scope="session")
def chroma_server() -> Iterator[tuple[str, int]]:
    """A real `chroma run` server on a free port, for the client/server configuration."""
    chroma = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")
    if not chroma:
        pytest.fail("the `chroma` CLI (from the chromadb package) is not installed", pytrace=False)
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="kgmem-chroma-server-"))
    process = subprocess.Popen(
        [chroma, "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"`chroma run` did not come up on port {port}", pytrace=False)
        time.sleep(0.3)
    yield "127.0.0.1", port
    process.terminate()
    process.wait(timeout=30)
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def graph_store(gateway):
    from graph.store import GraphStore

    store = GraphStore(gateway)
    store.ensure_schema()
    return store


@pytest.fixture
def graph(graph_store, space):
    """The graph API bound to this test's own tenant."""
    return graph_store.space(space)


@pytest.fixture(scope="session")
def live_api(neo4j_server, gateway, embedder, tmp_path_factory):
    """The REST API on a free port (uvicorn in a thread), real Neo4j and Chroma; the API tests share it."""
    from api_server import api_settings, serve

    settings = api_settings(neo4j_server, tmp_path_factory.mktemp("api-home"), api_rate_limit_per_minute=0)
    with serve(settings, gateway, embedder) as api:
        yield api

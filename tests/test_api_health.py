"""Health endpoints: liveness, readiness that names what is down, and versions."""

import random
import re
import time

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from graph.neo4j_server.server import free_port
from memory.vectors import open_chroma


def wait_ready(client: TestClient, timeout: float = 120.0):
    """Poll /readyz until the embedder has loaded; return the last response."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/readyz")
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        if "still loading" not in response.json()["checks"]["embedder"]:
            return response
        time.sleep(0.5)


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_healthz_answers_without_dependencies(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_200_when_neo4j_chroma_and_the_embedder_are_up(client):
    response = wait_ready(client)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ready" and body["not_ready"] == body["degraded"] == []
    assert body["checks"] == {"neo4j": "ok", "chroma": "ok", "embedder": "ok", "vectors": "ok"}


def test_readyz_names_neo4j_when_it_is_down(settings):
    port = free_port()
    broken = settings.model_copy(update={"neo4j_uri": f"bolt://127.0.0.1:{port}"})
    with TestClient(create_app(broken)) as client:
        response = wait_ready(client)
        started = time.monotonic()
        again = client.get("/readyz")
        assert time.monotonic() - started < 10  # a probe answers at once, without waiting out the driver's retries
    assert response.status_code == again.status_code == 503
    body = response.json()
    assert body["not_ready"] == ["neo4j"]
    # the gateway's Neo4jUnavailable, naming where it looked
    assert re.match(r"Neo4j (cannot be reached right now|has been unreachable for \d+ s) \(", body["checks"]["neo4j"])
    assert f"127.0.0.1:{port}" in body["checks"]["neo4j"]
    assert again.json()["not_ready"] == ["neo4j"]


def test_readyz_names_chroma_when_its_server_is_down(settings):
    broken = settings.model_copy(update={"chroma_host": "127.0.0.1", "chroma_port": free_port()})
    with TestClient(create_app(broken)) as client:
        response = wait_ready(client)
    assert response.status_code == 503
    assert response.json()["not_ready"] == ["chroma"]


def test_readyz_names_a_damaged_chroma_store_and_the_way_out(settings):
    open_chroma(settings).close()  # a store, then garbage over its database
    database = settings.chroma_dir / "chroma.sqlite3"
    database.write_bytes(random.Random(7).randbytes(database.stat().st_size))
    with TestClient(create_app(settings)) as client:
        response = wait_ready(client)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready" and body["not_ready"] == ["chroma"]
    assert re.match(rf"Chroma's store at {re.escape(str(settings.chroma_dir))} is damaged \(file is not a database\); "
                    r".*run `kgmem reindex --full` to move it aside and rebuild it", body["checks"]["chroma"])


def test_version_reports_the_server_and_the_model(client):
    wait_ready(client)
    body = client.get("/version").json()
    assert body["neo4j_server"]["version"].startswith("5.26.")
    assert body["embedding"] == {"model": "all-MiniLM-L6-v2", "source": body["embedding"]["source"], "dimension": 384,
                                 "window_tokens": 256}
    assert body["packages"]["neo4j"] != "not installed"

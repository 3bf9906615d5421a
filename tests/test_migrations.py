"""Schema migrations on a Neo4j of these tests' own: an upgrade from a database the old code wrote,
a second start that does nothing, two replicas starting together, and a database newer than the code."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cli_helpers import KGMEM
from fastapi.testclient import TestClient
from fixtures.schema_v0 import wipe_database, write_v0_database

from api.app import create_app
from api.services import open_services
from graph import Gateway, Neo4jTarget, Settings
from graph.errors import ConfigurationError
from graph.migrations import LATEST, MIGRATIONS, VERSION_ID, migrate, status
from graph.neo4j_server import LocalNeo4j
from graph.neo4j_server.server import free_port
from memory.recall import RecallQuery

SPACE = "upgraded"
ENTITIES = [
    {"kind": "Model", "name": "churn-model", "summary": "Predicts which customers cancel"},
    {"kind": "Dataset", "name": "billing-events", "summary": "Invoices and payments per customer"},
]
OBSERVATIONS = [
    {"kind": "Model", "name": "churn-model", "text": "Retraining failed because the feature store was stale",
     "valid_from": datetime(2026, 3, 8, tzinfo=UTC)},
    {"kind": "Model", "name": "churn-model", "text": "AUC rose to 0.91 after adding tenure features"},
    {"kind": "Dataset", "name": "billing-events", "text": "Refunds are booked twice in the March export"},
]


@pytest.fixture(scope="module")
def own_neo4j() -> Iterator[LocalNeo4j]:
    """A managed Neo4j whose whole database these tests may wipe and write in the old shape."""
    home = Path(tempfile.mkdtemp(prefix="kgmem-migrations-"))
    local = LocalNeo4j(Settings(home=home, neo4j_bolt_port=free_port(), neo4j_http_port=free_port(),
                                neo4j_pick_free_port=True), show_progress=False)
    local.start()
    yield local
    local.stop()
    shutil.rmtree(home, ignore_errors=True)


def open_gateway_to(local: LocalNeo4j) -> Gateway:
    uri, (user, password) = local.connection()
    return Gateway.to(Neo4jTarget(uri, user, password, "neo4j"))


@pytest.fixture
def old_database(own_neo4j) -> Iterator[Gateway]:
    """The test's Neo4j holding a space written by the code before migrations, and nothing else."""
    gateway = open_gateway_to(own_neo4j)
    wipe_database(gateway)
    write_v0_database(gateway, SPACE, ENTITIES, OBSERVATIONS)
    yield gateway
    gateway.close()


def fulltext(gateway: Gateway) -> dict[str, tuple[list[str], str]]:
    rows = gateway.rows("SHOW FULLTEXT INDEXES YIELD name, properties, options RETURN name, properties, options")
    return {r["name"]: (r["properties"], r["options"]["indexConfig"]["fulltext.analyzer"]) for r in rows}


def index_names(gateway: Gateway) -> set[str]:
    return {r["name"] for r in gateway.rows("SHOW INDEXES YIELD name RETURN name")}


def test_the_old_database_really_has_the_old_shape(old_database):
    assert status(old_database).version == 0
    assert fulltext(old_database)["observation_text"] == (["text", "space"], "standard-no-stop-words")
    assert "observation_context" not in fulltext(old_database)
    assert old_database.rows("MATCH (o:Observation) WHERE o.search_text IS NOT NULL RETURN o") == []


@pytest.mark.timeout(300)
def test_kgmem_starting_on_an_old_database_upgrades_it_and_recalls_its_memory(old_database, own_neo4j, embedder,
                                                                               tmp_path):
    settings = own_neo4j.settings.model_copy(update={"chroma_path": tmp_path / "chroma"})
    services = open_services(settings, embedder=embedder)
    try:
        memory = services.memory()  # the start-up path: the schema is migrated before anything reads
        assert status(old_database).version == LATEST
        assert fulltext(old_database)["observation_text"] == (["search_text", "space"], "english")
        assert fulltext(old_database)["observation_context"] == (["context", "space"], "english")
        assert "observation_space_vector" not in index_names(old_database)
        texts = {r["text"]: r["search_text"] for r in old_database.rows(
            "MATCH (o:Observation) RETURN o.text AS text, o.search_text AS search_text")}
        assert texts["Retraining failed because the feature store was stale"] == (
            "8 March 2026. churn-model: Retraining failed because the feature store was stale")

        memory.reconcile()  # as start-up does: the migrated items were marked pending
        assert old_database.rows("MATCH (n) WHERE n.vector_status = 'pending' RETURN n") == []
        assert old_database.rows("MATCH (n) WHERE n.vector_status IS NOT NULL AND n.passages IS NULL RETURN n") == []
        result = memory.space(SPACE).recall(RecallQuery(text="why did retraining fail?", limit=3))
        assert result.items[0].text == "Retraining failed because the feature store was stale"
        assert "keyword" in " ".join(result.items[0].channels)  # the stemmed fulltext finds "retraining"
        assert "vector" in " ".join(result.items[0].channels)
        refunds = memory.space(SPACE).recall(RecallQuery(text="duplicate refunds in billing", limit=3))
        assert refunds.items[0].text == "Refunds are booked twice in the March export"
    finally:
        services.close()


def test_a_second_start_changes_nothing(old_database):
    first = migrate(old_database)
    assert first.ran == [f"{m.version} {m.name}" for m in MIGRATIONS]
    migrated_at = status(old_database).migrated_at
    again = migrate(old_database)
    assert (again.from_version, again.to_version, again.ran) == (LATEST, LATEST, [])
    assert status(old_database).migrated_at == migrated_at
    assert old_database.rows("MATCH (v:SchemaVersion) RETURN v.id AS id") == [{"id": VERSION_ID}]


def test_a_start_on_a_current_database_creates_an_index_added_to_the_schema_since(old_database):
    migrate(old_database)
    old_database.write("DROP INDEX entity_space")  # as if graph/schema.py gained it after this database migrated
    again = migrate(old_database)
    assert again.ran == []
    assert "entity_space" in index_names(old_database)


@pytest.mark.timeout(300)
def test_two_replicas_starting_together_migrate_once(old_database, own_neo4j):
    gateways = [open_gateway_to(own_neo4j) for _ in range(2)]
    reports, errors = [], []
    start = threading.Barrier(2)

    def replica(gateway: Gateway) -> None:
        start.wait()
        try:
            reports.append(migrate(gateway))
        except Exception as exc:  # noqa: BLE001 - the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=replica, args=(g,)) for g in gateways]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    for gateway in gateways:
        gateway.close()

    assert errors == []
    ran = sorted((report.ran for report in reports), key=len)
    assert ran == [[], [f"{m.version} {m.name}" for m in MIGRATIONS]]
    assert status(old_database).version == LATEST
    assert status(old_database).holder is None  # the lease was released
    assert old_database.rows("MATCH (v:SchemaVersion) RETURN count(v) AS nodes") == [{"nodes": 1}]


def test_a_database_newer_than_the_code_is_refused_at_start_up(old_database, own_neo4j, embedder, tmp_path):
    migrate(old_database)
    old_database.write("MATCH (v:SchemaVersion {id: $id}) SET v.version = $version", id=VERSION_ID,
                       version=LATEST + 1)
    settings = own_neo4j.settings.model_copy(update={"chroma_path": tmp_path / "chroma"})
    services = open_services(settings, embedder=embedder)
    try:
        with pytest.raises(ConfigurationError, match=f"schema version {LATEST + 1}, newer than this kgmem's {LATEST}"):
            services.memory()
    finally:
        services.close()
    assert status(old_database).version == LATEST + 1  # refused, not touched


def kgmem(local: LocalNeo4j, *args: str) -> subprocess.CompletedProcess:
    home = local.settings.home
    env = {**os.environ, "KGMEM_HOME": str(home), "KGMEM_CONFIG": str(home / "kgmem.toml")}
    return subprocess.run([KGMEM, *args], capture_output=True, text=True, env=env, timeout=300, check=False)


@pytest.mark.timeout(300)
def test_kgmem_migrate_shows_the_steps_left_then_runs_them(old_database, own_neo4j):
    result = kgmem(own_neo4j, "migrate", "--status", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == {"version": 0, "latest": LATEST, "migrated_at": None, "migrating": None,
                                         "pending": [f"{m.version} {m.name}" for m in MIGRATIONS]}

    result = kgmem(own_neo4j, "migrate")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Migrated the schema from version 0 to {LATEST}." in result.stdout
    assert "ran migration 3 search_text backfill" in result.stderr

    result = kgmem(own_neo4j, "migrate", "--status")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"schema version {LATEST} of {LATEST}, migrated at" in result.stdout
    assert re.findall(r"│ (done|pending) +│", result.stdout) == ["done"] * LATEST
    assert kgmem(own_neo4j, "migrate").stdout.startswith(f"The schema is at version {LATEST}, this kgmem's: nothing")


def test_the_api_refuses_to_start_on_a_database_newer_than_the_code(old_database, own_neo4j, embedder, tmp_path):
    migrate(old_database)
    old_database.write("MATCH (v:SchemaVersion {id: $id}) SET v.version = $version", id=VERSION_ID,
                       version=LATEST + 1)
    settings = own_neo4j.settings.model_copy(update={"chroma_path": tmp_path / "chroma"})
    with pytest.raises(ConfigurationError, match="migrated by a newer kgmem"), \
            TestClient(create_app(settings, embedder=embedder)):
        pass


def test_the_api_migrates_an_old_database_before_it_answers(old_database, own_neo4j, embedder, tmp_path):
    settings = own_neo4j.settings.model_copy(update={"chroma_path": tmp_path / "chroma", "auth_disabled": True})
    with TestClient(create_app(settings, embedder=embedder)) as client:
        assert status(old_database).version == LATEST  # by the start-up, before any request
        assert client.get("/healthz").status_code == 200


"""`kgmem backup` and `kgmem restore`, run as a user runs them, on a managed Neo4j in a home of the tests' own:
a backup, a wipe, a restore, and recall answers as before; damaged backups are refused before anything changes;
a backup of a database with an older schema is migrated on restore."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import KGMEM, assert_one_error_line
from fixtures.schema_v0 import wipe_database, write_v0_database

from graph import Gateway, Neo4jTarget, Settings
from graph.migrations import LATEST, status
from graph.model import EntityIn, EntityRef, ObservationIn
from graph.neo4j_server import LocalNeo4j
from graph.neo4j_server.backup import DUMP_FILE, MANIFEST_FILE, sha256_of
from graph.neo4j_server.server import free_port
from graph.vocabulary import Kind
from memory.recall import RecallQuery
from memory.service import MemoryService

SPACE = "backed-up"
NOTES = {
    ("churn-model", Kind.MODEL): ["Retraining failed because the feature store was stale",
                                  "AUC rose to 0.91 after adding tenure features",
                                  "The March retrain was rolled back after a drift alarm"],
    ("billing-events", Kind.DATASET): ["Refunds are booked twice in the March export",
                                       "Invoices arrive a day late on public holidays"],
    ("forecast", Kind.PROJECT): ["The holiday spike breaks the weekly baseline",
                                 "Ops wants the forecast by Monday 9am"],
}
QUERIES = ["why did retraining fail?", "duplicate refunds in billing", "holiday effects", "model quality metrics"]


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    """A kgmem home with its own managed Neo4j, running, as `kgmem neo4j start` leaves it."""
    root = Path(tempfile.mkdtemp(prefix="kgmem-backup-"))
    local = LocalNeo4j(Settings(home=root, neo4j_bolt_port=free_port(), neo4j_http_port=free_port(),
                                neo4j_pick_free_port=True), show_progress=False)
    local.start()
    yield root
    LocalNeo4j(Settings(home=root), show_progress=False).stop()
    shutil.rmtree(root, ignore_errors=True)


def kgmem(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KGMEM_HOME": str(home), "KGMEM_CONFIG": str(home / "kgmem.toml"),
           "KGMEM_CHROMA_PATH": str(home / "chroma"), "KGMEM_NEO4J_PICK_FREE_PORT": "true"}
    return subprocess.run([KGMEM, *args], capture_output=True, text=True, env=env, timeout=600)


def settings_of(home: Path) -> Settings:
    return Settings(home=home, chroma_path=home / "chroma")


def gateway_of(home: Path) -> Gateway:
    uri, (user, password) = LocalNeo4j(settings_of(home), show_progress=False).connection()
    return Gateway.to(Neo4jTarget(uri, user, password, "neo4j"))


def recall_ids(home: Path, embedder) -> list[list[str]]:
    """The ids each query recalls, in order, through a fresh memory service (closed after)."""
    gateway = gateway_of(home)
    try:
        memory = MemoryService.open(settings_of(home), gateway, embedder=embedder)
        return [[item.id for item in memory.space(SPACE).recall(RecallQuery(text=q, limit=5)).items] for q in QUERIES]
    finally:
        gateway.close()


def seed(home: Path, embedder) -> None:
    gateway = gateway_of(home)
    try:
        memory = MemoryService.open(settings_of(home), gateway, embedder=embedder)
        graph = memory.space(SPACE).graph
        graph.upsert_entities([EntityIn(kind=kind, name=name) for name, kind in NOTES])
        graph.add_observations([ObservationIn(entity=EntityRef(name=name, kind=kind), text=text)
                                for (name, kind), texts in NOTES.items() for text in texts])
        assert memory.sync.pending_count() == 0  # the vectors followed the writes
    finally:
        gateway.close()


@pytest.mark.timeout(900)
def test_backup_wipe_restore_and_recall_answers_as_before(home, embedder, tmp_path):
    seed(home, embedder)
    before = recall_ids(home, embedder)
    assert all(before) and before[0][0] != before[1][0]

    # A connected client (a `kgmem serve`, say) would lose Neo4j under it: refused, nothing stopped.
    attached = gateway_of(home)
    try:
        refused = kgmem(home, "backup", "--out", str(tmp_path / "refused"))
        assert "other client(s) are connected to the local Neo4j" in assert_one_error_line(refused)
        assert not (tmp_path / "refused").exists()
    finally:
        attached.close()

    result = kgmem(home, "backup", "--out", str(tmp_path / "backup"), "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    manifest = json.loads((tmp_path / "backup" / MANIFEST_FILE).read_text())
    assert (manifest["format"], manifest["format_version"], manifest["schema_version"]) == ("kgmem-backup", 1, LATEST)
    assert manifest["files"][DUMP_FILE]["sha256"] == sha256_of(tmp_path / "backup" / DUMP_FILE)
    assert report["files"] == manifest["files"]
    assert recall_ids(home, embedder) == before  # Neo4j is back up after the dump

    # The wipe: every node gone from Neo4j, and the Chroma store deleted.
    gateway = gateway_of(home)
    try:
        gateway.write("MATCH (n) DETACH DELETE n")
    finally:
        gateway.close()
    shutil.rmtree(home / "chroma")
    assert recall_ids(home, embedder) == [[] for _ in QUERIES]

    result = kgmem(home, "restore", str(tmp_path / "backup"), "--yes", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    restored = json.loads(result.stdout)
    assert (restored["schema_version_restored"], restored["schema_version"]) == (LATEST, LATEST)
    assert restored["embedded"] >= sum(len(texts) for texts in NOTES.values()) + len(NOTES)
    assert recall_ids(home, embedder) == before


def test_a_damaged_or_foreign_backup_is_refused_before_anything_changes(home, tmp_path):
    result = kgmem(home, "backup", "--out", str(tmp_path / "good"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Backup in" in result.stdout and "sha256" in result.stdout
    gateway = gateway_of(home)
    try:
        gateway.write("CREATE (:Marker {id: 'written after the backup'})")
    finally:
        gateway.close()

    damaged = tmp_path / "damaged"
    shutil.copytree(tmp_path / "good", damaged)
    with (damaged / DUMP_FILE).open("r+b") as dump:
        dump.seek(100)
        dump.write(b"\x00garbage\x00")
    line = assert_one_error_line(kgmem(home, "restore", str(damaged), "--yes"))
    assert "is damaged or not the dump this backup made" in line and "nothing was changed" in line

    line = assert_one_error_line(kgmem(home, "restore", str(tmp_path), "--yes"))
    assert f"is not a kgmem backup: it has no {MANIFEST_FILE}" in line

    newer = tmp_path / "newer"
    shutil.copytree(tmp_path / "good", newer)
    manifest = json.loads((newer / MANIFEST_FILE).read_text())
    (newer / MANIFEST_FILE).write_text(json.dumps({**manifest, "schema_version": LATEST + 1}))
    line = assert_one_error_line(kgmem(home, "restore", str(newer), "--yes"))
    assert f"schema version {LATEST + 1} is newer than this kgmem's {LATEST}" in line

    gateway = gateway_of(home)
    try:  # the database was not touched by any of them
        assert gateway.rows("MATCH (m:Marker) RETURN m.id AS id") == [{"id": "written after the backup"}]
    finally:
        gateway.close()


@pytest.mark.timeout(900)
def test_restoring_a_backup_with_an_older_schema_migrates_it(home, tmp_path):
    gateway = gateway_of(home)
    try:
        wipe_database(gateway)
        write_v0_database(gateway, "old", [{"kind": "Model", "name": "churn-model"}],
                          [{"kind": "Model", "name": "churn-model", "text": "Retraining failed"}])
        assert status(gateway).version == 0
    finally:
        gateway.close()
    result = kgmem(home, "backup", "--out", str(tmp_path / "v0"), "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["schema_version"] == 0

    result = kgmem(home, "restore", str(tmp_path / "v0" / MANIFEST_FILE), "--yes", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    restored = json.loads(result.stdout)
    assert (restored["schema_version_restored"], restored["schema_version"]) == (0, LATEST)
    assert len(restored["migrations_ran"]) == LATEST
    gateway = gateway_of(home)
    try:
        assert status(gateway).version == LATEST
        (observation,) = gateway.rows("MATCH (o:Observation) RETURN o.search_text AS s, o.vector_status AS v")
        assert observation["s"].endswith(". churn-model: Retraining failed")  # backfilled with its date
        assert observation["v"] == "indexed"  # and embedded by the restore's full reindex
    finally:
        gateway.close()

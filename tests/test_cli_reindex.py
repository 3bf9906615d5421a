"""`kgmem reindex` and `kgmem reindex --full`, run as a user runs them: the real executable."""

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

from cli_helpers import assert_one_error_line

from graph.model import EntityIn, EntityRef, ObservationIn
from graph.vocabulary import Kind
from memory.service import MemoryService

KGMEM = str(Path(sys.executable).parent / "kgmem")


def kgmem(chroma: Path, *args: str) -> subprocess.CompletedProcess:
    # The environment carries the test session's KGMEM_HOME, so the CLI finds its managed Neo4j.
    env = {**os.environ, "KGMEM_CHROMA_PATH": str(chroma)}
    return subprocess.run([KGMEM, *args], capture_output=True, text=True, env=env, timeout=300)


def reported(stdout: str) -> dict[str, int]:
    numbers = {}
    for label in ("embedded", "deleted", "missing repaired", "orphans removed", "pending after"):
        match = re.search(rf"{label}[^│\n]*│\s*(\d+)\s*│", stdout)
        assert match, f"no {label!r} in the report:\n{stdout}"
        numbers[label] = int(match.group(1))
    return numbers


def status_of(gateway, observation_id):
    return gateway.rows("MATCH (o:Observation {id: $id}) RETURN o.vector_status AS s", id=observation_id)[0]["s"]


def test_reindex_and_full_reindex(managed_neo4j, gateway, graph, settings, embedder, tmp_path):
    chroma = tmp_path / "chroma"
    # Written to Neo4j only, as a writer that died before Chroma leaves it: pending.
    graph.upsert_entities([EntityIn(kind=Kind.PROJECT, name="Forecast")])
    (observation,) = graph.add_observations(
        [ObservationIn(entity=EntityRef(name="Forecast", kind=Kind.PROJECT), text="The holiday spike breaks the baseline")])
    assert status_of(gateway, observation.id) == "pending"

    result = kgmem(chroma, "reindex")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Reconcile of the vector index" in result.stdout
    numbers = reported(result.stdout)
    assert numbers["embedded"] >= 2  # the project and its observation, at least
    assert numbers["pending after"] == 0
    assert status_of(gateway, observation.id) == "indexed"

    result = kgmem(chroma, "reindex", "--full")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Full reindex of the vector index" in result.stdout
    full = reported(result.stdout)
    assert full["embedded"] >= 2
    assert full["missing repaired"] == 0 and full["orphans removed"] == 0  # a full rebuild does not look for them
    assert full["pending after"] == 0

    # Right after a rebuild there is nothing to repair.
    result = kgmem(chroma, "reindex", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    again = json.loads(result.stdout)
    assert again["full"] is False
    assert (again["embedded"], again["missing_repaired"], again["orphans_removed"], again["pending_after"]) == (0, 0, 0, 0)

    memory = MemoryService.open(settings.model_copy(update={"chroma_path": chroma}), gateway, embedder=embedder)
    assert memory.index.ids_in([f"obs:{observation.id}"]) == {f"obs:{observation.id}"}


def test_a_damaged_store_fails_a_plain_reindex_in_one_line_and_a_full_one_moves_it_aside(
        managed_neo4j, gateway, graph, settings, embedder, tmp_path):
    chroma = tmp_path / "chroma"
    graph.upsert_entities([EntityIn(kind=Kind.PROJECT, name="Forecast")])
    (observation,) = graph.add_observations(
        [ObservationIn(entity=EntityRef(name="Forecast", kind=Kind.PROJECT), text="The holiday spike breaks the baseline")])
    assert kgmem(chroma, "reindex").returncode == 0
    database = chroma / "chroma.sqlite3"
    garbage = random.Random(7).randbytes(database.stat().st_size)
    database.write_bytes(garbage)  # over the database, as a bad disk or a stray write would

    line = assert_one_error_line(kgmem(chroma, "reindex"))
    assert "is damaged (file is not a database)" in line and "`kgmem reindex --full`" in line

    result = kgmem(chroma, "reindex", "--full", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    moved = Path(json.loads(result.stdout)["damaged_store_moved_to"])
    assert moved.parent == tmp_path and moved.name.startswith("chroma.damaged-")
    assert (moved / "chroma.sqlite3").read_bytes() == garbage  # kept as it was, for a post-mortem
    assert f"moved it aside to {moved}" in " ".join(result.stderr.split())
    memory = MemoryService.open(settings.model_copy(update={"chroma_path": chroma}), gateway, embedder=embedder)
    assert memory.index.ids_in([f"obs:{observation.id}"]) == {f"obs:{observation.id}"}
    assert status_of(gateway, observation.id) == "indexed"


def test_reindex_help_says_when_to_use_full():
    result = subprocess.run([KGMEM, "reindex", "--help"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "--full" in text
    assert "embedding model" in text and "Chroma data was lost" in text

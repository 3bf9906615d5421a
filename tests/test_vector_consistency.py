"""Chroma follows Neo4j: a writer killed between the two, vectors lost or left behind, a model change."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from graph.errors import ModelMismatch
from graph.model import EntityIn, EntityRef, ObservationIn, Provenance
from graph.vocabulary import Kind
from memory.index import VectorIndex, collection_name
from memory.recall import RecallQuery
from memory.service import MemoryService

REPO = Path(__file__).resolve().parent.parent

# The writer: indexes an entity normally, then dies (as a SIGKILL would: no cleanup, no exception
# handlers) the moment it tries to write an observation's vector, i.e. after Neo4j has committed it.
WRITER = textwrap.dedent("""
    import os, sys
    from graph import Settings, open_gateway
    from graph.model import EntityIn, EntityRef, ObservationIn
    from graph.vocabulary import Kind
    from memory.index import VectorIndex
    from memory.service import MemoryService

    space, text = sys.argv[1], sys.argv[2]
    settings = Settings()
    memory = MemoryService.open(settings, open_gateway(settings))
    target = memory.space(space)
    target.graph.upsert_entities([EntityIn(kind=Kind.PROJECT, name="Churn model")])
    print("entity indexed", flush=True)

    def die(self, items, vectors):
        os._exit(137)

    VectorIndex.upsert = die
    target.graph.add_observations([ObservationIn(entity=EntityRef(name="Churn model", kind=Kind.PROJECT), text=text)])
    print("survived the write", flush=True)
""")

TEXT = "Retraining on the March snapshot doubled the churn model's recall"


def observation_rows(gateway, space):
    return gateway.rows(
        "MATCH (o:Observation {space: $space}) RETURN o.id AS id, o.text AS text, o.vector_status AS status",
        space=space)


def status_of(gateway, observation_id):
    return gateway.rows("MATCH (o:Observation {id: $id}) RETURN o.vector_status AS s", id=observation_id)[0]["s"]


def test_a_writer_killed_between_neo4j_and_chroma_is_repaired_after_restart(
        neo4j_server, gateway, settings, embedder, space, tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {
        **os.environ, "PYTHONPATH": str(REPO), "NEO4J_URI": neo4j_server.uri, "NEO4J_USERNAME": neo4j_server.username,
        "NEO4J_PASSWORD": neo4j_server.password, "NEO4J_DATABASE": neo4j_server.database,
        "KGMEM_CHROMA_PATH": str(settings.chroma_dir),
    }
    result = subprocess.run([sys.executable, str(script), space, TEXT], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 137, result.stderr[-3000:]
    assert "entity indexed" in result.stdout
    assert "survived the write" not in result.stdout

    # Neo4j committed the observation and still calls it pending; Chroma never got its vector.
    rows = observation_rows(gateway, space)
    assert [(r["text"], r["status"]) for r in rows] == [(TEXT, "pending")]
    observation_id = rows[0]["id"]

    # "Restart": a fresh service on the same Chroma directory.
    memory = MemoryService.open(settings, gateway, embedder=embedder)
    entity_ids = [r["id"] for r in gateway.rows("MATCH (e:Entity {space: $space}) RETURN e.id AS id", space=space)]
    assert memory.index.ids_in([f"ent:{i}" for i in entity_ids]) == {f"ent:{i}" for i in entity_ids}, \
        "the writer's earlier vectors should have survived it"
    assert memory.index.ids_in([f"obs:{observation_id}"]) == set()
    before = [item for item in memory.space(space).recall(RecallQuery(text=TEXT)).items if item.id == observation_id]
    assert all("vector" not in item.channels for item in before)

    report = memory.reconcile()
    assert report.embedded >= 1

    found = [item for item in memory.space(space).recall(RecallQuery(text=TEXT)).items if item.id == observation_id]
    assert len(found) == 1
    assert "vector" in found[0].channels
    assert found[0].text == TEXT
    assert status_of(gateway, observation_id) == "indexed"
    assert memory.index.ids_in([f"obs:{observation_id}"]) == {f"obs:{observation_id}"}


def test_reconcile_repairs_missing_vectors_and_removes_orphans(settings, gateway, embedder, space):
    memory = MemoryService.open(settings, gateway, embedder=embedder)
    target = memory.space(space)
    target.graph.upsert_entities([EntityIn(kind=Kind.DATASET, name="Orders table")])
    kept, dropped = target.graph.add_observations([
        ObservationIn(entity=EntityRef(name="Orders table", kind=Kind.DATASET), text="Orders arrive a day late on Mondays"),
        ObservationIn(entity=EntityRef(name="Orders table", kind=Kind.DATASET), text="The orders table has duplicate rows"),
    ])
    keep, drop = f"obs:{kept.id}", f"obs:{dropped.id}"
    assert memory.index.ids_in([keep, drop]) == {keep, drop}

    # A vector deleted behind kgmem's back comes back.
    memory.index.delete([keep])
    assert memory.index.ids_in([keep]) == set()
    report = memory.reconcile()
    assert report.missing_repaired >= 1
    assert memory.index.ids_in([keep]) == {keep}
    assert status_of(gateway, kept.id) == "indexed"

    # A vector whose observation was hard-deleted with plain Cypher goes away.
    gateway.write("MATCH (o:Observation {id: $id}) DETACH DELETE o", id=dropped.id)
    report = memory.reconcile()
    assert report.orphans_removed >= 1
    assert memory.index.ids_in([drop]) == set()
    assert memory.index.ids_in([keep]) == {keep}
    hits = memory.space(space).recall(RecallQuery(text="duplicate rows in the orders table")).items
    assert dropped.id not in {item.id for item in hits}


def test_a_collection_of_another_model_is_refused_with_the_way_out(settings, gateway, embedder):
    memory = MemoryService.open(settings, gateway, embedder=embedder)
    # Another model whose collection name is the same (names are slugged: case and punctuation fold).
    other = embedder.name.upper().replace("-", "_")
    assert other != embedder.name
    assert collection_name(other, embedder.dimension) == memory.index.collection.name
    with pytest.raises(ModelMismatch) as caught:
        VectorIndex(memory.index.client, other, embedder.dimension)
    assert "kgmem reindex" in str(caught.value)
    assert embedder.name in str(caught.value) and other in str(caught.value)


def test_a_message_window_vector_is_the_mean_direction_of_its_lines(settings, gateway, embedder, space):
    memory = MemoryService.open(settings, gateway, embedder=embedder)
    target = memory.space(space)
    target.graph.upsert_entities([EntityIn(kind=Kind.PERSON, name="Ana"), EntityIn(kind=Kind.PERSON, name="Ben")])
    lines = [("Ana", "Did the backfill finish?"), ("Ben", "Yes, overnight, 40 million rows"), ("Ana", "Great, thanks")]
    written = target.graph.add_observations([
        ObservationIn(entity=EntityRef(name=name, kind=Kind.PERSON), text=text, seq=seq,
                      provenance=Provenance(source="chat-1"))
        for seq, (name, text) in enumerate(lines)
    ])
    middle = f"win:{written[1].id}"
    stored = np.asarray(memory.index.vectors([middle])[middle])
    expected = np.sum(embedder.embed([f"{name}: {text}" for name, text in lines]), axis=0)
    expected /= np.linalg.norm(expected)
    assert np.allclose(stored, expected, atol=1e-5)
    # The first message's window has only itself and its successor.
    first = f"win:{written[0].id}"
    edge = np.sum(embedder.embed([f"{name}: {text}" for name, text in lines[:2]]), axis=0)
    assert np.allclose(np.asarray(memory.index.vectors([first])[first]), edge / np.linalg.norm(edge), atol=1e-5)


def vector_ids(memory: MemoryService, space: str) -> set[str]:
    return set(memory.index.collection.get(where={"space": space}, include=[])["ids"])


def mentions(ids: set[str], observation_ids: list[str]) -> set[str]:
    return {i for i in ids if any(o in i for o in observation_ids)}


@pytest.mark.parametrize("forget", ["purge_entity", "delete_entity"])
def test_forgetting_a_speaker_leaves_none_of_their_messages_vectors(settings, gateway, embedder, space, forget):
    """Windows (`win:`) and passages (`obs:<id>#n`) go with the observation: a forget that left
    text-derived vectors would not be one."""
    memory = MemoryService.open(settings, gateway, embedder=embedder)
    target = memory.space(space)
    target.graph.upsert_entities([EntityIn(kind=Kind.PERSON, name="Ana"), EntityIn(kind=Kind.PERSON, name="Ben")])
    report = " ".join(f"Row batch {n} of the backfill loaded cleanly into the warehouse." for n in range(120))
    lines = [("Ana", "Did the backfill finish?"), ("Ben", "Yes, overnight, 40 million rows"), ("Ana", report)]
    written = target.graph.add_observations([
        ObservationIn(entity=EntityRef(name=name, kind=Kind.PERSON), text=text, seq=seq,
                      provenance=Provenance(source="chat-1"))
        for seq, (name, text) in enumerate(lines)
    ])
    ana = [o.id for o, (name, _) in zip(written, lines) if name == "Ana"]
    before = mentions(vector_ids(memory, space), ana)
    assert {f"win:{ana[0]}", f"win:{ana[1]}", f"obs:{ana[1]}#1"} <= before  # windows and passages exist

    getattr(target, forget)(written[0].entity_id)

    assert mentions(vector_ids(memory, space), ana) == set()
    assert f"win:{written[1].id}" in vector_ids(memory, space)  # Ben's own message stays


def test_a_space_reindex_removes_windows_and_passages_left_behind(settings, gateway, embedder, space):
    """Vectors orphaned behind kgmem's back (plain Cypher, an older version) go at the space's own
    reindex, not only the global one."""
    memory = MemoryService.open(settings, gateway, embedder=embedder)
    target = memory.space(space)
    target.graph.upsert_entities([EntityIn(kind=Kind.PERSON, name="Ana")])
    long_text = " ".join(f"Partition {n} of the orders table was compacted overnight." for n in range(120))
    written = target.graph.add_observations([
        ObservationIn(entity=EntityRef(name="Ana", kind=Kind.PERSON), text=text, seq=seq,
                      provenance=Provenance(source="chat-2"))
        for seq, text in enumerate(["Compaction is done", long_text])
    ])
    gone = [o.id for o in written]
    gateway.write("MATCH (o:Observation) WHERE o.id IN $ids DETACH DELETE o", ids=gone)
    assert len(mentions(vector_ids(memory, space), gone)) >= 4  # two windows, at least two passages

    report = target.reindex()

    assert report.orphans_removed >= 4
    assert mentions(vector_ids(memory, space), gone) == set()

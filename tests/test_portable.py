"""Portable export and import (memory/portable.py): real Neo4j, real Chroma, the real embedder.

One space is seeded with every kind of record kgmem keeps (entities of several kinds with revisions,
observations of a conversation with passages and windows, facts that were superseded, a delegation
with its brief and outcome and lesson, ML memory, the Claude memory tool's files, a mem0 memory, an
audit event, and values of every Neo4j type), exported, and imported into other spaces of the same
database; what comes back is compared record by record with the original.
"""

from __future__ import annotations

import json
import re
import shutil
import tarfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import delete_space

from agents import BriefRequest, Delegations, OutcomeLesson, OutcomeRequest
from agents.claude_memory import GraphMemoryTool
from agents.ml import MlMemory, ModelVersionIn
from graph.errors import Conflict, InvalidInput
from graph.model import EntityIn, EntityRef, ObservationIn, RelationIn
from graph.settings import Settings
from graph.vocabulary import Kind
from memory.portable import MANIFEST, export_space, import_archive, new_id
from memory.recall import RecallQuery
from memory.service import MemoryService
from memory.vectors import open_chroma

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
FACT = "The churn model is retrained every Monday on the March snapshot"
MEM0_TEXT = "Alice prefers Polars over pandas for dataframe work"
# Values of every type a property may hold, set with Cypher so that nothing rounds them on the way in.
TYPED = """
MATCH (e:Entity {space: $space, name: 'Churn'})
SET e.at_nanos = datetime('2026-05-08T10:00:00.123456789+02:00'),
    e.at_zone = datetime('2026-05-08T10:00:00.5[Europe/Berlin]'),
    e.local_at = localdatetime('2026-05-08T10:00:00.000000001'),
    e.day = date('2026-05-08'), e.clock = time('10:00:00.25+01:00'), e.local_clock = localtime('23:59:59.999'),
    e.took = duration('P1Y2M3DT4H5M6.000000007S'),
    e.negative_zero = -0.0, e.tiny = 5e-324, e.big = 9007199254740993, e.scores = [0.1, -0.0, 1e300],
    e.days = [date('2026-01-01'), date('2026-12-31')], e.flags = [true, false], e.empty = [], e.blob = $blob
"""
AUDIT = """
MATCH (e:Entity {space: $space, name: 'Churn'})
CREATE (:AuditEvent {id: randomUUID(), space: $space, at: datetime(), key_id: 'k1', agent: 'ds-1',
                     delegation_id: null, operation: 'upsert_entities', ids: [e.id], detail: '{"n": 1}'})
"""


def seed(memory: MemoryService, space: str) -> None:
    acme = memory.space(space)
    graph = acme.graph
    graph.upsert_entities([
        EntityIn(kind=Kind.PROJECT, name="Churn", summary="who leaves", attributes={"owner": "ds-1", "auc": 0.84}),
        EntityIn(kind=Kind.AGENT, name="ds-1", aliases=["Dana"]),
        EntityIn(kind=Kind.THING, name="Lisbon", entity_type="city"),
    ])
    graph.upsert_entities([EntityIn(kind=Kind.PROJECT, name="Churn", summary="who leaves, and why")])  # a revision
    graph.add_observations([
        ObservationIn(entity=EntityRef(name="Churn", kind=Kind.PROJECT), text=FACT,
                      valid_from=datetime(2026, 3, 2, 9, 30, tzinfo=UTC)),
        ObservationIn(entity=EntityRef(name="Churn", kind=Kind.PROJECT), text="A long note. " * 400),  # passages
        ObservationIn(entity=EntityRef(name="Churn", kind=Kind.PROJECT), text="It is undated", undated=True),
    ])
    # A conversation (windows), one message of it retracted.
    said = graph.add_observations([
        ObservationIn(entity=EntityRef(name="ds-1"), text=f"message {n} about the Lisbon offsite", ref=f"m{n}", seq=n,
                      provenance={"source": "chat-1", "agent": "ds-1"})
        for n in range(4)])
    graph.retract_observations([said[3].id])
    # A fact with a weight of -0.0, which JSON must keep negative.
    graph.upsert_relations([RelationIn(source=EntityRef(name="Churn"), type="RELATED_TO", target=EntityRef(name="Lisbon"),
                                       valid_from=datetime(2026, 1, 1, tzinfo=UTC), weight=-0.0)])
    delegations = Delegations(acme)
    brief = delegations.brief(BriefRequest(task="Retrain the churn model", project="Churn", agent_role="ml-engineer"))
    delegations.record_outcome(OutcomeRequest(
        delegation_id=brief.delegation_id, status="failed", agent="ds-1", summary="stale features",
        lessons=[OutcomeLesson(text="Refresh the feature snapshot before retraining the churn model")]))
    MlMemory(acme).record_model_version(ModelVersionIn(
        model="churn-model", version="1", metrics={"auc": 0.78}, dataset="customers-2024", stage="production",
        registered_at=datetime(2026, 2, 1, tzinfo=UTC), feature_importance={"tenure": 0.4}))
    tool = GraphMemoryTool(graph)
    tool.call({"command": "create", "path": "/memories/notes.md", "file_text": "line one\nline two\n"})
    tool.call({"command": "str_replace", "path": "/memories/notes.md", "old_str": "two", "new_str": "2"})
    tool.call({"command": "create", "path": "/memories/projects/churn/plan.md", "file_text": "# Plan\n"})
    tool.call({"command": "delete", "path": "/memories/projects/churn/plan.md"})
    memory.free_text().add(space, MEM0_TEXT, user_id="alice", metadata={"topic": "tools"}, infer=False)
    memory.gateway.write(TYPED, space=space, blob=b"\x00\xffbytes")
    memory.gateway.write(AUDIT, space=space)
    memory.sync.process_pending(space=space)


def records(folder: Path) -> dict[str, list[str]]:
    """Each record kind's lines, sorted (ids, and so the order by id, differ between spaces)."""
    manifest = json.loads((folder / MANIFEST).read_text())
    return {kind: sorted((folder / f"{kind}.jsonl").read_text().splitlines()) for kind in manifest["counts"]}


def as_imported(exported: dict[str, list[str]], source: str, target: str) -> dict[str, list[str]]:
    """What an export of `source` becomes in `target`: the space renamed (space names here are unique
    random strings, so a textual replace is exact) and every UUID mapped as the format says."""
    def line(text: str) -> str:
        return UUID.sub(lambda match: new_id(match.group(0), target), text.replace(source, target))

    return {kind: sorted(line(text) for text in lines) for kind, lines in exported.items()}


def derived_removed(line: str) -> dict:
    """A record without what the vector sync derives when it embeds (a message's `context`: its neighbours'
    lines as they are when it is embedded, which in the source may predate a neighbour's retraction)."""
    record = json.loads(line)
    record.get("properties", {}).pop("context", None)
    return record


def differences(copy: list[str], original: list[str]) -> list[tuple]:
    """(record, property, copy's value, original's value) for each property that differs."""
    assert len(copy) == len(original)
    found = []
    def in_order(lines: list[str]) -> list[dict]:
        return sorted(map(derived_removed, lines), key=lambda record: json.dumps(record, sort_keys=True))

    for mine, theirs in zip(in_order(copy), in_order(original)):
        ours, others = mine.get("properties", {}), theirs.get("properties", {})
        found += [(ours.get("id"), key, ours.get(key), others.get(key))
                  for key in sorted(set(ours) | set(others)) if ours.get(key) != others.get(key)]
        found += [(ours.get("id"), key) for key in mine if key != "properties" and mine[key] != theirs[key]]
    return found


def took_own_import_event(copy: dict[str, list[str]]) -> dict:
    """Take out of an imported space's export the one audit event its import added (who imported what, and
    how much: no ids); the rest of the trail is the archive's."""
    (own,) = [line for line in copy["audit_events"] if '"operation":"import_archive"' in line]
    copy["audit_events"].remove(own)
    event = json.loads(own)["properties"]
    assert event["ids"] == []
    return event


def same_vectors(copy: list[str], original: list[str]) -> bool:
    mine, theirs = ([json.loads(line) for line in lines] for lines in (copy, original))
    mine, theirs = (sorted(records, key=lambda record: record["id"]) for records in (mine, theirs))
    return [(r["id"], r["metadata"]) for r in mine] == [(r["id"], r["metadata"]) for r in theirs] and all(
        len(a["embedding"]) == len(b["embedding"]) and max(abs(x - y) for x, y in zip(a["embedding"], b["embedding"])) < 1e-6
        for a, b in zip(mine, theirs))


def unpacked(archive: Path, into: Path) -> Path:
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


@pytest.fixture(scope="module")
def world(neo4j_server, gateway, embedder, tmp_path_factory):
    """One seeded space and its export with vectors (as a .tar.gz) and without (a directory)."""
    home = tmp_path_factory.mktemp("portable")
    settings = Settings(home=home / "home", neo4j_uri=neo4j_server.uri, neo4j_username=neo4j_server.username,
                        neo4j_password=neo4j_server.password, neo4j_database=neo4j_server.database,
                        chroma_path=home / "chroma")
    memory = MemoryService.open(settings, gateway, embedder=embedder, chroma=open_chroma(settings))
    source = f"test-{uuid.uuid4().hex[:12]}"
    seed(memory, source)
    with_vectors = export_space(memory, source, home / "a.tar.gz", vectors=True, gzip=True)
    without = export_space(memory, source, home / "a-plain")
    spaces = [source]
    yield {"memory": memory, "source": source, "home": home, "spaces": spaces,
           "with_vectors": Path(with_vectors.path), "plain": Path(without.path)}
    for name in spaces:
        delete_space(gateway, name)
        memory.index.delete_space(name)


def new_space(world) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    world["spaces"].append(name)
    return name


def test_the_export_covers_every_record_kind_with_a_manifest_of_counts_and_checksums(world, tmp_path):
    folder = unpacked(world["with_vectors"], tmp_path / "a")
    manifest = json.loads((folder / MANIFEST).read_text())
    memory = world["memory"]
    assert manifest["format"] == "kgmem-export" and manifest["format_version"] == 1
    assert manifest["embedding_model"] == {"name": memory.embedder.name, "dimension": memory.embedder.dimension}
    assert manifest["space"] == world["source"] and manifest["vectors"] is True
    found = records(folder)
    assert {kind: len(lines) for kind, lines in found.items()} == manifest["counts"]
    assert set(manifest["sha256"]) == {f"{kind}.jsonl" for kind in manifest["counts"]}
    for kind in ("entities", "observations", "revisions", "relations", "memory_stores", "memory_dirs",
                 "memory_files", "memory_file_versions", "audit_events", "free_text", "vectors"):
        assert manifest["counts"][kind] > 0, kind
    kinds = {json.loads(line)["properties"]["kind"] for line in found["entities"]}
    assert {"Project", "Agent", "Thing", "Delegation", "Lesson", "Model", "ModelVersion", "Memory"} <= kinds
    assert {json.loads(line)["type"] for line in found["relations"]} >= {
        "HAS_OBSERVATION", "HAS_REVISION", "RELATED_TO", "LEARNED_FROM", "VERSION_OF", "HAS_VERSION"}
    vector_ids = [json.loads(line)["id"] for line in found["vectors"]]
    assert any(i.startswith("win:") for i in vector_ids) and any("#" in i for i in vector_ids)
    churn = next(json.loads(line)["properties"] for line in found["entities"] if '"name":"Churn"' in line)
    assert churn["at_nanos"] == {"$datetime": "2026-05-08T10:00:00.123456789+02:00"}
    assert churn["took"] == {"$duration": "P1Y2M3DT4H5M6.000000007S"}
    assert churn["scores"] == [0.1, -0.0, 1e300] and str(churn["negative_zero"]) == "-0.0"
    no_operational = ["IdempotencyRecord", "ApiJob", "ReconcileLease", "VectorStoreMark", "ApiKey", "SchemaVersion"]
    assert not any(label in line for lines in found.values() for line in lines for label in no_operational)


def test_import_into_an_empty_space_reproduces_the_export_exactly(world, tmp_path):
    memory, source, target = world["memory"], world["source"], new_space(world)
    report = import_archive(memory, world["with_vectors"], target)
    assert report.vectors == "copied" and report.embedded == 0
    assert all(skipped == 0 for skipped in report.skipped.values())

    again = export_space(memory, target, tmp_path / "b", vectors=True)
    original = records(unpacked(world["with_vectors"], tmp_path / "a"))
    copy = records(Path(again.path))
    assert json.loads(took_own_import_event(copy)["detail"])["created"]["entities"] > 0
    expected = as_imported(original, source, target)
    for kind in original:
        if kind == "vectors":  # the same ids and metadata exactly; each embedding the same to float noise, since
            # a vector the sync follows again (same text, same model) differs in the last bit (~1e-8)
            assert same_vectors(copy[kind], expected[kind]), kind
        else:
            assert copy[kind] == expected[kind], kind
    # Temporal values are Neo4j's own again, zones and nanoseconds included.
    stored = memory.gateway.rows("MATCH (e:Entity {space: $space, name: 'Churn'}) RETURN toString(e.at_zone) AS zone, "
                                 "toString(e.at_nanos) AS nanos, e.blob AS blob", space=target)[0]
    assert stored == {"zone": "2026-05-08T10:00:00.5+02:00[Europe/Berlin]", "nanos": "2026-05-08T10:00:00.123456789+02:00",
                      "blob": b"\x00\xffbytes"}


def test_recall_and_mem0_search_find_what_was_imported(world):
    memory, target = world["memory"], new_space(world)
    import_archive(memory, world["with_vectors"], target)
    found = memory.space(target).recall(RecallQuery(text="When is the churn model retrained?", limit=5))
    assert any(FACT in (item.text or "") for item in found.items)
    hits = memory.free_text().search(target, "which dataframe library does she like?", user_id="alice")["results"]
    assert hits[0]["memory"] == MEM0_TEXT and hits[0]["metadata"] == {"topic": "tools", "space": target}


def test_without_vectors_the_import_embeds_everything_again(world, tmp_path):
    memory, source, target = world["memory"], world["source"], new_space(world)
    report = import_archive(memory, world["plain"], target)
    assert report.vectors == "re-embedded" and report.embedded > 0
    assert memory.sync.pending_count(target) == 0
    again = export_space(memory, target, tmp_path / "c", vectors=True)
    original = as_imported(records(unpacked(world["with_vectors"], tmp_path / "a")), source, target)
    copy = records(Path(again.path))
    took_own_import_event(copy)

    def without_embeddings(lines: list[str]) -> list[tuple]:
        # What places each vector: its item, passage and span. The rest of the metadata comes from the graph
        # as it is now (the source's Chroma may lag it: a delegation's agent set by its outcome).
        return sorted((json.loads(line)["id"], *(json.loads(line)["metadata"][key] for key in
                                                 ("space", "type", "entity_id", "item", "start", "end")))
                      for line in lines)

    # The same vectors (passages and windows) and the same graph, re-embedded.
    assert without_embeddings(copy["vectors"]) == without_embeddings(original["vectors"])
    for kind in ("entities", "observations", "relations", "revisions", "memory_files", "audit_events"):
        assert differences(copy[kind], original[kind]) == [], kind
    found = memory.space(target).recall(RecallQuery(text="When is the churn model retrained?", limit=5))
    assert any(FACT in (item.text or "") for item in found.items)


def test_an_import_into_a_space_with_data_is_refused_unless_merged(world, tmp_path):
    memory, source = world["memory"], world["source"]
    with pytest.raises(Conflict, match="--merge"):
        import_archive(memory, world["plain"], source)

    # Merging the export back into its own space: every record is there already.
    report = import_archive(memory, world["plain"], source, merge=True)
    assert sum(report.created.values()) == 0 and sum(report.skipped.values()) > 0
    assert report.skipped["entities"] == json.loads((world["plain"] / MANIFEST).read_text())["counts"]["entities"]

    # Merging into a space that has one of its entities (same kind and name, another id) and one of its own.
    target = new_space(world)
    memory.space(target).graph.upsert_entities([EntityIn(kind=Kind.PROJECT, name="Churn", summary="theirs"),
                                                EntityIn(kind=Kind.PERSON, name="Eve")])
    merged = import_archive(memory, world["plain"], target, merge=True)
    counts = json.loads((world["plain"] / MANIFEST).read_text())["counts"]
    assert merged.skipped["entities"] == 1 and merged.created["entities"] == counts["entities"] - 1
    rows = memory.gateway.rows("MATCH (e:Entity {space: $space, kind: 'Project', name: 'Churn'}) "
                               "RETURN e.summary AS summary, COUNT { (e)-[:HAS_OBSERVATION]->() } AS observations",
                               space=target)
    assert rows == [{"summary": "theirs", "observations": 3}]  # the space's own entity, with the archive's observations
    assert memory.gateway.rows("MATCH (e:Person {space: $space}) RETURN e.name AS name", space=target) == [{"name": "Eve"}]
    assert memory.sync.pending_count(target) == 0
    again = import_archive(memory, world["plain"], target, merge=True)  # a second merge adds nothing
    assert sum(again.created.values()) == 0


def test_a_damaged_or_foreign_archive_is_refused_with_what_is_wrong(world, tmp_path):
    memory, target = world["memory"], new_space(world)

    def altered(name: str, change) -> Path:
        folder = tmp_path / name
        shutil.copytree(world["plain"], folder)
        change(folder)
        return folder

    def manifest_with(**fields):
        def change(folder: Path) -> None:
            manifest = json.loads((folder / MANIFEST).read_text())
            (folder / MANIFEST).write_text(json.dumps({**manifest, **fields}))
        return change

    with pytest.raises(InvalidInput, match="format_version 2"):
        import_archive(memory, altered("v2", manifest_with(format_version=2)), target)
    with pytest.raises(InvalidInput, match="kgmem imports only 'kgmem-export'"):
        import_archive(memory, altered("other", manifest_with(format="cognee")), target)
    counts = json.loads((world["plain"] / MANIFEST).read_text())["counts"]
    with pytest.raises(InvalidInput, match="entities.jsonl holds .* records; the manifest counts"):
        import_archive(memory, altered("count", manifest_with(counts={**counts, "entities": counts["entities"] + 1})),
                       target)
    with pytest.raises(InvalidInput, match="checksum mismatch: observations.jsonl"):
        import_archive(memory, altered("edited", lambda folder: (folder / "observations.jsonl").write_text(
            (folder / "observations.jsonl").read_text().replace("Monday", "Friday"))), target)
    with pytest.raises(InvalidInput, match="no manifest.json"):
        import_archive(memory, altered("bare", lambda folder: (folder / MANIFEST).unlink()), target)
    foreign = tmp_path / "foreign.tar.gz"
    with tarfile.open(foreign, "w:gz") as tar:
        tar.add(world["plain"] / MANIFEST, arcname="../manifest.json")
    with pytest.raises(InvalidInput, match="which an export never has"):
        import_archive(memory, foreign, target)
    (tmp_path / "junk.tar.gz").write_bytes(b"not gzip at all")
    with pytest.raises(InvalidInput, match="not a readable .tar.gz"):
        import_archive(memory, tmp_path / "junk.tar.gz", target)
    assert memory.gateway.rows("MATCH (n {space: $space}) RETURN count(n) AS n", space=target) == [{"n": 0}]


def test_an_export_refuses_to_overwrite(world):
    memory = world["memory"]
    with pytest.raises(InvalidInput, match="already exists"):
        export_space(memory, world["source"], world["with_vectors"], gzip=True)
    with pytest.raises(InvalidInput, match="not an empty directory"):
        export_space(memory, world["source"], world["plain"])


def test_times_survive_as_they_were_written(world):
    """Validity and transaction times of the imported copy are the originals', not the import's."""
    memory, target = world["memory"], new_space(world)
    before = datetime.now(UTC)
    import_archive(memory, world["plain"], target)
    query = ("MATCH (o:Observation {space: $space}) WHERE o.text = $text "
             "RETURN o.valid_from AS valid_from, o.recorded_at AS recorded_at")
    (original,) = memory.gateway.rows(query, space=world["source"], text=FACT)
    (copy,) = memory.gateway.rows(query, space=target, text=FACT)
    assert copy == original and copy["recorded_at"] < before

"""Importers for the peers' users, on files and stores made by the real tools.

- `tests/fixtures/mcp-memory/memory.jsonl` was written by `@modelcontextprotocol/server-memory` itself
  (scripts/make_mcp_memory_fixture.py); the import is read back with kgmem's own MCP `read_graph`.
- The mem0 store is built here by mem0 2.2.1's own `Memory` (chroma vector store on disk, huggingface
  embedder on the packaged model, `infer=False`, so no LLM), then imported from its `get_all` output
  and from the store on disk.
Real Neo4j, Chroma and embedder throughout.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from cli_helpers import KGMEM, assert_one_error_line

from graph.errors import InvalidInput, NotFound
from graph.mcp_memory import McpMemory
from graph.vocabulary import normalise_name
from memory.free_text import _import_mem0
from memory.peer_import import (
    import_mcp_memory,
    import_mem0,
    read_mcp_memory,
    read_mem0_export,
    read_mem0_store,
)
from memory.service import MemoryService
from memory.vectors import open_chroma

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "mcp-memory" / "memory.jsonl"
DANGLING_LINE = 14  # the relation to "Analytical Engine Society", an entity the server never had

DELETE_SPACE = "MATCH (n {space: $space}) DETACH DELETE n"
CENSUS = """
MATCH (n {space: $space}) OPTIONAL MATCH (n)-[r]->()
RETURN count(DISTINCT n) AS nodes, count(r) AS relationships
"""
RELATIONS_LABELLED = """
MATCH (a:Entity {space: $space})-[r]->(b:Entity) WHERE r.label = $label
RETURN type(r) AS type, a.name AS a, b.name AS b
"""


@pytest.fixture
def memory(settings, gateway, embedder):
    return MemoryService.open(settings, gateway, embedder=embedder, chroma=open_chroma(settings))


@pytest.fixture
def other_space(gateway):
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    gateway.write(DELETE_SPACE, space=name)


# -- MCP reference memory server -------------------------------------------------------------------

def reference_graph(path: Path) -> tuple[dict[str, dict], set[tuple[str, str, str]]]:
    """The graph the reference server loads from its file (its loadGraph): entities by name, relations."""
    entities, relations = {}, set()
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line.strip():
            continue
        item = json.loads(line)
        if item["type"] == "entity":
            entities[item["name"]] = {"entityType": item["entityType"], "observations": item["observations"]}
        elif item["type"] == "relation":
            relations.add((item["from"], item["to"], item["relationType"]))
    return entities, relations


def kgmem_graph(graph) -> tuple[dict[str, dict], set[tuple[str, str, str]]]:
    """Every page of kgmem's own MCP read_graph, keyed by normalised name as kgmem identifies entities."""
    mcp, entities, relations, cursor = McpMemory(graph), {}, set(), None
    while True:
        page = mcp.read_graph(cursor=cursor, limit=3)
        for e in page.entities:
            entities[normalise_name(e.name)] = {"entityType": e.entity_type, "observations": e.observations}
        relations |= {(normalise_name(r.from_), normalise_name(r.to), r.relation_type) for r in page.relations}
        if not (cursor := page.next_cursor):
            return entities, relations


def keyed(entities: dict[str, dict], relations: set[tuple[str, str, str]]):
    return ({normalise_name(name): value for name, value in entities.items()},
            {(normalise_name(a), normalise_name(b), t) for a, b, t in relations})


def census(gateway, space: str) -> dict[str, int]:
    return gateway.rows(CENSUS, space=space)[0]


def test_every_entity_observation_and_relation_of_the_reference_file_arrives(memory, space):
    entities, relations = reference_graph(FIXTURE)
    report = import_mcp_memory(memory.space(space).graph, FIXTURE)

    expected_entities, expected_relations = keyed(entities, relations)
    dangling = {r for r in expected_relations if r[1] == "analytical engine society"}
    got_entities, got_relations = kgmem_graph(memory.space(space).graph)
    assert got_entities == expected_entities  # names, types and every observation, in order
    assert got_relations == expected_relations - dangling
    assert len(dangling) == 1
    assert (report.entities_created, report.relations_created, report.skipped[0].where) == (
        len(entities), len(relations) - 1, f"line {DANGLING_LINE}")
    assert report.observations_added == sum(len(e["observations"]) for e in entities.values())
    assert len(report.skipped) == 1 and "Analytical Engine Society" in report.skipped[0].reason
    # Relation types are canonical with the server's string kept as the label, as kgmem's MCP tools store them.
    stored = memory.gateway.rows(RELATIONS_LABELLED, space=space, label="works on")
    assert stored == [{"type": "WORKS_ON", "a": "Ada Lovelace", "b": "Churn Pipeline 🚀"}]


def test_imported_data_reads_exactly_like_data_written_through_kgmems_mcp_tools(memory, space, other_space):
    import_mcp_memory(memory.space(space).graph, FIXTURE)
    entities, relations = reference_graph(FIXTURE)
    written = McpMemory(memory.space(other_space).graph)
    written.create_entities([{"name": name, **value} for name, value in entities.items()])
    written.create_relations([{"from": a, "to": b, "relationType": t} for a, b, t in relations
                              if b != "Analytical Engine Society"])

    assert McpMemory(memory.space(space).graph).read_graph(limit=1000) == written.read_graph(limit=1000)


def test_importing_the_file_twice_adds_nothing(memory, space, gateway):
    graph = memory.space(space).graph
    import_mcp_memory(graph, FIXTURE)
    before = census(gateway, space)

    again = import_mcp_memory(graph, FIXTURE)

    assert census(gateway, space) == before
    entities, relations = reference_graph(FIXTURE)
    assert (again.entities_created, again.entities_present, again.observations_added) == (0, len(entities), 0)
    assert (again.relations_created, again.relations_present) == (0, len(relations) - 1)


def test_malformed_lines_are_reported_with_their_numbers_and_the_rest_arrives(memory, space, tmp_path):
    good = FIXTURE.read_text(encoding="utf-8").splitlines()
    bad = {
        2: '{"type":"entity","name":"Half a line',
        4: "[1, 2, 3]",
        6: '{"type":"entity","name":"   ","entityType":"person","observations":[]}',
        8: '{"type":"entity","name":"No type"}',
        10: '{"type":"mystery","name":"x"}',
        12: '{"type":"relation","from":"Bob","to":"Ada Lovelace","relationType":"!!!"}',
    }
    lines = list(good)
    for number in sorted(bad):
        lines.insert(number - 1, bad[number])
    lines.insert(14, "")  # blank lines are not records, and not errors
    messy = tmp_path / "memory.jsonl"
    messy.write_text("\n".join(lines) + "\n", encoding="utf-8")

    report = import_mcp_memory(memory.space(space).graph, messy)

    assert [s.where for s in report.skipped] == [f"line {n}" for n in (*sorted(bad), DANGLING_LINE + len(bad) + 1)]
    reasons = [s.reason for s in report.skipped]
    assert reasons[0].startswith("not JSON") and reasons[1] == "a JSON list, not an object"
    assert "visible character" in reasons[2] and "entityType" in reasons[3]
    assert "'mystery' is neither" in reasons[4] and "relation type '!!!' is not allowed" in reasons[5]
    assert kgmem_graph(memory.space(space).graph)[0] == keyed(*reference_graph(FIXTURE))[0]


def test_a_missing_unreadable_or_wrong_file_is_a_clear_error(tmp_path):
    with pytest.raises(InvalidInput, match=r"nowhere\.jsonl: no such file"):
        read_mcp_memory(tmp_path / "nowhere.jsonl")
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes(b'{"type":"entity","name":"a","entityType":"b","observations":[]}\n{"name":"Z\xfcrich"}\n')
    with pytest.raises(InvalidInput, match=r"latin1\.jsonl: line 2 is not UTF-8"):
        read_mcp_memory(latin1)
    mem0_file = tmp_path / "get_all.json"
    mem0_file.write_text(json.dumps({"results": [{"id": "1", "memory": "x"}]}, indent=2))
    with pytest.raises(InvalidInput, match=r"get_all\.json: no entity or relation could be read .*line 1: "):
        read_mcp_memory(mem0_file)


def test_the_mcp_memory_command_imports_and_summarises(managed_neo4j, space, tmp_path):
    env = {**os.environ, "KGMEM_CHROMA_PATH": str(tmp_path / "chroma")}

    def kgmem(*args):
        return subprocess.run([KGMEM, "import", "mcp-memory", *args], check=False, capture_output=True, text=True, env=env,
                              timeout=300)

    result = kgmem(str(FIXTURE), "--space", space, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert {k: report[k] for k in ("entities_created", "relations_created", "skipped")} == {
        "entities_created": 8, "relations_created": 5,
        "skipped": [f"line {DANGLING_LINE}: no entity named 'Analytical Engine Society' in this space"]}

    again = kgmem(str(FIXTURE), "--space", space)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "entities already there" in again.stdout and f"skipped line {DANGLING_LINE}:" in again.stderr
    assert assert_one_error_line(kgmem(str(tmp_path / "none.jsonl"), "--space", space)) == (
        f"error: {tmp_path / 'none.jsonl'}: no such file")


# -- mem0 ------------------------------------------------------------------------------------------

LONG = " ".join(f"Meeting note {i}: Alice reviewed the fraud model's drift report and asked for weekly retraining."
                for i in range(40))
ADDED = [  # (text, scope, metadata)
    ("Alice prefers Polars over pandas for dataframe work", {"user_id": "alice"}, {"topic": "tools", "priority": 2}),
    ("Alice lives in Zürich and speaks Schweizerdeutsch 🇨🇭", {"user_id": "alice"}, None),
    (LONG, {"user_id": "alice"}, {"source": "meeting"}),
    ("Bob's favourite editor is Helix", {"user_id": "bob"}, None),
    ("Bob is allergic to peanuts", {"user_id": "bob"}, None),
    ("The planner retries failed jobs twice", {"agent_id": "planner", "run_id": "run-7"}, None),
]
UPDATED = "Alice now prefers DuckDB over pandas for dataframe work"
DELETED = "Bob is allergic to peanuts"


@pytest.fixture(scope="module")
def mem0_store(tmp_path_factory, embedder):
    """A mem0 store made by mem0 itself: memories of two users and an agent, one updated, one deleted."""
    root = tmp_path_factory.mktemp("mem0-store")
    Memory = _import_mem0(root / "mem0-dir")
    mem0 = Memory.from_config({
        "vector_store": {"provider": "chroma", "config": {"path": str(root / "chroma"), "collection_name": "mem0"}},
        "embedder": {"provider": "huggingface", "config": {"model": embedder.model_info.location,
                                                          "embedding_dims": embedder.dimension}},
        "llm": {"provider": "anthropic", "config": {"api_key": "unused", "enable_sampling_parameters": False}},
        "history_db_path": str(root / "history.db"),
    })
    ids = {}
    for text, scope, metadata in ADDED:
        [added] = mem0.add(text, **scope, metadata=metadata, infer=False)["results"]
        ids[text] = added["id"]
    mem0.update(ids[ADDED[0][0]], text=UPDATED)
    mem0.delete(ids[DELETED])
    live = [item for scope in ({"user_id": "alice"}, {"user_id": "bob"}, {"agent_id": "planner"})
            for item in mem0.get_all(filters=scope)["results"]]
    mem0.close()
    export = root / "get_all.json"
    export.write_text(json.dumps({"results": live}, ensure_ascii=False, indent=2), encoding="utf-8")
    return {"root": root, "chroma": root / "chroma", "history": root / "history.db", "export": export,
            "live": live, "deleted_id": ids[DELETED]}


def imported(free, space: str) -> dict[str, dict]:
    """What kgmem's free-text memory holds in the space, by original mem0 id."""
    items = [item for scope in ({"user_id": "alice"}, {"user_id": "bob"}, {"agent_id": "planner"})
             for item in free.get_all(space, **scope)["results"]]
    return {item["metadata"]["imported_id"]: item for item in items}


def assert_all_live_memories_arrived(free, space: str, store: dict) -> None:
    held = imported(free, space)
    assert set(held) == {item["id"] for item in store["live"]} and len(held) == len(ADDED) - 1
    for source in store["live"]:
        item = held[source["id"]]
        assert item["memory"] == source["memory"]
        assert (item["created_at"], item["updated_at"]) == (source["created_at"], source["updated_at"])
        assert {k: item.get(k) for k in ("user_id", "agent_id", "run_id")} == {
            k: source.get(k) for k in ("user_id", "agent_id", "run_id")}
        assert item["metadata"] == {**(source.get("metadata") or {}), "imported_id": source["id"], "space": space}
    assert DELETED not in {item["memory"] for item in held.values()}
    updated = next(item for item in held.values() if item["memory"] == UPDATED)
    assert updated["updated_at"] > updated["created_at"]  # the update's time came along, not the import's
    assert free.search(space, "which dataframe library", user_id="alice")["results"][0]["memory"] == UPDATED
    assert free.search(space, "text editor", user_id="bob")["results"][0]["memory"] == "Bob's favourite editor is Helix"
    assert free.search(space, "peanut allergy", user_id="bob")["results"][0]["memory"] != DELETED


def test_mem0_get_all_output_arrives_with_owners_times_and_metadata(memory, space, mem0_store):
    free = memory.free_text()
    report = import_mem0(free, space, read_mem0_export(mem0_store["export"]))

    assert (report.read, report.imported, report.present, report.skipped) == (5, 5, 0, [])
    assert_all_live_memories_arrived(free, space, mem0_store)
    # Each is a Memory entity in the graph too, carrying the original id and times.
    memory_id = next(item["id"] for item in imported(free, space).values() if item["memory"] == UPDATED)
    attributes = memory.space(space).graph.get_entity(memory_id).attributes
    source = next(item for item in mem0_store["live"] if item["memory"] == UPDATED)
    assert {k: attributes[k] for k in ("imported_id", "user_id", "mem0_created_at", "mem0_updated_at")} == {
        "imported_id": source["id"], "user_id": "alice",
        "mem0_created_at": source["created_at"], "mem0_updated_at": source["updated_at"]}


def test_a_mem0_store_on_disk_arrives_without_its_deleted_memory(memory, space, mem0_store):
    source = read_mem0_store(mem0_store["chroma"], history_db=mem0_store["history"])
    assert (len(source.memories), source.deleted) == (5, 1)
    free = memory.free_text()
    report = import_mem0(free, space, source)

    assert (report.imported, report.deleted) == (5, 1)
    assert_all_live_memories_arrived(free, space, mem0_store)


def test_importing_mem0_again_from_either_source_adds_nothing(memory, space, mem0_store, gateway):
    free = memory.free_text()
    import_mem0(free, space, read_mem0_export(mem0_store["export"]))
    before = (census(gateway, space), free.mem0.vector_store.collection.count())

    from_file = import_mem0(free, space, read_mem0_export(mem0_store["export"]))
    from_store = import_mem0(free, space, read_mem0_store(mem0_store["chroma"], history_db=mem0_store["history"]))

    assert (from_file.imported, from_file.present, from_store.imported, from_store.present) == (0, 5, 0, 5)
    assert (census(gateway, space), free.mem0.vector_store.collection.count()) == before


def test_bad_mem0_records_are_skipped_by_position_and_the_rest_arrive(memory, space, mem0_store, tmp_path):
    live = mem0_store["live"]
    messy = tmp_path / "list.json"  # a bare list is get_all's older shape
    messy.write_text(json.dumps([live[0], "text", {"id": "x1", "memory": "nobody's"},
                                 {"id": "x2", "memory": "  ", "user_id": "carol"},
                                 {"id": "x3", "memory": "odd metadata", "user_id": "carol",
                                  "metadata": {"space": "elsewhere", "tags": ["a", "b"]}}, *live[1:]]))
    source = read_mem0_export(messy)
    report = import_mem0(memory.free_text(), space, source)

    assert [str(s) for s in report.skipped] == [
        "results[1]: a JSON str, not a memory object",
        "results[2]: memory x1: none of user_id, agent_id, run_id is set",
        "results[3]: memory x2: no text"]
    assert report.imported == 6 and report.dropped_metadata == ["space"]
    [odd] = memory.free_text().get_all(space, user_id="carol")["results"]
    assert odd["metadata"] == {"tags": '["a", "b"]', "imported_id": "x3", "space": space}


def test_a_wrong_mem0_source_is_a_clear_error(mem0_store, tmp_path):
    with pytest.raises(InvalidInput, match=r"nowhere\.json: no such file"):
        read_mem0_export(tmp_path / "nowhere.json")
    with pytest.raises(InvalidInput, match=r"memory\.jsonl: line 2 is not JSON"):
        read_mem0_export(FIXTURE.with_name("memory.jsonl"))
    (tmp_path / "object.json").write_text('{"memories": []}')
    with pytest.raises(InvalidInput, match=r"object\.json: expected mem0 get_all output"):
        read_mem0_export(tmp_path / "object.json")
    with pytest.raises(InvalidInput, match="not a Chroma directory"):
        read_mem0_store(tmp_path)
    with pytest.raises(NotFound, match=r"no collection 'memories' \(found: mem0\)"):
        read_mem0_store(mem0_store["chroma"], collection="memories")
    with pytest.raises(InvalidInput, match="not a mem0 history database"):
        read_mem0_store(mem0_store["chroma"], history_db=mem0_store["export"])


def test_the_mem0_command_imports_a_store_on_disk(managed_neo4j, settings, gateway, embedder, space, mem0_store):
    env = {**os.environ, "KGMEM_CHROMA_PATH": str(settings.chroma_path)}
    result = subprocess.run([KGMEM, "import", "mem0", str(mem0_store["chroma"]), "--history",
                             str(mem0_store["history"]), "--space", space, "--json"],
                            check=False, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert {k: report[k] for k in ("read", "imported", "present", "deleted", "skipped")} == {
        "read": 5, "imported": 5, "present": 0, "deleted": 1, "skipped": []}

    free = MemoryService.open(settings, gateway, embedder=embedder, chroma=open_chroma(settings)).free_text()
    assert set(imported(free, space)) == {item["id"] for item in mem0_store["live"]}
    wrong = subprocess.run([KGMEM, "import", "mem0", str(mem0_store["export"]), "--history", "h.db"],
                           check=False, capture_output=True, text=True, env=env, timeout=120)
    assert "--history goes with a mem0 store's Chroma directory" in assert_one_error_line(wrong)


def test_mem0_memories_are_embedded_a_batch_at_a_time(memory, space, embedder, tmp_path):
    many = tmp_path / "many.json"
    many.write_text(json.dumps({"results": [
        {"id": f"m{i}", "memory": f"Dana's note {i}: the {i}th experiment used learning rate 0.{i:03d}",
         "user_id": "dana", "created_at": "2025-01-02T03:04:05+00:00"} for i in range(60)]}))
    calls = []
    stop = embedder.observe(lambda operation, seconds: calls.append(operation))
    try:
        report = import_mem0(memory.free_text(), space, read_mem0_export(many))
    finally:
        stop()

    assert report.imported == 60
    # mem0's vectors in one call, and the graph's Memory entities in the vector sync of their one write.
    assert len(calls) <= 3, calls


def test_names_the_server_kept_apart_but_kgmem_holds_as_one_are_merged_and_reported(memory, space, tmp_path):
    jsonl = tmp_path / "memory.jsonl"
    jsonl.write_text("\n".join(json.dumps(record) for record in [
        {"type": "entity", "name": "Ada Lovelace", "entityType": "person", "observations": ["Wrote an algorithm"]},
        {"type": "entity", "name": "ada  LOVELACE", "entityType": "person", "observations": ["Met Babbage"]},
    ]))

    report = import_mcp_memory(memory.space(space).graph, jsonl)

    assert (report.entities_created, report.observations_added, report.skipped) == (1, 2, [])
    assert report.merged == [("line 2: 'ada  LOVELACE' is the entity of line 1 to kgmem (names ignore case and "
                             "spacing); its observations were added there")]
    assert kgmem_graph(memory.space(space).graph)[0] == {
        "ada lovelace": {"entityType": "person", "observations": ["Wrote an algorithm", "Met Babbage"]}}

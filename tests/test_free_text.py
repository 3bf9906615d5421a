"""Free-text memory through mem0 2.2.1: real Neo4j, real Chroma, the real embedder.

The only fake is the Anthropic HTTP edge (tests/fakes.py): a real `anthropic.Anthropic`
whose transport answers with scripted Messages API responses, so mem0's own extraction
path (prompt building, the SDK call, JSON parsing, hash dedup, storage) runs for real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from fakes import FakeAnthropicTransport

from graph.errors import ConfigurationError, InvalidInput, LLMUnavailable, NotFound
from graph.model import EntityIn
from graph.store import GraphStore
from graph.vocabulary import Kind
from memory import open_chroma
from memory.free_text import (
    AddMemoryRequest,
    FreeTextMemory,
    SearchMemoryRequest,
    UpdateMemoryRequest,
)
from memory.service import MemoryService
from memory.sync import entity_text

REPO = Path(__file__).resolve().parent.parent

CHURN = "The churn model is retrained every Monday on the March snapshot"
POLARS = "Alice prefers Polars over pandas for dataframe work"


@pytest.fixture
def chroma(settings):
    return open_chroma(settings)


@pytest.fixture
def changes() -> list[str]:
    """The spaces of the graph writes that committed, as the store's after-write hook (where the
    memory layer runs vector sync) is told of them."""
    return []


@pytest.fixture
def free(settings, chroma, embedder, gateway, changes) -> FreeTextMemory:
    return FreeTextMemory(settings, chroma, embedder, GraphStore(gateway, after_write=[changes.append]))


@pytest.fixture
def other_space(gateway):
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    gateway.write("MATCH (n {space: $space}) DETACH DELETE n", space=name)


def followed(changes: list[str], seen: int, space: str) -> bool:
    """Whether the writes since the first `seen` changes were followed, and all of them in `space` only."""
    return len(changes) > seen and set(changes[seen:]) == {space}


def extraction(*texts: str) -> str:
    """What Claude answers to mem0 2.2.1's additive extraction prompt."""
    return json.dumps({"memory": [{"id": str(i), "text": text, "attributed_to": "user"}
                                  for i, text in enumerate(texts)]})


def mentions_of(graph, memory_id: str) -> set[str]:
    return {r.target_name for r in graph.history(memory_id).relations
            if r.type == "MENTIONS" and r.valid_to is None and r.retracted_at is None}


# -- set-up -------------------------------------------------------------------------------------
@pytest.mark.parametrize("mem0_first", [False, True], ids=["kgmem imports mem0", "mem0 imported before kgmem"])
def test_telemetry_is_off_however_mem0_gets_imported(tmp_path, mem0_first):
    """A fresh interpreter: importing kgmem's module changes no environment variable and imports no mem0; once
    kgmem imports mem0 its telemetry is off, also when something else imported mem0 first."""
    env = {k: v for k, v in os.environ.items() if k not in ("MEM0_TELEMETRY", "MEM0_DIR")}
    script = (
        "import os, sys\n"
        + ("import mem0\n" if mem0_first else "")
        + "before = dict(os.environ)\n"
        "import memory.free_text\n"
        "assert dict(os.environ) == before, 'importing memory.free_text changed the environment'\n"
        f"assert ('mem0' in sys.modules) is {mem0_first}, 'memory.free_text imported mem0 at import time'\n"
        f"memory.free_text._import_mem0(__import__('pathlib').Path({str(tmp_path / 'mem0-dir')!r}))\n"
        "from mem0.memory import main, telemetry\n"
        "print(telemetry.MEM0_TELEMETRY, main.MEM0_TELEMETRY)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]


def test_mem0_runs_on_our_chroma_embedder_and_directories(free, settings, chroma, embedder):
    from mem0.memory import main as mem0_main, telemetry

    assert os.environ["MEM0_TELEMETRY"] == "False"
    assert telemetry.MEM0_TELEMETRY is False and mem0_main.MEM0_TELEMETRY is False
    history = settings.home / "mem0" / "history.db"
    assert history.is_file() and free.mem0.config.history_db_path == str(history)
    assert free.mem0.vector_store.client is chroma
    assert free.collection_name in {c.name for c in chroma.list_collections()}
    assert free.mem0.embedding_model.embedder is embedder
    assert free.mem0.embedding_model.embed("hello", "add") == embedder.embed_one("hello")
    assert free.mem0.llm.config.model == "claude-sonnet-4-5"


# -- infer=False --------------------------------------------------------------------------------
def test_add_search_update_delete_with_real_embeddings(free, changes, graph, space, gateway):
    graph.upsert_entities([EntityIn(kind=Kind.PROJECT, name="churn"), EntityIn(kind=Kind.TECHNOLOGY, name="Polars")])

    added = free.add(space, CHURN, user_id="alice", metadata={"topic": "ml"}, infer=False)
    assert [(r["memory"], r["event"], r["role"]) for r in added["results"]] == [(CHURN, "ADD", "user")]
    churn_id = added["results"][0]["id"]
    assert followed(changes, 0, space)
    seen = len(changes)
    polars_id = free.add(space, [{"role": "user", "content": POLARS}], user_id="alice", infer=False)["results"][0]["id"]
    assert followed(changes, seen, space)
    seen = len(changes)

    found = free.search(space, "How often is the churn model retrained?", user_id="alice")["results"]
    assert [r["id"] for r in found][:2] == [churn_id, polars_id]
    assert found[0]["memory"] == CHURN and found[0]["user_id"] == "alice" and found[0]["score"] > found[1]["score"]
    assert found[0]["metadata"] == {"topic": "ml", "space": space}
    assert free.search(space, "dataframe library", user_id="alice")["results"][0]["id"] == polars_id
    only_ml = free.search(space, "dataframe library", user_id="alice", filters={"topic": "ml"})["results"]
    assert [r["id"] for r in only_ml] == [churn_id]
    either = free.search(space, "dataframe library", user_id="alice", filters={"OR": [{"topic": "ml"}, {"topic": "x"}]})
    assert [r["id"] for r in either["results"]] == [churn_id]
    assert free.search(space, "churn", user_id="bob")["results"] == []

    listed = free.get_all(space, user_id="alice")["results"]
    assert sorted(r["id"] for r in listed) == sorted([churn_id, polars_id])
    assert {r["user_id"] for r in listed} == {"alice"}
    assert free.get(space, churn_id)["memory"] == CHURN

    # The graph: a Memory entity per memory, MENTIONS to the entities it names, and into hybrid recall.
    memory = graph.get_entity(churn_id)
    assert (memory.kind, memory.name, memory.summary) == (Kind.MEMORY, churn_id, CHURN)
    assert memory.attributes["mem0_id"] == churn_id and memory.attributes["user_id"] == "alice"
    assert mentions_of(graph, churn_id) == {"churn"}
    assert mentions_of(graph, polars_id) == {"Polars"}
    # Pending for vector sync (which the memory layer runs from the after-write hook), as recall text its summary.
    rows = gateway.rows("MATCH (e:Memory {id: $id}) RETURN e.vector_status AS status, e.space AS space", id=churn_id)
    assert rows[0] == {"status": "pending", "space": space}
    assert entity_text({"kind": "Memory", "name": churn_id, "summary": CHURN}) == ("", CHURN)  # (head, body)

    moved = "The churn model is retrained every Friday with Polars"
    assert changes[seen:] == []  # reads write nothing
    assert free.update(space, churn_id, moved) == {"message": "Memory updated successfully!"}
    assert followed(changes, seen, space)
    seen = len(changes)
    assert free.search(space, "When is the churn model retrained?", user_id="alice")["results"][0]["memory"] == moved
    events = free.history(space, churn_id)
    assert [(e["event"], e["old_memory"], e["new_memory"]) for e in events] == [("ADD", None, CHURN), ("UPDATE", CHURN, moved)]
    assert graph.get_entity(churn_id).summary == moved
    assert mentions_of(graph, churn_id) == {"churn", "Polars"}

    assert free.delete(space, churn_id) == {"message": "Memory deleted successfully!"}
    assert followed(changes, seen, space)
    seen = len(changes)
    assert churn_id not in [r["id"] for r in free.search(space, "churn model retraining", user_id="alice")["results"]]
    assert [r["id"] for r in free.get_all(space, user_id="alice")["results"]] == [polars_id]
    assert [e["event"] for e in free.history(space, churn_id)] == ["ADD", "UPDATE", "DELETE"]
    with pytest.raises(NotFound):
        graph.get_entity(churn_id)
    assert graph.history(churn_id).entity.retracted_at is not None
    assert mentions_of(graph, churn_id) == set()
    assert changes[seen:] == []
    with pytest.raises(NotFound):
        free.update(space, churn_id, "too late")
    assert changes[seen:] == []  # a refused operation writes nothing


# -- infer=True: mem0's extraction, Claude at the HTTP edge ------------------------------------------
def test_infer_runs_mem0_extraction_through_the_anthropic_sdk(settings, chroma, embedder, graph_store, graph, space):
    fake = FakeAnthropicTransport()
    leads = "Alice leads the churn project"
    lightgbm = "Alice uses LightGBM for tabular models"
    fake.text(extraction(leads, lightgbm))
    fake.text("```json\n" + extraction(leads, "Alice's churn dashboard refreshes hourly") + "\n```")
    free = FreeTextMemory(settings, chroma, embedder, graph_store.space, anthropic_client=fake.client())
    graph.upsert_entities([EntityIn(kind=Kind.PROJECT, name="churn")])
    said = "Hi, I'm Alice. I lead churn, and for tabular data I always reach for LightGBM."

    added = free.add(space, [{"role": "user", "content": said}], user_id="alice", metadata={"team": "ds"})
    assert [(r["memory"], r["event"]) for r in added["results"]] == [(leads, "ADD"), (lightgbm, "ADD")]

    # mem0's own prompts reached the Messages API through the real SDK.
    first = fake.requests[0]
    assert (first.method, first.path, first.body["model"]) == ("POST", "/v1/messages", "claude-sonnet-4-5")
    assert "Memory Extractor" in first.body["system"]
    prompt = first.messages[0]["content"]
    assert "## New Messages" in prompt and said in prompt
    assert "## Existing Memories\n[]" in prompt

    listed = free.get_all(space, user_id="alice")["results"]
    assert {r["memory"] for r in listed} == {leads, lightgbm}
    assert all(r["metadata"] == {"team": "ds", "space": space} for r in listed)
    assert free.search(space, "gradient boosting library", user_id="alice")["results"][0]["memory"] == lightgbm
    leads_id = next(r["id"] for r in added["results"] if r["memory"] == leads)
    assert mentions_of(graph, leads_id) == {"churn"}

    # A second turn: mem0 shows Claude the scope's existing memories and last messages, and drops a fact it has.
    again = free.add(space, "My churn dashboard refreshes every hour.", user_id="alice")
    second = fake.requests[1].messages[0]["content"]
    assert leads in second and said in second
    assert [(r["memory"], r["event"]) for r in again["results"]] == [("Alice's churn dashboard refreshes hourly", "ADD")]
    assert len(free.get_all(space, user_id="alice")["results"]) == 3
    assert fake.remaining == 0


def test_llm_failures_are_kgmem_errors(settings, chroma, embedder, gateway, graph_store, space, monkeypatch):
    fake = FakeAnthropicTransport()
    fake.error(500, "api_error", "Internal server error")
    fake.error(401, "authentication_error", "invalid x-api-key")
    free = FreeTextMemory(settings, chroma, embedder, graph_store.space, anthropic_client=fake.client())
    with pytest.raises(LLMUnavailable, match="infer=false"):
        free.add(space, "I like tea", user_id="alice")
    with pytest.raises(ConfigurationError, match="API key"):
        free.add(space, "I like tea", user_id="alice")

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    no_key = settings.model_copy(update={"anthropic_api_key": None})
    # The memory layer's graph, whose after-write hook runs vector sync: sync failing must not fail
    # a write that has committed (the items stay pending for the reconciler).
    memory = MemoryService.open(no_key, gateway, embedder=embedder, chroma=chroma)

    def sync_down(*args, **kwargs) -> None:
        raise RuntimeError("vector sync is down")

    monkeypatch.setattr(memory.sync, "process_pending", sync_down)
    offline = FreeTextMemory(no_key, chroma, embedder, memory.graph)
    with pytest.raises(ConfigurationError, match="ANTHROPIC_API_KEY"):
        offline.add(space, "I like tea", user_id="alice")
    assert offline.add(space, "I like tea", user_id="alice", infer=False)["results"][0]["event"] == "ADD"


# -- tenancy ------------------------------------------------------------------------------------
def test_spaces_do_not_see_each_others_memories(settings, chroma, embedder, graph_store, space, other_space):
    fake = FakeAnthropicTransport()
    secret = "Alice's salary review is scheduled for June"
    fake.text(extraction(secret))
    fake.text(extraction("Alice enjoys hiking"))
    free = FreeTextMemory(settings, chroma, embedder, graph_store.space, anthropic_client=fake.client())

    mine = free.add(space, "My salary review is in June.", user_id="alice")["results"][0]["id"]
    plain = free.add(space, "Alice owns the churn dashboard", user_id="alice", infer=False)["results"][0]["id"]

    assert free.search(other_space, "salary review", user_id="alice")["results"] == []
    assert free.get_all(other_space, user_id="alice")["results"] == []
    for operation in (lambda: free.update(other_space, mine, "hijacked"), lambda: free.delete(other_space, mine),
                      lambda: free.history(other_space, mine), lambda: free.get(other_space, plain)):
        with pytest.raises(NotFound):
            operation()

    # The same user id in the other space: mem0's prompt shows none of the first space's memories or messages.
    free.add(other_space, "I enjoy hiking.", user_id="alice")
    prompt = fake.requests[1].messages[0]["content"]
    assert "salary" not in prompt.lower() and "churn" not in prompt
    assert [r["memory"] for r in free.get_all(other_space, user_id="alice")["results"]] == ["Alice enjoys hiking"]

    assert {r["id"] for r in free.get_all(space, user_id="alice")["results"]} == {mine, plain}
    assert [e["event"] for e in free.history(space, mine)] == ["ADD"]
    free.delete(space, plain)
    with pytest.raises(NotFound):
        free.history(other_space, plain)  # deleted: ownership comes from the graph
    assert [e["event"] for e in free.history(space, plain)] == ["ADD", "DELETE"]


# -- input mistakes -----------------------------------------------------------------------------
def test_client_mistakes_are_invalid_input_with_a_reason(free, space):
    with pytest.raises(InvalidInput, match="at least one of user_id, agent_id or run_id"):
        free.add(space, "hello", infer=False)
    with pytest.raises(InvalidInput, match="reserved"):
        free.add(space, "hello", user_id="alice", metadata={"space": "elsewhere"}, infer=False)
    with pytest.raises(InvalidInput, match="metadata"):
        free.add(space, "hello", user_id="alice", metadata={"nested": {"a": 1}}, infer=False)
    with pytest.raises(InvalidInput, match="messages"):
        free.add(space, [{"role": "robot", "content": "beep"}], user_id="alice", infer=False)
    with pytest.raises(InvalidInput, match="user_id"):
        free.add(space, "hello", user_id="has space", infer=False)
    with pytest.raises(InvalidInput, match="space"):
        free.add("no spaces allowed", "hello", user_id="alice", infer=False)
    with pytest.raises(InvalidInput, match="filters may not name 'user_id'"):
        free.search(space, "hello", user_id="alice", filters={"user_id": "bob"})
    with pytest.raises(InvalidInput, match="filters may not name 'space'"):
        free.search(space, "hello", user_id="alice", filters={"OR": [{"space": "x"}, {"topic": "y"}]})
    with pytest.raises(InvalidInput, match="operator 'regex'"):
        free.search(space, "hello", user_id="alice", filters={"topic": {"regex": "x"}})
    with pytest.raises(InvalidInput, match="operator 'contains'"):  # Chroma would quietly test equality
        free.search(space, "hello", user_id="alice", filters={"topic": {"contains": "x"}})
    with pytest.raises(InvalidInput, match="query"):
        free.search(space, "   ", user_id="alice")
    with pytest.raises(InvalidInput, match="limit"):
        free.get_all(space, user_id="alice", limit=0)
    memory_id = free.add(space, "hello", user_id="alice", infer=False)["results"][0]["id"]
    with pytest.raises(InvalidInput, match="text"):
        free.update(space, memory_id, "  ")
    with pytest.raises(NotFound):
        free.delete(space, str(uuid.uuid4()))
    with pytest.raises(NotFound):
        free.history(space, str(uuid.uuid4()))


def test_request_models_use_mem0_field_names():
    request = AddMemoryRequest.model_validate({"messages": [{"role": "user", "content": "hi"}], "agent_id": "ml-engineer"})
    assert request.infer is True and request.mem0_messages() == [{"role": "user", "content": "hi"}]
    assert SearchMemoryRequest(query="x", run_id="r1").limit == 10
    assert UpdateMemoryRequest.model_validate({"data": "new text"}).text == "new text"
    assert UpdateMemoryRequest.model_validate({"text": "new text"}).text == "new text"
    with pytest.raises(ValueError, match="at least one of user_id, agent_id or run_id"):
        SearchMemoryRequest(query="x")



# -- many at once ---------------------------------------------------------------------------------------
def test_a_batch_stores_each_memory_as_add_would_with_one_call(free, changes, graph, space, gateway):
    graph.upsert_entities([EntityIn(kind=Kind.PROJECT, name="churn"), EntityIn(kind=Kind.TECHNOLOGY, name="Polars")])
    single = free.add(space, CHURN, user_id="alice", metadata={"topic": "ml"}, infer=False)["results"][0]
    seen = len(changes)
    texts = [POLARS, "The nightly churn retrain runs at 02:00 UTC", "Nothing named here at all"]
    added = free.add_batch(space, [
        {"text": texts[0], "user_id": "alice", "metadata": {"topic": "tooling"}},
        {"text": texts[1], "agent_id": "ml-1"},
        {"text": texts[2], "user_id": "alice", "run_id": "r-7"},
    ])["results"]
    assert [(r["memory"], r["event"], r["role"]) for r in added] == [(text, "ADD", "user") for text in texts]
    assert followed(changes, seen, space)

    # Each is a memory like one `add` writes: the same payload keys, an ADD in the history, found by search.
    payloads = free.mem0.vector_store.collection.get(ids=[single["id"], added[0]["id"]], include=["metadatas"])
    keys = {memory_id: set(meta) - {"topic"} for memory_id, meta in zip(payloads["ids"], payloads["metadatas"])}
    assert keys[added[0]["id"]] == keys[single["id"]]
    assert [(e["event"], e["new_memory"]) for e in free.history(space, added[1]["id"])] == [("ADD", texts[1])]
    assert free.search(space, "dataframe library", user_id="alice")["results"][0]["id"] == added[0]["id"]
    assert free.get(space, added[0]["id"])["metadata"] == {"topic": "tooling", "space": space}
    assert [r["id"] for r in free.get_all(space, agent_id="ml-1")["results"]] == [added[1]["id"]]

    # And in the graph: a Memory entity each, with MENTIONS to what its text names.
    assert [mentions_of(graph, r["id"]) for r in added] == [{"Polars"}, {"churn"}, set()]
    assert graph.get_entity(added[2]["id"]).attributes["run_id"] == "r-7"


def test_a_bad_memory_in_a_batch_refuses_the_batch_by_its_place(free, space, graph):
    good = {"text": "fine", "user_id": "alice"}
    with pytest.raises(InvalidInput, match=r"memories\.1.*at least one of user_id, agent_id or run_id"):
        free.add_batch(space, [good, {"text": "nobody's"}])
    with pytest.raises(InvalidInput, match=r"memories\.0\.text.*visible"):
        free.add_batch(space, [{"text": "   ", "user_id": "alice"}, good])
    with pytest.raises(InvalidInput, match=r"memories\.0\.metadata.*reserved"):
        free.add_batch(space, [{"text": "x", "user_id": "alice", "metadata": {"space": "elsewhere"}}])
    with pytest.raises(InvalidInput, match="memories"):
        free.add_batch(space, [])
    with pytest.raises(InvalidInput, match="memories"):
        free.add_batch(space, [good] * 1001)
    assert free.get_all(space, user_id="alice")["results"] == []  # a refused batch writes nothing

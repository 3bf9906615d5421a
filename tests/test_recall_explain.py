"""`explain: true` on recall: why each hit was retrieved, through the API and the recall tool, on the real
Neo4j, Chroma and embedder. Without it the answer is what it always was."""

from __future__ import annotations

import json

import httpx
import pytest

from agents.tools import ToolContext, ToolExecutor
from agents.toolsets import default_registry
from graph.model import EntityIn, EntityRef, ObservationIn, Provenance, RelationIn
from graph.vocabulary import Kind
from memory.service import MemoryService
from memory.vectors import open_chroma

RETRAIN = "Retraining on the March snapshot doubled recall for the churn model"
QUESTION = "what doubled recall for churn?"


def seed(memory_or_client) -> None:
    memory_or_client.upsert_entities([
        EntityIn(kind=Kind.PROJECT, name="Churn model", summary="who leaves"),
        EntityIn(kind=Kind.AGENT, name="ds-1", attributes={"role": "data-scientist"}),
        EntityIn(kind=Kind.DATASET, name="march-snapshot", summary="customers as of March")])
    memory_or_client.add_observations([ObservationIn(entity=EntityRef(kind=Kind.PROJECT, name="Churn model"),
                                                     text=RETRAIN)])
    memory_or_client.upsert_relations([
        RelationIn(source=EntityRef(name="ds-1"), type="LEADS_ANALYSIS_FOR", target=EntityRef(name="Churn model")),
        RelationIn(source=EntityRef(name="Churn model"), type="TRAINED_ON", target=EntityRef(name="march-snapshot"))])


@pytest.fixture
def api(live_api, space):
    with live_api.client(space) as client:
        seed(client)
        yield {"url": f"{live_api.base_url}/v1/spaces/{space}/recall",
               "headers": {"Authorization": f"Bearer {live_api.token([space], ['read'])}"}}


def post(api, body: dict) -> dict:
    response = httpx.post(api["url"], json=body, headers=api["headers"], timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def test_without_explain_the_answer_carries_no_explanation(api):
    items = post(api, {"text": QUESTION, "limit": 5})["items"]
    assert items[0]["text"] == RETRAIN
    assert all("explanation" not in item for item in items)


def test_with_explain_each_hit_says_each_channels_score_and_rank_the_passage_and_keywords(api):
    items = post(api, {"text": QUESTION, "limit": 5, "explain": True})["items"]
    top = items[0]
    assert top["text"] == RETRAIN
    explanation = top["explanation"]
    channels = {c["channel"]: c for c in explanation["channels"]}
    assert {"keyword", "vector"} <= set(channels)
    assert channels["keyword"]["rank"] == 1 and channels["keyword"]["score"] > 0
    assert -1 <= channels["vector"]["score"] <= 1
    # The channels' contributions and the boosts make up the fused score.
    added = sum(b["value"] for b in explanation["boosts"] if b["effect"] == "add")
    factor = 1.0
    for boost in explanation["boosts"]:
        if boost["effect"] == "multiply":
            factor *= boost["value"]
    assert sum(c["contribution"] for c in channels.values()) * factor + added == pytest.approx(top["score"], abs=1e-4)
    assert explanation["passage"] == RETRAIN
    assert [RETRAIN[start:end].lower() for start, end in explanation["terms"]] == ["doubled", "recall", "churn"]
    assert all(item["explanation"]["channels"] for item in items)


def test_a_graph_hit_carries_the_relation_path_from_its_seed(api):
    items = post(api, {"text": "churn model", "limit": 10, "explain": True})["items"]
    graph_hits = [i for i in items if i["explanation"]["path"] and i["entity"]["name"] == "march-snapshot"]
    assert graph_hits, [i["entity"]["name"] for i in items]
    path = graph_hits[0]["explanation"]["path"]
    assert path["seed"]["name"] == "Churn model" and path["relations"] == ["TRAINED_ON"]
    assert "graph" in {c["channel"] for c in graph_hits[0]["explanation"]["channels"]}


def test_explain_must_be_a_boolean(api):
    response = httpx.post(api["url"], json={"text": QUESTION, "explain": "very"}, headers=api["headers"], timeout=60)
    assert response.status_code == 422 and "explain" in response.text


# -- the recall tool -----------------------------------------------------------------------------------
@pytest.fixture
def executor(settings, gateway, embedder, space) -> ToolExecutor:
    service = MemoryService.open(settings, gateway, embedder=embedder, chroma=open_chroma(settings))
    memory = service.space(space)
    seed(memory.graph)
    service.sync.reconcile(space=space)
    return ToolExecutor(default_registry(), ToolContext(memory, Provenance(source="claude", agent="lead")))


def test_the_recall_tool_explains_when_asked_and_only_then(executor):
    plain = json.loads(executor.run("recall", {"text": QUESTION, "limit": 3}).content)
    assert plain["items"][0]["text"] == RETRAIN and "explanation" not in plain["items"][0]
    outcome = executor.run("recall", {"text": QUESTION, "limit": 3, "explain": True})
    assert not outcome.is_error, outcome.content
    explained = json.loads(outcome.content)["items"][0]
    assert explained["text"] == RETRAIN
    assert {"keyword", "vector"} <= {c["channel"] for c in explained["explanation"]["channels"]}
    assert explained["explanation"]["passage"] == RETRAIN

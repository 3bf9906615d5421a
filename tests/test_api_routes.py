"""The /v1 routes end to end through the typed client, against the live API (real Neo4j and Chroma)."""

from __future__ import annotations

import json
import time

import pytest
from cypher_helpers import doubled_string, slow_to_plan

from api.client import KgmemApiError
from graph.model import EntityIn, EntityRef, ObservationIn, RelationIn
from graph.vocabulary import Kind


@pytest.fixture
def kg(live_api, space):
    with live_api.client(space) as client:
        yield client


def seed(kg):
    kg.upsert_entities([EntityIn(kind=Kind.PROJECT, name="Churn model", summary="who leaves"),
                        EntityIn(kind=Kind.AGENT, name="ds-1", attributes={"role": "data-scientist"})])
    kg.add_observations([ObservationIn(entity=EntityRef(kind=Kind.PROJECT, name="Churn model"),
                                       text="Retraining on the March snapshot doubled recall")])
    kg.upsert_relations([RelationIn(source=EntityRef(name="ds-1"), type="LEADS_ANALYSIS_FOR",
                                    target=EntityRef(name="Churn model"))])
    return kg.search("churn model").items[0].entity


def test_entities_observations_relations_round_trip(kg):
    project = seed(kg)
    assert kg.get_entity(project.id).name == "Churn model"
    history = kg.history(project.id)
    assert [o.text for o in history.observations] == ["Retraining on the March snapshot doubled recall"]
    around = kg.neighbourhood(project.id, depth=2)
    assert [n.entity.name for n in around.neighbours] == ["ds-1"]
    assert [r.type for r in around.relations] == ["LEADS_ANALYSIS_FOR"]

    names = [e.name for e in kg.iter_entities(limit=1)]
    assert names == ["Churn model", "ds-1"]

    assert kg.retract_relations([RelationIn(source=EntityRef(name="ds-1"), type="LEADS_ANALYSIS_FOR",
                                            target=EntityRef(name="Churn model"))]) == 1
    assert kg.retract_observations([history.observations[0].id]) == 1
    assert kg.retract_entity(project.id).entity_id == project.id
    with pytest.raises(KgmemApiError) as gone:
        kg.get_entity(project.id)
    assert gone.value.status == 404 and gone.value.type == "urn:kgmem:problem:not-found"


def test_recall_finds_what_was_written(kg):
    seed(kg)
    result = kg.recall("what doubled recall for churn?", limit=3)
    assert result.items[0].text == "Retraining on the March snapshot doubled recall"


def test_delete_and_purge_need_admin(live_api, space, kg):
    project = seed(kg)
    with live_api.client(space, ["read", "write"]) as writer:
        with pytest.raises(KgmemApiError) as refused:
            writer.delete_entity(project.id)
        assert refused.value.status == 403 and "admin" in refused.value.detail
    report = kg.purge_entity(project.id)
    assert report.entities == 1 and report.observations == 1


def test_free_text_memories_in_mem0_shapes(kg):
    added = kg.add_memory("I prefer Polars over pandas", user_id="alice", infer=False, metadata={"topic": "tools"})
    memory_id = added.results[0].id
    assert added.results[0].event == "ADD"
    assert kg.search_memories("dataframe library", user_id="alice").results[0].id == memory_id
    assert [m.id for m in kg.get_memories(user_id="alice").results] == [memory_id]
    assert kg.get_memory(memory_id).memory == "I prefer Polars over pandas"
    kg.update_memory(memory_id, "I prefer Polars, and DuckDB for SQL")
    assert kg.get_memory(memory_id).memory == "I prefer Polars, and DuckDB for SQL"
    kg.delete_memory(memory_id)
    assert [h.event for h in kg.memory_history(memory_id)] == ["ADD", "UPDATE", "DELETE"]
    with pytest.raises(KgmemApiError) as gone:
        kg.get_memory(memory_id)
    assert gone.value.status == 404
    assert kg.add_memory("We ship on Fridays", user_id="alice").results == []  # infer: the fake Claude finds nothing

    batch = kg.add_memories([{"text": "We ship on Fridays", "user_id": "alice"},
                             {"text": "The feature store is Feast", "agent_id": "de-1", "metadata": {"topic": "infra"}}],
                            idempotency_key="batch-1")
    assert [(m.memory, m.event) for m in batch.results] == [("We ship on Fridays", "ADD"),
                                                            ("The feature store is Feast", "ADD")]
    again = kg.add_memories([{"text": "We ship on Fridays", "user_id": "alice"},
                             {"text": "The feature store is Feast", "agent_id": "de-1", "metadata": {"topic": "infra"}}],
                            idempotency_key="batch-1")
    assert [m.id for m in again.results] == [m.id for m in batch.results]  # a retry stores nothing twice
    assert [m.id for m in kg.get_memories(agent_id="de-1").results] == [batch.results[1].id]
    with pytest.raises(KgmemApiError) as refused:
        kg.add_memories([{"text": "no owner"}])
    assert refused.value.status == 422
    assert [e["path"] for e in refused.value.errors] == ["body.memories[0]"]
    assert "user_id, agent_id or run_id" in refused.value.errors[0]["message"]


def test_reports_and_stats(kg):
    seed(kg)
    names = {r.name for r in kg.reports().reports}
    assert "lessons-per-project" in names
    rows = kg.run_report("lessons-per-project").rows
    assert rows == [{"project": "Churn model", "status": None, "lessons": 0, "applies_to": 0, "learned_from_work": 0}]
    stats = kg.stats()
    assert stats.entities == {"Agent": 1, "Project": 1}
    assert stats.observations == 1 and stats.relations == {"LEADS_ANALYSIS_FOR": 1}


def test_reindex_job_runs_in_the_background(kg):
    seed(kg)
    job = kg.reindex()
    assert job.state in ("queued", "running", "succeeded")
    deadline = time.monotonic() + 60
    while (job := kg.job(job.id)).state in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job.state == "succeeded", job
    assert kg.stats().pending == 0


def test_keys_of_a_space(live_api, space, kg):
    created = kg.create_key("reader", ["read"])
    assert created.key.spaces == [space] and created.token.startswith("kgm_")
    live_api.key_ids.append(created.key.key_id)
    assert created.key.key_id in {k.key_id for k in kg.list_keys().items}
    with live_api.client(space, token=created.token) as reader:
        assert reader.list_entities().items == []
        with pytest.raises(KgmemApiError) as refused:
            reader.upsert_entities([EntityIn(name="x")])
        assert refused.value.status == 403
        assert kg.revoke_key(created.key.key_id).revoked_at is not None
        with pytest.raises(KgmemApiError) as revoked:
            reader.list_entities()
        assert revoked.value.status == 401


def test_experiments_models_and_features(kg):
    kg.record_model({"name": "churn-model", "project": "Churn", "benchmarks": {"auc": 0.8}})
    experiment = kg.record_experiment({"project": "Churn", "name": "xgb-depth6", "task": "predict churn",
                                       "parameters": {"max_depth": 6}, "metrics": {"auc": 0.86}})
    assert experiment.parameters == {"max_depth": 6}
    for version, auc, tenure in (("2", 0.81, 0.4), ("3", 0.86, 0.42)):
        kg.record_model_version({"model": "churn-model", "version": version, "project": "Churn",
                                 "metrics": {"auc": auc}, "experiment": "xgb-depth6",
                                 "feature_importance": {"tenure": tenure}})
    assert kg.set_stage({"model": "churn-model", "version": "3", "stage": "production"}).stage == "production"
    assert kg.best_model({"project": "Churn", "metric": "auc"}).best.version == "3"
    assert [v.version for v in kg.lineage("churn-model").versions] == ["2", "3"]
    assert [m.name for m in kg.diff_versions("churn-model", "2", "3").metrics] == ["auc"]
    assert kg.record_feature_importance({"model": "churn-model", "version": "3",
                                         "importance": {"plan": 0.1}}).features["plan"] == 0.1
    assert [f.feature for f in kg.stable_features({"model": "churn-model"})] == ["tenure"]
    drift = kg.record_drift({"model": "churn-model", "version": "3", "feature": "tenure", "metric": "psi",
                             "value": 0.3, "detected_at": "2026-04-02T08:00:00Z"})
    assert (drift.severity, drift.status) == ("medium", "open")
    advice = kg.hyperparameters_for({"task": "predict churn", "metric": "auc"})
    assert advice.recommended == {"max_depth": 6}


def test_delegations_brief_outcome_feedback(kg):
    seed(kg)
    kg.upsert_entities([{"kind": "Lesson", "name": "Pin the snapshot date before retraining"}])
    kg.upsert_relations([{"source": {"kind": "Lesson", "name": "Pin the snapshot date before retraining"},
                          "type": "APPLIES_TO", "target": {"kind": "Project", "name": "Churn model"}}])
    brief = kg.brief({"task": "Retrain the churn model", "project": "Churn model", "delegation_id": "retrain-1"})
    assert brief.delegation_id == "retrain-1"
    assert kg.brief({"task": "Retrain the churn model", "project": "Churn model",
                     "delegation_id": "retrain-1"}).delegation_id == "retrain-1"
    record = kg.record_outcome({"delegation_id": "retrain-1", "status": "succeeded", "agent": "ds-1",
                                "summary": "Retrained; AUC 0.87", "helpful": brief.shown_ids[:1]})
    assert record.extraction.status == "not_requested"
    state = kg.delegation("retrain-1")
    assert (state.status, state.agent, state.summary) == ("succeeded", "ds-1", "Retrained; AUC 0.87")
    assert kg.track_record("ds-1").succeeded == 1
    if brief.shown_ids:
        assert kg.feedback() == {brief.shown_ids[0]: 1}
    with pytest.raises(KgmemApiError) as unknown:
        kg.delegation("never-briefed")
    assert unknown.value.status == 404


def test_requests_are_timed_per_route_and_dependency(live_api, kg):
    seed(kg)
    kg.recall("churn")
    metrics = live_api.http().get("/metrics").text
    assert 'kgmem_http_request_duration_seconds_count{method="POST",route="/v1/spaces/{space}/recall",' \
           'status_class="2xx"}' in metrics
    for dependency in ("neo4j", "chroma", "embedder"):
        assert f'kgmem_dependency_duration_seconds_count{{dependency="{dependency}"' in metrics


# -- bad input: refused whole, with the field named, before anything is written ---------------------------
NAN, INFINITY = float("nan"), float("inf")


def send(live_api, space: str, path: str, body, *, token: str | None = None, headers=None):
    """POST `body` as Python's JSON writes it, NaN and Infinity included (JSON has neither)."""
    with live_api.http(token or live_api.token([space], ["read", "write"])) as http:
        return http.post(f"/v1/spaces/{space}{path}", content=json.dumps(body),
                         headers={"Content-Type": "application/json", **(headers or {})})


def refused_paths(response) -> list[str]:
    assert response.status_code == 422, response.text
    return [error["path"] for error in response.json()["errors"]]


@pytest.mark.parametrize("weight", [NAN, INFINITY, -INFINITY])
def test_a_non_finite_relation_weight_is_refused_and_writes_nothing(live_api, space, gateway, weight):
    body = {"relations": [{"source": {"name": "ds-1"}, "type": "LEADS_ANALYSIS_FOR",
                           "target": {"name": "Churn model"}, "weight": weight}], "create_missing": True}
    token = live_api.token([space], ["read", "write"])
    for _ in range(2):  # a retry with the same Idempotency-Key is refused the same way
        response = send(live_api, space, "/relations", body, token=token, headers={"Idempotency-Key": "weight-1"})
        assert refused_paths(response) == ["body.relations[0].weight"]
    assert gateway.rows("MATCH (n {space: $space}) RETURN count(n) AS n", space=space) == [{"n": 0}]


def test_non_finite_numbers_are_refused_wherever_they_come_in(live_api, space):
    entity = {"kind": "Project", "name": "Churn model", "attributes": {"score": NAN}}
    assert refused_paths(send(live_api, space, "/entities", {"entities": [entity]})) == [
        "body.entities[0].attributes.score"]
    memory = {"messages": "I prefer Polars", "user_id": "alice", "infer": False, "metadata": {"weight": INFINITY}}
    assert all(path.startswith("body.metadata.weight") for path in refused_paths(
        send(live_api, space, "/memories", memory)))
    outcome = {"delegation_id": "d-1", "status": "succeeded", "metrics": {"auc": NAN}}
    assert refused_paths(send(live_api, space, "/delegations/outcome", outcome)) == ["body.metrics.auc"]


@pytest.mark.parametrize(("path", "body", "typo"), [
    ("/entities", {"entities": [{"kind": "Project", "name": "Churn model", "sumary": "who leaves"}]},
     "body.entities[0].sumary"),
    ("/observations", {"observations": [{"entity": {"name": "Churn model"}, "text": "AUC 0.81", "valid_form": "2026"}],
                       "create_missing": True}, "body.observations[0].valid_form"),
    ("/relations", {"relations": [{"source": {"name": "ds-1"}, "type": "LEADS_ANALYSIS_FOR",
                                   "target": {"name": "Churn model", "knd": "Project"}}], "create_missing": True},
     "body.relations[0].target.knd"),
    ("/memories", {"messages": "I prefer Polars", "user_id": "alice", "infer": False, "metdata": {"topic": "x"}},
     "body.metdata"),
    ("/delegations/brief", {"task": "Retrain the churn model", "projet": "Churn model"}, "body.projet"),
])
def test_an_unknown_field_is_refused_by_name_not_dropped(live_api, space, gateway, path, body, typo):
    response = send(live_api, space, path, body)
    assert refused_paths(response) == [typo]
    assert response.json()["errors"][0]["type"] == "extra_forbidden"
    assert gateway.rows("MATCH (n {space: $space}) RETURN count(n) AS n", space=space) == [{"n": 0}]


def test_a_nan_stored_before_is_answered_as_null_with_and_without_an_idempotency_key(live_api, space, gateway):
    """Answers go through the route's response model: a NaN already in the graph reads as null, not a 500
    after the write committed, and a replay answers the same."""
    entity = {"entities": [{"kind": "Project", "name": "Churn model"}]}
    assert send(live_api, space, "/entities", entity).status_code == 200
    gateway.write("MATCH (e:Entity {space: $space}) SET e.score = 0.0 / 0.0", space=space)
    plain = send(live_api, space, "/entities", entity)
    assert plain.status_code == 200, plain.text
    assert plain.json()["entities"][0]["attributes"]["score"] is None
    token = live_api.token([space], ["read", "write"])
    first = send(live_api, space, "/entities", entity, token=token, headers={"Idempotency-Key": "nan-1"})
    replay = send(live_api, space, "/entities", entity, token=token, headers={"Idempotency-Key": "nan-1"})
    assert (first.status_code, replay.status_code) == (200, 200), first.text
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    assert first.json()["entities"][0]["attributes"]["score"] is None


# -- analyst Cypher: time and memory limits --------------------------------------------------------------
def cypher(live_api, space: str, query: str):
    token = live_api.token(["*"], ["read", "cypher", "admin"])
    with live_api.http(token) as http:
        return http.post(f"/v1/spaces/{space}/cypher", json={"query": query})


def test_a_query_still_planning_at_the_time_limit_answers_504(live_api, space):
    started = time.monotonic()
    response = cypher(live_api, space, slow_to_plan())
    assert response.status_code == 504, response.text
    assert "still planning" in response.json()["detail"]
    assert time.monotonic() - started < live_api.settings.api_query_timeout_s + 10


def test_a_query_past_neo4j_memory_limit_is_the_analysts_to_fix_not_a_retry(live_api, space):
    response = cypher(live_api, space,
                      "UNWIND range(1, 3000000) AS i WITH collect(toString(i) + 'abcdefghij') AS c RETURN size(c)")
    assert response.status_code == 422, response.text
    assert "Retry-After" not in response.headers
    assert "ran out of memory" in response.json()["detail"]


def test_a_large_answer_stops_at_the_size_cap(live_api, space):
    response = cypher(live_api, space, doubled_string(20, rows=40))  # 40 rows of 1 MiB
    assert response.status_code == 200
    answer = response.json()
    assert (answer["truncated"], answer["truncated_by"]) == (True, "max_bytes")
    assert len(answer["rows"]) < 40

"""kgmem's Claude tools: definitions from Pydantic models, the executor, errors as instructions, and
the SDK's own tool runner driving them over the fake Anthropic transport, on real Neo4j and Chroma."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from agents.tools import ToolContext, ToolExecutor, to_json_text
from agents.toolsets import default_registry
from fakes import FakeAnthropicTransport
from graph.model import EntityIn, Provenance
from graph.vocabulary import Kind
from memory.extraction import tool_input_schema
from memory.service import MemoryService
from memory.vectors import open_chroma

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@pytest.fixture
def service(settings, gateway, embedder):
    return MemoryService.open(settings, gateway, embedder=embedder, chroma=open_chroma(settings))


@pytest.fixture
def executor(service, space) -> ToolExecutor:
    return ToolExecutor(default_registry(), ToolContext(service.space(space), Provenance(source="claude", agent="lead")))


@pytest.fixture
def other_space(gateway):
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    gateway.write("MATCH (n {space: $space}) DETACH DELETE n", space=name)


def ok(executor: ToolExecutor, name: str, tool_input: dict):
    outcome = executor.run(name, tool_input)
    assert not outcome.is_error, outcome.content
    return json.loads(outcome.content)


def walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


# -- definitions ---------------------------------------------------------------------------------

def test_every_definition_comes_from_its_input_model_and_is_self_contained():
    registry = default_registry()
    assert len(registry) >= 12
    for tool in registry:
        definition = tool.definition()
        assert set(definition) == {"name", "description", "input_schema"}
        assert TOOL_NAME.fullmatch(tool.name)
        assert len(tool.description) > 80, tool.name  # written for Claude, not a stub
        schema = definition["input_schema"]
        assert schema == tool_input_schema(tool.input_model)
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        for node in walk(schema):
            assert "$ref" not in node and "$defs" not in node and "title" not in node, tool.name
        # Every top-level field tells Claude what to put in it.
        for field_name, field_schema in schema["properties"].items():
            assert field_schema.get("description"), f"{tool.name}.{field_name} has no description"


def test_names_do_not_clash_with_the_reference_mcp_memory_tools():
    reference = {"create_entities", "create_relations", "add_observations", "delete_entities",
                 "delete_observations", "delete_relations", "read_graph", "search_nodes", "open_nodes"}
    assert not reference & set(default_registry().names())


# -- the executor on the real graph ------------------------------------------------------------------

def test_write_read_and_recall_through_tools(executor, gateway, space):
    entities = ok(executor, "upsert_entities", {"entities": [
        {"kind": "Project", "name": "Churn", "summary": "Predict which customers leave",
         "attributes": {"status": "active"}},
        {"kind": "Agent", "name": "ds-1", "attributes": {"role": "data-scientist"}},
        {"kind": "Delegation", "name": "retrain churn model", "attributes": {"status": "failed"}},
    ]})
    assert [(e["kind"], e["name"]) for e in entities] == [("Project", "Churn"), ("Agent", "ds-1"),
                                                          ("Delegation", "retrain churn model")]
    assert entities[0]["attributes"] == {"status": "active"}

    observations = ok(executor, "record_observations", {"observations": [
        {"entity": {"name": "retrain churn model"}, "text": "AUC dropped to 0.61 because the feature table was stale",
         "valid_from": "2026-02-01T00:00:00Z"},
    ]})
    assert observations[0]["entity_id"] == entities[2]["id"]

    relations = ok(executor, "record_relations", {"relations": [
        {"source": {"name": "retrain churn model"}, "type": "PART_OF", "target": {"name": "churn", "kind": "Project"}},
        {"source": {"id": entities[2]["id"]}, "type": "delegated to", "target": {"name": "ds-1"}},
    ]})
    assert [(r["type"], r["source"], r["target"]) for r in relations] == [
        ("PART_OF", "retrain churn model", "Churn"), ("delegated to", "retrain churn model", "ds-1")]

    hits = ok(executor, "search_entities", {"text": "churn", "kinds": ["Project"]})
    assert [h["name"] for h in hits] == ["Churn"]

    hood = ok(executor, "entity_neighbourhood", {"entity": {"name": "Retrain  Churn Model"}})
    assert hood["entity"]["id"] == entities[2]["id"]
    assert {n["name"] for n in hood["neighbours"]} == {"Churn", "ds-1"}
    assert [o["text"] for o in hood["observations"]] == ["AUC dropped to 0.61 because the feature table was stale"]
    assert hood["observations"][0]["agent"] == "lead"

    recalled = ok(executor, "recall", {"text": "why did the churn retrain fail?", "limit": 5})
    failure = next(i for i in recalled["items"] if i["text"] == "AUC dropped to 0.61 because the feature table was stale")
    assert recalled["items"].index(failure) < 3
    assert failure["entity"]["name"] == "retrain churn model" and failure["agent"] == "lead"

    # The writes carry who made them, and Chroma followed Neo4j.
    rows = gateway.rows(
        "MATCH (o:Observation {space: $space}) RETURN o.agent AS agent, o.source AS source, o.vector_status AS status",
        space=space)
    assert rows == [{"agent": "lead", "source": "claude", "status": "indexed"}]

    history = ok(executor, "entity_history", {"entity": {"id": entities[0]["id"]}})
    assert history["entity"]["name"] == "Churn"
    ok(executor, "upsert_entities", {"entities": [{"kind": "Project", "name": "churn", "attributes": {"status": "done"}}]})
    history = ok(executor, "entity_history", {"entity": {"name": "Churn"}})
    assert any(r["changes"].get("status") == {"old": "active", "new": "done"} for r in history["revisions"])

    retracted = ok(executor, "retract_observations", {"observation_ids": [observations[0]["id"]]})
    assert retracted == {"retracted": 1}
    assert ok(executor, "entity_neighbourhood", {"entity": {"id": entities[2]["id"]}})["observations"] == []


def test_invalid_input_names_each_field_and_how_to_fix_it(executor):
    outcome = executor.run("record_relations", {"relations": [
        {"source": {"name": "a"}, "type": "42", "target": {}},
        {"source": {"name": "a"}, "target": {"name": "b"}, "kind": "x"},
    ]})
    assert outcome.is_error
    lines = outcome.content.splitlines()
    assert lines[0] == "Invalid input for record_relations: 4 problems."
    assert any(line.startswith("- relations[0].type: Value error, relation type '42' is not allowed") for line in lines)
    assert any(line.startswith("- relations[0].target: Value error, give the entity's id, or its name")
               for line in lines)
    missing = next(line for line in lines if line.startswith("- relations[1].type: Field required"))
    assert "fix: add it (Prefer one of PART_OF" in missing
    extra = next(line for line in lines if line.startswith("- relations[1].kind: Extra inputs are not permitted"))
    assert "fix: remove it; the fields allowed here are: source, type, target, valid_from" in extra
    assert lines[-1].startswith("Correct these fields and call record_relations again")

    wrong_kind = executor.run("upsert_entities", {"entities": [{"kind": "Spaceship", "name": "x"}]})
    assert wrong_kind.is_error
    assert "entities[0].kind: Input should be 'Project', 'Agent'" in wrong_kind.content

    bad_attribute = executor.run("upsert_entities", {"entities": [{"name": "x", "attributes": {"Bad Key": 1}}]})
    assert bad_attribute.is_error and "entities[0]: Value error, attribute name 'Bad Key' must match" in bad_attribute.content

    not_an_object = executor.run("recall", ["why"])
    assert not_an_object.is_error and "the input must be a JSON object, not list" in not_an_object.content


def test_unknown_tools_and_kgmem_errors_are_error_results(executor, service, space):
    unknown = executor.run("drop_database", {})
    assert unknown.is_error and unknown.content.startswith("Unknown tool 'drop_database'. The tools are: recall,")

    missing = executor.run("record_observations", {"observations": [{"entity": {"name": "nobody"}, "text": "hi"}]})
    assert missing.is_error
    assert missing.content == "record_observations failed: no such entity in this space: nobody"

    service.space(space).graph.upsert_entities([EntityIn(kind=Kind.PROJECT, name="Atlas"), EntityIn(kind=Kind.MODEL, name="atlas")])
    ambiguous = executor.run("entity_neighbourhood", {"entity": {"name": "atlas"}})
    assert ambiguous.is_error and "matches several entities (Model, Project); give its kind or id" in ambiguous.content
    assert not executor.run("entity_neighbourhood", {"entity": {"name": "atlas", "kind": "Model"}}).is_error

    report = executor.run("run_report", {"name": "agent-success", "parameters": {"space": "someone-else"}})
    assert report.is_error and "leave out space" in report.content
    assert not executor.run("run_report", {"name": "agent-success"}).is_error


def test_a_space_cannot_see_or_change_another(executor, service, other_space):
    theirs = ToolExecutor(default_registry(), ToolContext(service.space(other_space)))
    secret = ok(theirs, "upsert_entities", {"entities": [{"kind": "Project", "name": "Secret plan"}]})[0]
    ok(theirs, "record_observations", {"observations": [{"entity": {"id": secret["id"]}, "text": "launch is in May"}]})

    assert ok(executor, "search_entities", {"text": "secret plan"}) == []
    assert all("May" not in item["text"] for item in ok(executor, "recall", {"text": "when is the launch?"})["items"])
    for name, tool_input in [
        ("entity_neighbourhood", {"entity": {"id": secret["id"]}}),
        ("entity_history", {"entity": {"id": secret["id"]}}),
        ("retract_entity", {"entity": {"id": secret["id"]}}),
        ("record_observations", {"observations": [{"entity": {"id": secret["id"]}, "text": "cancelled"}]}),
    ]:
        outcome = executor.run(name, tool_input)
        assert outcome.is_error and "no" in outcome.content and secret["id"] in outcome.content, name
    assert [o["text"] for o in ok(theirs, "entity_neighbourhood", {"entity": {"id": secret["id"]}})["observations"]] \
        == ["launch is in May"]


def test_tool_results_answer_every_tool_use_block_of_a_message(executor):
    message = {"role": "assistant", "content": [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "toolu_1", "name": "search_entities", "input": {"text": "anything"}},
        {"type": "tool_use", "id": "toolu_2", "name": "nope", "input": {}},
    ]}
    answer = executor.tool_results(message)
    assert answer["role"] == "user"
    assert [(b["tool_use_id"], b.get("is_error", False)) for b in answer["content"]] == [("toolu_1", False),
                                                                                          ("toolu_2", True)]
    assert answer["content"][0]["content"] == "[]"
    assert executor.tool_results({"role": "assistant", "content": [{"type": "text", "text": "done"}]}) is None


def test_results_are_compact_json():
    assert to_json_text({"a": None, "b": [1], "c": "é"}) == '{"b":[1],"c":"é"}'
    assert to_json_text("already text") == "already text"


# -- the SDK's tool runner, real up to its HTTP transport ------------------------------------------------

def test_the_sdk_tool_runner_runs_kgmem_tools(executor, service, space):
    fake = FakeAnthropicTransport()
    fake.tool_use({"entities": [{"kind": "Project", "name": "Churn"}]}, name="upsert_entities")
    fake.tool_use({"observations": [{"entity": {"name": "Churn"}, "txt": "oops"}]}, name="record_observations")
    fake.tool_use({"observations": [{"entity": {"name": "Churn"}, "text": "Kick-off on Monday"}]},
                  name="record_observations")
    fake.text("Recorded the project and its kick-off.")
    client = fake.client()

    runner = client.beta.messages.tool_runner(
        model="claude-sonnet-4-5", max_tokens=1024, tools=executor.runner_tools(),
        messages=[{"role": "user", "content": "Remember that the Churn project kicks off on Monday."}],
    )
    final = runner.until_done()

    assert final.content[0].text == "Recorded the project and its kick-off."
    assert fake.remaining == 0 and len(fake.requests) == 4
    sent_tools = fake.requests[0].body["tools"]
    assert sent_tools == executor.definitions()

    # Each later request carries the tool results of the turn before it.
    first = fake.requests[1].messages[-1]["content"][0]
    assert first["type"] == "tool_result" and "is_error" not in first
    assert json.loads(first["content"])[0]["name"] == "Churn"
    second = fake.requests[2].messages[-1]["content"][0]
    assert second["is_error"] is True
    assert "observations[0].txt: Extra inputs are not permitted" in second["content"]
    assert "observations[0].text: Field required" in second["content"]
    third = fake.requests[3].messages[-1]["content"][0]
    assert "is_error" not in third and json.loads(third["content"])[0]["text"] == "Kick-off on Monday"

    churn = service.space(space).graph.find_by_name("Churn")[0]
    facts = service.space(space).graph.neighbourhood(churn.id).observations
    assert [(o.text, o.provenance.agent) for o in facts] == [("Kick-off on Monday", "lead")]


def test_free_text_memory_tools(executor, space):
    added = ok(executor, "remember", {"messages": "The lead prefers Polars over pandas", "agent_id": "lead",
                                      "infer": False})
    assert [r["event"] for r in added["results"]] == ["ADD"]
    found = ok(executor, "search_memories", {"query": "which dataframe library?", "agent_id": "lead"})
    assert found["results"][0]["memory"] == "The lead prefers Polars over pandas"
    unscoped = executor.run("search_memories", {"query": "anything"})
    assert unscoped.is_error and "give at least one of user_id, agent_id or run_id" in unscoped.content


# -- ML memory tools -------------------------------------------------------------------------------------

def test_ml_memory_through_tools(executor, gateway, space):
    ok(executor, "record_experiment", {
        "project": "Churn", "name": "xgb-depth4", "task": "predict which telco customers churn next month",
        "parameters": {"max_depth": 4}, "metrics": {"auc": 0.81}, "dataset": "customers-2025", "model": "churn-model"})
    ok(executor, "record_experiment", {
        "project": "Churn", "name": "xgb-depth6", "task": "predict which telco customers churn next month",
        "parameters": {"max_depth": 6}, "metrics": {"auc": 0.86}, "dataset": "customers-2025", "model": "churn-model"})
    ok(executor, "record_model_version", {"model": "churn-model", "version": "1", "project": "Churn",
                                          "metrics": {"auc": 0.81}, "experiment": "xgb-depth4",
                                          "feature_importance": {"tenure": 0.5, "plan": 0.3},
                                          "registered_at": "2026-01-01T00:00:00Z"})
    ok(executor, "record_model_version", {"model": "churn-model", "version": "2", "project": "Churn",
                                          "metrics": {"auc": 0.86}, "experiment": "xgb-depth6",
                                          "feature_importance": {"tenure": 0.52, "calls": 0.2},
                                          "registered_at": "2026-02-01T00:00:00Z"})
    staged = ok(executor, "set_model_stage", {"model": "churn-model", "version": "2", "stage": "Production"})
    assert staged["stage"] == "production"

    best = ok(executor, "best_model", {"project": "Churn", "metric": "auc"})
    assert (best["best"]["version"], best["best"]["value"]) == ("2", 0.86)
    advice = ok(executor, "hyperparameters_for_task", {"task": "which customers will churn", "metric": "auc"})
    assert advice["recommended"] == {"max_depth": 6}
    lineage = ok(executor, "model_lineage", {"model": "churn-model"})
    assert [v["version"] for v in lineage["versions"]] == ["1", "2"]
    diff = ok(executor, "diff_model_versions", {"model": "churn-model", "a": "1", "b": "2"})
    assert diff["features_added"] == ["calls"] and diff["features_removed"] == ["plan"]
    stable = ok(executor, "stable_features", {"model": "churn-model"})
    assert [f["feature"] for f in stable] == ["tenure"]

    wrong = executor.run("record_experiment", {"project": "Churn", "name": "x", "metrics": {"AUC!": 1.0},
                                               "provenance": {"agent": "someone else"}})
    assert wrong.is_error
    assert wrong.content.splitlines()[1].startswith(
        '- metrics["AUC!"] (the key): Value error, metric or parameter name \'AUC!\' must match')
    missing = executor.run("model_lineage", {"model": "no-such-model"})
    assert missing.is_error and missing.content.startswith("model_lineage failed: ")

    # Written by the context's agent, never by what the input claims.
    rows = gateway.rows(
        "MATCH (e:Experiment {space: $space}) RETURN collect(DISTINCT e.agent) AS agents", space=space)
    assert rows[0]["agents"] == ["lead"]


# -- delegation lifecycle tools ---------------------------------------------------------------------------

def test_brief_outcome_and_feedback_through_tools(executor):
    first = ok(executor, "brief_delegation", {"task": "Retrain the churn model on the March snapshot",
                                              "project": "Churn", "agent_role": "ml-engineer",
                                              "delegation_id": "churn-retrain-1"})
    assert (first["delegation_id"], first["created"], first["status"]) == ("churn-retrain-1", True, "planned")
    assert first["markdown"].startswith("# Brief: Retrain the churn model on the March snapshot")
    again = ok(executor, "brief_delegation", {"task": "Retrain the churn model on the March snapshot",
                                              "project": "Churn", "delegation_id": "churn-retrain-1"})
    assert again["created"] is False

    failed = ok(executor, "record_outcome", {
        "delegation_id": "churn-retrain-1", "status": "failed", "agent": "mle-1",
        "summary": "The retrain failed: the feature table was three weeks old.", "failure_cause": "stale features",
        "lessons": [{"text": "Refresh the feature snapshot before retraining the churn model", "severity": "high"}]})
    assert (failed["status"], failed["agent"], failed["changed"]) == ("failed", "mle-1", True)
    assert failed["lessons"] == ["Refresh the feature snapshot before retraining the churn model"]
    assert failed["agent_record"]["failed"] == 1

    second = ok(executor, "brief_delegation", {"task": "Retrain the churn model on the April snapshot",
                                               "project": "Churn", "delegation_id": "churn-retrain-2"})
    lesson = second["lessons"][0]
    assert lesson["text"] == "Refresh the feature snapshot before retraining the churn model"
    assert lesson["id"] in second["shown_ids"]
    done = ok(executor, "record_outcome", {"delegation_id": "churn-retrain-2", "status": "succeeded", "agent": "mle-2",
                                           "summary": "Refreshed the features first, then retrained: AUC 0.87.",
                                           "helpful": [lesson["id"]]})
    assert done["status"] == "succeeded"
    state = ok(executor, "delegation_status", {"delegation_id": "churn-retrain-2"})
    assert state["helpful_ids"] == [lesson["id"]] and state["agent"] == "mle-2"
    assert ok(executor, "memory_feedback", {"ids": [lesson["id"], "other"]}) == {"net": {lesson["id"]: 1, "other": 0}}
    assert ok(executor, "memory_feedback", {})["net"][lesson["id"]] == 1
    record = ok(executor, "agent_track_record", {"agent": "mle-2"})
    assert (record["succeeded"], record["success_rate"]) == (1, 1.0)

    unknown = executor.run("record_outcome", {"delegation_id": "never-briefed", "status": "succeeded"})
    assert unknown.is_error and "no delegation 'never-briefed' in this space" in unknown.content
    bad_status = executor.run("record_outcome", {"delegation_id": "churn-retrain-2", "status": "done"})
    assert bad_status.is_error and "- status: Input should be" in bad_status.content

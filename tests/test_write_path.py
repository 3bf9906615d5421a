"""One write path: whatever surface writes (REST, the Claude tools, MCP), the vectors have followed by the time
the call returns, because every write goes through `SpaceGraph.write` and its after-write hook.

Each test lists a sample call for every writing operation of its surface and fails when an operation has
none, so a new writer is covered the day it is added.
"""

from __future__ import annotations

from typing import Any

import pytest

from agents.mcp_server import REFERENCE_TOOLS, KgmemMcp, McpCaller
from agents.tools import ToolContext, ToolExecutor
from agents.toolsets import default_registry
from memory.service import MemoryService

# -- REST ------------------------------------------------------------------------------------------------------
# (method, path under /v1/spaces/{space}, body); paths with {ids} are filled from earlier answers.
REST_WRITES: list[tuple[str, str, Any]] = [
    ("POST", "/entities", {"entities": [{"kind": "Project", "name": "Churn"}, {"kind": "Agent", "name": "ds-1"},
                                        {"kind": "Thing", "name": "Scratch"}, {"kind": "Thing", "name": "Gone"}]}),
    ("POST", "/observations", {"observations": [{"entity": {"name": "Churn"}, "text": "AUC fell to 0.71 in May"},
                                                {"entity": {"name": "Scratch"}, "text": "a note to retract"}]}),
    ("POST", "/relations", {"relations": [{"source": {"name": "ds-1"}, "type": "LEADS_ANALYSIS_FOR",
                                           "target": {"name": "Churn"}}]}),
    ("POST", "/relations/retract", {"relations": [{"source": {"name": "ds-1"}, "type": "LEADS_ANALYSIS_FOR",
                                                   "target": {"name": "Churn"}}]}),
    ("POST", "/observations/retract", {"ids": ["{scratch_observation}"]}),
    ("POST", "/entities/{scratch}/retract", None),
    ("DELETE", "/entities/{gone}", None),
    ("POST", "/entities/{churn}/purge", None),
    ("POST", "/memories", {"messages": "I prefer Polars over pandas", "user_id": "alice", "infer": False}),
    ("PUT", "/memories/{memory}", {"text": "I prefer Polars, and DuckDB for SQL"}),
    ("DELETE", "/memories/{memory}", None),
    ("POST", "/memories/batch", {"memories": [{"text": "We ship on Fridays", "user_id": "alice"},
                                              {"text": "Churn retrains nightly", "agent_id": "ds-1"}]}),
    ("POST", "/delegations/brief", {"task": "Retrain the churn model", "delegation_id": "d-1", "project": "Churn 2"}),
    ("POST", "/delegations/outcome", {"delegation_id": "d-1", "status": "failed", "agent": "ds-1",
                                      "summary": "The retrain leaked future labels",
                                      "lessons": [{"text": "Split by time before fitting", "severity": "high"}]}),
    ("POST", "/experiments", {"name": "exp-1", "project": "Churn 2", "model": "churn-model",
                              "parameters": {"depth": 6}, "metrics": {"auc": 0.8}}),
    ("POST", "/models", {"name": "churn-model", "project": "Churn 2"}),
    ("POST", "/models/versions", {"model": "churn-model", "version": "3", "metrics": {"auc": 0.8},
                                  "features": ["tenure"], "stage": "staging"}),
    ("POST", "/models/stage", {"model": "churn-model", "version": "3", "stage": "production"}),
    ("POST", "/models/drift", {"model": "churn-model", "version": "3", "metric": "psi", "value": 0.3,
                               "threshold": 0.2, "detected_at": "2026-05-01T00:00:00Z"}),
    ("POST", "/features/importance", {"model": "churn-model", "version": "3", "importance": {"tenure": 0.4}}),
    ("POST", "/forget", {"agent": "ds-1"}),
]
# Writes that touch no entity or observation (keys), only read (queries sent as POST), or start a background job
# whose writes are checked where the job is tested (import: tests/test_portable_api_cli.py).
REST_NOT_GRAPH_WRITES = {
    "/recall", "/memories/search", "/experiments/hyperparameters", "/models/best", "/models/lineage", "/models/diff",
    "/features/stable", "/cypher", "/reports/{name}", "/admin/reindex", "/admin/keys", "/admin/keys/{key_id}",
    "/admin/export", "/admin/import",
}


def _template(path: str) -> str:
    return {"/entities/{scratch}/retract": "/entities/{entity_id}/retract", "/entities/{gone}": "/entities/{entity_id}",
            "/entities/{churn}/purge": "/entities/{entity_id}/purge",
            "/memories/{memory}": "/memories/{memory_id}"}.get(path, path)


def test_every_rest_write_has_a_sample_call(live_api):
    prefix = "/v1/spaces/{space}"
    writes = {(method.upper(), path.removeprefix(prefix))
              for path, operations in live_api.app.openapi()["paths"].items() if path.startswith(prefix)
              for method in operations if method != "get"}
    covered = {(method, _template(path)) for method, path, _ in REST_WRITES}
    missing = sorted(w for w in writes if w not in covered and w[1] not in REST_NOT_GRAPH_WRITES)
    assert missing == [], f"add a sample call to REST_WRITES for {missing}"


def test_no_rest_write_leaves_an_item_pending(live_api, space):
    memory: MemoryService = live_api.app.state.services.memory()
    ids: dict[str, str] = {}
    with live_api.http(live_api.token([space])) as http:
        for method, path, body in REST_WRITES:
            url = f"/v1/spaces/{space}" + path.format(**ids)
            if body is not None:
                body = _fill(body, ids)
            answer = http.request(method, url, json=body)
            assert answer.status_code < 300, (method, path, answer.text)
            _remember_ids(path, answer.json(), ids)
            assert memory.sync.pending_count(space) == 0, f"{method} {path} left items pending"


def _fill(body: Any, ids: dict[str, str]) -> Any:
    if isinstance(body, str):
        return body.format(**ids) if body.startswith("{") else body
    if isinstance(body, list):
        return [_fill(item, ids) for item in body]
    if isinstance(body, dict):
        return {key: _fill(value, ids) for key, value in body.items()}
    return body


def _remember_ids(path: str, answer: dict[str, Any], ids: dict[str, str]) -> None:
    if path == "/entities":
        ids.update({e["name"].lower(): e["id"] for e in answer["entities"]})
    elif path == "/observations":
        ids["scratch_observation"] = answer["observations"][1]["id"]
    elif path == "/memories":
        ids["memory"] = answer["results"][0]["id"]


# -- Claude tools and MCP ----------------------------------------------------------------------------------------
TOOL_CALLS: dict[str, dict[str, Any]] = {
    "upsert_entities": {"entities": [{"kind": "Project", "name": "Churn"}, {"kind": "Thing", "name": "Scratch"}]},
    "record_observations": {"observations": [{"entity": {"name": "Churn"}, "text": "AUC fell to 0.71 in May"}]},
    "record_relations": {"relations": [{"source": {"name": "Scratch"}, "type": "RELATED_TO",
                                        "target": {"name": "Churn"}}]},
    "retract_observations": {"observation_ids": ["{observation}"]},
    "retract_entity": {"entity": {"name": "Scratch"}},
    "remember": {"messages": "I prefer Polars over pandas", "user_id": "alice", "infer": False},
    "brief_delegation": {"task": "Retrain the churn model", "delegation_id": "d-2", "project": "Churn"},
    "record_outcome": {"delegation_id": "d-2", "status": "succeeded", "agent": "ds-2",
                       "lessons": [{"text": "Freeze the feature list before tuning", "severity": "medium"}]},
    "record_experiment": {"name": "exp-2", "project": "Churn", "model": "churn-model", "metrics": {"auc": 0.8}},
    "record_model": {"name": "churn-model", "project": "Churn"},
    "record_model_version": {"model": "churn-model", "version": "4", "features": ["tenure"], "stage": "staging"},
    "set_model_stage": {"model": "churn-model", "version": "4", "stage": "production"},
    "record_feature_importance": {"model": "churn-model", "version": "4", "importance": {"tenure": 0.3}},
    "record_drift": {"model": "churn-model", "version": "4", "metric": "psi", "value": 0.3, "threshold": 0.2,
                     "detected_at": "2026-05-01T00:00:00Z"},
}
MCP_REFERENCE_CALLS: dict[str, dict[str, Any]] = {
    "create_entities": {"entities": [{"name": "Feast", "entityType": "Technology", "observations": ["a store"]},
                                     {"name": "Temp", "entityType": "Thing", "observations": []}]},
    "create_relations": {"relations": [{"from": "Temp", "to": "Feast", "relationType": "uses"}]},
    "add_observations": {"observations": [{"entityName": "Feast", "contents": ["serves features online"]}]},
    "delete_observations": {"deletions": [{"entityName": "Feast", "observations": ["a store"]}]},
    "delete_relations": {"relations": [{"from": "Temp", "to": "Feast", "relationType": "uses"}]},
    "delete_entities": {"entityNames": ["Temp"]},
}


@pytest.fixture
def memory(settings, gateway, embedder):
    return MemoryService.open(settings, gateway, embedder=embedder)


def test_every_writing_tool_has_a_sample_call():
    writers = {tool.name for tool in default_registry() if not tool.read_only}
    assert writers == set(TOOL_CALLS), f"add sample calls for {sorted(writers - set(TOOL_CALLS))}"
    reference_writers = {tool.name for tool in REFERENCE_TOOLS if not tool.read_only}
    assert reference_writers == set(MCP_REFERENCE_CALLS)


def test_no_claude_tool_write_leaves_an_item_pending(memory, space):
    executor = ToolExecutor(default_registry(), ToolContext(memory.space(space)))
    ids: dict[str, str] = {}
    for name, arguments in TOOL_CALLS.items():
        outcome = executor.run(name, _fill(arguments, ids))
        assert not outcome.is_error, (name, outcome.content)
        if name == "record_observations":
            ids["observation"] = outcome.value[0]["id"]
        assert memory.sync.pending_count(space) == 0, f"tool {name} left items pending"


def test_no_mcp_write_leaves_an_item_pending(memory, space):
    server = KgmemMcp(lambda: memory, lambda ctx: McpCaller(space=space))
    caller = McpCaller(space=space)
    for name, arguments in [*MCP_REFERENCE_CALLS.items(), ("brief_delegation", TOOL_CALLS["brief_delegation"])]:
        result = server.call(caller, name, arguments)
        assert not result.is_error, (name, result.content)
        assert memory.sync.pending_count(space) == 0, f"MCP tool {name} left items pending"

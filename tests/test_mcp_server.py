"""kgmem's MCP server, driven by the MCP Python SDK's client: over stdio against `kgmem mcp` spawned
as a process, and over streamable HTTP against the live API with API keys; real Neo4j and Chroma."""

from __future__ import annotations

import dataclasses
import json
import os
import uuid

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from agents.mcp_server import REFERENCE_TOOL_NAMES, KgmemMcp, McpCaller
from agents.toolsets import default_registry
from cli_helpers import KGMEM

# The reference server's nine tools as `@modelcontextprotocol/server-memory` declares them
# (src/memory/index.ts): name -> (description, input schema).
REFERENCE = {
    "create_entities": ("Create multiple new entities in the knowledge graph", {
        "type": "object", "required": ["entities"],
        "properties": {"entities": {"type": "array", "items": {
            "type": "object", "required": ["name", "entityType", "observations"],
            "properties": {
                "name": {"type": "string", "description": "The name of the entity"},
                "entityType": {"type": "string", "description": "The type of the entity"},
                "observations": {"type": "array", "items": {"type": "string"},
                                 "description": "An array of observation contents associated with the entity"}}}}}}),
    "create_relations": ("Create multiple new relations between entities in the knowledge graph. Relations should be "
                         "in active voice", {
        "type": "object", "required": ["relations"],
        "properties": {"relations": {"type": "array", "items": {
            "type": "object", "required": ["from", "to", "relationType"],
            "properties": {
                "from": {"type": "string", "description": "The name of the entity where the relation starts"},
                "to": {"type": "string", "description": "The name of the entity where the relation ends"},
                "relationType": {"type": "string", "description": "The type of the relation"}}}}}}),
    "add_observations": ("Add new observations to existing entities in the knowledge graph", {
        "type": "object", "required": ["observations"],
        "properties": {"observations": {"type": "array", "items": {
            "type": "object", "required": ["entityName", "contents"],
            "properties": {
                "entityName": {"type": "string", "description": "The name of the entity to add the observations to"},
                "contents": {"type": "array", "items": {"type": "string"},
                             "description": "An array of observation contents to add"}}}}}}),
    "delete_entities": ("Delete multiple entities and their associated relations from the knowledge graph", {
        "type": "object", "required": ["entityNames"],
        "properties": {"entityNames": {"type": "array", "items": {"type": "string"},
                                       "description": "An array of entity names to delete"}}}),
    "delete_observations": ("Delete specific observations from entities in the knowledge graph", {
        "type": "object", "required": ["deletions"],
        "properties": {"deletions": {"type": "array", "items": {
            "type": "object", "required": ["entityName", "observations"],
            "properties": {
                "entityName": {"type": "string", "description": "The name of the entity containing the observations"},
                "observations": {"type": "array", "items": {"type": "string"},
                                 "description": "An array of observations to delete"}}}}}}),
    "delete_relations": ("Delete multiple relations from the knowledge graph", {
        "type": "object", "required": ["relations"],
        "properties": {"relations": {"type": "array", "description": "An array of relations to delete", "items": {
            "type": "object", "required": ["from", "to", "relationType"],
            "properties": {
                "from": {"type": "string", "description": "The name of the entity where the relation starts"},
                "to": {"type": "string", "description": "The name of the entity where the relation ends"},
                "relationType": {"type": "string", "description": "The type of the relation"}}}}}}),
    "read_graph": ("Read the entire knowledge graph", {"type": "object", "properties": {}}),
    "search_nodes": ("Search for nodes in the knowledge graph based on a query", {
        "type": "object", "required": ["query"],
        "properties": {"query": {"type": "string", "description": "The search query to match against entity names, "
                                                                  "types, and observation content"}}}),
    "open_nodes": ("Open specific nodes in the knowledge graph by their names", {
        "type": "object", "required": ["names"],
        "properties": {"names": {"type": "array", "items": {"type": "string"},
                                 "description": "An array of entity names to retrieve"}}}),
}
READ_ONLY = {"read_graph", "search_nodes", "open_nodes"}
DESTRUCTIVE = {"delete_entities", "delete_observations", "delete_relations"}


def assert_extends_reference(name: str, listed: dict, reference: dict) -> None:
    """The listed schema is the reference's, field for field; kgmem may only add optional fields."""
    assert listed["type"] == "object"
    assert listed.get("required", []) == reference.get("required", []), name
    for field, schema in reference["properties"].items():
        assert listed["properties"][field] == schema, f"{name}.{field}"
    extra = set(listed["properties"]) - set(reference["properties"])
    assert not extra & set(listed.get("required", [])), name


def structured(result) -> dict:
    assert not result.is_error, result.content[0].text
    return result.structured_content


def text_of(result) -> str:
    return result.content[0].text


def spaces_entities(gateway, space: str) -> list[dict]:
    return gateway.rows(
        "MATCH (e:Entity {space: $space}) WHERE e.retracted_at IS NULL "
        "RETURN e.name AS name, e.kind AS kind, e.source AS source, e.agent AS agent ORDER BY e.name", space=space)


# -- stdio: `kgmem mcp` as a client spawns it ---------------------------------------------------------

@pytest.fixture
def stdio_server(neo4j_server, settings, space) -> StdioServerParameters:
    env = {
        **os.environ, "NEO4J_URI": neo4j_server.uri, "NEO4J_USERNAME": neo4j_server.username,
        "NEO4J_PASSWORD": neo4j_server.password, "NEO4J_DATABASE": neo4j_server.database,
        "KGMEM_HOME": str(settings.home), "KGMEM_CHROMA_PATH": str(settings.chroma_dir),
    }
    env.pop("ANTHROPIC_API_KEY", None)
    return StdioServerParameters(command=KGMEM, args=["mcp", "--space", space, "--agent", "desktop"], env=env)


def test_the_tool_list_matches_the_reference_server_for_its_nine_tools(stdio_server):
    async def listing():
        async with Client(stdio_server) as client:
            return (await client.list_tools()).tools

    tools = anyio.run(listing)
    by_name = {tool.name: tool for tool in tools}
    assert [tool.name for tool in tools][:9] == list(REFERENCE)
    for name, (description, schema) in REFERENCE.items():
        tool = by_name[name]
        assert tool.description.startswith(description), name
        assert_extends_reference(name, tool.input_schema, schema)
        assert tool.annotations.read_only_hint is (name in READ_ONLY), name
        assert tool.annotations.destructive_hint is (name in DESTRUCTIVE), name
        assert tool.output_schema["type"] == "object"
    # Paging fields of kgmem's own, all optional.
    assert set(by_name["read_graph"].input_schema["properties"]) == {"cursor", "limit"}

    # Then kgmem's own tools, with their annotations.
    own = [tool for tool in tools if tool.name not in REFERENCE]
    assert [tool.name for tool in own] == default_registry().names()  # no cypher_read without --cypher
    assert by_name["recall"].annotations.read_only_hint is True
    assert by_name["retract_entity"].annotations.destructive_hint is True
    assert by_name["upsert_entities"].annotations.read_only_hint is False
    assert by_name["recall"].input_schema == default_registry().get("recall").input_schema


def test_the_reference_tools_round_trip_over_stdio(stdio_server, gateway, space):
    async def scenario():
        async with Client(stdio_server) as client:
            out = {}
            created = await client.call_tool("create_entities", {"entities": [
                {"name": "Ada", "entityType": "person", "observations": ["Writes the churn pipeline"]},
                {"name": "Churn", "entityType": "project", "observations": []},
                {"name": "Ada", "entityType": "person", "observations": ["a duplicate in the same call"]},
            ]})
            out["created"] = (structured(created), text_of(created))
            out["again"] = structured(await client.call_tool("create_entities", {"entities": [
                {"name": "ada", "entityType": "person", "observations": []}]}))
            out["relations"] = structured(await client.call_tool("create_relations", {"relations": [
                {"from": "Ada", "to": "Churn", "relationType": "works on"}]}))
            out["added"] = structured(await client.call_tool("add_observations", {"observations": [
                {"entityName": "Churn", "contents": ["Kick-off on Monday", "Kick-off on Monday"]}]}))
            out["missing"] = await client.call_tool("add_observations", {"observations": [
                {"entityName": "Nobody", "contents": ["x"]}]})
            out["invalid"] = await client.call_tool("create_entities", {"entities": [{"name": "X", "observations": []}]})
            out["search"] = structured(await client.call_tool("search_nodes", {"query": "kick-off"}))
            out["open"] = structured(await client.call_tool("open_nodes", {"names": ["Ada", "Nobody"]}))
            out["page1"] = structured(await client.call_tool("read_graph", {"limit": 1}))
            out["page2"] = structured(await client.call_tool("read_graph", {"limit": 1,
                                                                            "cursor": out["page1"]["nextCursor"]}))
            out["recall"] = await client.call_tool("recall", {"text": "when does the churn project kick off?"})
            out["del_obs"] = structured(await client.call_tool("delete_observations", {"deletions": [
                {"entityName": "Ada", "observations": ["Writes the churn pipeline"]}]}))
            out["del_rel"] = structured(await client.call_tool("delete_relations", {"relations": [
                {"from": "Ada", "to": "Churn", "relationType": "works on"}]}))
            out["del_ent"] = structured(await client.call_tool("delete_entities", {"entityNames": ["Ada", "Zed"]}))
            out["after"] = structured(await client.call_tool("read_graph", {}))
            out["unknown"] = await client.call_tool("no_such_tool", {})
            return out

    out = anyio.run(scenario)

    created, text = out["created"]
    assert created == {"entities": [
        {"name": "Ada", "entityType": "person", "observations": ["Writes the churn pipeline"]},
        {"name": "Churn", "entityType": "project", "observations": []}]}
    assert json.loads(text) == created["entities"] and text.startswith("[\n  {\n    \"name\"")  # JSON.stringify(…, 2)
    assert out["again"] == {"entities": []}
    assert out["relations"] == {"relations": [{"from": "Ada", "to": "Churn", "relationType": "works on"}]}
    assert out["added"] == {"results": [{"entityName": "Churn", "addedObservations": ["Kick-off on Monday"]}]}
    assert out["missing"].is_error and text_of(out["missing"]) == "no entity named 'Nobody' in this space"
    invalid = text_of(out["invalid"])
    assert out["invalid"].is_error and invalid.startswith("Invalid input for create_entities: 1 problem.")
    assert "- entities[0].entityType: Field required; fix: add it (The type of the entity)" in invalid
    assert [e["name"] for e in out["search"]["entities"]] == ["Churn"]
    assert out["search"]["relations"] == [{"from": "Ada", "to": "Churn", "relationType": "works on"}]
    assert [e["name"] for e in out["open"]["entities"]] == ["Ada"]
    assert [e["name"] for e in out["page1"]["entities"]] == ["Ada"] and out["page1"]["nextCursor"]
    assert [e["name"] for e in out["page2"]["entities"]] == ["Churn"] and out["page2"]["nextCursor"] is None
    # kgmem's own recall finds what a reference tool wrote: the vectors followed the MCP write.
    assert not out["recall"].is_error
    assert "Kick-off on Monday" in [item["text"] for item in json.loads(text_of(out["recall"]))["items"]]
    assert out["del_obs"] == {"success": True, "message": "Observations deleted successfully"}
    assert out["del_rel"] == {"success": True, "message": "Relations deleted successfully"}
    assert out["del_ent"] == {"success": True, "message": "Deleted 1 of 2 entities. Not found: Zed"}
    assert out["after"] == {"entities": [{"name": "Churn", "entityType": "project",
                                          "observations": ["Kick-off on Monday"]}],
                            "relations": [], "nextCursor": None}
    assert out["unknown"].is_error and text_of(out["unknown"]).startswith("Unknown tool 'no_such_tool'.")
    # In the graph: the space given on the command line, stamped as MCP writes by the --agent.
    assert spaces_entities(gateway, space) == [
        {"name": "Churn", "kind": "Project", "source": "mcp", "agent": "desktop"}]


def test_the_server_refuses_to_reuse_a_reference_name():
    from agents.graph_tools import RECALL
    from agents.tools import ToolRegistry

    clash = ToolRegistry([dataclasses.replace(RECALL, name="read_graph")])
    with pytest.raises(ValueError, match="may not reuse the reference tool names: read_graph"):
        KgmemMcp(lambda: None, lambda ctx: McpCaller(space="x"), registry=clash)
    assert set(REFERENCE_TOOL_NAMES) == set(REFERENCE)


# -- streamable HTTP on the API, behind API keys --------------------------------------------------------

@pytest.fixture
def other_space(gateway):
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    gateway.write("MATCH (n {space: $space}) DETACH DELETE n", space=name)


def http_session(live_api, token: str | None, **headers: str):
    if token:
        headers["Authorization"] = f"Bearer {token}"
    http = create_mcp_http_client(headers=headers)
    return Client(streamable_http_client(f"{live_api.base_url}/mcp", http_client=http))


def test_mcp_over_http_uses_the_api_keys_space_and_scopes(live_api, gateway, space, other_space):
    writer = live_api.token([space], ["read", "write"], name="mcp writer")
    reader = live_api.token([space], ["read"], name="mcp reader")
    both = live_api.token([space, other_space], ["read", "write"], name="mcp two spaces")
    analyst = live_api.token(["*"], ["read", "cypher", "admin"], name="mcp analyst")

    async def scenario():
        out = {}
        async with http_session(live_api, writer, **{"X-Kgmem-Agent": "claude-code"}) as client:
            out["tools"] = [tool.name for tool in (await client.list_tools()).tools]
            out["created"] = structured(await client.call_tool("create_entities", {"entities": [
                {"name": "Churn", "entityType": "project", "observations": ["Kick-off on Monday"]}]}))
        async with http_session(live_api, reader) as client:
            out["read"] = structured(await client.call_tool("read_graph", {}))
            out["refused"] = await client.call_tool("create_entities", {"entities": [
                {"name": "Sneaky", "entityType": "thing", "observations": []}]})
            out["refused_own"] = await client.call_tool("upsert_entities", {"entities": [{"name": "Sneaky"}]})
        async with http_session(live_api, both, **{"X-Kgmem-Space": other_space}) as client:
            out["other"] = structured(await client.call_tool("read_graph", {}))
            await client.call_tool("create_entities", {"entities": [
                {"name": "Elsewhere", "entityType": "project", "observations": []}]})
            out["no_cypher"] = await client.call_tool("cypher_read", {"query": "RETURN 1 AS one"})
            out["no_cypher_tools"] = [tool.name for tool in (await client.list_tools()).tools]
        async with http_session(live_api, analyst, **{"X-Kgmem-Space": space}) as client:
            out["cypher_tools"] = [tool.name for tool in (await client.list_tools()).tools]
            out["cypher"] = await client.call_tool("cypher_read", {
                "query": "MATCH (e:Entity {space: $space}) RETURN e.name AS name ORDER BY name"})
            out["cypher_write"] = await client.call_tool("cypher_read", {"query": "CREATE (n:Oops) RETURN n"})
        return out

    out = anyio.run(scenario)
    assert out["tools"][:9] == list(REFERENCE)
    assert out["created"]["entities"][0]["name"] == "Churn"
    assert [e["name"] for e in out["read"]["entities"]] == ["Churn"]
    assert out["refused"].is_error
    assert text_of(out["refused"]) == "create_entities writes to the graph, and this API key lacks the 'write' scope"
    assert out["refused_own"].is_error and "lacks the 'write' scope" in text_of(out["refused_own"])
    assert out["other"]["entities"] == []  # the other space sees nothing of this one
    assert spaces_entities(gateway, space) == [
        {"name": "Churn", "kind": "Project", "source": "mcp", "agent": "claude-code"}]
    assert [e["name"] for e in spaces_entities(gateway, other_space)] == ["Elsewhere"]
    # Cypher reads every space: only a cypher key bound to '*' sees and runs cypher_read.
    assert "cypher_read" not in out["no_cypher_tools"] and "cypher_read" in out["cypher_tools"]
    assert out["no_cypher"].is_error and "needs an API key with the 'cypher' scope" in text_of(out["no_cypher"])
    assert json.loads(text_of(out["cypher"])) == {"columns": ["name"], "rows": [{"name": "Churn"}], "truncated": False}
    assert out["cypher_write"].is_error and text_of(out["cypher_write"]).startswith("cypher_read failed: refused:")


def test_mcp_over_http_refuses_callers_it_cannot_place(live_api, space, other_space):
    both = live_api.token([space, other_space], ["read"], name="two spaces")
    mine = live_api.token([space], ["read", "write"], name="one space")
    no_read = live_api.token([space], ["write"], name="write only")
    revoked_key, revoked = live_api.keys.create("revoked", ["read"], [space])
    live_api.key_ids.append(revoked_key.key_id)
    live_api.keys.revoke(revoked_key.key_id)
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}
    accept = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}

    def post(token: str | None, **headers: str) -> httpx.Response:
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.post(f"{live_api.base_url}/mcp", json=initialize, headers={**accept, **headers}, timeout=60)

    cases = [
        (post(None), 401, "missing API key: send `Authorization: Bearer <API key>`"),
        (post(None, Authorization="Basic abc"), 401, "the Authorization header must be `Bearer <API key>`"),
        (post("kgm_notarealkey_" + "x" * 43), 401, "invalid or revoked API key"),
        (post(revoked), 401, "invalid or revoked API key"),
        (post(no_read), 403, "this API key lacks the 'read' scope"),
        (post(both), 400, "this API key is bound to several spaces; name one with the x-kgmem-space header"),
        (post(mine, **{"X-Kgmem-Space": other_space}), 404, f"no such space: {other_space!r}"),
        (post(mine, **{"X-Kgmem-Space": "not a space!"}), 400, "x-kgmem-space 'not a space!' is not a valid space"),
    ]
    for response, status, detail in cases:
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["detail"] == detail
    assert cases[0][0].headers["www-authenticate"] == "Bearer"

    accepted = post(mine)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["result"]["serverInfo"]["name"] == "kgmem"

"""kgmem as an MCP server: the reference memory server's nine tools, and kgmem's own tools.

The nine tools of `@modelcontextprotocol/server-memory` (create_entities, create_relations,
add_observations, delete_entities, delete_observations, delete_relations, read_graph,
search_nodes, open_nodes) keep the reference's names, input fields, descriptions and result
shapes (text: the JSON the reference prints; structured content: what its output schema
says), so existing clients and prompts keep working; graph/mcp_memory.py maps them onto the
graph. `read_graph` is paged (`cursor`, `limit`, `nextCursor`) and `search_nodes` capped
(`limit`). After them come kgmem's own tools (agents/tools.py: recall, briefs, outcomes, ML
memory, ...), with read-only, destructive and idempotent annotations.

One server serves any number of spaces: `caller(ctx)` says who calls and in which space,
from the transport (a fixed space on stdio, the API key on HTTP; see api/mcp_http.py).

    mcp = KgmemMcp(lambda: service, lambda ctx: McpCaller(space="acme"))
    await mcp.serve_stdio()
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.graph_tools import CYPHER_READ
from agents.toolsets import parse_toolsets
from agents.toolsets import registry as toolset_registry
from agents.tools import (
    ToolContext,
    ToolExecutor,
    ToolRegistry,
    describe_error,
    describe_invalid_input,
)
from graph.audit import actor
from graph.errors import KgmemError, Unavailable
from graph.mcp_memory import (
    DEFAULT_PAGE,
    DEFAULT_SEARCH_LIMIT,
    MAX_PAGE,
    MAX_SEARCH_LIMIT,
    DeleteResult,
    KnowledgeGraph,
    KnowledgeGraphPage,
    McpEntity,
    McpMemory,
    McpRelation,
    ObservationAddition,
    ObservationDeletion,
    ObservationsAdded,
    RelationScope,
)
from graph.model import Provenance
from memory.schemas import tool_input_schema, tool_output_schema
from memory.service import MemoryService, SpaceMemory

log = logging.getLogger(__name__)

SERVER_NAME = "kgmem"
INSTRUCTIONS = (
    "kgmem is the team's shared knowledge-graph memory. The create_/add_/delete_/read_graph/search_nodes/open_nodes "
    "tools work as in the reference MCP memory server. Use recall to ask the memory a question in plain language, "
    "and the brief and outcome tools around every delegation to another agent."
)


@dataclass(frozen=True)
class McpCaller:
    """Who calls and where: the space every tool acts on, the agent stamped on writes, whether the
    caller may write at all (an API key without the write scope may not), and whether it may read
    the whole graph with Cypher."""

    space: str
    agent: str | None = None
    can_write: bool = True
    can_cypher: bool = False  # may run cypher_read, which is not confined to one space
    key_id: str = "mcp"  # the API key's id over HTTP; `kgmem mcp` (stdio) writes as "mcp"
    toolsets: tuple[str, ...] | None = None  # the caller's choice among the server's toolsets; None: all of them


class CallerRefused(KgmemError):
    """The transport could not establish a caller for this request (it says why)."""


# -- the reference tools: their input models' schemas are the reference's, field for field -------------

class _Args(BaseModel):
    # As the reference (zod objects), fields it does not know are ignored.
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class CreateEntitiesArgs(_Args):
    entities: list[McpEntity]


class CreateRelationsArgs(_Args):
    relations: list[McpRelation]


class AddObservationsArgs(_Args):
    observations: list[ObservationAddition]


class DeleteEntitiesArgs(_Args):
    entity_names: list[str] = Field(alias="entityNames", description="An array of entity names to delete")


class DeleteObservationsArgs(_Args):
    deletions: list[ObservationDeletion]


class DeleteRelationsArgs(_Args):
    relations: list[McpRelation] = Field(description="An array of relations to delete")


class ReadGraphArgs(_Args):
    cursor: str | None = Field(None, description="kgmem: nextCursor from the previous page; omit for the first")
    limit: int = Field(DEFAULT_PAGE, ge=1, le=MAX_PAGE, description="kgmem: entities per page")


RelationsShown = Field("touching", description=(
    "kgmem: 'touching' (the reference's answer) returns the relations with at least one end among the "
    "entities found; 'among' only those between them"))


class SearchNodesArgs(_Args):
    query: str = Field(description="The search query to match against entity names, types, and observation content")
    limit: int = Field(DEFAULT_SEARCH_LIMIT, ge=1, le=MAX_SEARCH_LIMIT, description="kgmem: at most this many entities")
    relations: RelationScope = RelationsShown


class OpenNodesArgs(_Args):
    names: list[str] = Field(description="An array of entity names to retrieve")
    relations: RelationScope = RelationsShown


# What the reference's handlers put in structuredContent, as models (for the output schemas).
class EntitiesResult(BaseModel):
    entities: list[McpEntity]


class RelationsResult(BaseModel):
    relations: list[McpRelation]


class ObservationsResult(BaseModel):
    results: list[ObservationsAdded]


Run = Callable[[McpMemory, Any], tuple[Any, BaseModel]]  # -> (what the text shows, the structured content)


@dataclass(frozen=True)
class ReferenceTool:
    name: str
    title: str
    description: str
    args: type[_Args]
    output: type[BaseModel]
    run: Run
    read_only: bool = False
    destructive: bool = False

    @property
    def input_schema(self) -> dict[str, Any]:
        return tool_input_schema(self.args)


def _graph_text(graph: KnowledgeGraph) -> tuple[Any, BaseModel]:
    return graph, graph


def _deleted(result: DeleteResult) -> tuple[Any, BaseModel]:
    return result.message, result


REFERENCE_TOOLS: tuple[ReferenceTool, ...] = (
    ReferenceTool("create_entities", "Create Entities", "Create multiple new entities in the knowledge graph",
                  CreateEntitiesArgs, EntitiesResult,
                  lambda m, a: (r := m.create_entities(a.entities), EntitiesResult(entities=r))),
    ReferenceTool("create_relations", "Create Relations",
                  "Create multiple new relations between entities in the knowledge graph. "
                  "Relations should be in active voice",
                  CreateRelationsArgs, RelationsResult,
                  lambda m, a: (r := m.create_relations(a.relations), RelationsResult(relations=r))),
    ReferenceTool("add_observations", "Add Observations",
                  "Add new observations to existing entities in the knowledge graph",
                  AddObservationsArgs, ObservationsResult,
                  lambda m, a: (r := m.add_observations(a.observations), ObservationsResult(results=r))),
    ReferenceTool("delete_entities", "Delete Entities",
                  "Delete multiple entities and their associated relations from the knowledge graph",
                  DeleteEntitiesArgs, DeleteResult, lambda m, a: _deleted(m.delete_entities(a.entity_names)),
                  destructive=True),
    ReferenceTool("delete_observations", "Delete Observations",
                  "Delete specific observations from entities in the knowledge graph",
                  DeleteObservationsArgs, DeleteResult, lambda m, a: _deleted(m.delete_observations(a.deletions)),
                  destructive=True),
    ReferenceTool("delete_relations", "Delete Relations", "Delete multiple relations from the knowledge graph",
                  DeleteRelationsArgs, DeleteResult, lambda m, a: _deleted(m.delete_relations(a.relations)),
                  destructive=True),
    ReferenceTool("read_graph", "Read Graph",
                  "Read the entire knowledge graph. kgmem returns it a page at a time: pass nextCursor back as "
                  "cursor for the next page (null on the last one)",
                  ReadGraphArgs, KnowledgeGraphPage,
                  lambda m, a: _graph_text(m.read_graph(cursor=a.cursor, limit=a.limit)), read_only=True),
    ReferenceTool("search_nodes", "Search Nodes", "Search for nodes in the knowledge graph based on a query",
                  SearchNodesArgs, KnowledgeGraph,
                  lambda m, a: _graph_text(m.search_nodes(a.query, limit=a.limit, relations=a.relations)),
                  read_only=True),
    ReferenceTool("open_nodes", "Open Nodes", "Open specific nodes in the knowledge graph by their names",
                  OpenNodesArgs, KnowledgeGraph,
                  lambda m, a: _graph_text(m.open_nodes(a.names, relations=a.relations)), read_only=True),
)
REFERENCE_TOOL_NAMES = tuple(tool.name for tool in REFERENCE_TOOLS)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    plain = value.model_dump(mode="json", by_alias=True) if isinstance(value, BaseModel) else [
        item.model_dump(mode="json", by_alias=True) for item in value]
    return json.dumps(plain, indent=2, ensure_ascii=False)  # as the reference's JSON.stringify(result, null, 2)


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


# -- the server -------------------------------------------------------------------------------------

class KgmemMcp:
    """The MCP server over one MemoryService; every call acts on the space `caller(ctx)` names."""

    def __init__(self, memory: Callable[[], MemoryService], caller: Callable[[ServerRequestContext], McpCaller], *,
                 toolsets: str | Iterable[str] | None = None, registry: ToolRegistry | None = None,
                 extras: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
                 version: str = "") -> None:
        """`toolsets` (agents/toolsets.py; default all) choose the tools: "core" brings the reference server's
        nine, "admin" cypher_read for callers trusted with it. `extras` go into every tool call's context
        (e.g. `extractor`); a callable is asked on each call."""
        self.memory = memory
        self.caller = caller
        chosen = parse_toolsets(toolsets)
        self.registry = registry if registry is not None else toolset_registry(chosen)
        # listed and run only for callers with can_cypher
        self.cypher = ToolRegistry([CYPHER_READ] if "admin" in chosen else [])
        self._reference = {tool.name: tool for tool in REFERENCE_TOOLS} if "core" in chosen else {}
        fixed = {} if callable(extras) else dict(extras or {})
        self.extras: Callable[[], Mapping[str, Any]] = extras if callable(extras) else (lambda: fixed)
        clashes = set(REFERENCE_TOOL_NAMES) & set([*self.registry.names(), *self.cypher.names()])
        if clashes:
            raise ValueError(f"kgmem tools may not reuse the reference tool names: {', '.join(sorted(clashes))}")
        self.server: Server[Any] = Server(SERVER_NAME, version=version, instructions=INSTRUCTIONS,
                                          on_list_tools=self._list_tools, on_call_tool=self._call_tool)

    # -- tools/list -------------------------------------------------------------------------------------
    def tools(self, caller: McpCaller | None = None) -> list[types.Tool]:
        """The tools `caller` may use: the reference's nine, kgmem's own, and cypher_read when it may."""
        listed = [
            types.Tool(
                name=tool.name, title=tool.title, description=tool.description, input_schema=tool.input_schema,
                output_schema=tool_output_schema(tool.output),
                annotations=types.ToolAnnotations(
                    title=tool.title, read_only_hint=tool.read_only, destructive_hint=tool.destructive,
                    idempotent_hint=True, open_world_hint=False),
            )
            for tool in self._references(caller).values()
        ]
        listed += [
            types.Tool(
                name=tool.name, title=tool.title or None, description=tool.description, input_schema=tool.input_schema,
                annotations=types.ToolAnnotations(
                    title=tool.title or None, read_only_hint=tool.read_only, destructive_hint=tool.destructive,
                    idempotent_hint=tool.idempotent, open_world_hint=False),
            )
            for tool in self._own(caller)
        ]
        return listed

    def _own(self, caller: McpCaller | None) -> ToolRegistry:
        tools = [*self.registry, *self.cypher] if caller is not None and caller.can_cypher else list(self.registry)
        if caller is not None and caller.toolsets is not None:
            chosen = toolset_registry(caller.toolsets).names() + (["cypher_read"] if "admin" in caller.toolsets else [])
            tools = [tool for tool in tools if tool.name in chosen]
        return ToolRegistry(tools)

    def _references(self, caller: McpCaller | None) -> dict[str, ReferenceTool]:
        if caller is not None and caller.toolsets is not None and "core" not in caller.toolsets:
            return {}
        return self._reference

    async def _list_tools(self, ctx: ServerRequestContext, params: types.PaginatedRequestParams | None
                          ) -> types.ListToolsResult:
        try:
            caller = self.caller(ctx)
        except CallerRefused:
            caller = None
        return types.ListToolsResult(tools=self.tools(caller))

    # -- tools/call -------------------------------------------------------------------------------------
    async def _call_tool(self, ctx: ServerRequestContext, params: types.CallToolRequestParams) -> types.CallToolResult:
        try:
            caller = self.caller(ctx)
        except CallerRefused as refused:
            return _error(str(refused))
        # The graph and the embedder are synchronous: off the event loop, one worker thread per call.
        return await anyio.to_thread.run_sync(self.call, caller, params.name, params.arguments or {})

    def call(self, caller: McpCaller, name: str, arguments: Mapping[str, Any]) -> types.CallToolResult:
        """Run one tool for `caller`; every failure a client can act on is an `is_error` result."""
        with actor(key_id=caller.key_id, operation=name, agent=caller.agent):
            return self._call(caller, name, arguments)

    def _call(self, caller: McpCaller, name: str, arguments: Mapping[str, Any]) -> types.CallToolResult:
        own = self._own(caller)
        references = self._references(caller)
        reference = references.get(name)
        tool = own.get(name)
        if reference is None and tool is None:
            if name in self.cypher:
                return _error(f"{name} reads every space, so it needs an API key with the 'cypher' scope bound to "
                              "all spaces ('*'), or `kgmem mcp --cypher`")
            return _error(f"Unknown tool {name!r}. The tools are: {', '.join([*references, *own.names()])}.")
        read_only = reference.read_only if reference else tool.read_only
        if not read_only and not caller.can_write:
            return _error(f"{name} writes to the graph, and this API key lacks the 'write' scope")
        try:
            space = self.memory().space(caller.space)
        except KgmemError as exc:  # the service could not open: Neo4j or Chroma down, most likely
            return _error(describe_error(name, exc))
        provenance = Provenance(source="mcp", agent=caller.agent)
        if reference is not None:
            return self._call_reference(reference, space, provenance, arguments)
        executor = ToolExecutor(own, ToolContext(space, provenance, extras=dict(self.extras())))
        outcome = executor.run(name, dict(arguments))
        return types.CallToolResult(content=[types.TextContent(text=outcome.content)], is_error=outcome.is_error)

    def _call_reference(self, tool: ReferenceTool, space: SpaceMemory, provenance: Provenance,
                        arguments: Mapping[str, Any]) -> types.CallToolResult:
        try:
            args = tool.args.model_validate(dict(arguments))
            shown, structured = tool.run(McpMemory(space.graph, provenance=provenance), args)
        except ValidationError as exc:
            return _error(describe_invalid_input(tool.name, tool.input_schema, exc))
        except KgmemError as exc:
            # The reference server's errors are the message alone; only a dependency being down says to retry.
            return _error(describe_error(tool.name, exc) if isinstance(exc, Unavailable) else str(exc))
        return types.CallToolResult(content=[types.TextContent(text=_text(shown))],
                                    structured_content=structured.model_dump(mode="json", by_alias=True))

    # -- transports ---------------------------------------------------------------------------------------
    async def serve_stdio(self) -> None:
        from mcp.server.stdio import stdio_server

        async with stdio_server() as (read, write):
            await self.server.run(read, write, self.server.create_initialization_options())

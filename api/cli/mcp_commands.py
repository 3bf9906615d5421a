"""`kgmem mcp`: the MCP server over stdio, for Claude Desktop, Claude Code and other MCP clients."""

from __future__ import annotations

from typing import Annotated

import anyio
import typer

from agents.mcp_server import KgmemMcp, McpCaller
from agents.toolsets import parse_toolsets
from api.cli.context import cli_services
from graph.store import check_space


def register(app: typer.Typer) -> None:
    app.command()(mcp)


def mcp(
    space: Annotated[str, typer.Option("--space", "-s", envvar="KGMEM_MCP_SPACE",
                                       help="The space (tenant) every tool reads and writes.")] = "default",
    agent: Annotated[str | None, typer.Option("--agent", envvar="KGMEM_MCP_AGENT",
                                              help="The agent name stamped on what the tools write.")] = None,
    cypher: Annotated[bool, typer.Option("--cypher", help="Also offer cypher_read, read-only Cypher over the whole "
                                                         "graph (every space).")] = False,
    tools: Annotated[str, typer.Option("--tools", envvar="KGMEM_MCP_TOOLS", help=(
        "The toolsets to offer, comma-separated: core (the reference server's nine tools and recall), "
        "delegation (brief, outcome), team, graph, memories, ml, admin; or all. Fewer tools, fewer tokens "
        "in every prompt: docs/mcp.md lists each set's cost."))] = "all",
) -> None:
    """Serve kgmem over MCP on standard input and output.

    Offers the nine tools of the reference MCP memory server (create_entities, read_graph, search_nodes, ...) with the same names and fields, and kgmem's own tools (recall, briefs, outcomes, ML memory). Point an MCP client at `kgmem mcp --space NAME`; docs/mcp.md has the configuration for Claude Desktop and Claude Code. Logs go to standard error; standard output carries only the protocol."""
    check_space(space)
    try:
        toolsets = parse_toolsets(tools)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--tools") from exc
    with cli_services() as services:
        service = services.memory()
        # With a key, record_outcome(extract=true) has Claude extract lessons from the summary.
        extractor = services.extractor()
        extras = {"extractor": extractor} if extractor else {}
        server = KgmemMcp(lambda: service, lambda ctx: McpCaller(space=space, agent=agent, can_cypher=cypher),
                          toolsets=toolsets, extras=extras, version=_version())
        anyio.run(server.serve_stdio)


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("kgmem")
    except metadata.PackageNotFoundError:
        return "0.0.0"

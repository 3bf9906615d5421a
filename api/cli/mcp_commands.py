"""`kgmem mcp`: the MCP server over stdio, for Claude Desktop, Claude Code and other MCP clients."""

from __future__ import annotations

import os
from typing import Annotated

import anyio
import typer

from agents.mcp_server import KgmemMcp, McpCaller
from api.cli.context import graph_driver
from graph.store import check_space
from memory.extraction import ClaudeExtractor
from memory.service import MemoryService


def register(app: typer.Typer) -> None:
    app.command()(mcp)


def mcp(
    space: Annotated[str, typer.Option("--space", "-s", envvar="KGMEM_MCP_SPACE",
                                       help="The space (tenant) every tool reads and writes.")] = "default",
    agent: Annotated[str | None, typer.Option("--agent", envvar="KGMEM_MCP_AGENT",
                                              help="The agent name stamped on what the tools write.")] = None,
    cypher: Annotated[bool, typer.Option("--cypher", help="Also offer cypher_read, read-only Cypher over the whole "
                                                         "graph (every space).")] = False,
) -> None:
    """Serve kgmem over MCP on standard input and output.

    Offers the nine tools of the reference MCP memory server (create_entities, read_graph, search_nodes, ...) with the same names and fields, and kgmem's own tools (recall, briefs, outcomes, ML memory). Point an MCP client at `kgmem mcp --space NAME`; docs/mcp.md has the configuration for Claude Desktop and Claude Code. Logs go to standard error; standard output carries only the protocol."""
    check_space(space)
    with graph_driver() as (driver, settings):
        service = MemoryService.open(settings, driver)
        # With a key, record_outcome(extract=true) has Claude extract lessons from the summary.
        extras = {"extractor": ClaudeExtractor()} if os.environ.get("ANTHROPIC_API_KEY") else {}
        server = KgmemMcp(lambda: service, lambda ctx: McpCaller(space=space, agent=agent, can_cypher=cypher),
                          extras=extras, version=_version())
        anyio.run(server.serve_stdio)


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("kgmem")
    except metadata.PackageNotFoundError:
        return "0.0.0"

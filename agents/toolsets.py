"""Every kgmem tool, grouped into toolsets an agent loads only as it needs them.

Each tool's schema sits in the model's context on every turn, so an agent that briefs and
records outcomes need not carry the ML or graph-editing tools. `registry(["core", "delegation"])`
is the nine reference memory tools (on MCP) plus recall, brief and outcome; `registry()` is all
of them. docs/mcp.md lists what each set costs in tokens.
"""

from __future__ import annotations

from collections.abc import Iterable

from agents import delegation_tools, graph_tools, ml_tools
from agents.tools import Tool, ToolRegistry

# On MCP, "core" also carries the reference memory server's nine tools, and "admin" cypher_read
# for callers trusted with every space (agents/mcp_server.py).
TOOLSETS: dict[str, tuple[str, ...]] = {
    "core": ("recall",),
    "delegation": ("brief_delegation", "record_outcome"),
    "team": ("delegation_status", "agent_track_record", "memory_feedback"),
    "graph": ("search_entities", "entity_neighbourhood", "entity_history", "upsert_entities", "record_observations",
              "record_relations", "retract_observations", "retract_entity"),
    "memories": ("remember", "search_memories"),
    "ml": ("record_experiment", "record_model", "record_model_version", "set_model_stage",
           "record_feature_importance", "record_drift", "best_model", "hyperparameters_for_task", "stable_features",
           "model_lineage", "diff_model_versions"),
    "admin": ("run_report",),
}


def all_tools() -> list[Tool]:
    """Every tool, in the order Claude sees them."""
    return [*graph_tools.TOOLS, *delegation_tools.TOOLS, *ml_tools.TOOLS]


def parse_toolsets(text: str | Iterable[str] | None) -> list[str]:
    """`"core,delegation"` (or a list) as toolset names; None or "all" is every set. Unknown names are an error."""
    if text is None:
        return list(TOOLSETS)
    names = [part.strip() for part in (text.split(",") if isinstance(text, str) else text) if part.strip()]
    if names == ["all"]:
        return list(TOOLSETS)
    unknown = [name for name in names if name not in TOOLSETS]
    if unknown or not names:
        raise ValueError(f"unknown toolset {', '.join(unknown) or '(none given)'}: choose from "
                         f"{', '.join(TOOLSETS)} (comma-separated), or all")
    return names


def registry(toolsets: str | Iterable[str] | None = None) -> ToolRegistry:
    """The tools of these toolsets (every tool by default), in Claude's order."""
    wanted = {name for toolset in parse_toolsets(toolsets) for name in TOOLSETS[toolset]}
    return ToolRegistry(tool for tool in all_tools() if tool.name in wanted)


def default_registry() -> ToolRegistry:
    return registry()


CHARS_PER_TOKEN = 3.5  # JSON Schema is denser than prose (about 4): leaning high keeps this a ceiling


def estimated_tokens(definitions: Iterable[dict]) -> int:
    """What tool definitions cost in a prompt, estimated from their JSON (no network call)."""
    import json

    return round(sum(len(json.dumps(d, separators=(",", ":"))) for d in definitions) / CHARS_PER_TOKEN)

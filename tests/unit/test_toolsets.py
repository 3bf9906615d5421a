"""Toolsets: every tool in exactly one set, the sets chosen by name, and docs/mcp.md's cost table true."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agents.mcp_server import REFERENCE_TOOLS, KgmemMcp, McpCaller
from agents.toolsets import TOOLSETS, all_tools, estimated_tokens, parse_toolsets, registry

DOC = (Path(__file__).resolve().parents[2] / "docs" / "mcp.md").read_text()
REFERENCE = [{"name": t.name, "description": t.description, "input_schema": t.input_schema} for t in REFERENCE_TOOLS]


def cost(toolsets: list[str]) -> int:
    return estimated_tokens([t.definition() for t in registry(toolsets)] + (REFERENCE if "core" in toolsets else []))


def test_every_tool_is_in_exactly_one_toolset():
    listed = [name for names in TOOLSETS.values() for name in names]
    assert sorted(listed) == sorted(tool.name for tool in all_tools())


def test_toolsets_are_chosen_by_name_and_a_wrong_name_says_which_exist():
    assert registry("core,delegation").names() == ["recall", "brief_delegation", "record_outcome"]
    assert parse_toolsets("all") == list(TOOLSETS)
    with pytest.raises(ValueError, match="choose from core, delegation"):
        parse_toolsets("core,bogus")


def test_the_mcp_server_lists_the_reference_tools_with_core_only():
    server = KgmemMcp(lambda: None, lambda ctx: None, toolsets="core,delegation")
    names = [tool.name for tool in server.tools(McpCaller(space="x", can_cypher=True))]
    assert names == [t.name for t in REFERENCE_TOOLS] + ["recall", "brief_delegation", "record_outcome"]
    ml_only = KgmemMcp(lambda: None, lambda ctx: None, toolsets="ml")
    assert all(not name.startswith(("create_", "read_graph")) for name in (t.name for t in ml_only.tools()))
    narrowed = McpCaller(space="x", toolsets=("delegation",))
    everything = KgmemMcp(lambda: None, lambda ctx: None)
    assert [t.name for t in everything.tools(narrowed)] == ["brief_delegation", "record_outcome"]


@pytest.mark.parametrize("toolset", [*TOOLSETS, "all"])
def test_the_documented_cost_of_each_toolset_is_current(toolset):
    row = re.search(rf"^\| `{toolset}`[^|]*\|[^|]*\| (\d+) \|$", DOC, re.MULTILINE)
    assert row, f"docs/mcp.md has no row for {toolset}"
    assert int(row.group(1)) == cost(parse_toolsets(toolset))


def test_the_documented_cost_of_core_and_delegation_is_current():
    assert f"`core,delegation` costs about {cost(['core', 'delegation'])} tokens" in DOC

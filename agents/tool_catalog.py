"""Every kgmem tool, in the order Claude sees them."""

from __future__ import annotations

from agents import delegation_tools, graph_tools, ml_tools
from agents.tools import Tool


def all_tools() -> list[Tool]:
    return [*graph_tools.TOOLS, *delegation_tools.TOOLS, *ml_tools.TOOLS]

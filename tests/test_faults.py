"""kgmem under faults, against real servers: a Neo4j of the test's own, stopped and started again.

Each test is bounded in time: a fault must turn into a quick, clear answer, never a hang.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.mcp_server import KgmemMcp, McpCaller
from agents.tools import ToolContext, ToolExecutor
from agents.toolsets import default_registry
from api.services import open_services
from graph import Settings
from graph.neo4j_server import LocalNeo4j
from graph.neo4j_server.server import free_port


@pytest.fixture(scope="module")
def own_neo4j() -> Iterator[LocalNeo4j]:
    """A managed Neo4j that these tests may stop and start without touching the suite's."""
    home = Path(tempfile.mkdtemp(prefix="kgmem-faults-"))
    local = LocalNeo4j(Settings(home=home, neo4j_bolt_port=free_port(), neo4j_http_port=free_port(),
                                neo4j_pick_free_port=True), show_progress=False)
    local.start()
    yield local
    if local.running():
        local.stop()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def services(own_neo4j, embedder, tmp_path):
    settings = own_neo4j.settings.model_copy(update={"chroma_path": tmp_path / "chroma", "neo4j_retry_s": 2.0})
    opened = open_services(settings, embedder=embedder)
    yield opened
    opened.close()


@pytest.mark.timeout(240)
def test_mcp_and_claude_tools_report_a_stopped_neo4j_as_unavailable(own_neo4j, services):
    memory = services.memory()
    executor = ToolExecutor(default_registry(), ToolContext(memory.space("faults")))
    server = KgmemMcp(lambda: memory, lambda ctx: McpCaller(space="faults"))
    assert not executor.run("recall", {"text": "anything about churn?"}).is_error  # up: it answers

    own_neo4j.stop()
    try:
        started = time.monotonic()
        outcome = executor.run("recall", {"text": "anything about churn?"})
        assert outcome.is_error and "recall is unavailable right now" in outcome.content
        assert "retry the same call in a few seconds" in outcome.content
        for name, arguments in (("search_nodes", {"query": "churn"}), ("brief_delegation", {"task": "Retrain it"})):
            result = server.call(McpCaller(space="faults"), name, arguments)
            text = result.content[0].text
            assert result.is_error and f"{name} is unavailable right now" in text and "Neo4j" in text
        assert time.monotonic() - started < 30  # the driver's short retry window once, then the breaker
    finally:
        own_neo4j.start()

    # Back up: the same objects answer again once the breaker's probe finds Neo4j.
    deadline = time.monotonic() + 30
    while executor.run("recall", {"text": "anything about churn?"}).is_error:
        assert time.monotonic() < deadline, "the tools did not recover after Neo4j came back"
        time.sleep(0.5)

"""The example orchestrator end to end on the fake Anthropic transport, over real Neo4j and Chroma:
the lead briefs, delegates to a simulated specialist (a second Claude call) and records the outcome,
and all of it lands in the graph. Then `kgmem agent run` itself, against a local HTTP server that
answers for Anthropic."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx2
import pytest

from agents.briefs import BriefRequest
from agents.delegations import Delegations
from agents.orchestrator import LEAD_TOOLS, Orchestrator
from cli_helpers import KGMEM, assert_one_error_line
from fakes import FakeAnthropicTransport
from graph.vocabulary import Kind
from memory.service import MemoryService
from memory.vectors import open_chroma

TASK = "Train a churn model on the telco customer table"
REPORT = ("Status: succeeded. I trained gradient-boosted trees on customers-2025 and reached AUC 0.86 on the "
          "hold-out month. Artifact: churn-model v1. Next time, drop the account_closed column first: it leaks "
          "the label.")
LESSON = "Drop account_closed before training churn models: it leaks the label"


@pytest.fixture
def memory(settings, gateway, embedder, space):
    return MemoryService.open(settings, gateway, embedder=embedder, chroma=open_chroma(settings)).space(space)


def tool_result_of(body: dict) -> dict:
    """The JSON of the first tool_result in the request's last (user) message."""
    block = body["messages"][-1]["content"][0]
    assert block["type"] == "tool_result" and not block.get("is_error"), block
    return json.loads(block["content"])


def then_call(fake: FakeAnthropicTransport, name: str, make_input) -> None:
    """A lead turn that calls `name` with input built from the request it answers (as Claude reads the last
    tool result before its next call)."""

    def reply(request: httpx2.Request, body: dict) -> httpx2.Response:
        return httpx2.Response(200, json={
            "id": f"msg_{name}", "type": "message", "role": "assistant", "model": body["model"],
            "content": [{"type": "tool_use", "id": f"toolu_{name}_{len(body['messages'])}", "name": name,
                         "input": make_input(body)}],
            "stop_reason": "tool_use", "stop_sequence": None, "usage": {"input_tokens": 500, "output_tokens": 80}})

    fake.reply(reply)


def script_one_delegation(fake: FakeAnthropicTransport) -> None:
    fake.tool_use({"task": TASK, "project": "Churn", "agent_role": "data-scientist", "budget_tokens": 600},
                  name="brief_delegation")
    # A first attempt with a misnamed field: the error result tells the lead what to fix.
    then_call(fake, "delegate_to_agent", lambda body: {
        "delegation_id": tool_result_of(body)["delegation_id"], "agent": "ds-1", "task": TASK})
    then_call(fake, "delegate_to_agent", lambda body: {
        "delegation_id": json.loads(fake.requests[1].messages[-1]["content"][0]["content"])["delegation_id"],
        "agent": "ds-1", "role": "data-scientist", "instructions": f"{TASK}. Report AUC on the hold-out month."})
    fake.text(REPORT)  # the specialist: a second Claude call
    then_call(fake, "record_outcome", lambda body: {
        "delegation_id": tool_result_of(body)["delegation_id"], "status": "succeeded", "agent": "ds-1",
        "summary": "ds-1 trained churn-model v1 (gradient-boosted trees) with AUC 0.86 on the hold-out month.",
        "metrics": {"auc": 0.86}, "duration_s": 1800,
        "artifacts": [{"kind": "model_version", "name": "churn-model v1", "model": "churn-model",
                       "metrics": {"auc": 0.86}}],
        "lessons": [{"text": LESSON, "severity": "high", "category": "data-quality"}]})
    fake.text("Done: ds-1 trained churn-model v1 (AUC 0.86). Lesson recorded: drop account_closed before training.")


def test_the_orchestrator_briefs_delegates_and_records_through_tools(memory, space):
    fake = FakeAnthropicTransport()
    script_one_delegation(fake)
    seen: list[tuple[str, bool]] = []
    result = Orchestrator(fake.client(), memory, max_turns=10,
                          on_tool=lambda name, _, outcome: seen.append((name, outcome.is_error))).run(
        TASK, project="Churn")

    assert result.finished and result.turns == 5 and fake.remaining == 0
    assert result.text.startswith("Done: ds-1 trained churn-model v1")
    assert result.tool_calls == ["brief_delegation", "delegate_to_agent", "delegate_to_agent", "record_outcome"]
    assert seen == [("brief_delegation", False), ("delegate_to_agent", True), ("delegate_to_agent", False),
                    ("record_outcome", False)]

    lead = fake.requests[0].body
    assert [tool["name"] for tool in lead["tools"]] == [*LEAD_TOOLS, "delegate_to_agent"]
    assert "brief_delegation" in lead["system"] and lead["messages"][0]["content"] == f"Task: {TASK}\nProject: Churn"
    fixed = fake.requests[2].messages[-1]["content"][0]
    assert fixed["is_error"] is True and "- task: Extra inputs are not permitted" in fixed["content"]
    assert "- instructions: Field required" in fixed["content"]
    specialist = fake.requests[3].body
    assert specialist["system"].startswith("You are ds-1, a data-scientist on a data and AI team.")
    assert specialist["messages"] == [{"role": "user", "content": f"{TASK}. Report AUC on the hold-out month."}]
    assert "tools" not in specialist
    assert tool_result_of(fake.requests[4].body)["report"] == REPORT

    # The graph: the delegation, assigned to ds-1, succeeded, with its lesson and artifact.
    lifecycle = Delegations(memory)
    delegation_id = tool_result_of(fake.requests[1].body)["delegation_id"]
    state = lifecycle.get(delegation_id)
    assert (state.status, state.agent, state.project, state.metrics) == ("succeeded", "ds-1", "Churn", {"auc": 0.86})
    assert [lesson.text for lesson in state.lessons] == [LESSON]
    assert [(a.kind, a.name, a.relation) for a in state.artifacts] == [("ModelVersion", "churn-model v1", "PRODUCED")]
    record = lifecycle.track_record("ds-1")
    assert (record.succeeded, record.failed, record.open) == (1, 0, 0)
    assert memory.graph.find_by_name("ds-1", kind=Kind.AGENT)

    # What was learned reaches the next brief.
    nxt = lifecycle.brief(BriefRequest(task="Retrain the churn model on the new month", project="Churn"))
    assert nxt.lessons and nxt.lessons[0].text == LESSON
    assert nxt.recommended_agents[0].agent == "ds-1"


def test_max_turns_stops_a_lead_that_never_finishes(memory):
    fake = FakeAnthropicTransport()
    fake.tool_use({"text": "churn"}, name="recall", times=3)
    result = Orchestrator(fake.client(), memory, max_turns=2).run("Loop forever")
    assert (result.finished, result.turns, result.tool_calls) == (False, 2, ["recall", "recall"])
    assert fake.remaining == 1


def test_delegating_without_a_brief_is_an_error_the_lead_sees(memory):
    fake = FakeAnthropicTransport()
    fake.tool_use({"delegation_id": "never-briefed", "agent": "ds-1", "instructions": "do it"}, name="delegate_to_agent")
    fake.text("I will brief it first next time.")
    result = Orchestrator(fake.client(), memory, max_turns=5).run("Anything")
    answer = fake.requests[1].messages[-1]["content"][0]
    assert answer["is_error"] is True
    assert answer["content"] == ("delegate_to_agent failed: no delegation 'never-briefed' in this space; "
                                 "call brief_delegation first and pass the delegation_id it returns")
    assert result.finished and len(fake.requests) == 2  # no specialist was called


# -- the command ----------------------------------------------------------------------------------

class FakeAnthropicServer:
    """The fake transport behind a real HTTP server, for a `kgmem` process to reach via ANTHROPIC_BASE_URL."""

    def __init__(self, fake: FakeAnthropicTransport) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                request = httpx2.Request("POST", f"http://fake{self.path}", headers=dict(self.headers), content=body)
                response = owner.fake.handle(request)
                payload = response.content
                self.send_response(response.status_code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.fake = fake
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def cli_env(neo4j_server, settings, **extra: str) -> dict[str, str]:
    env = {**os.environ, "NEO4J_URI": neo4j_server.uri, "NEO4J_USERNAME": neo4j_server.username,
           "NEO4J_PASSWORD": neo4j_server.password, "NEO4J_DATABASE": neo4j_server.database,
           "KGMEM_HOME": str(settings.home), "KGMEM_CHROMA_PATH": str(settings.chroma_dir), **extra}
    env.pop("ANTHROPIC_API_KEY", None)
    env.pop("ANTHROPIC_AUTH_TOKEN", None)
    return {**env, **extra}


def test_kgmem_agent_run_without_a_key_is_one_clear_line(neo4j_server, settings):
    result = subprocess.run([KGMEM, "agent", "run", TASK], capture_output=True, text=True, timeout=120,
                            env=cli_env(neo4j_server, settings))
    assert assert_one_error_line(result) == "error: kgmem agent run needs Claude: set ANTHROPIC_API_KEY and run it again"


def test_kgmem_agent_run_end_to_end(neo4j_server, settings, memory, space):
    fake = FakeAnthropicTransport()
    script_one_delegation(fake)
    with FakeAnthropicServer(fake) as base_url:
        result = subprocess.run(
            [KGMEM, "agent", "run", TASK, "--space", space, "--project", "Churn", "--max-turns", "8"],
            capture_output=True, text=True, timeout=600,
            env=cli_env(neo4j_server, settings, ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=base_url))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().startswith("Done: ds-1 trained churn-model v1")
    assert "✓ brief_delegation" in result.stderr and "✗ delegate_to_agent" in result.stderr
    assert "✓ record_outcome" in result.stderr
    assert fake.requests[0].headers["authorization"] == "Bearer test-key"  # the key from the environment

    delegation_id = tool_result_of(fake.requests[1].body)["delegation_id"]
    state = Delegations(memory).get(delegation_id)
    assert (state.status, state.agent) == ("succeeded", "ds-1")
    assert [lesson.text for lesson in state.lessons] == [LESSON]

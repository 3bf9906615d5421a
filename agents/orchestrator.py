"""An example orchestrator: Claude leads a team of (simulated) specialist agents, kgmem remembers.

    result = Orchestrator(anthropic.Anthropic(), memory.space("acme")).run("Build a churn model", project="Churn")

The lead is Claude in the SDK's tool runner, with kgmem's tools. For each piece of work it
calls `brief_delegation` (what the team knows, which agent to pick, the delegation's id),
then `delegate_to_agent`, then `record_outcome` with what came back and what was learned.
`delegate_to_agent` marks the delegation running for the chosen agent and hands the work to
a `Specialist`: by default `ClaudeSpecialist`, a second Claude call playing that agent, with
the lead's instructions (which carry the brief) as its prompt. Any object with `perform`
can stand in for it, such as a client for real agents.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import anthropic
from pydantic import Field

from agents import delegation_tools
from agents.graph_tools import ToolInput
from agents.outcomes import OutcomeRequest
from agents.tools import Tool, ToolContext, ToolExecutor, ToolOutcome, ToolRegistry
from agents.toolsets import default_registry
from graph.errors import KgmemError, NotFound
from graph.model import Name, Provenance
from memory.service import SpaceMemory

DEFAULT_MODEL = "claude-sonnet-4-5"
DEFAULT_MAX_TURNS = 20
LEAD_TOOLS = (
    "recall", "search_entities", "entity_neighbourhood", "brief_delegation", "record_outcome", "delegation_status",
    "agent_track_record", "best_model", "hyperparameters_for_task",
)

LEAD_PROMPT = """You are the lead orchestrator of a team of specialist AI agents (data scientists, ML engineers, \
data engineers, analysts) working on data and AI projects. kgmem is the team's shared memory. Use it around \
every delegation:

1. Plan: split the user's task into at most {max_delegations} pieces of work that one specialist can do. \
Use recall first when you need context.
2. Brief: before handing off a piece, call brief_delegation with the task, the project and the agent_role \
you need. Read its recommended agents, lessons and risks.
3. Delegate: call delegate_to_agent with the delegation_id the brief returned, the agent you choose (prefer a \
recommended agent with a good record; when none is recommended, name a new one such as ds-1 or mle-1) and \
instructions that carry the lessons and risks that apply.
4. Record: when the report comes back, call record_outcome with that delegation_id, the agent, status \
succeeded or failed (judge from the report), a summary, the metrics and artifacts it reports, lessons that \
should change future work (only real ones), and the ids of briefed memories that helped (helpful) or \
misled (unhelpful).
5. Finish with a short answer to the user: what was done, by whom, and what the team learned.

Never delegate without a brief, and never leave a delegation without its outcome."""

SPECIALIST_PROMPT = """You are {agent}, a {role} on a data and AI team. This is a simulation: you cannot run \
code, so reason about the work and describe it as a concrete, plausible report of what you did and found. \
Follow the instructions, and the lessons in them. End with a short report: status (succeeded or failed), \
what you did, results with metrics, artifacts you produced (models, versions, experiments, datasets), and \
anything the team should do differently next time."""


class OrchestratorFailed(KgmemError):
    """Claude could not be reached or refused the request; the message says why, in one line."""


class SpecialistFailed(KgmemError):
    """The specialist could not do the work (its model could not be reached, ...)."""


# -- specialists ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Assignment:
    delegation_id: str
    agent: str
    role: str | None
    instructions: str


class Specialist(Protocol):
    def perform(self, assignment: Assignment) -> str:
        """Do the work; return the report (plain text)."""


class ClaudeSpecialist:
    """A simulated specialist: one Claude call playing the agent, with the lead's instructions."""

    def __init__(self, client: anthropic.Anthropic, *, model: str = DEFAULT_MODEL, max_tokens: int = 2048) -> None:
        self.client = client
        self.model = model
        self.max_tokens = max_tokens

    def perform(self, assignment: Assignment) -> str:
        try:
            response = self.client.messages.create(
                model=self.model, max_tokens=self.max_tokens,
                system=SPECIALIST_PROMPT.format(agent=assignment.agent, role=assignment.role or "specialist"),
                messages=[{"role": "user", "content": assignment.instructions}],
            )
        except anthropic.APIError as exc:
            raise SpecialistFailed(f"{assignment.agent} could not work on it: {api_failure(exc)}") from exc
        report = "".join(block.text for block in response.content if block.type == "text").strip()
        return report or f"{assignment.agent} returned no report."


# -- the delegate tool ---------------------------------------------------------------------------------

class DelegateInput(ToolInput):
    delegation_id: str = Field(min_length=1, max_length=200,
                               description="The delegation_id brief_delegation returned for this piece of work")
    agent: Name = Field(description="The specialist to hand the work to; prefer one the brief recommends")
    role: str | None = Field(default=None, max_length=100, description="The specialist's role, e.g. data-scientist")
    instructions: str = Field(min_length=1, max_length=20_000, description=(
        "Everything the specialist needs: the task, and the lessons and risks from the brief that apply"))


def _delegate(context: ToolContext, params: DelegateInput) -> Any:
    specialist: Specialist | None = context.extra("specialist")
    if specialist is None:
        raise SpecialistFailed("no specialist is available in this run")
    lifecycle = delegation_tools.delegations(context)
    try:
        lifecycle.get(params.delegation_id)
    except NotFound as missing:
        raise NotFound(f"{missing}; call brief_delegation first and pass the delegation_id it returns") from None
    lifecycle.record_outcome(OutcomeRequest(delegation_id=params.delegation_id, status="running", agent=params.agent))
    report = specialist.perform(Assignment(params.delegation_id, params.agent, params.role, params.instructions))
    return {"delegation_id": params.delegation_id, "agent": params.agent, "report": report,
            "next": "Judge the report, then call record_outcome with this delegation_id."}


DELEGATE = Tool(
    name="delegate_to_agent",
    title="Delegate to a specialist",
    description=(
        "Hand one briefed piece of work to a specialist agent and wait for its report. Call brief_delegation first "
        "and pass its delegation_id; the delegation is marked running, assigned to this agent. Returns the "
        "specialist's report; record it with record_outcome."),
    input_model=DelegateInput, handler=_delegate,
)


def lead_registry() -> ToolRegistry:
    return ToolRegistry([*default_registry().only(LEAD_TOOLS), DELEGATE])


# -- the run --------------------------------------------------------------------------------------

@dataclass
class RunResult:
    text: str  # the lead's last words to the user
    finished: bool  # the lead ended its turn; false when max_turns cut it off
    turns: int  # Messages API responses of the lead
    tool_calls: list[str] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0


class Orchestrator:
    def __init__(self, client: anthropic.Anthropic, memory: SpaceMemory, *, model: str = DEFAULT_MODEL,
                 max_turns: int = DEFAULT_MAX_TURNS, max_tokens: int = 4096, max_delegations: int = 3,
                 specialist: Specialist | None = None, extractor: Any = None, lead_name: str = "lead",
                 on_message: Callable[[Any], None] | None = None,
                 on_tool: Callable[[str, Any, ToolOutcome], None] | None = None) -> None:
        if max_turns < 1:
            raise ValueError("max_turns must be at least 1")
        self.client = client
        self.memory = memory
        self.model = model
        self.max_turns = max_turns
        self.max_tokens = max_tokens
        self.max_delegations = max_delegations
        self.specialist = specialist or ClaudeSpecialist(client, model=model)
        self.extractor = extractor
        self.lead_name = lead_name
        self.on_message = on_message
        self.on_tool = on_tool

    def run(self, task: str, *, project: str | None = None) -> RunResult:
        context = ToolContext(self.memory, Provenance(source="orchestrator", agent=self.lead_name),
                              extras={"specialist": self.specialist, "extractor": self.extractor})
        executor = ToolExecutor(lead_registry(), context, observer=self.on_tool)
        prompt = f"Task: {task}" + (f"\nProject: {project}" if project else "")
        runner = self.client.beta.messages.tool_runner(
            model=self.model, max_tokens=self.max_tokens, max_iterations=self.max_turns,
            system=LEAD_PROMPT.format(max_delegations=self.max_delegations),
            tools=executor.runner_tools(), messages=[{"role": "user", "content": prompt}],
        )
        result = RunResult(text="", finished=False, turns=0)
        last = None
        try:
            for message in runner:
                last = message
                result.turns += 1
                result.input_tokens += message.usage.input_tokens
                result.output_tokens += message.usage.output_tokens
                result.tool_calls += [block.name for block in message.content if block.type == "tool_use"]
                if self.on_message is not None:
                    self.on_message(message)
        except anthropic.APIError as exc:
            raise OrchestratorFailed(f"the lead could not continue: {api_failure(exc)}") from exc
        if last is not None:
            result.text = "".join(block.text for block in last.content if block.type == "text").strip()
            result.finished = last.stop_reason == "end_turn"
        return result


def api_failure(exc: anthropic.APIError) -> str:
    """An Anthropic API error in one line."""
    if isinstance(exc, anthropic.APIStatusError):
        detail = " ".join(str(exc.message).split())
        return f"Anthropic API returned {exc.status_code}: {detail[:300]}"
    if isinstance(exc, anthropic.APIConnectionError):
        return "cannot reach the Anthropic API"
    return " ".join(str(exc).split())[:300]

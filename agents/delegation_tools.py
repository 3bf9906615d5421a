"""The delegation lifecycle (agents/delegations.py) as Claude tools: a brief before each delegation,
an outcome after it, with feedback on the briefed memories, and agents' track records.

The inputs are the lifecycle's own request models, with unknown fields refused. An outcome's
summary is sent to Claude extraction only when the tool context carries an extractor
(`extras["extractor"]`, a ClaudeExtractor) and the call asks for it.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from agents.briefs import Brief, BriefRequest, DelegationId
from agents.delegations import Delegations
from agents.graph_tools import ToolInput
from agents.ml_tools import tool_input
from agents.outcomes import OutcomeRecord, OutcomeRequest
from agents.tools import Tool, ToolContext
from graph.model import Name


def delegations(context: ToolContext) -> Delegations:
    return context.cached("delegations", lambda: Delegations(context.memory, extractor=context.extra("extractor")))


def brief_view(brief: Brief) -> dict[str, Any]:
    """What Claude needs from a brief: the markdown (within the budget), and the ids to give feedback on."""
    return {
        "delegation_id": brief.delegation_id,
        "created": brief.created,
        "status": brief.status,
        "project": brief.project,
        "markdown": brief.markdown,
        "recommended_agents": [
            {"agent": a.agent, "role": a.role, "success_rate": a.success_rate, "similar_tasks": a.similar_tasks,
             "load": a.load} for a in brief.recommended_agents],
        "lessons": [{"id": lesson.id, "text": lesson.text, "severity": lesson.severity} for lesson in brief.lessons],
        "shown_ids": brief.shown_ids,
    }


def outcome_view(record: OutcomeRecord) -> dict[str, Any]:
    state = record.delegation
    view: dict[str, Any] = {
        "delegation_id": state.delegation_id, "status": state.status, "agent": state.agent,
        "changed": record.changed, "lessons": [lesson.text for lesson in state.lessons],
        "artifacts": [f"{a.relation} {a.kind} {a.name}" for a in state.artifacts],
    }
    if record.agent_record is not None:
        agent = record.agent_record
        view["agent_record"] = {"agent": agent.agent, "succeeded": agent.succeeded, "failed": agent.failed,
                                "success_rate": agent.success_rate, "open": agent.open}
    if record.extraction is not None and record.extraction.status != "not_requested":
        view["extraction"] = {"status": record.extraction.status, "detail": record.extraction.detail,
                              "lessons": record.extraction.lessons}
    return view


BRIEF = Tool(
    name="brief_delegation",
    title="Brief a delegation",
    description=(
        "Call this BEFORE handing a task to a specialist agent. Returns what the team's memory knows that bears on "
        "the task: recommended agents with their success rate on similar tasks and current load, lessons to apply "
        "(with their ids), similar past delegations and how they ended, relevant models, experiments and datasets, "
        "open incidents and risks; as markdown within budget_tokens to paste into the specialist's instructions. "
        "It also records the delegation as planned and returns its delegation_id, which record_outcome needs. "
        "Briefing the same delegation_id again returns the same delegation."),
    input_model=tool_input(BriefRequest),
    handler=lambda context, params: brief_view(delegations(context).brief(params)),
    idempotent=True,
)

RECORD_OUTCOME = Tool(
    name="record_outcome",
    title="Record a delegation's outcome",
    description=(
        "Call this AFTER a delegation ends (or with status running for progress). Records the status, a summary, "
        "metrics, the artifacts it produced or used, the lessons learned (instructions for future work), who did "
        "it, how long it took and what it cost, and which memories shown in the brief helped (helpful) or misled "
        "(unhelpful): later briefs rank those up or down. The agent's track record follows. Repeating the same "
        "outcome changes nothing."),
    input_model=tool_input(OutcomeRequest),
    handler=lambda context, params: outcome_view(delegations(context).record_outcome(params)),
    idempotent=True,
)


class DelegationStatusInput(ToolInput):
    delegation_id: DelegationId = Field(description="The id brief_delegation returned")


DELEGATION_STATUS = Tool(
    name="delegation_status",
    title="A delegation's state",
    description=(
        "The current state of one delegation: task, project, status, assignee, times, cost, metrics, the latest "
        "outcome summary, its lessons and artifacts, and the feedback given on its brief."),
    input_model=DelegationStatusInput,
    handler=lambda context, params: delegations(context).get(params.delegation_id),
    read_only=True, idempotent=True,
)


class TrackRecordInput(ToolInput):
    agent: Name = Field(description="The agent's name")


AGENT_TRACK_RECORD = Tool(
    name="agent_track_record",
    title="An agent's track record",
    description=(
        "An agent's record over every delegation assigned to it: succeeded, failed, cancelled and open counts, "
        "success rate, last success, mean duration and total cost."),
    input_model=TrackRecordInput,
    handler=lambda context, params: delegations(context).track_record(params.agent),
    read_only=True, idempotent=True,
)

class FeedbackInput(ToolInput):
    ids: list[str] | None = Field(default=None, max_length=200,
                                  description="Only these memory ids; omit for every memory that has feedback")


def _feedback(context: ToolContext, params: FeedbackInput) -> Any:
    net = delegations(context).feedback()
    if params.ids is not None:
        net = {item: net.get(item, 0) for item in params.ids}
    return {"net": net}


MEMORY_FEEDBACK = Tool(
    name="memory_feedback",
    title="Feedback on briefed memories",
    description=(
        "How useful briefed memories have been: per memory id, the times outcomes marked it helpful minus the times "
        "they marked it unhelpful (give feedback with record_outcome's helpful and unhelpful). Briefs and recall "
        "rank memories with positive feedback higher."),
    input_model=FeedbackInput, handler=_feedback, read_only=True, idempotent=True,
)

TOOLS: tuple[Tool, ...] = (BRIEF, RECORD_OUTCOME, DELEGATION_STATUS, AGENT_TRACK_RECORD, MEMORY_FEEDBACK)

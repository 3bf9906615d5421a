"""What an orchestrator asks for before a delegation, what it gets back, and the brief as markdown.

The models are Claude tool schemas too (agents/tools.py builds them from these), so every
field says what it is for and every string and list is bounded.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field

from graph.model import InputModel, require_visible

# Delegation ids are the delegations' names: any text without control characters or outer spaces,
# so delegations planned elsewhere ("Churn: Frame the problem", from a template) can be briefed too.
DELEGATION_ID = re.compile(r"^\S(?:[^\x00-\x1f\x7f]{0,198}\S)?$")
CHARS_PER_TOKEN = 4  # the brief's token estimate: English prose runs about four characters a token


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


DelegationId = Annotated[str, Field(
    pattern=DELEGATION_ID.pattern, max_length=200,
    description="The delegation's id (its name): up to 200 characters, no control characters; matched case-insensitively",
)]
TaskText = Annotated[str, Field(min_length=1, max_length=4000), AfterValidator(require_visible)]


class BriefRequest(InputModel):
    """Ask for a brief before delegating a task; the call also records the delegation as planned."""

    task: TaskText = Field(description="The task about to be delegated, in plain language, as the specialist will get it.")
    project: str | None = Field(
        default=None, min_length=1, max_length=512,
        description="The project the task belongs to, by name or id. A name that is not known yet creates the project.",
    )
    agent_role: str | None = Field(
        default=None, min_length=1, max_length=100,
        description="The kind of specialist wanted, e.g. data-scientist or ml-engineer; agents with this role are preferred.",
    )
    task_type: str | None = Field(
        default=None, min_length=1, max_length=100, description="A short label for the kind of task, e.g. training or eda.",
    )
    budget_tokens: int = Field(
        default=800, ge=100, le=8000, description="The most tokens the markdown brief may take in a prompt.",
    )
    metric: str | None = Field(
        default=None, pattern=r"^[a-z][a-z0-9_]{0,55}$", max_length=56,
        description="The metric that ranks model versions and experiments (e.g. auc, rmse); default: the one most of them report.",
    )
    delegation_id: DelegationId | None = Field(
        default=None, description="Your own id for this delegation. Briefing the same id again returns the same delegation.",
    )
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=200,
        description="A key that makes retries safe: the same key always means the same delegation.",
    )


# -- the brief ----------------------------------------------------------------------------------
class AgentRecommendation(BaseModel):
    agent: str = Field(description="The agent's name")
    agent_id: str
    role: str | None = None
    score: float = Field(description="Ranking score: similarity-weighted success, preferred role, current load")
    similar_tasks: int = Field(description="Similar past delegations assigned to this agent")
    succeeded: int
    failed: int
    success_rate: float | None = Field(description="succeeded / (succeeded + failed) on similar tasks; null if none ended")
    last_success_at: datetime | None = Field(description="When the agent last succeeded at a similar task")
    load: int = Field(description="Delegations currently planned or running for this agent")
    role_match: bool = Field(description="The agent has the requested role")
    evidence: str = Field("", description="What the recommendation rests on, e.g. '4 of 5 similar tasks succeeded'")
    evidence_weight: float = Field(0.0, description=(
        "Finished similar tasks, each weighted by its similarity; below 1 the evidence is thin"))


class LessonSource(BaseModel):
    delegation_id: str
    task: str | None = None
    status: str | None = None
    agent: str | None = None


class BriefLesson(BaseModel):
    id: str = Field(description="The lesson's memory id, for feedback")
    text: str
    score: float
    severity: str | None = None
    category: str | None = None
    learned_from: list[LessonSource] = Field(default_factory=list, description="The delegations it was learned from")
    applies_to: list[str] = Field(default_factory=list, description="Names of what it concerns")
    source: str | None = Field(default=None, description="How it was recorded: outcome, extraction, ...")
    feedback: int = Field(default=0, description="Times marked helpful minus times marked unhelpful")
    reasons: list[str] = Field(default_factory=list, description="Why it is in this brief")


class SimilarDelegation(BaseModel):
    id: str = Field(description="The delegation's memory id, for feedback")
    delegation_id: str
    task: str | None = None
    agent: str | None = None
    status: str | None = None
    project: str | None = None
    similarity: float = Field(description="Cosine similarity of its task or outcome to this task")
    weight: float = Field(1.0, description=(
        "How much it counts as evidence for this task, relative to the most similar delegation (1)"))
    ended_at: datetime | None = None
    failure_cause: str | None = None
    summary: str | None = Field(default=None, description="Its latest outcome summary")


class BriefArtifact(BaseModel):
    id: str = Field(description="The artifact's memory id, for feedback")
    kind: str = Field(description="Model, ModelVersion, Feature, Experiment or Dataset")
    name: str
    summary: str | None = None
    model: str | None = Field(default=None, description="For a model version: its model")
    stage: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)
    score: float
    reasons: list[str] = Field(default_factory=list)


class BriefIncident(BaseModel):
    id: str = Field(description="The incident's memory id, for feedback")
    name: str
    summary: str | None = None
    severity: str | None = None
    status: str | None = None
    opened_at: datetime | None = None
    score: float


class Risk(BaseModel):
    text: str
    source_id: str = Field(description="The memory the risk comes from")
    kind: Literal["failed_delegation", "cancelled_delegation", "open_incident"]


class Brief(BaseModel):
    """Everything the team knows that bears on a task, with the markdown to paste into a prompt."""

    delegation_id: str = Field(description="Pass this to record_outcome when the work ends")
    entity_id: str = Field(description="The delegation's memory id")
    created: bool = Field(description="False when this call returned a delegation briefed before (a retry)")
    status: str
    task: str
    project: str | None = None
    agent_role: str | None = None
    recommended_agents: list[AgentRecommendation] = Field(default_factory=list)
    last_time: list[BriefLesson] = Field(default_factory=list, description=(
        "What the latest failures on similar work taught, newest first; they also lead `lessons`"))
    lessons: list[BriefLesson] = Field(default_factory=list)
    similar_delegations: list[SimilarDelegation] = Field(default_factory=list)
    models: list[BriefArtifact] = Field(default_factory=list)
    model_versions: list[BriefArtifact] = Field(default_factory=list, description="Best by `metric` first")
    features: list[BriefArtifact] = Field(default_factory=list)
    experiments: list[BriefArtifact] = Field(default_factory=list, description="Best by `metric` first")
    datasets: list[BriefArtifact] = Field(default_factory=list)
    incidents: list[BriefIncident] = Field(default_factory=list, description="Open incidents")
    risks: list[Risk] = Field(default_factory=list)
    metric: str | None = Field(default=None, description="The metric versions and experiments are ranked by")
    shown_ids: list[str] = Field(default_factory=list, description="Memory ids this brief showed; feedback may name them")
    markdown: str = ""
    estimated_tokens: int = 0
    budget_tokens: int = 800


# -- markdown -------------------------------------------------------------------------------------
LINE_CHARS = 240


def _clip(text: str, limit: int = LINE_CHARS) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _day(moment: datetime | None) -> str:
    return moment.date().isoformat() if moment else ""


def _number(value: float) -> str:
    return f"{value:.4g}"


def _agent_line(a: AgentRecommendation) -> str:
    role = f" ({a.role})" if a.role else ""
    record = a.evidence or "no similar tasks yet"
    last = f", last success {_day(a.last_success_at)}" if a.last_success_at else ""
    return f"- **{a.agent}**{role}: {record}{last}; {a.load} open now"


def _lesson_line(lesson: BriefLesson) -> str:
    severity = f"[{lesson.severity}] " if lesson.severity else ""
    origin = ""
    if lesson.learned_from:
        source = lesson.learned_from[0]
        how = f", {source.status}" if source.status else ""
        origin = f" (from {source.delegation_id}{how})"
    return f"- {severity}{_clip(lesson.text, 200)}{origin}"


def _similar_line(d: SimilarDelegation) -> str:
    who = f" · {d.agent}" if d.agent else ""
    status = d.status or "unknown"
    detail = d.failure_cause or d.summary
    detail = f": {_clip(detail, 120)}" if detail else ""
    return f"- {_clip(d.task or d.delegation_id, 100)}{who} · **{status}**{detail}"


def _artifact_line(a: BriefArtifact) -> str:
    parts = [a.name]
    if a.stage:
        parts.append(f"stage {a.stage}")
    if a.metrics:
        parts.append(", ".join(f"{k} {_number(v)}" for k, v in sorted(a.metrics.items())[:4]))
    elif a.summary:
        parts.append(_clip(a.summary, 100))
    return f"- {a.kind}: " + " · ".join(parts)


def _incident_line(i: BriefIncident) -> str:
    tags = ", ".join(t for t in (i.severity, i.status) if t)
    tags = f" [{tags}]" if tags else ""
    summary = f": {_clip(i.summary, 120)}" if i.summary else ""
    return f"- {i.name}{tags}{summary}"


def _sections(brief: Brief) -> list[tuple[str, list[str]]]:
    """Headings with their lines, most important section first; each list is best first."""
    artifacts = [*brief.model_versions, *brief.models, *brief.experiments, *brief.features, *brief.datasets]
    pinned = {x.id for x in brief.last_time}
    return [
        ("Last time on similar work", [_lesson_line(x) for x in brief.last_time]),
        ("Lessons", [_lesson_line(x) for x in brief.lessons if x.id not in pinned]),
        ("Recommended agents", [_agent_line(x) for x in brief.recommended_agents]),
        ("Risks", [f"- {_clip(r.text, 200)}" for r in brief.risks]),
        ("Open incidents", [_incident_line(x) for x in brief.incidents]),
        ("Similar past delegations", [_similar_line(x) for x in brief.similar_delegations]),
        ("Models, experiments and data", [_artifact_line(x) for x in artifacts]),
    ]


def _header(brief: Brief) -> str:
    facts = [f"delegation `{brief.delegation_id}`"]
    if brief.project:
        facts.append(f"project {_clip(brief.project, 80)}")
    if brief.agent_role:
        facts.append(f"role {_clip(brief.agent_role, 60)}")
    return f"# Brief: {_clip(brief.task, 160)}\n{' · '.join(facts)}\n"


EMPTY = "\nNothing in memory bears on this task yet: no similar delegations, lessons or artifacts.\n"
NO_ROOM = "\nThe token budget leaves no room for details; the structured brief has them.\n"


def _compose(header: str, sections: list[tuple[str, list[str]]], *, had_items: bool) -> str:
    body = [f"\n## {title}\n" + "\n".join(lines) + "\n" for title, lines in sections if lines]
    if not body:
        body = [NO_ROOM if had_items else EMPTY]
    return header + "".join(body)


def render_markdown(brief: Brief, budget_tokens: int) -> str:
    """The brief as markdown of at most `budget_tokens` (estimated at four characters a token).

    Lines are dropped from the tail of the longest list first (ties: the least important
    section), so every section keeps its best items for as long as possible.
    """
    header = _header(brief)
    sections = [(title, list(lines)) for title, lines in _sections(brief)]
    had_items = any(lines for _, lines in sections)
    text = _compose(header, sections, had_items=had_items)
    while estimate_tokens(text) > budget_tokens and any(lines for _, lines in sections):
        longest = max(len(lines) for _, lines in sections)
        for _, lines in reversed(sections):
            if len(lines) == longest:
                lines.pop()
                break
        text = _compose(header, sections, had_items=had_items)
    limit = budget_tokens * CHARS_PER_TOKEN
    return text if len(text) <= limit else text[: limit - 1] + "…"

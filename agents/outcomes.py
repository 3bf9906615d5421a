"""What an orchestrator reports after a delegation, and what kgmem answers.

Like agents/briefs.py, these models double as Claude tool schemas: described and bounded.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, ValidationError, model_validator

from agents.briefs import DelegationId
from graph.model import MAX_TEXT_CHARS, InputModel, Name, require_visible, validate_attributes
from graph.vocabulary import Kind, OutcomeStatus


ArtifactKind = Literal["model", "model_version", "feature", "experiment", "dataset"]
ARTIFACT_KINDS: dict[str, Kind] = {
    "model": Kind.MODEL, "model_version": Kind.MODEL_VERSION, "feature": Kind.FEATURE,
    "experiment": Kind.EXPERIMENT, "dataset": Kind.DATASET,
}
ARTIFACT_RELATIONS = {"produced": "PRODUCED", "used": "DEPENDS_ON"}

MetricKey = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,55}$", max_length=56, description="e.g. auc, val_loss")]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Scalar = Annotated[str, Field(max_length=1000)] | int | float | bool
MemoryId = Annotated[str, Field(min_length=1, max_length=200)]


class OutcomeArtifact(InputModel):
    """A model, model version, feature, experiment or dataset the delegation produced or used."""

    kind: ArtifactKind = Field(description="What the artifact is")
    name: Name = Field(description="Its name; a model version is usually named '<model> v<version>', e.g. churn-model v3")
    role: Literal["produced", "used"] = Field(
        default="produced", description="produced: the delegation made it (PRODUCED); used: it worked from it (DEPENDS_ON)",
    )
    model: Name | None = Field(default=None, description="For a model_version: the model it is a version of")
    summary: str | None = Field(default=None, max_length=MAX_TEXT_CHARS, description="One or two sentences on what it is")
    metrics: dict[MetricKey, FiniteFloat] = Field(
        default_factory=dict, max_length=30, description="Its scores, e.g. {\"auc\": 0.91}; stored as metric_<name>",
    )
    params: dict[MetricKey, Scalar] = Field(
        default_factory=dict, max_length=50, description="An experiment's parameters; stored as param_<name>",
    )
    attributes: dict[str, Scalar] = Field(
        default_factory=dict, max_length=30, description="Other facts, e.g. {\"stage\": \"staging\", \"rows\": 120000}",
    )

    @model_validator(mode="after")
    def _storable(self) -> OutcomeArtifact:
        if self.model and self.kind != "model_version":
            raise ValueError("`model` only applies to a model_version")
        try:
            validate_attributes(ARTIFACT_KINDS[self.kind], self.properties())
        except ValidationError as exc:  # the kind's typed attributes, e.g. rows must be a whole number
            raise ValueError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None
        return self

    def properties(self) -> dict[str, Any]:
        return {**self.attributes, **{f"metric_{k}": v for k, v in self.metrics.items()},
                **{f"param_{k}": v for k, v in self.params.items()}}


class LessonTarget(InputModel):
    name: Name = Field(description="The name of what the lesson concerns: a project, model, dataset, agent, ...")
    kind: Kind | None = Field(default=None, description="Its kind, when the name alone is ambiguous or it is new")


class OutcomeLesson(InputModel):
    """Something learned that should change how future work is done."""

    text: Annotated[str, Field(min_length=10, max_length=MAX_TEXT_CHARS), AfterValidator(require_visible)] = Field(
        description="The lesson as an instruction for future work, understandable on its own",
    )
    severity: Literal["low", "medium", "high"] = Field(
        default="medium", description="high: ignoring it causes wrong results or failures; low: a minor tip",
    )
    category: str | None = Field(default=None, max_length=100, description="e.g. data-quality, evaluation, infrastructure")
    applies_to: list[LessonTarget] = Field(
        default_factory=list, max_length=20,
        description="What it concerns besides the delegation's project (which it always applies to)",
    )


class OutcomeRequest(InputModel):
    """Report how a delegation went: status, summary, metrics, artifacts, lessons, and which briefed memories helped."""

    delegation_id: DelegationId = Field(description="The id the brief returned")
    status: OutcomeStatus = Field(description="running for a progress update; succeeded, failed or cancelled when it ends")
    summary: Annotated[str, Field(max_length=MAX_TEXT_CHARS), AfterValidator(require_visible)] | None = Field(
        default=None, description="What happened, in plain language; kept as the delegation's outcome and found by recall",
    )
    failure_cause: str | None = Field(default=None, max_length=1000, description="Why it failed, in one sentence")
    metrics: dict[MetricKey, FiniteFloat] = Field(
        default_factory=dict, max_length=50, description="Numbers the delegation reports, e.g. {\"auc\": 0.91}",
    )
    artifacts: list[OutcomeArtifact] = Field(
        default_factory=list, max_length=50, description="Models, versions, features, experiments and datasets it produced or used",
    )
    lessons: list[OutcomeLesson] = Field(
        default_factory=list, max_length=30, description="What future work should do differently; often none",
    )
    duration_s: float | None = Field(default=None, ge=0, allow_inf_nan=False, description="How long the work took")
    cost_usd: float | None = Field(default=None, ge=0, allow_inf_nan=False, description="What it cost")
    agent: Name | None = Field(default=None, description="The agent that did the work; it becomes the delegation's assignee")
    extract: bool = Field(default=False, description="Also ask Claude to extract lessons and entities from the summary")
    helpful: list[MemoryId] = Field(
        default_factory=list, max_length=100, description="Ids of memories the brief showed that helped",
    )
    unhelpful: list[MemoryId] = Field(
        default_factory=list, max_length=100, description="Ids of memories the brief showed that did not help or misled",
    )

    @model_validator(mode="after")
    def _consistent(self) -> OutcomeRequest:
        both = sorted(set(self.helpful) & set(self.unhelpful))
        if both:
            raise ValueError(f"ids cannot be both helpful and unhelpful: {', '.join(both)}")
        return self


# -- answers --------------------------------------------------------------------------------------
class RecordedLesson(BaseModel):
    id: str
    text: str
    severity: str | None = None
    category: str | None = None
    source: str | None = Field(default=None, description="outcome (reported) or extraction (found by Claude)")
    applies_to: list[str] = Field(default_factory=list)


class RecordedArtifact(BaseModel):
    id: str
    kind: str
    name: str
    relation: str = Field(description="PRODUCED or DEPENDS_ON")


class DelegationState(BaseModel):
    delegation_id: str
    entity_id: str
    task: str | None = None
    task_type: str | None = None
    agent_role: str | None = None
    status: str | None = None
    project: str | None = None
    agent: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_s: float | None = None
    cost_usd: float | None = None
    failure_cause: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    summary: str | None = Field(default=None, description="The latest outcome summary")
    lessons: list[RecordedLesson] = Field(default_factory=list)
    artifacts: list[RecordedArtifact] = Field(default_factory=list)
    shown_ids: list[str] = Field(default_factory=list)
    helpful_ids: list[str] = Field(default_factory=list)
    unhelpful_ids: list[str] = Field(default_factory=list)
    brief_markdown: str | None = Field(default=None, description="The latest brief's markdown, as the agent received it")
    brief_budget_tokens: int | None = Field(default=None, description="The token budget that brief was rendered within")


class AgentTrackRecord(BaseModel):
    """An agent's record over every delegation currently assigned to it, derived from the graph."""

    agent: str
    agent_id: str
    role: str | None = None
    delegations: int
    succeeded: int
    failed: int
    cancelled: int
    open: int = Field(description="Planned or running now")
    success_rate: float | None = Field(description="succeeded / (succeeded + failed); null before any ended")
    last_success_at: datetime | None = None
    mean_duration_s: float | None = None
    total_cost_usd: float = 0.0


class ExtractionReport(BaseModel):
    status: Literal["not_requested", "skipped", "done", "already_done", "failed"]
    detail: str | None = Field(default=None, description="Why it was skipped or failed")
    lessons: list[str] = Field(default_factory=list, description="Lessons Claude found")
    entities: int = 0
    relations: int = 0
    observations: int = 0
    skipped: list[str] = Field(default_factory=list, description="Extracted items that were not written, and why")
    contradictions: list[str] = Field(default_factory=list, description="Conflicts Claude noticed, for review")
    input_tokens: int = 0
    output_tokens: int = 0


class OutcomeRecord(BaseModel):
    delegation: DelegationState
    changed: bool = Field(description="False when this exact outcome had been recorded before (a retry)")
    agent_record: AgentTrackRecord | None = None
    extraction: ExtractionReport

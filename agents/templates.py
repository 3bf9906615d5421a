"""Project templates: the phases of a kind of project, each with the roles that do its work.

    plan = instantiate(memory.space("acme"), "data-science", "Churn", due_dates={"Discovery": date(2025, 3, 14)})

Instantiating a template for a project records the project and one planned `:Delegation` per task
(status `planned`, with `task`, `task_type`, `phase`, `role`, `template` and `due_at`), each PART_OF
the project; every task of a phase DEPENDS_ON every task of the phase before, so the phase order is
in the graph. Instantiating again adds what is missing and leaves existing delegations alone, so a
delegation that has started keeps its status.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from graph import records
from graph.errors import InvalidInput, NotFound
from graph.model import Entity, EntityIn, EntityRef, Name, Provenance, RelationIn, UtcDatetime, as_utc
from graph.vocabulary import Kind, normalise_name
from memory.service import SpaceMemory


class TemplateTask(BaseModel):
    title: str = Field(max_length=120, description="Short, unique within the template; names the delegation")
    role: str = Field(description="The agent role that does it, e.g. data-scientist")
    task_type: str = Field(description="A coarse type, used to compare with past work: eda, train, deploy, ...")
    task: str = Field(description="What to do, as it would be handed to the agent")


class Phase(BaseModel):
    name: str
    goal: str
    tasks: list[TemplateTask]

    @property
    def roles(self) -> list[str]:
        return list(dict.fromkeys(task.role for task in self.tasks))


class Template(BaseModel):
    name: str
    title: str
    description: str
    phases: list[Phase]


DATA_SCIENCE = Template(
    name="data-science",
    title="Data Science project",
    description="From a business question to a model in production and the analytics that prove its value.",
    phases=[
        Phase(name="Discovery", goal="Frame the problem, the success metric and the data", tasks=[
            TemplateTask(title="Frame the problem", role="data-scientist", task_type="discovery",
                         task="Frame the business problem as an ML task, choose the success metric and a baseline"),
            TemplateTask(title="Assess the data sources", role="data-architect", task_type="data-assessment",
                         task="Inventory the data sources, their owners, access, quality and history"),
            TemplateTask(title="Define the KPIs", role="analytics-expert", task_type="kpi-definition",
                         task="Define the business KPIs the model must move and how they will be measured"),
        ]),
        Phase(name="Engineering", goal="Build the data pipelines and the model", tasks=[
            TemplateTask(title="Build the feature pipeline", role="data-engineer", task_type="pipeline",
                         task="Build the ingestion and feature pipelines with tests and data quality checks"),
            TemplateTask(title="Explore the data", role="data-scientist", task_type="eda",
                         task="Explore the data: distributions, leakage risks, label quality"),
            TemplateTask(title="Train and evaluate models", role="data-scientist", task_type="train",
                         task="Train and evaluate candidate models against the baseline; record every experiment"),
            TemplateTask(title="Make training reproducible", role="ml-engineer", task_type="ml-pipeline",
                         task="Package the training pipeline so any recorded experiment can be rerun"),
        ]),
        Phase(name="Deployment", goal="Serve the model reliably", tasks=[
            TemplateTask(title="Deploy the model", role="ml-engineer", task_type="deploy",
                         task="Deploy the chosen model version behind a monitored endpoint or batch job"),
            TemplateTask(title="Monitor drift", role="ml-engineer", task_type="monitoring",
                         task="Set up data and prediction drift monitoring with alert thresholds"),
            TemplateTask(title="Schedule the data refresh", role="data-engineer", task_type="pipeline",
                         task="Schedule the feature refresh and scoring runs, with alerting on failures"),
        ]),
        Phase(name="Analytics", goal="Show the model's impact and decide what next", tasks=[
            TemplateTask(title="Build the impact dashboard", role="analytics-expert", task_type="dashboard",
                         task="Build the dashboard of the KPIs against the model's predictions"),
            TemplateTask(title="Review performance", role="data-scientist", task_type="analysis",
                         task="Review model performance in production against its benchmark; recommend retraining"),
        ]),
    ],
)

AI_APPLICATION = Template(
    name="ai-application",
    title="AI Application project",
    description="An LLM application, from its design to a monitored release.",
    phases=[
        Phase(name="Design", goal="Decide what the application does and how", tasks=[
            TemplateTask(title="Design the application", role="ai-engineer", task_type="design",
                         task="Design the application's flows, prompts, tools and the model to use"),
            TemplateTask(title="Design the knowledge sources", role="data-architect", task_type="data-design",
                         task="Design the knowledge sources, their access rules and the retrieval data model"),
            TemplateTask(title="Define the quality metrics", role="analytics-expert", task_type="kpi-definition",
                         task="Define the quality and business metrics and their acceptance thresholds"),
        ]),
        Phase(name="Development", goal="Build it", tasks=[
            TemplateTask(title="Build the application", role="ai-engineer", task_type="build",
                         task="Build the LLM application and its tool integrations"),
            TemplateTask(title="Build the retrieval index", role="data-engineer", task_type="pipeline",
                         task="Build the document ingestion, chunking and retrieval index"),
        ]),
        Phase(name="Testing", goal="Prove it is good enough to ship", tasks=[
            TemplateTask(title="Evaluate the application", role="ai-engineer", task_type="evaluation",
                         task="Build the evaluation set and run the evals: answer quality, tool use, safety"),
            TemplateTask(title="Test retrieval quality", role="data-scientist", task_type="evaluation",
                         task="Measure retrieval recall and precision on labelled questions"),
        ]),
        Phase(name="Deployment", goal="Release it and watch it", tasks=[
            TemplateTask(title="Deploy the application", role="ml-engineer", task_type="deploy",
                         task="Deploy with monitoring, rate limits, cost tracking and a rollback plan"),
            TemplateTask(title="Track usage and quality", role="analytics-expert", task_type="dashboard",
                         task="Track usage, cost and quality after launch against the acceptance thresholds"),
        ]),
    ],
)

TEMPLATES: dict[str, Template] = {template.name: template for template in (DATA_SCIENCE, AI_APPLICATION)}


def get_template(name: str) -> Template:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise NotFound(f"no template named {name!r}; the templates are {', '.join(TEMPLATES)}") from None


class InstantiateTemplate(BaseModel):
    """Plan a new project from a template: one planned delegation per task, phase by phase."""

    template: Literal["data-science", "ai-application"] = Field(description="data-science (Discovery, Engineering, Deployment, Analytics) or "
                                      "ai-application (Design, Development, Testing, Deployment)")
    project: Name
    due_dates: dict[str, UtcDatetime] = Field(default_factory=dict, max_length=20, description=(
        "Phase name -> the date its tasks are due, e.g. {\"Discovery\": \"2025-03-14\"}"))
    provenance: Provenance = Field(default_factory=Provenance)


class PlannedDelegation(BaseModel):
    id: str
    name: str
    phase: str
    role: str
    task: str
    task_type: str
    status: str
    due_at: datetime | None = None
    created: bool = Field(description="False when it was already there (instantiating again changes nothing)")


class ProjectPlan(BaseModel):
    project: str
    project_id: str
    template: str
    delegations: list[PlannedDelegation]


def delegation_name(project: str, task: TemplateTask) -> str:
    return f"{project}: {task.title}"


EXISTING_DELEGATIONS = """
UNWIND $keys AS key
MATCH (d:Entity {space: $space, kind: 'Delegation', name_key: key})
WHERE d.retracted_at IS NULL
RETURN d {.*} AS entity
"""


def _existing(memory: SpaceMemory, names: Iterable[str]) -> dict[str, Entity]:
    rows = memory.graph.rows(EXISTING_DELEGATIONS, keys=sorted({normalise_name(name) for name in names}))
    return {row["entity"]["name_key"]: records.entity(row["entity"]) for row in rows}


def instantiate(
    memory: SpaceMemory, template: Template | str, project: str,
    due_dates: Mapping[str, date | datetime] | None = None, *, provenance: Provenance | None = None,
) -> ProjectPlan:
    template = get_template(template) if isinstance(template, str) else template
    provenance = provenance or Provenance(source="template")
    due = _due_by_phase(template, due_dates or {})
    names = {task.title: delegation_name(project, task) for phase in template.phases for task in phase.tasks}
    existing = _existing(memory, names.values())

    project_entity = memory.graph.find_by_name(project, kind=Kind.PROJECT)
    entities: list[EntityIn] = []
    if not project_entity:
        attributes: dict[str, Any] = {"status": "planned", "template": template.name}
        if due:
            attributes["due_at"] = max(due.values())
        entities.append(EntityIn(kind=Kind.PROJECT, name=project, attributes=attributes, provenance=provenance))
    for order, phase in enumerate(template.phases, start=1):
        for task in phase.tasks:
            name = names[task.title]
            if normalise_name(name) in existing:
                continue
            attributes = {"task": task.task, "task_type": task.task_type, "status": "planned", "phase": phase.name,
                          "phase_order": order, "role": task.role, "template": template.name}
            if phase.name in due:
                attributes["due_at"] = due[phase.name]
            entities.append(EntityIn(kind=Kind.DELEGATION, name=name, summary=task.task, attributes=attributes,
                                     provenance=provenance))
    if entities:
        memory.graph.upsert_entities(entities)

    relations = []
    for previous, phase in zip([None, *template.phases], template.phases):
        for task in phase.tasks:
            this = EntityRef(kind=Kind.DELEGATION, name=names[task.title])
            relations.append(RelationIn(source=this, type="PART_OF", target=EntityRef(kind=Kind.PROJECT, name=project),
                                        provenance=provenance))
            for before in previous.tasks if previous else []:
                relations.append(RelationIn(source=this, type="DEPENDS_ON",
                                            target=EntityRef(kind=Kind.DELEGATION, name=names[before.title]),
                                            provenance=provenance))
    memory.graph.upsert_relations(relations)

    now_existing = _existing(memory, names.values())
    (project_row,) = memory.graph.find_by_name(project, kind=Kind.PROJECT)
    planned = []
    for phase in template.phases:
        for task in phase.tasks:
            entity = now_existing[normalise_name(names[task.title])]
            attrs = entity.attributes
            planned.append(PlannedDelegation(
                id=entity.id, name=entity.name, phase=str(attrs.get("phase", phase.name)),
                role=str(attrs.get("role", task.role)), task=str(attrs.get("task", task.task)),
                task_type=str(attrs.get("task_type", task.task_type)), status=str(attrs.get("status", "planned")),
                due_at=attrs.get("due_at"), created=normalise_name(names[task.title]) not in existing))
    return ProjectPlan(project=project_row.name, project_id=project_row.id, template=template.name,
                       delegations=planned)


def _due_by_phase(template: Template, due_dates: Mapping[str, date | datetime]) -> dict[str, datetime]:
    phases = {normalise_name(phase.name): phase.name for phase in template.phases}
    due = {}
    for name, value in due_dates.items():
        if normalise_name(name) not in phases:
            raise InvalidInput(f"template {template.name} has no phase {name!r}; its phases are "
                               f"{', '.join(phase.name for phase in template.phases)}")
        moment = value if isinstance(value, datetime) else datetime(value.year, value.month, value.day)
        due[phases[normalise_name(name)]] = as_utc(moment)
    return due


def instantiate_request(memory: SpaceMemory, request: InstantiateTemplate) -> ProjectPlan:
    """`instantiate` for a validated request (the API and Claude tools)."""
    return instantiate(memory, request.template, request.project, request.due_dates, provenance=request.provenance)

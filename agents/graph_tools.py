"""Tools over what the graph and memory layers already do: recall, entities, observations,
relations, neighbourhoods, history, analyst reports and mem0 free-text memory.

Input models are written for Claude: each field says what to put in it. Writes are stamped
with the context's provenance (who is acting), which Claude does not supply.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from agents.tools import Tool, ToolContext
from graph.errors import InvalidInput, NotFound
from graph.model import (
    MAX_TEXT_CHARS,
    Entity,
    EntityHistory,
    EntityIn,
    EntityRef,
    Name,
    Neighbourhood,
    Observation,
    ObservationIn,
    Relation,
    RelationIn,
    Text,
    validate_attributes,
)
from graph.guard import run_read_only
from graph.reports import REPORTS, run_report
from graph.vocabulary import RELATION_GROUPS, Kind, relation_type
from memory.free_text import AddMemoryRequest, SearchMemoryRequest
from memory.recall import RecallQuery

KIND_NAMES = ", ".join(kind.value for kind in Kind if kind is not Kind.MEMORY)
RELATION_NAMES = ", ".join(t for group in RELATION_GROUPS.values() for t in group)


class ToolInput(BaseModel):
    # A misspelt field is an error Claude sees, not a value silently dropped.
    model_config = ConfigDict(extra="forbid")


class EntityPointer(EntityRef):
    """An entity by id, or by name (with its kind when names repeat across kinds)."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, max_length=200, description="The entity's id, when you have it")
    kind: Kind | None = Field(default=None, description="The entity's kind, when the name alone is ambiguous")
    name: Name | None = Field(default=None, description="The entity's name (case and spacing do not matter)")


# -- views: what Claude reads back (compact; no bookkeeping fields) ---------------------------------

def entity_view(entity: Entity) -> dict[str, Any]:
    view: dict[str, Any] = {"id": entity.id, "kind": entity.kind.value, "name": entity.name}
    if entity.entity_type != entity.kind.value:
        view["entity_type"] = entity.entity_type
    if entity.aliases:
        view["aliases"] = entity.aliases
    if entity.summary:
        view["summary"] = entity.summary
    if entity.attributes:
        view["attributes"] = entity.attributes
    return view


def observation_view(observation: Observation) -> dict[str, Any]:
    view = {"id": observation.id, "entity_id": observation.entity_id, "text": observation.text,
            "valid_from": observation.valid_from, "valid_to": observation.valid_to}
    if observation.provenance.agent:
        view["agent"] = observation.provenance.agent
    return view


def relation_view(relation: Relation) -> dict[str, Any]:
    return {"type": relation.label, "source": relation.source_name, "target": relation.target_name,
            "source_id": relation.source_id, "target_id": relation.target_id,
            "valid_from": relation.valid_from, "valid_to": relation.valid_to}


def neighbourhood_view(hood: Neighbourhood) -> dict[str, Any]:
    return {
        "entity": entity_view(hood.center),
        "observations": [observation_view(o) for o in hood.observations],
        "neighbours": [{**entity_view(n.entity), "distance": n.distance} for n in hood.neighbours],
        "relations": [relation_view(r) for r in hood.relations],
        "next_cursor": hood.next_cursor,
    }


def history_view(history: EntityHistory) -> dict[str, Any]:
    return {
        "entity": {**entity_view(history.entity), "created_at": history.entity.created_at,
                   "retracted_at": history.entity.retracted_at},
        "revisions": [r.model_dump(mode="json") for r in history.revisions],
        "observations": [{**observation_view(o), "recorded_at": o.recorded_at, "retracted_at": o.retracted_at}
                         for o in history.observations],
        "relations": [{**relation_view(r), "recorded_at": r.recorded_at, "retracted_at": r.retracted_at}
                      for r in history.relations],
    }


def resolve_entity(context: ToolContext, ref: EntityRef) -> Entity:
    """The one current entity `ref` points at; NotFound, or InvalidInput when a name is ambiguous."""
    graph = context.memory.graph
    if ref.id:
        return graph.get_entity(ref.id)
    found = graph.find_by_name(ref.name or "", kind=ref.kind)
    if not found:
        raise NotFound(f"no entity named {ref.name!r}{f' of kind {ref.kind.value}' if ref.kind else ''} in this space")
    if len(found) > 1:
        kinds = ", ".join(sorted(e.kind.value for e in found))
        raise InvalidInput(f"the name {ref.name!r} matches several entities ({kinds}); give its kind or id")
    return found[0]


# -- recall -----------------------------------------------------------------------------------------

class RecallInput(RecallQuery):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=4000,
                      description="The question or topic in plain language, e.g. 'why did the churn retrain fail?'")
    limit: int = Field(10, ge=1, le=100, description="How many items to return (best first)")
    project_id: str | None = Field(None, description="Only items about this project (its id) and what hangs off it")
    agent: str | None = Field(None, description="Only items written by this agent")


def _recall(context: ToolContext, params: RecallInput) -> Any:
    result = context.memory.recall(RecallQuery.model_validate(params.model_dump()))
    return {"query": result.query, "items": [
        {"id": item.id, "type": item.type, "text": item.text, "score": item.score, "entity": item.entity,
         "valid_from": item.valid_from, "valid_to": item.valid_to, "agent": item.provenance.agent,
         "delegation_id": item.provenance.delegation_id,
         **({"explanation": item.explanation.model_dump(mode="json")} if item.explanation else {})}
        for item in result.items]}


RECALL = Tool(
    name="recall",
    title="Recall",
    description=(
        "Search the team's memory in this space with a plain-language question. Combines keyword, semantic and "
        "graph search over observations, lessons, entities and free-text memories, and returns the most relevant "
        "items, best first, each with the entity it is about and who recorded it. Use it before starting work "
        "('what do we know about the churn model?', 'what went wrong last time we retrained?'). Only facts that "
        "are currently true are returned unless as_of is given."),
    input_model=RecallInput, handler=_recall, read_only=True, idempotent=True,
)


# -- entities ---------------------------------------------------------------------------------------

class SearchEntitiesInput(ToolInput):
    text: str = Field(min_length=1, max_length=2000, description="A name, alias or words to look for")
    kinds: list[Kind] | None = Field(default=None, description="Only entities of these kinds")
    limit: int = Field(default=10, ge=1, le=50, description="At most this many entities")


def _search_entities(context: ToolContext, params: SearchEntitiesInput) -> Any:
    hits = context.memory.graph.search(params.text, kinds=params.kinds, limit=params.limit)
    return [{**entity_view(hit.entity), "score": round(hit.score, 4), "matched": hit.matched} for hit in hits]


SEARCH_ENTITIES = Tool(
    name="search_entities",
    title="Search entities",
    description=(
        "Find entities (projects, agents, delegations, lessons, models, datasets, people...) by name, alias or "
        "words in their summary or observations. Exact name matches come first. Use it to get an entity's id "
        "before reading its neighbourhood or writing about it."),
    input_model=SearchEntitiesInput, handler=_search_entities, read_only=True, idempotent=True,
)


class EntityInput(ToolInput):
    kind: Kind = Field(default=Kind.THING, description=f"One of {KIND_NAMES}; Thing for anything else")
    name: Name = Field(description="The entity's name; an existing entity with this kind and name is updated")
    entity_type: str | None = Field(default=None, max_length=100,
                                    description="For kind Thing: your own short type, e.g. 'team' or 'metric'")
    aliases: list[Name] = Field(default_factory=list, max_length=50, description="Other names it goes by")
    summary: str | None = Field(default=None, max_length=MAX_TEXT_CHARS, description="One or two sentences on what it is")
    attributes: dict[str, Any] = Field(
        default_factory=dict,
        description=("snake_case key -> string, number, boolean or ISO date-time. Usual keys: Project status, domain; "
                     "Agent role, skills, model; Delegation task, task_type, status; ModelVersion version, stage, "
                     "metric_<name>; Experiment param_<name>, metric_<name>, code_ref; Dataset uri, rows."))

    @model_validator(mode="after")
    def _storable(self) -> EntityInput:
        self.attributes = validate_attributes(self.kind, self.attributes)
        return self


class UpsertEntitiesInput(ToolInput):
    entities: list[EntityInput] = Field(min_length=1, max_length=50, description="The entities to create or update")


def _upsert_entities(context: ToolContext, params: UpsertEntitiesInput) -> Any:
    written = context.memory.graph.upsert_entities([
        EntityIn(kind=e.kind, name=e.name, entity_type=e.entity_type, aliases=e.aliases, summary=e.summary,
                 attributes=e.attributes, provenance=context.provenance)
        for e in params.entities
    ])
    return [entity_view(e) for e in written]


UPSERT_ENTITIES = Tool(
    name="upsert_entities",
    title="Create or update entities",
    description=(
        "Create entities, or update existing ones (matched by kind and name, ignoring case): summary, aliases and "
        "attributes are merged in and every change is kept in the entity's history. Safe to repeat. Returns the "
        "stored entities with their ids."),
    input_model=UpsertEntitiesInput, handler=_upsert_entities, idempotent=True,
)


class ObservationInput(ToolInput):
    entity: EntityPointer = Field(description="The entity the statement is about")
    text: Text = Field(description="A self-contained, dated fact, e.g. 'AUC dropped to 0.61 after the March retrain'")
    valid_from: datetime | None = Field(default=None, description="When it became true (ISO 8601); default now")
    supersedes: str | None = Field(default=None, description="Id of an observation this one replaces (it is closed)")


class RecordObservationsInput(ToolInput):
    observations: list[ObservationInput] = Field(min_length=1, max_length=100, description="The statements to record")
    create_missing_entities: bool = Field(
        default=False, description="Create entities named here that do not exist yet (as the kind given, else Thing)")


def _record_observations(context: ToolContext, params: RecordObservationsInput) -> Any:
    written = context.memory.graph.add_observations([
        ObservationIn(entity=o.entity, text=o.text, valid_from=o.valid_from, supersedes=o.supersedes,
                      provenance=context.provenance)
        for o in params.observations
    ], create_missing=params.create_missing_entities)
    return [observation_view(o) for o in written]


RECORD_OBSERVATIONS = Tool(
    name="record_observations",
    title="Record observations",
    description=(
        "Record dated facts about entities (results, metrics, failures, decisions, status changes). The same "
        "current text on the same entity is stored once, so repeating a call is harmless. Returns the stored "
        "observations with their ids."),
    input_model=RecordObservationsInput, handler=_record_observations, idempotent=True,
)


class RelationInput(ToolInput):
    source: EntityPointer = Field(description="The entity the relation starts from")
    type: str = Field(min_length=1, max_length=100,
                      description=f"Prefer one of {RELATION_NAMES}; otherwise an UPPER_SNAKE_CASE verb phrase")
    target: EntityPointer = Field(description="The entity the relation points to")
    valid_from: datetime | None = Field(default=None, description="When it became true (ISO 8601); default now")

    @field_validator("type")
    @classmethod
    def _storable_type(cls, value: str) -> str:
        try:
            relation_type(value)
        except InvalidInput as exc:
            raise ValueError(str(exc)) from None
        return value


class RecordRelationsInput(ToolInput):
    relations: list[RelationInput] = Field(min_length=1, max_length=100, description="The relations to record")
    create_missing_entities: bool = Field(
        default=False, description="Create entities named here that do not exist yet (as the kind given, else Thing)")


def _record_relations(context: ToolContext, params: RecordRelationsInput) -> Any:
    written = context.memory.graph.upsert_relations([
        RelationIn(source=r.source, type=r.type, target=r.target, valid_from=r.valid_from,
                   provenance=context.provenance)
        for r in params.relations
    ], create_missing=params.create_missing_entities)
    return [relation_view(r) for r in written]


RECORD_RELATIONS = Tool(
    name="record_relations",
    title="Record relations",
    description=(
        "Link entities, e.g. a delegation PART_OF a project, a lesson APPLIES_TO a model. A relation that is "
        "already current is not duplicated; for DELEGATED_TO, IN_STAGE and VERSION_OF a new target replaces the "
        "old one, which stays in history."),
    input_model=RecordRelationsInput, handler=_record_relations, idempotent=True,
)


class NeighbourhoodInput(ToolInput):
    entity: EntityPointer = Field(description="The entity to open")
    depth: int = Field(default=1, ge=1, le=3, description="How many hops of relations to follow")
    kinds: list[Kind] | None = Field(default=None, description="Only neighbours of these kinds")
    as_of: datetime | None = Field(default=None, description="The graph as it was at this time (ISO 8601)")
    limit: int = Field(default=25, ge=1, le=100, description="At most this many neighbours per page")
    cursor: str | None = Field(default=None, description="next_cursor from the previous page")


def _neighbourhood(context: ToolContext, params: NeighbourhoodInput) -> Any:
    entity = resolve_entity(context, params.entity)
    hood = context.memory.graph.neighbourhood(entity.id, depth=params.depth, kinds=params.kinds, as_of=params.as_of,
                                              cursor=params.cursor, limit=params.limit)
    return neighbourhood_view(hood)


ENTITY_NEIGHBOURHOOD = Tool(
    name="entity_neighbourhood",
    title="Open an entity",
    description=(
        "One entity with its current observations, the entities related to it (nearest first) and the relations "
        "among them. Use it to see a project's delegations, a model's versions or what a lesson applies to."),
    input_model=NeighbourhoodInput, handler=_neighbourhood, read_only=True, idempotent=True,
)


class HistoryInput(ToolInput):
    entity: EntityPointer = Field(description="The entity whose full history to read")


def _history(context: ToolContext, params: HistoryInput) -> Any:
    ref = params.entity
    entity_id = ref.id or resolve_entity(context, ref).id
    return history_view(context.memory.graph.history(entity_id))


ENTITY_HISTORY = Tool(
    name="entity_history",
    title="Entity history",
    description=(
        "Everything ever recorded about one entity, including closed and retracted facts: attribute revisions "
        "(old and new values), observations and relations with when they were recorded and retracted."),
    input_model=HistoryInput, handler=_history, read_only=True, idempotent=True,
)


class RetractObservationsInput(ToolInput):
    observation_ids: list[str] = Field(min_length=1, max_length=100, description="Ids of observations to take back")


def _retract_observations(context: ToolContext, params: RetractObservationsInput) -> Any:
    return {"retracted": context.memory.graph.retract_observations(params.observation_ids)}


RETRACT_OBSERVATIONS = Tool(
    name="retract_observations",
    title="Retract observations",
    description=(
        "Take back observations that were wrong. They disappear from recall and reads but stay in the entity's "
        "history. To record that a fact stopped being true, record a new observation with supersedes instead."),
    input_model=RetractObservationsInput, handler=_retract_observations, destructive=True, idempotent=True,
)


class RetractEntityInput(ToolInput):
    entity: EntityPointer = Field(description="The entity to retract")


def _retract_entity(context: ToolContext, params: RetractEntityInput) -> Any:
    entity = resolve_entity(context, params.entity)
    return {"entity": entity_view(entity), "retracted": context.memory.graph.retract_entity(entity.id)}


RETRACT_ENTITY = Tool(
    name="retract_entity",
    title="Retract an entity",
    description=(
        "Delete an entity created by mistake, with its current relations and observations. It is hidden from "
        "every read and from recall, and kept in history."),
    input_model=RetractEntityInput, handler=_retract_entity, destructive=True, idempotent=True,
)


# -- analyst reports ---------------------------------------------------------------------------------

ReportName = Literal[tuple(REPORTS)]  # type: ignore[valid-type]


class ReportInput(ToolInput):
    name: ReportName = Field(description="; ".join(f"{r.name}: {r.title}" for r in REPORTS.values()))
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="The report's parameters other than space, e.g. {'since': '2026-01-01'}")


def _report(context: ToolContext, params: ReportInput) -> Any:
    if "space" in params.parameters:
        raise InvalidInput("leave out space: reports run on this space only")
    result = run_report(context.memory.graph.gateway, params.name, {**params.parameters, "space": context.space},
                        max_rows=200)
    return {"columns": result.columns, "rows": result.rows, "truncated": result.truncated}


RUN_REPORT = Tool(
    name="run_report",
    title="Run an analyst report",
    description=(
        "Run one of kgmem's named analyst reports on this space, e.g. agent-success (success rate by agent and "
        "role) or experiment-leaderboard. Returns columns and rows (at most 200)."),
    input_model=ReportInput, handler=_report, read_only=True, idempotent=True,
)


class CypherInput(ToolInput):
    query: str = Field(min_length=1, max_length=20_000, description=(
        "A read-only Cypher query. Filter on the tenant: MATCH (d:Delegation {space: $space}) ...; "
        "labels and properties are described in kgmem's docs/schema.md"))
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="Query parameters; $space is always this space")


def _cypher(context: ToolContext, params: CypherInput) -> Any:
    result = run_read_only(context.memory.graph.gateway, params.query, {**params.params, "space": context.space},
                           max_rows=200)
    return {"columns": result.columns, "rows": result.rows, "truncated": result.truncated}


# Not among TOOLS: Cypher is not confined to one space, so only callers trusted with every space get it
# (the MCP server offers it to API keys with the cypher scope on '*', and on stdio with --cypher).
CYPHER_READ = Tool(
    name="cypher_read",
    title="Read-only Cypher",
    description=(
        "Run a read-only Cypher query on the knowledge graph (at most 200 rows, 10 s). Writes, schema changes and "
        "procedures outside a short allow-list are refused. $space is bound to this space: filter on it."),
    input_model=CypherInput, handler=_cypher, read_only=True, idempotent=True,
)


# -- free-text memory (mem0) ---------------------------------------------------------------------------

class RememberInput(AddMemoryRequest):
    model_config = ConfigDict(extra="forbid")


def _remember(context: ToolContext, params: RememberInput) -> Any:
    return context.memory.service.free_text().add(
        context.space, params.mem0_messages(), metadata=params.metadata, infer=params.infer, **params.ids())


REMEMBER = Tool(
    name="remember",
    title="Remember free text",
    description=(
        "Keep free-text memories (preferences, notes, conversation snippets) for a user, an agent or a run; give "
        "at least one of user_id, agent_id or run_id. With infer=true Claude extracts the facts and merges them "
        "with what is already remembered; with infer=false each message is stored as written. Memories are "
        "linked to the entities they name and found by recall and search_memories."),
    input_model=RememberInput, handler=_remember,
)


class SearchMemoriesInput(SearchMemoryRequest):
    model_config = ConfigDict(extra="forbid")

    query: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000)] = Field(
        description="What to look for, in plain language")


def _search_memories(context: ToolContext, params: SearchMemoriesInput) -> Any:
    return context.memory.service.free_text().search(
        context.space, params.query, limit=params.limit, filters=params.filters, **params.ids())


SEARCH_MEMORIES = Tool(
    name="search_memories",
    title="Search free-text memories",
    description=(
        "Search the free-text memories of a user, an agent or a run (give at least one of user_id, agent_id or "
        "run_id) by meaning. Returns the closest memories with their scores."),
    input_model=SearchMemoriesInput, handler=_search_memories, read_only=True, idempotent=True,
)


TOOLS: tuple[Tool, ...] = (
    RECALL, SEARCH_ENTITIES, ENTITY_NEIGHBOURHOOD, ENTITY_HISTORY, UPSERT_ENTITIES, RECORD_OBSERVATIONS,
    RECORD_RELATIONS, RETRACT_OBSERVATIONS, RETRACT_ENTITY, RUN_REPORT, REMEMBER, SEARCH_MEMORIES,
)

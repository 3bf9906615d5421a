"""Request and response bodies of the REST API that the lower layers do not define themselves.

The graph's own models (`EntityIn`, `Entity`, `ObservationIn`, …) and recall's (`RecallQuery`,
`RecallResult`) are used as they are; these wrap them in batches and pages, and describe the
rest. Request bodies are `InputModel`s: an unknown field or a NaN is a 422 naming it.
Bounds here are the hard maxima the OpenAPI description shows; the settings
(`api_max_batch`, `api_max_limit`, `api_max_depth`) may only tighten them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.auth import ApiKey, Scope
from graph.model import (
    Entity,
    EntityIn,
    FiniteValue,
    InputModel,
    Observation,
    ObservationIn,
    Relation,
    RelationIn,
    SearchHit,
)

MAX_BATCH = 1000
MAX_LIMIT = 100
MAX_ID_LENGTH = 200

_ENTITY_EXAMPLE = {"kind": "Project", "name": "Churn model", "summary": "Predict which customers leave",
                   "attributes": {"status": "active", "domain": "retention"},
                   "provenance": {"source": "api", "agent": "lead-1"}}
_OBSERVATION_EXAMPLE = {"entity": {"kind": "Project", "name": "Churn model"},
                        "text": "Retraining on the March snapshot doubled recall",
                        "valid_from": "2026-03-03T12:00:00Z", "provenance": {"agent": "ds-1"}}
_RELATION_EXAMPLE = {"source": {"kind": "Agent", "name": "ds-1"}, "type": "LEADS_ANALYSIS_FOR",
                     "target": {"kind": "Project", "name": "Churn model"}}


def _examples(*examples: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": list(examples)})


# -- graph writes -----------------------------------------------------------------------------------------
class EntityBatch(InputModel):
    """Entities to create or update, matched by (kind, name)."""

    model_config = _examples({"entities": [_ENTITY_EXAMPLE, {"kind": "Agent", "name": "ds-1",
                                                             "attributes": {"role": "data-scientist"}}]})
    entities: list[EntityIn] = Field(min_length=1, max_length=MAX_BATCH)


class EntityList(BaseModel):
    entities: list[Entity]


class ObservationBatch(InputModel):
    """Dated statements about entities; the same current text on the same entity is stored once."""

    model_config = _examples({"observations": [_OBSERVATION_EXAMPLE], "create_missing": False})
    observations: list[ObservationIn] = Field(min_length=1, max_length=MAX_BATCH)
    create_missing: bool = Field(False, description="Create entities named by name that do not exist yet")


class ObservationList(BaseModel):
    observations: list[Observation]


class RelationBatch(InputModel):
    """Relations to record; single-valued types (DELEGATED_TO, IN_STAGE, VERSION_OF) close the fact they replace."""

    model_config = _examples({"relations": [_RELATION_EXAMPLE], "create_missing": True})
    relations: list[RelationIn] = Field(min_length=1, max_length=MAX_BATCH)
    create_missing: bool = Field(False, description="Create entities named by name that do not exist yet")


class RelationList(BaseModel):
    relations: list[Relation]


class ObservationRetraction(InputModel):
    model_config = _examples({"ids": ["7f0c2a4e-0d7b-4a53-9d1e-3c1b2f5a6e70"]})
    ids: list[str] = Field(min_length=1, max_length=MAX_BATCH)


class RelationRetraction(InputModel):
    """Relations to retract, named as they were written (source, type, target)."""

    model_config = _examples({"relations": [_RELATION_EXAMPLE]})
    relations: list[RelationIn] = Field(min_length=1, max_length=MAX_BATCH)


class Retracted(BaseModel):
    retracted: int = Field(description="How many current facts were retracted")


class EntityRetraction(BaseModel):
    entity_id: str
    relations: int = Field(description="Current relations retracted with it")
    observations: int = Field(description="Current observations retracted with it")


class SearchPage(BaseModel):
    items: list[SearchHit]
    next_cursor: str | None = Field(None, description="Pass back as `cursor` for the next page; null at the end")


# -- free-text memory (mem0's shapes) -----------------------------------------------------------------------
class MemoryItem(BaseModel):
    """One mem0 memory, as mem0 returns it (fields it adds later pass through)."""

    model_config = ConfigDict(extra="allow")
    id: str
    memory: str | None = None
    hash: str | None = None
    metadata: dict[str, Any] | None = None
    score: float | None = None
    event: str | None = Field(None, description="On add: ADD, UPDATE, DELETE or NONE")
    created_at: str | None = None
    updated_at: str | None = None
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    actor_id: str | None = None
    role: str | None = None


class MemoryResults(BaseModel):
    """mem0's `{"results": [...]}`; listing adds `next_cursor`."""

    model_config = ConfigDict(extra="allow")
    results: list[MemoryItem]
    next_cursor: str | None = Field(None, description="Listing only: pass back as `cursor` for the next page")


class MemoryMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    message: str


class MemoryHistoryItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = None
    memory_id: str | None = None
    old_memory: str | None = None
    new_memory: str | None = None
    event: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    is_deleted: bool | int | None = None
    actor_id: str | None = None
    role: str | None = None


# -- analysts -----------------------------------------------------------------------------------------------
class CypherRequest(InputModel):
    """A read-only query; `$space` is bound to the path's space."""

    model_config = _examples({"query": "MATCH (d:Delegation {space: $space}) RETURN d.status AS status, count(*) AS n",
                              "params": {}})
    query: str = Field(min_length=1, max_length=20_000)
    params: dict[str, FiniteValue] = Field(default_factory=dict,
                                           description="Query parameters; `space` is always the path's")


class ReportParameterInfo(BaseModel):
    name: str
    kind: str
    description: str
    default: str | int | bool | None = None
    required: bool = False
    choices: list[str] = Field(default_factory=list)


class ReportInfo(BaseModel):
    name: str
    title: str
    description: str
    cypher: str
    parameters: list[ReportParameterInfo]


class ReportList(BaseModel):
    reports: list[ReportInfo]


class ReportRequest(InputModel):
    model_config = _examples({"params": {"since": "2026-01-01"}})
    params: dict[str, str | int | bool | None] = Field(
        default_factory=dict, description="The report's parameters but `space`, which is the path's")


# -- admin --------------------------------------------------------------------------------------------------
class ReindexRequest(InputModel):
    model_config = _examples({"full": False})
    full: bool = Field(False, description="Drop and rebuild the whole vector index (all spaces)")


class Stats(BaseModel):
    space: str
    entities: dict[str, int] = Field(description="Current entities per kind")
    observations: int = Field(description="Current observations")
    relations: dict[str, int] = Field(description="Current relations per type")
    vectors: int = Field(description="Vectors of this space in Chroma")
    pending: int = Field(description="Items whose vectors have not followed their last write yet")


class KeyCreate(InputModel):
    """A key for this space; its token is in the answer, once."""

    model_config = _examples({"name": "ci", "scopes": ["read", "write"]})
    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1, max_length=4)


class KeyCreated(BaseModel):
    key: ApiKey
    token: str = Field(description="The Bearer token; shown this once and never again")


class KeyPage(BaseModel):
    items: list[ApiKey]
    next_cursor: str | None = None


# -- errors -------------------------------------------------------------------------------------------------
class FieldError(BaseModel):
    path: str = Field(examples=["body.entities[2].name"])
    message: str
    type: str


class ProblemDetails(BaseModel):
    """RFC 9457 problem details (`application/problem+json`)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "type": "urn:kgmem:problem:validation-failed", "title": "Request validation failed", "status": 422,
        "detail": "1 field is invalid: body.entities[0].name: Field required",
        "instance": "/v1/spaces/acme/entities", "request_id": "5f0c8a1e-…",
        "errors": [{"path": "body.entities[0].name", "message": "Field required", "type": "missing"}]}]})
    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    errors: list[FieldError] | None = None

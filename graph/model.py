"""Pydantic models for what goes into the graph and what comes out of it."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from graph.errors import InvalidInput
from graph.dates import parse_datetime
from graph.vocabulary import DelegationStatus, Kind, normalise_name, relation_type


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC, so every stored time is comparable."""
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+05:00 has no UTC time Python can hold
        raise ValueError("date-time is out of range once converted to UTC") from None


def now() -> datetime:
    return datetime.now(UTC)


def require_visible(text: str) -> str:
    if not text.strip():
        raise ValueError("text must contain a visible character")
    return text


def require_finite(value: Any) -> Any:
    """Refuse NaN and Infinity anywhere in a value: JSON has no such numbers, though Python's parser reads
    them, and one stored would answer every later read that shows it with an error."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} is not a number JSON can carry; send a finite number")
    if isinstance(value, dict):
        for item in value.values():
            require_finite(item)
    elif isinstance(value, list | tuple):
        for item in value:
            require_finite(item)
    return value


def read_time(value: Any) -> Any:
    """Strings and numbers through kgmem's date rules (graph/dates.py); anything else to Pydantic."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return parse_datetime(value)
    return value


# Texts (observations, summaries, lessons, memories) are kept whole up to this many characters; the
# vector index reads them in passages (memory/passages.py). The API's body limit (2 MiB) is above it.
MAX_TEXT_CHARS = 1_048_576

UtcDatetime = Annotated[datetime, BeforeValidator(read_time), AfterValidator(as_utc)]
VisibleText = Annotated[str, AfterValidator(require_visible)]
Name = Annotated[str, Field(min_length=1, max_length=512)]
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS), AfterValidator(require_visible)]
Scalar = str | int | float | bool | datetime
AttributeValue = Scalar | list[str] | list[int] | list[float] | None
FiniteValue = Annotated[Any, AfterValidator(require_finite)]  # an untyped value (attributes, parameters)

ATTRIBUTE_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# Entity properties kgmem owns; attributes may not overwrite them.
RESERVED_PROPERTIES = frozenset({
    "id", "space", "kind", "entity_type", "name", "name_key", "aliases", "alias_keys", "summary",
    "created_at", "updated_at", "retracted_at", "source", "agent", "delegation_id",
    "vector_status", "pending_since", "current_key",
})


class InputModel(BaseModel):
    """What a caller sends (a request body, a Claude tool's input). A field the model does not know is
    refused, not dropped, so a typo (`sumary`) is never a silent loss; so are NaN and Infinity, which are
    not JSON numbers."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Provenance(InputModel):
    """Where a write came from."""

    source: str | None = Field(default=None, max_length=200, description="System or channel, e.g. api, mcp, extraction")
    agent: str | None = Field(default=None, max_length=200, description="The acting agent")
    delegation_id: str | None = Field(default=None, max_length=200, description="The delegation the write belongs to")


# -- typed attributes per kind ------------------------------------------------------------
class Attributes(BaseModel):
    """Attributes of an entity; a kind's model types the keys it knows, others pass as scalars."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class ProjectAttributes(Attributes):
    status: str | None = None
    domain: str | None = None
    due_at: UtcDatetime | None = None


class AgentAttributes(Attributes):
    role: str | None = None
    skills: list[str] | None = None
    model: str | None = None


class DelegationAttributes(Attributes):
    task: str | None = None
    task_type: str | None = None
    status: DelegationStatus | None = None
    started_at: UtcDatetime | None = None
    ended_at: UtcDatetime | None = None
    due_at: UtcDatetime | None = None
    duration_s: float | None = Field(default=None, ge=0)
    cost_usd: float | None = Field(default=None, ge=0)
    failure_cause: str | None = None


class LessonAttributes(Attributes):
    severity: str | None = None
    category: str | None = None


class ModelAttributes(Attributes):
    task: str | None = None
    framework: str | None = None


class ModelVersionAttributes(Attributes):
    version: str | None = None
    stage: str | None = None


class FeatureAttributes(Attributes):
    dtype: str | None = None


class ExperimentAttributes(Attributes):
    code_ref: str | None = None


class DatasetAttributes(Attributes):
    uri: str | None = None
    rows: int | None = Field(default=None, ge=0)


class IncidentAttributes(Attributes):
    severity: str | None = None
    status: str | None = None
    opened_at: UtcDatetime | None = None
    resolved_at: UtcDatetime | None = None


class PersonAttributes(Attributes):
    role: str | None = None
    email: str | None = None


KIND_ATTRIBUTES: dict[Kind, type[Attributes]] = {
    Kind.PROJECT: ProjectAttributes,
    Kind.AGENT: AgentAttributes,
    Kind.DELEGATION: DelegationAttributes,
    Kind.LESSON: LessonAttributes,
    Kind.MODEL: ModelAttributes,
    Kind.MODEL_VERSION: ModelVersionAttributes,
    Kind.FEATURE: FeatureAttributes,
    Kind.EXPERIMENT: ExperimentAttributes,
    Kind.DATASET: DatasetAttributes,
    Kind.INCIDENT: IncidentAttributes,
    Kind.PERSON: PersonAttributes,
}


def validate_attributes(kind: Kind, attributes: dict[str, Any]) -> dict[str, AttributeValue]:
    for key in attributes:
        if not ATTRIBUTE_KEY.fullmatch(key):
            raise ValueError(f"attribute name {key!r} must match {ATTRIBUTE_KEY.pattern}")
        if key in RESERVED_PROPERTIES:
            raise ValueError(f"attribute name {key!r} is reserved; set it through its own field")
    model = KIND_ATTRIBUTES.get(kind, Attributes).model_validate(attributes)
    typed = {key: value for key, value in model if key in attributes}
    extra = model.model_extra or {}
    for key, value in extra.items():
        if not _storable(value):
            raise ValueError(
                f"attribute {key!r} must be a string, number, boolean, datetime or a list of one of those, "
                f"not {type(value).__name__}"
            )
    return {**typed, **{k: (as_utc(v) if isinstance(v, datetime) else v) for k, v in extra.items()}}


def _storable(value: Any) -> bool:
    if value is None or isinstance(value, (str, int, float, bool, datetime)):
        return True
    if isinstance(value, list):
        kinds = {type(item) for item in value}
        return len(kinds) <= 1 and kinds <= {str, int, float, bool}
    return False


# -- writes ----------------------------------------------------------------------------------
class EntityRef(InputModel):
    """Points at an entity by id, or by name (and kind, when names repeat across kinds)."""

    id: str | None = Field(default=None, max_length=200)
    kind: Kind | None = None
    name: Name | None = None

    @model_validator(mode="after")
    def _one_way_to_find_it(self) -> EntityRef:
        if not self.id and not self.name:
            raise ValueError("give the entity's id, or its name")
        return self

    @property
    def name_key(self) -> str | None:
        return normalise_name(self.name) if self.name else None


class EntityIn(InputModel):
    kind: Kind = Kind.THING
    name: Name
    entity_type: str | None = Field(
        default=None, max_length=100, description="Free-form type; defaults to the kind. Kept as given for Thing."
    )
    aliases: list[Name] = Field(default_factory=list, max_length=100)
    summary: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    attributes: dict[str, FiniteValue] = Field(default_factory=dict)
    id: str | None = Field(default=None, max_length=200, description="Use this id if the entity is new")
    provenance: Provenance = Field(default_factory=Provenance)

    @model_validator(mode="after")
    def _check(self) -> EntityIn:
        if not normalise_name(self.name):
            raise ValueError("name must contain a visible character")
        self.attributes = validate_attributes(self.kind, self.attributes)
        if self.entity_type is None:
            self.entity_type = self.kind.value
        return self


class ObservationIn(InputModel):
    entity: EntityRef
    text: Text
    valid_from: UtcDatetime | None = Field(default=None, description="When it became true; default now")
    undated: bool = Field(default=False, description=(
        "Its source gives no readable time: it is stored without valid_from (not as now), placed by `seq`, "
        "and left out of as_of reads"))
    ref: str | None = Field(default=None, max_length=200, description="The source's own id for it, e.g. a message id")
    seq: int | None = Field(default=None, ge=0, description="Position in its source, for ordered sources like conversations")
    supersedes: str | None = Field(default=None, description="Id of an observation this one replaces")
    provenance: Provenance = Field(default_factory=Provenance)


    @model_validator(mode="after")
    def _a_date_or_none(self) -> ObservationIn:
        if self.undated and self.valid_from is not None:
            raise ValueError("an undated observation has no valid_from: give one or the other")
        return self


class RelationIn(InputModel):
    source: EntityRef
    type: str = Field(min_length=1, max_length=100, description="A vocabulary type, or one matching ^[A-Z][A-Z0-9_]{0,63}$")
    target: EntityRef
    valid_from: UtcDatetime | None = None
    weight: float | None = None
    provenance: Provenance = Field(default_factory=Provenance)

    @property
    def canonical_type(self) -> str:
        return relation_type(self.type)

    @field_validator("type")
    @classmethod
    def _known_shape(cls, value: str) -> str:
        try:
            relation_type(value)
        except InvalidInput as exc:
            raise ValueError(str(exc)) from exc
        return value


# -- reads -----------------------------------------------------------------------------------
class Entity(BaseModel):
    id: str
    space: str
    kind: Kind
    entity_type: str
    name: str
    aliases: list[str] = Field(default_factory=list)
    summary: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    retracted_at: datetime | None = None
    provenance: Provenance = Field(default_factory=Provenance)


class Observation(BaseModel):
    id: str
    space: str
    entity_id: str
    text: str
    valid_from: datetime | None = Field(description="When it became true; null for an undated observation")
    valid_to: datetime | None = None
    recorded_at: datetime
    retracted_at: datetime | None = None
    vector_status: str = "pending"
    ref: str | None = None
    seq: int | None = None
    provenance: Provenance = Field(default_factory=Provenance)


class Relation(BaseModel):
    id: str
    space: str
    type: str
    label: str
    source_id: str
    source_name: str
    target_id: str
    target_name: str
    valid_from: datetime
    valid_to: datetime | None = None
    recorded_at: datetime
    retracted_at: datetime | None = None
    weight: float | None = None
    provenance: Provenance = Field(default_factory=Provenance)


class Revision(BaseModel):
    id: str
    at: datetime
    changes: dict[str, dict[str, Any]]  # attribute -> {"old": …, "new": …}
    provenance: Provenance = Field(default_factory=Provenance)


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(default=None, description="Pass back as `cursor` for the next page; null at the end")


class Neighbour(BaseModel):
    entity: Entity
    distance: int


class Neighbourhood(BaseModel):
    center: Entity
    neighbours: list[Neighbour]
    relations: list[Relation]
    observations: list[Observation]
    next_cursor: str | None = None


class EntityHistory(BaseModel):
    entity: Entity
    revisions: list[Revision]
    observations: list[Observation]
    relations: list[Relation]


class SearchHit(BaseModel):
    entity: Entity
    score: float
    matched: list[str] = Field(description="Which channels matched: name, alias, fulltext, observation")


class PurgeReport(BaseModel):
    entity_id: str
    entities: int
    observations: int
    relations: int
    revisions: int
    observation_ids: list[str] = Field(description="Removed observations, so derived indexes can drop them too")

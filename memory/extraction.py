"""Claude extraction: free text from a delegation becomes entities, relations, lessons and contradictions.

One forced tool-use call to the Messages API (`record_extraction`) whose input
schema is generated from the `Extraction` model below. The answer is validated
with Pydantic; an invalid answer is sent back once as an `is_error` tool result
so Claude can correct it. Each call keeps to a token budget and records what it
used, per call (`ExtractionResult.usage`) and in a running total (`UsageCounter`).

The `anthropic.Anthropic` client is injected; tests give it an HTTP transport
that answers with scripted API responses, so everything here runs for real.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Annotated, Any, Literal

import anthropic
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, ValidationInfo, field_validator

from graph.errors import ConfigurationError, ExtractionFailed, InvalidInput, KgmemError, LLMUnavailable, TextTooLong
from graph.model import ATTRIBUTE_KEY, EntityIn, EntityRef, ObservationIn, Provenance, RelationIn, validate_attributes
from graph.settings import Settings
from memory.schemas import tool_input_schema
from graph.vocabulary import RELATION_GROUPS, Kind, kind_for_type, normalise_name, relation_type

DEFAULT_MODEL = "claude-sonnet-4-5"
TOOL_NAME = "record_extraction"

# Cheap token estimate, no network call (count_tokens would be one). English prose runs
# about 4 characters a token; JSON schema and identifiers are denser, so 3.5 leans
# towards over-estimating, which keeps the budget a real ceiling.
CHARS_PER_TOKEN = 3.5
# Forcing a tool adds a hidden tool-use system prompt (a few hundred tokens per Anthropic's
# pricing notes) and the message framing adds a little more.
REQUEST_OVERHEAD_TOKENS = 400
MAX_ERRORS_REPORTED = 10


# -- what Claude returns -------------------------------------------------------------------
EntityName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
AttributeKey = Annotated[str, StringConstraints(pattern=ATTRIBUTE_KEY.pattern)]
# Scalars only: nested objects cannot be stored as Neo4j properties.
AttributeScalar = str | int | float | bool

# The kinds Claude may assign. Not every Kind: kgmem's own bookkeeping kinds (such as mem0's
# Memory) must not be created from free text, and Thing is what everything else becomes.
EXTRACTABLE_KINDS: tuple[Kind, ...] = (
    Kind.PROJECT, Kind.AGENT, Kind.DELEGATION, Kind.LESSON, Kind.MODEL, Kind.MODEL_VERSION, Kind.FEATURE,
    Kind.EXPERIMENT, Kind.DATASET, Kind.TECHNOLOGY, Kind.INCIDENT, Kind.DECISION, Kind.PERSON,
)
_KIND_NAMES = ", ".join(kind.value for kind in EXTRACTABLE_KINDS)
_RELATION_NAMES = ", ".join(t for group in RELATION_GROUPS.values() for t in group)


def extracted_kind(entity_type: str) -> Kind:
    """The kind an extracted type maps to: 'model version' -> ModelVersion, 'city' -> Thing."""
    kind = kind_for_type(entity_type)
    return kind if kind in EXTRACTABLE_KINDS else Kind.THING


class _Strict(BaseModel):
    # Unknown fields are errors, so a misnamed field goes back to Claude instead of being lost.
    model_config = ConfigDict(extra="forbid")


class ExtractedEntity(_Strict):
    name: EntityName = Field(description="The entity's name as the text uses it; reuse a known entity's exact spelling.")
    type: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] = Field(
        description=f"One of {_KIND_NAMES} when it fits; otherwise a short lower-case type such as 'team' or 'metric'."
    )
    summary: str | None = Field(default=None, max_length=1000, description="One or two sentences on what it is.")
    aliases: list[EntityName] = Field(default_factory=list, max_length=20, description="Other names the text uses for it.")
    attributes: dict[AttributeKey, AttributeScalar] = Field(
        default_factory=dict,
        max_length=30,
        description=(
            "Stated facts as snake_case key -> string, number or boolean. Usual keys: Project status, domain; "
            "Agent role, model; Delegation task, task_type, status (planned|running|succeeded|failed|cancelled), "
            "duration_s, cost_usd, failure_cause; ModelVersion version, stage, metric_<name>; "
            "Experiment param_<name>, metric_<name>; Dataset uri, rows; Incident severity, status."
        ),
    )

    @field_validator("attributes")
    @classmethod
    def _storable(cls, attributes: dict[str, AttributeScalar], info: ValidationInfo) -> dict[str, AttributeScalar]:
        # The graph's own attribute rules (reserved names, typed keys per kind), checked here
        # so a violation is fed back to Claude rather than failing later in the write.
        entity_type = info.data.get("type")
        try:
            validate_attributes(extracted_kind(entity_type) if entity_type else Kind.THING, dict(attributes))
        except ValidationError as exc:
            raise ValueError(_describe_errors(exc)[1]) from None
        return attributes


class ExtractedRelation(_Strict):
    source: EntityName = Field(description="Name of the entity the relation starts from.")
    type: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)] = Field(
        description=f"Prefer one of {_RELATION_NAMES}; otherwise an UPPER_SNAKE_CASE verb phrase."
    )
    target: EntityName = Field(description="Name of the entity the relation points to.")
    valid_from: datetime | None = Field(
        default=None, description="ISO 8601 date-time the relation became true, only if the text says; else null."
    )


class ExtractedObservation(_Strict):
    entity: EntityName = Field(description="Name of the entity the statement is about.")
    text: str = Field(
        min_length=1,
        max_length=2000,
        description="A self-contained factual statement (result, metric, status change), understandable without the text.",
    )


class ExtractedLesson(_Strict):
    text: str = Field(
        min_length=10,
        max_length=500,
        description="The lesson as an instruction for future work, understandable on its own, one or two sentences.",
    )
    applies_to: list[EntityName] = Field(
        default_factory=list, max_length=20, description="Names of the entities (projects, models, datasets, agents...) it concerns."
    )
    severity: Literal["low", "medium", "high"] = Field(
        default="medium",
        description="high: ignoring it causes wrong results, failures or incidents; medium: costs real time or quality; low: a minor tip.",
    )
    category: str | None = Field(
        default=None, max_length=100, description="A short topic such as data-quality, evaluation, infrastructure, process."
    )


class ExtractedContradiction(_Strict):
    existing: str = Field(min_length=1, max_length=1000, description="The earlier statement, from the context or the text.")
    new: str = Field(min_length=1, max_length=1000, description="The statement in the text that conflicts with it.")
    explanation: str = Field(min_length=1, max_length=1000, description="Why the two cannot both be true.")


class Extraction(_Strict):
    """The input of the `record_extraction` tool."""

    entities: list[ExtractedEntity] = Field(default_factory=list, max_length=100, description="Entities the text mentions.")
    relations: list[ExtractedRelation] = Field(default_factory=list, max_length=200, description="Relations between entities.")
    observations: list[ExtractedObservation] = Field(
        default_factory=list, max_length=100, description="Dated facts about single entities."
    )
    lessons: list[ExtractedLesson] = Field(default_factory=list, max_length=30, description="Reusable lessons; often none.")
    contradictions: list[ExtractedContradiction] = Field(
        default_factory=list, max_length=30, description="Conflicts with the context or within the text; usually none."
    )


# -- the tool definition ---------------------------------------------------------------------
def extraction_tool() -> dict[str, Any]:
    return {
        "name": TOOL_NAME,
        "description": "Record the entities, relations, observations, lessons and contradictions found in the text.",
        "input_schema": tool_input_schema(Extraction),
    }


SYSTEM_PROMPT = f"""You turn free text from data and AI projects (a delegation's outcome report, an agent transcript, \
meeting notes) into memory for kgmem, a knowledge graph shared by a team of AI agents. \
Call {TOOL_NAME} once with what the text contains.

- Record only what the text states or directly implies. Never invent names, numbers or dates.
- Entity types: {_KIND_NAMES}. A Delegation is one piece of work handed to an agent; an Agent is a \
specialist AI agent (data-scientist, ml-engineer...). For anything else use a short lower-case free type.
- When the text refers to a known entity, use its exact known name.
- Observations are self-contained facts about one entity: results, metrics, failures, status changes.
- A lesson is a reusable insight that should change how future work is done, written as an instruction \
that makes sense without the text (e.g. "Check features for target leakage before comparing models"). \
An outcome, a metric or a restatement of the task is not a lesson. Most texts hold zero to three.
- A contradiction is a statement in the text that cannot be true together with one in the context (or \
elsewhere in the text). Quote both.
- Leave a list empty rather than guess."""


# -- results and usage -----------------------------------------------------------------------
@dataclass(frozen=True)
class TokenUsage:
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens)


@dataclass(frozen=True)
class UsageTotals:
    requests: int = 0  # Messages API responses received
    input_tokens: int = 0
    output_tokens: int = 0
    extractions: int = 0  # extract() calls that returned a result
    failures: int = 0  # extract() calls that failed


class UsageCounter:
    """A running total of Claude usage, safe to share between threads and extractors."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals = UsageTotals()

    def add_response(self, usage: TokenUsage) -> None:
        with self._lock:
            t = self._totals
            self._totals = replace(
                t, requests=t.requests + 1,
                input_tokens=t.input_tokens + usage.input_tokens, output_tokens=t.output_tokens + usage.output_tokens,
            )

    def add_outcome(self, *, succeeded: bool) -> None:
        with self._lock:
            t = self._totals
            self._totals = replace(t, extractions=t.extractions + int(succeeded), failures=t.failures + int(not succeeded))

    def snapshot(self) -> UsageTotals:
        with self._lock:
            return self._totals


@dataclass(frozen=True)
class ExtractionResult:
    extraction: Extraction
    usage: TokenUsage  # summed over attempts
    attempts: int
    model: str  # the model that answered, as the API reports it


# -- the extractor ---------------------------------------------------------------------------
def _estimate_tokens(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN)


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _describe_errors(error: ValidationError) -> tuple[str, str]:
    """The errors as feedback for Claude (one per line) and as a one-line summary for the exception."""
    items = error.errors(include_url=False)
    shown = items[:MAX_ERRORS_REPORTED]
    more = len(items) - len(shown)
    problems = [(".".join(str(part) for part in item["loc"]) or "(input)", _one_line(item["msg"], 200)) for item in shown]
    feedback = [
        f"{where}: {msg} (got {_one_line(json.dumps(item.get('input'), default=str), 120)})"
        for (where, msg), item in zip(problems, shown)
    ]
    summary = "; ".join(f"{where}: {msg}" for where, msg in problems)
    if more > 0:
        feedback.append(f"... and {more} more")
        summary += f" (+{more} more)"
    return "\n".join(feedback), summary


def api_error(exc: anthropic.APIError, retries: int, attempt: int, usage: TokenUsage) -> KgmemError:
    """Claude unreachable or overloaded: retry later; our key refused: the operator must act; else failed."""
    message = _api_failure(exc, retries)
    if isinstance(exc, anthropic.APIConnectionError) or (
            isinstance(exc, anthropic.APIStatusError) and (exc.status_code == 429 or exc.status_code >= 500)):
        return LLMUnavailable(f"{message}; retry later")
    if isinstance(exc, anthropic.APIStatusError) and exc.status_code in (401, 403):
        return ConfigurationError(f"{message}; fix ANTHROPIC_API_KEY")
    return ExtractionFailed(message, attempts=attempt, usage=usage)


def _api_failure(exc: anthropic.APIError, retries: int) -> str:
    after = f" after {retries} retr{'y' if retries == 1 else 'ies'}" if retries else ""
    if isinstance(exc, anthropic.APIStatusError):
        detail = exc.api_message or _one_line(str(exc.body or exc.message), 200)
        kind = f" {exc.type}" if exc.type else ""
        return f"Anthropic API returned {exc.status_code}{kind}{after}: {_one_line(detail, 200)}"
    if isinstance(exc, anthropic.APITimeoutError):
        return f"Anthropic API request timed out{after}"
    if isinstance(exc, anthropic.APIConnectionError):
        cause = f": {_one_line(str(exc.__cause__), 200)}" if exc.__cause__ else ""
        return f"cannot reach the Anthropic API{after}{cause}"
    return f"Anthropic API call failed: {_one_line(exc.message, 200)}"


def claude_client(settings: Settings) -> anthropic.Anthropic | None:
    """The Anthropic client for the configured key (`ANTHROPIC_API_KEY`), or None without one."""
    if settings.anthropic_api_key is None:
        return None
    return anthropic.Anthropic(api_key=settings.anthropic_api_key.get_secret_value())


class ClaudeExtractor:
    """Turns free text into an `Extraction` with one forced tool call (plus at most one corrective retry)."""

    def __init__(
        self,
        client: anthropic.Anthropic | None = None,
        *,
        model: str = DEFAULT_MODEL,
        max_tokens: int = 2048,
        token_budget: int = 8000,
        max_retries: int | None = None,
        timeout: float = 120.0,
        usage_counter: UsageCounter | None = None,
    ) -> None:
        """`max_retries` is the SDK's retry count for 429/5xx/connection errors: None keeps the
        client's own (the SDK's default, 2, for a client made here). Without `client`, the SDK
        reads the key from ANTHROPIC_API_KEY."""
        if max_tokens < 1 or token_budget < 1:
            raise ConfigurationError("max_tokens and token_budget must be positive")
        if client is None:
            try:
                client = anthropic.Anthropic() if max_retries is None else anthropic.Anthropic(max_retries=max_retries)
            except anthropic.AnthropicError as exc:  # e.g. a named profile that cannot be read
                raise ConfigurationError(f"Anthropic client configuration: {_one_line(str(exc), 300)}") from exc
            # Without credentials the SDK would fail only at the first request, with a TypeError.
            if client.api_key is None and client.auth_token is None and client.credentials is None:
                raise ConfigurationError("no Anthropic credentials: set ANTHROPIC_API_KEY")
        elif max_retries is not None:
            client = client.with_options(max_retries=max_retries)
        self.client = client
        self.model = model
        self.max_tokens = max_tokens
        self.token_budget = token_budget
        self.timeout = timeout
        self.usage_counter = usage_counter or UsageCounter()
        self._tool = extraction_tool()
        # What every request carries besides the text, estimated once.
        self._fixed_tokens = REQUEST_OVERHEAD_TOKENS + _estimate_tokens(len(SYSTEM_PROMPT) + len(json.dumps(self._tool)))
        if self._fixed_tokens + max_tokens >= token_budget:
            raise ConfigurationError(
                f"token_budget {token_budget} leaves no room for text: the prompt and tool schema take "
                f"~{self._fixed_tokens} tokens and max_tokens is {max_tokens}"
            )

    def estimate_input_tokens(self, text: str, *, context: str | None = None, known_entities: Iterable[str] = ()) -> int:
        """The first request's input size, estimated without a network call."""
        return self._fixed_tokens + _estimate_tokens(len(_user_prompt(text, context, _names(known_entities))))

    def extract(self, text: str, *, context: str | None = None, known_entities: Sequence[str] = ()) -> ExtractionResult:
        if not text.strip():
            raise InvalidInput("nothing to extract: the text is empty")
        try:
            result = self._extract(text, context, _names(known_entities))
        except KgmemError:
            self.usage_counter.add_outcome(succeeded=False)
            raise
        self.usage_counter.add_outcome(succeeded=True)
        return result

    def _extract(self, text: str, context: str | None, known: list[str]) -> ExtractionResult:
        prompt = _user_prompt(text, context, known)
        estimate = self._fixed_tokens + _estimate_tokens(len(prompt))
        if estimate + self.max_tokens > self.token_budget:
            room = self.token_budget - self.max_tokens - self.estimate_input_tokens("", context=context, known_entities=known)
            raise TextTooLong(
                f"text too long for one extraction: ~{estimate} input tokens + max_tokens {self.max_tokens} exceeds "
                f"token_budget {self.token_budget}; the text may be at most ~{max(0, int(room * CHARS_PER_TOKEN))} "
                f"characters here (it has {len(text)}): split it or raise token_budget"
            )

        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        usage = TokenUsage()
        max_tokens = self.max_tokens
        for attempt in (1, 2):
            response = self._create(messages, max_tokens, attempt, usage)
            used = TokenUsage(response.usage.input_tokens, response.usage.output_tokens)
            usage += used
            self.usage_counter.add_response(used)

            outcome = _parse(response)
            if isinstance(outcome, Extraction):
                return ExtractionResult(extraction=outcome, usage=usage, attempts=attempt, model=response.model)
            feedback, summary = outcome
            if response.stop_reason == "refusal":
                raise ExtractionFailed("Claude declined to extract from this text (stop_reason=refusal)",
                                       attempts=attempt, usage=usage)
            if attempt == 2:
                raise ExtractionFailed(f"Claude's extraction was invalid after 2 attempts: {summary}",
                                       attempts=attempt, usage=usage)

            messages = [*messages, *_correction_turns(response, feedback)]
            # The retry resends the whole conversation: the first request (its real size is now
            # known), the answer, and the feedback. Its answer gets what is left of the budget, up
            # to max_tokens; if that is less than the first answer needed, a retry would be cut off.
            retry_input = used.input_tokens + used.output_tokens + _estimate_tokens(len(feedback)) + 100
            max_tokens = min(self.max_tokens, self.token_budget - usage.total - retry_input)
            needed = min(self.max_tokens, used.output_tokens + used.output_tokens // 4 + 64)
            if max_tokens < needed:
                raise ExtractionFailed(
                    f"Claude's extraction was invalid and the token budget ({self.token_budget}, {usage.total} spent) "
                    f"leaves no room to retry: {summary}",
                    attempts=attempt, usage=usage,
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def _create(
        self, messages: list[dict[str, Any]], max_tokens: int, attempt: int, usage: TokenUsage
    ) -> anthropic.types.Message:
        try:
            return self.client.messages.create(
                model=self.model,
                max_tokens=max_tokens,
                system=SYSTEM_PROMPT,
                messages=messages,
                tools=[self._tool],
                # Forcing the tool makes the answer structured; one call is all we read.
                tool_choice={"type": "tool", "name": TOOL_NAME, "disable_parallel_tool_use": True},
                timeout=self.timeout,
            )
        except anthropic.APIError as exc:
            # The SDK has already retried 429/5xx/connection errors max_retries times.
            raise api_error(exc, self.client.max_retries, attempt, usage) from exc


def _names(known_entities: Iterable[str]) -> list[str]:
    seen: dict[str, str] = {}
    for name in known_entities:
        if name.strip():
            seen.setdefault(normalise_name(name), name.strip())
    return list(seen.values())


def _user_prompt(text: str, context: str | None, known: list[str]) -> str:
    parts = []
    if known:
        parts.append("<known_entities>\n" + "\n".join(f"- {name}" for name in known) + "\n</known_entities>")
    if context and context.strip():
        parts.append(f"<context>\n{context.strip()}\n</context>")
    parts.append(f"<text>\n{text.strip()}\n</text>")
    parts.append(f"Extract from the text with {TOOL_NAME}.")
    return "\n\n".join(parts)


def _parse(response: anthropic.types.Message) -> Extraction | tuple[str, str]:
    """The validated extraction, or (feedback for Claude, one-line summary) saying what was wrong."""
    calls = [block for block in response.content if block.type == "tool_use" and block.name == TOOL_NAME]
    truncated = " The answer was cut off at max_tokens: record fewer and shorter items." \
        if response.stop_reason == "max_tokens" else ""
    if not calls:
        why = f"no {TOOL_NAME} tool call in the answer (stop_reason={response.stop_reason})"
        return f"You did not call {TOOL_NAME}.{truncated} Call it now with your extraction.", why
    try:
        return Extraction.model_validate(calls[0].input)
    except ValidationError as exc:
        feedback, summary = _describe_errors(exc)
        return (f"The {TOOL_NAME} input is invalid:\n{feedback}\n{truncated}"
                f"Call {TOOL_NAME} again with the whole corrected extraction."), summary


def _correction_turns(response: anthropic.types.Message, feedback: str) -> list[dict[str, Any]]:
    """The assistant's answer and a user turn telling it what to fix, continuing the conversation."""
    assistant: list[dict[str, Any]] = []
    for block in response.content:
        if block.type == "text" and block.text:
            assistant.append({"type": "text", "text": block.text})
        elif block.type == "tool_use":
            assistant.append({"type": "tool_use", "id": block.id, "name": block.name, "input": block.input})
    tool_ids = [block["id"] for block in assistant if block["type"] == "tool_use"]
    if tool_ids:
        # Every tool_use must be answered by a tool_result in the next user turn.
        results: list[dict[str, Any]] = [
            {"type": "tool_result", "tool_use_id": tool_id, "is_error": True, "content": feedback} for tool_id in tool_ids
        ]
        return [{"role": "assistant", "content": assistant}, {"role": "user", "content": results}]
    if assistant:
        return [{"role": "assistant", "content": assistant}, {"role": "user", "content": feedback}]
    # An empty answer cannot be sent back as an assistant turn; consecutive user turns are merged by the API.
    return [{"role": "user", "content": feedback}]


# -- mapping to graph writes -----------------------------------------------------------------
@dataclass(frozen=True)
class Skipped:
    item: str  # what was dropped, e.g. "relation churn model -[??]-> X"
    reason: str


@dataclass
class GraphWrites:
    """What an extraction writes: upsert entities first, then observations and relations with create_missing."""

    entities: list[EntityIn] = field(default_factory=list)
    observations: list[ObservationIn] = field(default_factory=list)
    relations: list[RelationIn] = field(default_factory=list)
    contradictions: list[ExtractedContradiction] = field(default_factory=list)  # for the caller to review, not written
    skipped: list[Skipped] = field(default_factory=list)


def lesson_name(text: str) -> str:
    """A lesson's entity name is its text, whitespace collapsed, so the same lesson learned twice is one node."""
    return " ".join(text.split())


def to_graph_writes(extraction: Extraction, provenance: Provenance | None = None) -> GraphWrites:
    """Map an extraction to kgmem writes; items the graph would refuse are reported in `skipped`."""
    provenance = provenance or Provenance()
    if provenance.source is None:
        provenance = provenance.model_copy(update={"source": "extraction"})
    writes = GraphWrites(contradictions=list(extraction.contradictions))

    kinds: dict[str, set[Kind]] = {}  # name_key -> kinds extracted under that name
    seen: set[tuple[Kind, str]] = set()
    for item in extraction.entities:
        kind = extracted_kind(item.type)
        key = normalise_name(item.name)
        if (kind, key) in seen:
            writes.skipped.append(Skipped(f"entity {item.name} ({item.type})", "duplicate of an earlier entity"))
            continue
        try:
            entity = EntityIn(
                kind=kind, name=item.name, entity_type=item.type if kind is Kind.THING else None,
                aliases=item.aliases, summary=item.summary, attributes=dict(item.attributes), provenance=provenance,
            )
        except ValidationError as exc:
            writes.skipped.append(Skipped(f"entity {item.name} ({item.type})", _describe_errors(exc)[1]))
            continue
        seen.add((kind, key))
        kinds.setdefault(key, set()).add(kind)
        writes.entities.append(entity)

    def ref(name: str) -> EntityRef:
        # Give the kind when this extraction defines the name unambiguously, so the write finds that
        # entity even if another kind shares the name; unknown names resolve (or get created) by name.
        found = kinds.get(normalise_name(name), set())
        return EntityRef(name=name, kind=next(iter(found)) if len(found) == 1 else None)

    for observation in extraction.observations:
        writes.observations.append(ObservationIn(entity=ref(observation.entity), text=observation.text, provenance=provenance))

    for relation in extraction.relations:
        label = f"relation {relation.source} -[{relation.type}]-> {relation.target}"
        try:
            relation_type(relation.type)
            writes.relations.append(RelationIn(
                source=ref(relation.source), type=relation.type, target=ref(relation.target),
                valid_from=relation.valid_from, provenance=provenance,
            ))
        except InvalidInput as exc:
            writes.skipped.append(Skipped(label, str(exc)))
        except ValidationError as exc:
            writes.skipped.append(Skipped(label, _describe_errors(exc)[1]))

    for lesson in extraction.lessons:
        name = lesson_name(lesson.text)
        if (Kind.LESSON, normalise_name(name)) in seen:
            writes.skipped.append(Skipped(f"lesson {name}", "duplicate of an earlier lesson"))
            continue
        seen.add((Kind.LESSON, normalise_name(name)))
        attributes: dict[str, Any] = {"severity": lesson.severity}
        if lesson.category:
            attributes["category"] = lesson.category
        writes.entities.append(EntityIn(kind=Kind.LESSON, name=name, summary=lesson.text,
                                        attributes=attributes, provenance=provenance))
        lesson_ref = EntityRef(kind=Kind.LESSON, name=name)
        for target in dict.fromkeys(lesson.applies_to):
            writes.relations.append(RelationIn(source=lesson_ref, type="APPLIES_TO", target=ref(target), provenance=provenance))
    return writes

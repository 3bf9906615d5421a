"""Free-text memory: mem0's `Memory` on kgmem's Chroma and embedder, linked into the graph.

    free = FreeTextMemory(settings, open_chroma(settings), embedder, graph_store)
    free.add("acme", "I prefer Polars over pandas", user_id="alice", infer=False)
    free.search("acme", "dataframe library", user_id="alice")   # {"results": [...]}

What mem0 2.2.1 needs, and what kgmem gives it:

- one `Memory` per `FreeTextMemory` (the app makes one per process), on kgmem's own
  Chroma client, in a collection of its own (`kgmem-mem0-<model>-<dim>`, cosine);
- kgmem's `Embedder`, so the sentence-transformers model is loaded once: mem0 is
  configured with its huggingface provider pointed at an unused endpoint (which only
  builds an HTTP client) and its embedding model is then replaced by an adapter;
- the anthropic LLM provider; an injected `anthropic.Anthropic` replaces the client
  mem0 makes, so requests go through the real SDK to whatever transport it was given;
- its history sqlite and its own directory (`MEM0_DIR`, which it creates and writes a
  config.json into when imported) under `settings.home / "mem0"`;
- telemetry off: `MEM0_TELEMETRY` is read once, when mem0 is imported (which only
  `_import_mem0` does, setting it first; nothing changes the environment at import time), and with it on
  mem0 also fetches a "notices" file from GitHub and prints to stderr.

Tenancy. mem0 scopes memories by user_id/agent_id/run_id only, and with `infer=True`
it shows the LLM the scope's existing memories and last messages, and drops facts
whose hash an existing memory has. So that spaces never see each other's memories,
not even inside mem0's prompts, the ids mem0 stores are qualified by the space
(`acme/alice`; a space cannot contain "/"), every memory's metadata carries `space`,
every search and listing filters on it, and update/delete/history of another space's
memory id answer NotFound. Callers only ever see their own unqualified ids.

Graph. Each added or updated memory is a `Memory` entity in its space (id and name:
the mem0 id; summary: the text) with `MENTIONS` relations to the entities its text
names; a deleted one is retracted. Those writes go through the graph's write path, so
the vectors follow them, which is what puts memories into hybrid recall.

Imports. `import_memories` stores memories from another mem0 store (memory/peer_import.py) as
mem0 would hold them, without the LLM and with their original times, a batch per embedding
call; each gets an id derived from the space and its original id (kept as `imported_id`),
which is what makes a repeated import add nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from graph.errors import ConfigurationError, InvalidInput, LLMUnavailable, NotFound
from graph.model import MAX_TEXT_CHARS, EntityIn, EntityRef, FiniteValue, InputModel, Provenance, RelationIn, VisibleText
from graph.settings import Settings
from graph.store import check_space
from graph.vocabulary import Kind
from memory.embedder import Embedder
from memory.index import HNSW_SETTINGS
from memory.index import translate as translate_chroma

if TYPE_CHECKING:
    from chromadb.api import ClientAPI

    from graph.store import SpaceGraph

log = logging.getLogger(__name__)

DEFAULT_LLM_MODEL = "claude-sonnet-4-5"
NO_API_KEY = "kgmem-no-anthropic-api-key"  # lets mem0 build its client offline; never sent (see _require_llm)
UNUSED_EMBEDDING_ENDPOINT = "http://127.0.0.1:9/kgmem-unused"
SCOPE_KEYS = ("user_id", "agent_id", "run_id")
SCOPE_SEPARATOR = "/"  # not allowed in a space name, so "space/user" splits one way only
SOURCE = "mem0"
# Imported memories get ids derived from (space, original id), so importing the same store again finds them.
IMPORTED_ID_NAMESPACE = uuid.UUID("0b5f6c1e-8d3a-4d1e-9a57-6b7c2f1d4e90")

# Payload keys that mem0 or kgmem own: metadata may not set them, filters may not name them.
RESERVED_METADATA = frozenset({
    "space", "data", "hash", "text_lemmatized", "created_at", "updated_at", "user_id", "agent_id", "run_id",
    "actor_id", "role", "attributed_to", "expiration_date", "memory_type", "imported_id",
})
METADATA_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


# -- requests (mem0's field names) ------------------------------------------------------------------
EntityId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=r"^\S+$")]
MetadataValue = str | int | float | bool  # what a Chroma payload can hold


class Message(InputModel):
    """One chat message, as mem0 takes it; `name` becomes the memory's `actor_id`."""

    role: Literal["user", "assistant", "system"]
    content: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    name: str | None = Field(default=None, max_length=200)


class MemoryScope(InputModel):
    """Who a memory belongs to, in mem0's terms: at least one of the three ids."""

    user_id: EntityId | None = Field(default=None, description="The user the memories are about")
    agent_id: EntityId | None = Field(default=None, description="The agent the memories belong to")
    run_id: EntityId | None = Field(default=None, description="One run or session")

    @model_validator(mode="after")
    def _one_scope(self) -> MemoryScope:
        if not any(getattr(self, key) for key in SCOPE_KEYS):
            raise ValueError("give at least one of user_id, agent_id or run_id: mem0 scopes every memory by them")
        return self

    def ids(self) -> dict[str, str]:
        return {key: value for key in SCOPE_KEYS if (value := getattr(self, key))}


def _check_metadata(metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    for key in metadata or {}:
        if not METADATA_KEY.fullmatch(key):
            raise ValueError(f"metadata key {key!r} must match {METADATA_KEY.pattern}")
        if key in RESERVED_METADATA:
            raise ValueError(f"metadata key {key!r} is reserved (kgmem or mem0 sets it); "
                             "pass user_id, agent_id and run_id as their own fields")
    return metadata


class AddMemoryRequest(MemoryScope):
    """mem0's `add`: a text or chat messages; `infer` lets the LLM extract facts, else each message is stored as is."""

    messages: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS)] | list[Message] = Field(
        description="A text, or chat messages [{role, content, name?}]")
    metadata: dict[str, MetadataValue] | None = Field(default=None, description="Scalar values, kept with each memory")
    infer: bool = Field(default=True, description="Extract facts with the LLM (true) or store the messages verbatim")

    @field_validator("messages")
    @classmethod
    def _some_text(cls, messages: str | list[Message]) -> str | list[Message]:
        if isinstance(messages, str):
            if not messages.strip():
                raise ValueError("messages must contain a visible character")
        elif not any(m.role != "system" and m.content.strip() for m in messages):
            raise ValueError("messages must contain at least one non-empty user or assistant message")
        return messages

    @field_validator("metadata")
    @classmethod
    def _metadata_keys(cls, metadata: dict[str, Any] | None) -> dict[str, Any] | None:
        return _check_metadata(metadata)

    def mem0_messages(self) -> str | list[dict[str, Any]]:
        if isinstance(self.messages, str):
            return self.messages
        return [m.model_dump(exclude_none=True) for m in self.messages]


class BatchMemory(MemoryScope):
    """One memory of a batch: a text stored verbatim (no LLM), with its scope and metadata."""

    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS)] = Field(
        description="The memory, stored as it is")
    metadata: dict[str, MetadataValue] | None = Field(default=None, description="Scalar values, kept with the memory")

    @field_validator("text")
    @classmethod
    def _visible(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("text must contain a visible character")
        return text

    @field_validator("metadata")
    @classmethod
    def _metadata_keys(cls, metadata: dict[str, Any] | None) -> dict[str, Any] | None:
        return _check_metadata(metadata)


MAX_BATCH_MEMORIES = 1000


class AddMemoriesRequest(InputModel):
    """Many memories at once, each stored verbatim: one embedding call, one vector write and one graph write
    for the batch, where mem0's `add` takes one memory per call. For the LLM's fact extraction, use `add`."""

    memories: list[BatchMemory] = Field(min_length=1, max_length=MAX_BATCH_MEMORIES)


class SearchMemoryRequest(MemoryScope):
    """mem0's `search`: memories of this scope nearest to `query`, optionally narrowed by metadata filters."""

    query: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000)]
    limit: int = Field(default=10, ge=1, le=1000, description="At most this many results (mem0's top_k)")
    filters: dict[str, FiniteValue] | None = Field(
        default=None,
        description="mem0 metadata filters: {key: value}, {key: {eq|ne|gt|gte|lt|lte|in|nin: value}}, "
                    "{AND|OR|NOT: [filter, ...]}")

    @field_validator("filters")
    @classmethod
    def _supported_filters(cls, filters: dict[str, Any] | None) -> dict[str, Any] | None:
        if filters is not None:
            _check_filter(filters)
        return filters


class UpdateMemoryRequest(InputModel):
    """mem0's `update`: the memory's new text (mem0 2.2.1 calls it `text`; `data` is its older name)."""

    model_config = ConfigDict(populate_by_name=True)

    text: Annotated[VisibleText, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS)] = Field(
        validation_alias=AliasChoices("text", "data"))
    metadata: dict[str, MetadataValue] | None = None

    @field_validator("metadata")
    @classmethod
    def _metadata_keys(cls, metadata: dict[str, Any] | None) -> dict[str, Any] | None:
        return _check_metadata(metadata)


LOGICAL = ("AND", "OR", "NOT")
# What mem0's Chroma store translates faithfully. It turns any other operator, `contains` and
# `icontains` included (Chroma has no substring match), into plain equality without a word.
OPERATORS = frozenset({"eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"})
Scalar = (str, int, float, bool)


def _check_filter(filters: Any, *, nested: bool = False) -> None:
    """Refuse what mem0 would misread or reject: scope keys, unknown operators, non-scalar values."""
    if not isinstance(filters, dict) or not filters:
        raise ValueError("a filter must be a non-empty object of {field: condition}")
    for key, condition in filters.items():
        if key in LOGICAL:
            if nested:
                raise ValueError(f"{key} may only be used at the top level of filters, not inside AND, OR or NOT")
            if not isinstance(condition, list) or not condition:
                raise ValueError(f"{key} takes a non-empty list of filters")
            for part in condition:
                _check_filter(part, nested=True)
            continue
        if key in ("space", *SCOPE_KEYS):
            raise ValueError(f"filters may not name {key!r}: pass user_id, agent_id and run_id as their own "
                             "fields; the space is always the one of the request")
        if not METADATA_KEY.fullmatch(key) or key in RESERVED_METADATA:
            raise ValueError(f"filters may not name {key!r}: filter on metadata keys you set")
        if isinstance(condition, dict):
            if not condition:
                raise ValueError(f"the condition on {key!r} names no operator")
            for operator, value in condition.items():
                if operator not in OPERATORS:
                    raise ValueError(f"filter operator {operator!r} on {key!r} is not supported; "
                                     f"use one of {', '.join(sorted(OPERATORS))}")
                if operator in ("in", "nin"):
                    if not isinstance(value, list) or not value or not all(isinstance(v, Scalar) for v in value):
                        raise ValueError(f"{operator!r} on {key!r} takes a non-empty list of scalar values")
                elif not isinstance(value, Scalar):
                    raise ValueError(f"{operator!r} on {key!r} takes a string, number or boolean")
        elif not isinstance(condition, Scalar):
            raise ValueError(f"the condition on {key!r} must be a value or {{operator: value}}")


def _validated(model: type[BaseModel], **fields: Any) -> Any:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'request'}: {error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()
        )
        raise InvalidInput(problems) from exc


# -- mem0 -----------------------------------------------------------------------------------------
def collection_name(model: str, dimension: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")[:40]
    return f"kgmem-mem0-{slug}-{dimension}"


def mem0_collection(chroma_client: ClientAPI, embedder: Embedder):
    """mem0's collection on kgmem's Chroma, made first (cosine, like kgmem's own index) so mem0 opens it as it is."""
    return chroma_client.get_or_create_collection(
        collection_name(embedder.name, embedder.dimension), embedding_function=None,
        metadata={**HNSW_SETTINGS, "embedding_model": embedder.name, "dimension": embedder.dimension},
    )


def _import_mem0(mem0_dir: Path):
    """Import mem0 with its directory under kgmem's home and its telemetry off."""
    os.environ["MEM0_TELEMETRY"] = "False"
    os.environ.setdefault("MEM0_DIR", str(mem0_dir))  # read at import: it mkdirs it and writes config.json there
    from mem0 import Memory
    from mem0.memory import main as mem0_main, telemetry

    if telemetry.MEM0_TELEMETRY or mem0_main.MEM0_TELEMETRY:
        # Something imported mem0 before this function could set the variable: switch it off after the fact.
        log.warning("mem0 was imported before MEM0_TELEMETRY=False was set; turning its telemetry off now")
        telemetry.MEM0_TELEMETRY = False
        mem0_main.MEM0_TELEMETRY = False
        telemetry.client_telemetry.close()
    return Memory


def _embedding_adapter(embedder: Embedder):
    """mem0's embedding interface (`embed(text, memory_action)`, `embed_batch`) over kgmem's Embedder."""
    from mem0.configs.embeddings.base import BaseEmbedderConfig
    from mem0.embeddings.base import EmbeddingBase

    class KgmemEmbedding(EmbeddingBase):
        def __init__(self) -> None:
            super().__init__(BaseEmbedderConfig(model=embedder.name, embedding_dims=embedder.dimension))
            self.embedder = embedder

        def embed(self, text, memory_action=None):
            return self.embedder.embed_whole([text])[0]

        def embed_batch(self, texts, memory_action="add"):
            return self.embedder.embed_whole(list(texts))

    return KgmemEmbedding()


def history_db_path(settings: Settings) -> Path:
    """mem0's SQLite history of every memory (and the last messages per scope), under kgmem's home."""
    return Path(settings.home) / "mem0" / "history.db"


GraphFactory = Callable[[str], "SpaceGraph"]


@dataclass(frozen=True)
class ImportedMemory:
    """A memory stored verbatim: one from another mem0 store, as it was there (its original id and times), or
    one of a batch (`add_batch`: no original id, written now)."""

    original_id: str
    text: str
    scope: dict[str, str]  # user_id / agent_id / run_id, unqualified
    metadata: dict[str, Any] = field(default_factory=dict)  # scalar values, keys as _check_metadata allows
    created_at: str | None = None
    updated_at: str | None = None
    actor_id: str | None = None
    role: str | None = None


def imported_memory_id(space: str, original_id: str) -> str:
    """The id an imported memory has in `space`: the same for the same original id, different per space."""
    return str(uuid.uuid5(IMPORTED_ID_NAMESPACE, f"{space}{SCOPE_SEPARATOR}{original_id}"))


class FreeTextMemory:
    """mem0's operations, in mem0's shapes, for one kgmem space at a time."""

    def __init__(
        self,
        settings: Settings,
        chroma_client: ClientAPI,
        embedder: Embedder,
        graph: GraphFactory | Any,
        *,
        anthropic_client: Any = None,
        llm_model: str = DEFAULT_LLM_MODEL,
    ) -> None:
        self._graph: GraphFactory = graph if callable(graph) else graph.space  # a factory, or a GraphStore
        self.embedder = embedder
        self.mem0_dir = Path(settings.home) / "mem0"
        self.mem0_dir.mkdir(parents=True, exist_ok=True)  # mem0 crashes on a history path whose directory is missing
        self.history_db_path = history_db_path(settings)
        self.collection_name = collection_name(embedder.name, embedder.dimension)
        api_key = settings.anthropic_api_key.get_secret_value() if settings.anthropic_api_key else None
        self.llm_available = bool(anthropic_client is not None or api_key)

        Memory = _import_mem0(self.mem0_dir)
        # Cosine, like kgmem's own index; mem0 then opens this collection as it is.
        mem0_collection(chroma_client, embedder)
        config = {
            "vector_store": {"provider": "chroma",
                             "config": {"client": chroma_client, "collection_name": self.collection_name}},
            # Pointed at an endpoint it never calls, the huggingface provider builds only an HTTP client
            # instead of loading a second copy of the model; it is replaced by the adapter just below.
            "embedder": {"provider": "huggingface",
                         "config": {"model": embedder.name, "embedding_dims": embedder.dimension,
                                    "huggingface_base_url": UNUSED_EMBEDDING_ENDPOINT}},
            # anthropic 2.x's messages.create() has no temperature/top_p/top_k any more; mem0 would pass
            # temperature for models it believes take it (claude-sonnet-4-5 among them) and get a TypeError.
            "llm": {"provider": "anthropic", "config": {"model": llm_model, "api_key": api_key or NO_API_KEY,
                                                        "enable_sampling_parameters": False}},
            "history_db_path": str(self.history_db_path),
        }
        try:
            self.mem0 = Memory.from_config(config)
        except ValidationError as exc:
            raise ConfigurationError(f"mem0 refused its configuration: {exc}") from exc
        self.mem0.embedding_model = _embedding_adapter(embedder)
        if anthropic_client is not None:
            self.mem0.llm.client = anthropic_client

    # -- scope qualification ----------------------------------------------------------------------
    @staticmethod
    def _qualified(space: str, ids: dict[str, str]) -> dict[str, str]:
        return {key: f"{space}{SCOPE_SEPARATOR}{value}" for key, value in ids.items()}

    @staticmethod
    def _public(space: str, item: dict[str, Any]) -> dict[str, Any]:
        """A mem0 result as the caller sees it: scope ids without the space prefix."""
        prefix = f"{space}{SCOPE_SEPARATOR}"
        out = dict(item)
        for key in SCOPE_KEYS:
            if isinstance(out.get(key), str) and out[key].startswith(prefix):
                out[key] = out[key][len(prefix):]
        return out

    def _results(self, space: str, answer: dict[str, Any]) -> dict[str, Any]:
        return {**answer, "results": [self._public(space, item) for item in answer.get("results", [])]}

    # -- errors -----------------------------------------------------------------------------------
    def _call(self, what: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a mem0 operation; its complaints about input become InvalidInput, LLM failures LLMUnavailable."""
        from mem0.exceptions import LLMError
        from mem0.exceptions import ValidationError as Mem0ValidationError

        try:
            return function(*args, **kwargs)
        except Mem0ValidationError as exc:
            raise InvalidInput(f"{what}: {exc.message}") from exc
        except LLMError as exc:
            cause = exc.__cause__
            import anthropic

            if isinstance(cause, anthropic.AuthenticationError | anthropic.PermissionDeniedError):
                raise ConfigurationError(f"{what}: Anthropic refused the API key (ANTHROPIC_API_KEY): {cause}") from exc
            raise LLMUnavailable(f"{what}: the LLM call for infer=true failed ({exc}); retry later, "
                                 "or add with infer=false") from exc
        except ValueError as exc:  # mem0's way of refusing input (bad filters, unknown ids)
            if (unavailable := translate_chroma(exc)) is not None:
                raise unavailable from exc
            message = str(exc)
            if "not found" in message.lower():
                raise NotFound(f"{what}: {message}") from exc
            raise InvalidInput(f"{what}: {message}") from exc
        except Exception as exc:  # Chroma under mem0: an outage is temporary, anything else a bug
            if (unavailable := translate_chroma(exc)) is not None:
                raise unavailable from exc
            raise

    def _require_llm(self) -> None:
        if not self.llm_available:
            raise ConfigurationError(
                "infer=true needs Claude, and ANTHROPIC_API_KEY is not set: set it, or add with infer=false")

    # -- ownership --------------------------------------------------------------------------------
    def _payload(self, memory_id: str) -> dict[str, Any] | None:
        found = self.mem0.vector_store.get(vector_id=memory_id)
        return (found.payload or {}) if found else None

    def _owned(self, space: str, memory_id: Any, *, deleted_ok: bool = False) -> dict[str, Any] | None:
        """The memory's payload if it is this space's; NotFound otherwise (another space's ids look absent)."""
        if not isinstance(memory_id, str) or not memory_id.strip() or len(memory_id) > 200:
            raise InvalidInput("memory_id must be a non-empty string of at most 200 characters")
        missing = NotFound(f"no memory {memory_id!r} in this space")
        payload = self._payload(memory_id)
        if payload is not None:
            if payload.get("space") != space:
                raise missing
            return payload
        if not deleted_ok:
            raise missing
        # Deleted: mem0 keeps only its history, which does not say whose it was; the graph does.
        try:
            self._graph(space).history(memory_id)
        except NotFound:
            raise missing from None
        return None

    # -- operations -------------------------------------------------------------------------------
    def add(self, space: str, messages: str | list[dict[str, Any]] | list[Message], *, user_id: str | None = None,
            agent_id: str | None = None, run_id: str | None = None, metadata: dict[str, Any] | None = None,
            infer: bool = True) -> dict[str, Any]:
        """mem0's add; returns {"results": [{"id", "memory", "event", ...}]}."""
        check_space(space)
        request: AddMemoryRequest = _validated(AddMemoryRequest, messages=messages, user_id=user_id,
                                               agent_id=agent_id, run_id=run_id, metadata=metadata, infer=infer)
        if request.infer:
            self._require_llm()
        answer = self._call(
            "add", self.mem0.add, request.mem0_messages(), **self._qualified(space, request.ids()),
            metadata={**(request.metadata or {}), "space": space}, infer=request.infer,
        )
        answer = self._results(space, answer)
        changed = [item for item in answer["results"] if item.get("event") in ("ADD", "UPDATE")]
        gone = [item["id"] for item in answer["results"] if item.get("event") == "DELETE"]
        if changed or gone:
            self._link(space, [(item["id"], item["memory"]) for item in changed], request.ids())
            self._retract(space, gone)
        return answer

    def search(self, space: str, query: str, *, user_id: str | None = None, agent_id: str | None = None,
               run_id: str | None = None, limit: int = 10, filters: dict[str, Any] | None = None) -> dict[str, Any]:
        """mem0's search, within this space; returns {"results": [{"id", "memory", "score", ...}]}."""
        check_space(space)
        request: SearchMemoryRequest = _validated(SearchMemoryRequest, query=query, user_id=user_id,
                                                  agent_id=agent_id, run_id=run_id, limit=limit, filters=filters)
        scoped = {**(request.filters or {}), **self._qualified(space, request.ids()), "space": space}
        answer = self._call("search", self.mem0.search, request.query, top_k=request.limit, filters=scoped)
        return self._results(space, answer)

    def get_all(self, space: str, *, user_id: str | None = None, agent_id: str | None = None,
                run_id: str | None = None, limit: int = 100) -> dict[str, Any]:
        """mem0's get_all, within this space; returns {"results": [...]}."""
        check_space(space)
        scope: MemoryScope = _validated(MemoryScope, user_id=user_id, agent_id=agent_id, run_id=run_id)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 10_000:
            raise InvalidInput("limit must be an integer from 1 to 10000")
        scoped = {**self._qualified(space, scope.ids()), "space": space}
        answer = self._call("get_all", self.mem0.get_all, filters=scoped, top_k=limit)
        return self._results(space, answer)

    def get(self, space: str, memory_id: str) -> dict[str, Any]:
        """mem0's get: one memory of this space."""
        check_space(space)
        self._owned(space, memory_id)
        found = self._call("get", self.mem0.get, memory_id)
        if found is None:
            raise NotFound(f"no memory {memory_id!r} in this space")
        return self._public(space, found)

    def update(self, space: str, memory_id: str, data: str, *, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """mem0's update: new text for a memory of this space; returns {"message": ...}."""
        check_space(space)
        request: UpdateMemoryRequest = _validated(UpdateMemoryRequest, text=data, metadata=metadata)
        self._owned(space, memory_id)
        answer = self._call("update", self.mem0.update, memory_id, text=request.text, metadata=request.metadata)
        payload = self._payload(memory_id) or {}
        prefix = f"{space}{SCOPE_SEPARATOR}"
        ids = {key: payload[key][len(prefix):] for key in SCOPE_KEYS
               if isinstance(payload.get(key), str) and payload[key].startswith(prefix)}
        self._link(space, [(memory_id, payload.get("data", request.text))], ids)
        return answer

    def delete(self, space: str, memory_id: str) -> dict[str, Any]:
        """mem0's delete, for a memory of this space; returns {"message": ...}."""
        check_space(space)
        self._owned(space, memory_id)
        answer = self._call("delete", self.mem0.delete, memory_id)
        self._retract(space, [memory_id])
        return answer

    def history(self, space: str, memory_id: str) -> list[dict[str, Any]]:
        """mem0's history of a memory of this space (also once deleted): [{"event", "old_memory", "new_memory", ...}]."""
        check_space(space)
        self._owned(space, memory_id, deleted_ok=True)
        return self._call("history", self.mem0.history, memory_id)

    def add_batch(self, space: str, memories: list[BatchMemory] | list[dict[str, Any]]) -> dict[str, Any]:
        """Store many memories verbatim (no LLM) in one go; returns {"results": [{"id", "memory", "event"}]} in
        input order, as `add` with `infer=False` would for each."""
        check_space(space)
        request: AddMemoriesRequest = _validated(AddMemoriesRequest, memories=memories)
        now = datetime.now(UTC).isoformat()
        # As mem0 stores a text given to `add` with infer=False: a user message.
        fresh = {str(uuid.uuid4()): ImportedMemory(original_id="", text=m.text, scope=m.ids(),
                                                   metadata=m.metadata or {}, created_at=now, role="user")
                 for m in request.memories}
        self._insert_verbatim(space, fresh, imported=False)
        return {"results": [{"id": memory_id, "memory": m.text, "event": "ADD", "role": m.role}
                            for memory_id, m in fresh.items()]}

    def import_memories(self, space: str, memories: list[ImportedMemory]) -> list[str]:
        """Store memories from another mem0 store verbatim (no LLM), with their times, and link them into the
        graph; return the original ids of those written. Already imported ones (same space, same original id)
        are left alone, so repeating an import adds nothing."""
        check_space(space)
        wanted = {imported_memory_id(space, m.original_id): m for m in memories}
        if not wanted:
            return []
        present = set(self._call("import", self.mem0.vector_store.collection.get, ids=list(wanted), include=[])["ids"])
        fresh = {memory_id: m for memory_id, m in wanted.items() if memory_id not in present}
        if fresh:
            self._insert_verbatim(space, fresh, imported=True)
        return [m.original_id for m in fresh.values()]

    def _insert_verbatim(self, space: str, fresh: dict[str, ImportedMemory], *, imported: bool) -> None:
        """Write memories as mem0's `add` with `infer=False` writes each (the same payload and history row),
        with one embedding call, one vector insert and one history write for all; then link them into the graph.
        An imported memory keeps its original id and times."""
        from mem0.utils.lemmatization import lemmatize_for_bm25

        vectors = self.embedder.embed_whole([m.text for m in fresh.values()])
        payloads = []
        for m in fresh.values():
            created = m.created_at or datetime.now(UTC).isoformat()
            payload: dict[str, Any] = {
                **m.metadata, **self._qualified(space, m.scope), "space": space,
                "data": m.text, "hash": hashlib.md5(m.text.encode()).hexdigest(),
                "created_at": created, "updated_at": m.updated_at or created,
                "text_lemmatized": lemmatize_for_bm25(m.text),
            }
            if imported:
                payload["imported_id"] = m.original_id
            payloads.append(payload | {key: value for key in ("actor_id", "role") if (value := getattr(m, key))})
        self._call("add", self.mem0.vector_store.insert, vectors=vectors, ids=list(fresh), payloads=payloads)
        self.mem0.db.batch_add_history([
            {"memory_id": memory_id, "old_memory": None, "new_memory": payload["data"], "event": "ADD",
             "created_at": payload["created_at"], "updated_at": payload["updated_at"],
             "actor_id": m.actor_id, "role": m.role}
            for (memory_id, m), payload in zip(fresh.items(), payloads)
        ])
        kept = {memory_id: {"imported_id": m.original_id, "mem0_created_at": payload["created_at"],
                            "mem0_updated_at": payload["updated_at"]}
                for (memory_id, m), payload in zip(fresh.items(), payloads)} if imported else {}
        by_scope: dict[tuple[tuple[str, str], ...], list[tuple[str, str]]] = {}
        for memory_id, m in fresh.items():
            by_scope.setdefault(tuple(sorted(m.scope.items())), []).append((memory_id, m.text))
        for scope, group in by_scope.items():
            self._link(space, group, dict(scope), attributes=kept, new=True)

    def close(self) -> None:
        """Release mem0's history database connection."""
        self.mem0.close()

    # -- the graph --------------------------------------------------------------------------------
    def _link(self, space: str, memories: list[tuple[str, str]], ids: dict[str, str], *,
              attributes: Mapping[str, Mapping[str, Any]] | None = None, new: bool = False) -> None:
        """Upsert a Memory entity per memory (with `attributes[memory_id]` if given) and point MENTIONS at the
        entities its text names (and only those). `new`: the memories were just created, so they point at
        nothing yet."""
        if not memories:
            return
        graph = self._graph(space)
        provenance = Provenance(source=SOURCE, agent=ids.get("agent_id"))
        extra = attributes or {}
        entities = graph.upsert_entities([
            EntityIn(kind=Kind.MEMORY, name=memory_id, id=memory_id, summary=text,
                     attributes={"mem0_id": memory_id, **ids, **extra.get(memory_id, {})}, provenance=provenance)
            for memory_id, text in memories
        ])
        add: list[RelationIn] = []
        stale: list[RelationIn] = []
        mentioned = graph.mentioned_ids([text for _, text in memories])
        for entity, named_ids in zip(entities, mentioned):
            named = {entity_id for entity_id in named_ids if entity_id != entity.id}
            current = set() if new else {
                r.target_id for r in graph.history(entity.id).relations
                if r.type == "MENTIONS" and r.source_id == entity.id and r.valid_to is None and r.retracted_at is None}
            add += [RelationIn(source=EntityRef(id=entity.id), type="MENTIONS", target=EntityRef(id=target),
                               provenance=provenance) for target in sorted(named - current)]
            stale += [RelationIn(source=EntityRef(id=entity.id), type="MENTIONS", target=EntityRef(id=target))
                      for target in sorted(current - named)]
        if add:
            graph.upsert_relations(add)
        if stale:
            graph.retract_relations(stale)

    def _retract(self, space: str, memory_ids: list[str]) -> None:
        if not memory_ids:
            return
        graph = self._graph(space)
        for memory_id in memory_ids:
            try:
                graph.retract_entity(memory_id)
            except NotFound:
                log.info("mem0 memory %s had no Memory entity in space %s", memory_id, space)

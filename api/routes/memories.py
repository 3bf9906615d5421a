"""Free-text memories in mem0's request and response shapes (add, search, get_all, get, update, delete, history),
and `POST …/memories/batch`, which stores many verbatim memories in one call (mem0's add takes one).

mem0 runs on kgmem's Chroma and embedder; each memory is also a `:Memory` entity of the
space, so recall finds it. Memory ids of another space answer 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from api.deps import Config, Idempotency, IdempotencyKey, IdPath, Reader, SpacePath, Writer, services
from api.limits import page_size
from api.models import MAX_LIMIT, MemoryHistoryItem, MemoryItem, MemoryMessage, MemoryResults
from api.routes import PROBLEMS, responses
from api.routes.entities import offset_of
from graph.reads import encode_cursor
from memory.free_text import (
    AddMemoriesRequest,
    AddMemoryRequest,
    FreeTextMemory,
    SearchMemoryRequest,
    UpdateMemoryRequest,
)

router = APIRouter(prefix="/v1/spaces/{space}/memories", tags=["memories"], responses=PROBLEMS)

ScopeId = Annotated[str | None, Query(min_length=1, max_length=200, pattern=r"^\S+$")]
MAX_LISTED = 10_000

ADD_EXAMPLE = {"messages": [{"role": "user", "content": "I prefer Polars over pandas for feature pipelines"}],
               "user_id": "alice", "infer": False, "metadata": {"topic": "tooling"}}
BATCH_EXAMPLE = {"memories": [
    {"text": "I prefer Polars over pandas for feature pipelines", "user_id": "alice", "metadata": {"topic": "tooling"}},
    {"text": "The nightly retrain runs at 02:00 UTC", "agent_id": "ml-1"}]}
SEARCH_EXAMPLE = {"query": "dataframe library", "user_id": "alice", "limit": 5}


def free_text(request: Request) -> FreeTextMemory:
    return services(request).memory().free_text()


@router.post("", response_model=MemoryResults, summary="mem0 add: store a text or chat messages",
             responses=responses(409))
def add(space: SpacePath, request: Request, caller: Writer, store: Idempotency,
        body: Annotated[AddMemoryRequest, Body(examples=[ADD_EXAMPLE])],
        idempotency_key: IdempotencyKey = None) -> JSONResponse:
    def work() -> dict[str, Any]:
        return free_text(request).add(space, body.mem0_messages(), **body.ids(), metadata=body.metadata,
                                      infer=body.infer)

    return store.run(request, caller.key.key_id, idempotency_key, body, work)


@router.post("/batch", response_model=MemoryResults, responses=responses(409),
             summary="Store many memories at once, each verbatim (no LLM): one embedding call for the batch")
def add_batch(space: SpacePath, request: Request, caller: Writer, store: Idempotency,
              body: Annotated[AddMemoriesRequest, Body(examples=[BATCH_EXAMPLE])],
              idempotency_key: IdempotencyKey = None) -> JSONResponse:
    def work() -> dict[str, Any]:
        return free_text(request).add_batch(space, body.memories)

    return store.run(request, caller.key.key_id, idempotency_key, body, work)


@router.post("/search", response_model=MemoryResults, summary="mem0 search: memories nearest to a query")
def search(space: SpacePath, request: Request, caller: Reader, config: Config,
           body: Annotated[SearchMemoryRequest, Body(examples=[SEARCH_EXAMPLE])]) -> dict[str, Any]:
    limit = page_size(body.limit if "limit" in body.model_fields_set else None, body.limit, config.api_max_limit,
                      ("body", "limit"))
    return free_text(request).search(space, body.query, **body.ids(), limit=limit, filters=body.filters)


@router.get("", response_model=MemoryResults, summary="mem0 get_all: the memories of a user, agent or run")
def get_all(space: SpacePath, request: Request, caller: Reader, config: Config, user_id: ScopeId = None,
            agent_id: ScopeId = None, run_id: ScopeId = None,
            cursor: Annotated[str | None, Query(max_length=1000)] = None,
            limit: Annotated[int | None, Query(ge=1, le=MAX_LIMIT)] = None) -> MemoryResults:
    if not (user_id or agent_id or run_id):
        raise RequestValidationError([{"loc": ("query", "user_id"), "type": "missing",
                                       "msg": "give at least one of user_id, agent_id or run_id"}])
    limit = page_size(limit, 100, config.api_max_limit)
    offset = offset_of(cursor)
    wanted = min(offset + limit + 1, MAX_LISTED)
    ids = {k: v for k, v in (("user_id", user_id), ("agent_id", agent_id), ("run_id", run_id)) if v}
    found = free_text(request).get_all(space, **ids, limit=wanted)["results"] if offset < MAX_LISTED else []
    more = len(found) > offset + limit
    return MemoryResults(results=found[offset:offset + limit],
                         next_cursor=encode_cursor({"o": offset + limit}) if more else None)


@router.get("/{memory_id}", response_model=MemoryItem, summary="mem0 get: one memory")
def get(space: SpacePath, memory_id: IdPath, request: Request, caller: Reader) -> dict[str, Any]:
    return free_text(request).get(space, memory_id)


@router.put("/{memory_id}", response_model=MemoryMessage, summary="mem0 update: new text for a memory")
def update(space: SpacePath, memory_id: IdPath, request: Request, caller: Writer,
           body: Annotated[UpdateMemoryRequest, Body(examples=[{"text": "I prefer Polars, and DuckDB for SQL"}])],
           ) -> dict[str, Any]:
    return free_text(request).update(space, memory_id, body.text, metadata=body.metadata)


@router.delete("/{memory_id}", response_model=MemoryMessage, summary="mem0 delete: forget a memory")
def delete(space: SpacePath, memory_id: IdPath, request: Request, caller: Writer) -> dict[str, Any]:
    return free_text(request).delete(space, memory_id)


@router.get("/{memory_id}/history", response_model=list[MemoryHistoryItem],
            summary="mem0 history: every change to a memory, also once deleted")
def history(space: SpacePath, memory_id: IdPath, request: Request, caller: Reader) -> list[dict[str, Any]]:
    return free_text(request).history(space, memory_id)

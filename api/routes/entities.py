"""Entities: batch upsert, get, list, search, history, neighbourhood, retract, delete and purge."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from api.deps import Admin, Config, IdempotencyKey, IdPath, Idempotency, Memory, Reader, SpacePath, Writer
from api.limits import check_at_most, page_size
from api.models import MAX_LIMIT, EntityBatch, EntityList, EntityRetraction, SearchPage
from api.routes import PROBLEMS, responses
from graph.model import Entity, EntityHistory, Neighbourhood, Page, PurgeReport, UtcDatetime
from graph.errors import InvalidInput
from graph.reads import MAX_DEPTH, decode_cursor, encode_cursor
from graph.vocabulary import Kind

router = APIRouter(prefix="/v1/spaces/{space}", tags=["entities"], responses=PROBLEMS)

MAX_SEARCH_RESULTS = 1000  # a search pages through at most this many hits

Limit = Annotated[int | None, Query(ge=1, le=MAX_LIMIT, description="Page size (at most the server's api_max_limit)")]
Cursor = Annotated[str | None, Query(max_length=1000, description="`next_cursor` of the previous page")]
Kinds = Annotated[list[Kind] | None, Query(alias="kind", description="Only these kinds (repeat the parameter)")]
KnownAt = Annotated[UtcDatetime | None, Query(description="The graph as kgmem knew it then (default: now)")]
AsOf = Annotated[UtcDatetime | None, Query(description="Facts valid at this time (default: now)")]


@router.post("/entities", response_model=EntityList, summary="Create or update entities (batch)",
             responses=responses(409))
def upsert_entities(space: SpacePath, request: Request, caller: Writer, memory: Memory, config: Config,
                    store: Idempotency, batch: EntityBatch, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    check_at_most(("body", "entities"), len(batch.entities), config.api_max_batch)
    return store.run(request, caller.key.key_id, idempotency_key, batch,
                     lambda: EntityList(entities=memory.graph.upsert_entities(batch.entities)))


@router.get("/entities", response_model=Page[Entity], summary="List entities, a page at a time")
def list_entities(space: SpacePath, caller: Reader, memory: Memory, config: Config, kinds: Kinds = None,
                  updated_since: Annotated[UtcDatetime | None, Query()] = None, known_at: KnownAt = None,
                  cursor: Cursor = None, limit: Limit = None) -> Page[Entity]:
    limit = page_size(limit, 50, config.api_max_limit)
    return memory.graph.list_entities(kinds=kinds, updated_since=updated_since, known_at=known_at,
                                      cursor=cursor, limit=limit)


@router.get("/entities/search", response_model=SearchPage, summary="Find entities by name, alias and text")
def search_entities(space: SpacePath, caller: Reader, memory: Memory, config: Config,
                    q: Annotated[str, Query(min_length=1, max_length=1000, description="Words or a name")],
                    kinds: Kinds = None, as_of: AsOf = None, known_at: KnownAt = None,
                    cursor: Cursor = None, limit: Limit = None) -> SearchPage:
    limit = page_size(limit, 20, config.api_max_limit)
    offset = min(offset_of(cursor), MAX_SEARCH_RESULTS)
    wanted = min(offset + limit + 1, MAX_SEARCH_RESULTS + 1)
    hits = memory.graph.search(q, kinds=kinds, limit=wanted, as_of=as_of, known_at=known_at)
    page = hits[offset:offset + limit]
    more = len(hits) > offset + limit and offset + limit < MAX_SEARCH_RESULTS
    return SearchPage(items=page, next_cursor=encode_cursor({"o": offset + limit}) if more else None)


@router.get("/entities/{entity_id}", response_model=Entity, summary="One entity")
def get_entity(space: SpacePath, entity_id: IdPath, caller: Reader, memory: Memory,
               known_at: KnownAt = None) -> Entity:
    return memory.graph.get_entity(entity_id, known_at=known_at)


@router.get("/entities/{entity_id}/history", response_model=EntityHistory,
            summary="Everything recorded about an entity: revisions, observations, relations, retracted ones too")
def history(space: SpacePath, entity_id: IdPath, caller: Reader, memory: Memory) -> EntityHistory:
    return memory.graph.history(entity_id)


@router.get("/entities/{entity_id}/neighbourhood", response_model=Neighbourhood,
            summary="Entities within `depth` hops, nearest first, a page at a time")
def neighbourhood(space: SpacePath, entity_id: IdPath, caller: Reader, memory: Memory, config: Config,
                  depth: Annotated[int | None, Query(ge=1, le=MAX_DEPTH, description="Hops (default 1)")] = None, kinds: Kinds = None,
                  as_of: AsOf = None, known_at: KnownAt = None, cursor: Cursor = None, limit: Limit = None,
                  observations: Annotated[int, Query(ge=0, le=MAX_LIMIT, description="Observations of the centre")] = 20,
                  ) -> Neighbourhood:
    depth = page_size(depth, 1, config.api_max_depth, ("query", "depth"), "hops")
    limit = page_size(limit, 50, config.api_max_limit)
    offset_of(cursor)
    return memory.graph.neighbourhood(entity_id, depth=depth, kinds=kinds, as_of=as_of, known_at=known_at,
                                      cursor=cursor, limit=limit, observations=observations)


@router.post("/entities/{entity_id}/retract", response_model=EntityRetraction,
             summary="Retract an entity (soft delete: hidden from reads, kept in history)")
def retract_entity(space: SpacePath, entity_id: IdPath, caller: Writer, memory: Memory) -> EntityRetraction:
    counts = memory.graph.retract_entity(entity_id)
    return EntityRetraction(entity_id=entity_id, **counts)


@router.delete("/entities/{entity_id}", response_model=PurgeReport,
               summary="Delete an entity for good, with its observations, revisions and relations (admin)")
def delete_entity(space: SpacePath, entity_id: IdPath, caller: Admin, memory: Memory) -> PurgeReport:
    return memory.delete_entity(entity_id)


@router.post("/entities/{entity_id}/purge", response_model=PurgeReport,
             summary="Delete an entity and every observation that mentions it (data-protection requests; admin)")
def purge_entity(space: SpacePath, entity_id: IdPath, caller: Admin, memory: Memory) -> PurgeReport:
    return memory.purge_entity(entity_id)


def offset_of(cursor: str | None) -> int:
    """The position an offset cursor (`{"o": n}`) points at; InvalidInput for a forged one."""
    if not cursor:
        return 0
    offset = decode_cursor(cursor, "o")["o"]
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= 1_000_000:
        raise InvalidInput("cursor is not valid: pass back the next_cursor of the previous page unchanged")
    return offset

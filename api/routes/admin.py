"""Admin: reindex jobs, statistics and API keys of a space; the global reindex for keys bound to every space.

A space's admin manages the keys bound to that space alone; keys for several spaces or for
every space ('*') are managed with `kgmem keys`, so no tenant's admin learns of another space.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from api.auth import ApiKey
from api.deps import (
    Admin,
    Config,
    Idempotency,
    IdempotencyKey,
    IdPath,
    Jobs,
    Keys,
    Memory,
    SpacePath,
    require_all_spaces,
    services,
)
from api.jobs import Job
from api.limits import page_size
from api.models import MAX_LIMIT, KeyCreate, KeyCreated, KeyPage, ReindexRequest, Stats
from api.routes import PROBLEMS, responses
from api.routes.entities import offset_of
from graph.errors import NotFound
from graph.reads import encode_cursor

router = APIRouter(prefix="/v1/spaces/{space}/admin", tags=["admin"], responses=PROBLEMS)
global_router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=PROBLEMS)

# -- a space ---------------------------------------------------------------------------------------------------
@router.get("/stats", response_model=Stats, summary="What the space holds: entities, observations, relations, vectors")
def stats(space: SpacePath, caller: Admin, memory: Memory) -> Stats:
    return Stats(space=space, **memory.stats())


@router.post("/reindex", response_model=Job, status_code=202, responses=responses(409),
             summary="Bring the space's pending vectors into Chroma, in the background")
def reindex_space(space: SpacePath, request: Request, caller: Admin, jobs: Jobs, store: Idempotency,
                  memory: Memory, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    return store.run(request, caller.key.key_id, idempotency_key, {"space": space},
                     lambda: jobs.start("reindex", space, memory.reindex), status_code=202)


@router.get("/jobs/{job_id}", response_model=Job, summary="A background job of this space")
def job(space: SpacePath, job_id: IdPath, caller: Admin, jobs: Jobs) -> Job:
    return jobs.get(job_id, space)


@router.get("/keys", response_model=KeyPage, summary="The API keys bound to this space alone")
def list_keys(space: SpacePath, caller: Admin, keys: Keys, config: Config,
              cursor: Annotated[str | None, Query(max_length=1000)] = None,
              limit: Annotated[int | None, Query(ge=1, le=MAX_LIMIT)] = None) -> KeyPage:
    limit = page_size(limit, 50, config.api_max_limit)
    offset = offset_of(cursor)
    mine = [key for key in keys.list() if key.spaces == [space]]
    more = len(mine) > offset + limit
    return KeyPage(items=mine[offset:offset + limit], next_cursor=encode_cursor({"o": offset + limit}) if more else None)


@router.post("/keys", response_model=KeyCreated, status_code=201,
             summary="A new key for this space; the token is shown once (no Idempotency-Key: tokens are never stored)")
def create_key(space: SpacePath, caller: Admin, keys: Keys, body: KeyCreate) -> KeyCreated:
    key, token = keys.create(body.name, body.scopes, [space])
    return KeyCreated(key=key, token=token)


@router.delete("/keys/{key_id}", response_model=ApiKey, summary="Revoke a key bound to this space alone")
def revoke_key(space: SpacePath, key_id: IdPath, caller: Admin, keys: Keys) -> ApiKey:
    key = keys.get(key_id)
    if key is None or key.spaces != [space]:
        raise NotFound(f"no API key {key_id!r} in this space")
    keys.revoke(key_id)
    return keys.get(key_id) or key


# -- every space -----------------------------------------------------------------------------------------------
@global_router.post("/reindex", response_model=Job, status_code=202, responses=responses(409),
                    summary="Reconcile the whole vector index with Neo4j (`full`: rebuild it); key bound to every space")
def reindex_all(request: Request, caller: Admin, jobs: Jobs, store: Idempotency, body: ReindexRequest,
                idempotency_key: IdempotencyKey = None) -> JSONResponse:
    require_all_spaces(caller, "Reindexing every space")
    memory = services(request).memory()
    return store.run(request, caller.key.key_id, idempotency_key, body,
                     lambda: jobs.start("reindex", None, lambda: memory.reconcile(full=body.full), full=body.full),
                     status_code=202)


@global_router.get("/jobs/{job_id}", response_model=Job, summary="A background job that works on every space")
def global_job(job_id: IdPath, caller: Admin, jobs: Jobs) -> Job:
    require_all_spaces(caller, "A global job")
    return jobs.get(job_id, None)

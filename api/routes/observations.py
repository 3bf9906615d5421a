"""Observations (dated statements about entities) and relations: batch writes and retractions."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import Config, Idempotency, IdempotencyKey, Memory, SpacePath, Writer
from api.limits import check_at_most
from api.models import (
    ObservationBatch,
    ObservationList,
    ObservationRetraction,
    RelationBatch,
    RelationList,
    RelationRetraction,
    Retracted,
)
from api.routes import PROBLEMS, responses

router = APIRouter(prefix="/v1/spaces/{space}", responses=PROBLEMS)


@router.post("/observations", response_model=ObservationList, tags=["observations"],
             summary="Add observations (batch)", responses=responses(409))
def add_observations(space: SpacePath, request: Request, caller: Writer, memory: Memory, config: Config,
                     store: Idempotency, batch: ObservationBatch,
                     idempotency_key: IdempotencyKey = None) -> JSONResponse:
    check_at_most(("body", "observations"), len(batch.observations), config.api_max_batch)
    return store.run(request, caller.key.key_id, idempotency_key, batch, lambda: ObservationList(
        observations=memory.graph.add_observations(batch.observations, create_missing=batch.create_missing)))


@router.post("/observations/retract", response_model=Retracted, tags=["observations"],
             summary="Retract observations by id (they stay in history)")
def retract_observations(space: SpacePath, caller: Writer, memory: Memory, config: Config,
                         body: ObservationRetraction) -> Retracted:
    check_at_most(("body", "ids"), len(body.ids), config.api_max_batch)
    return Retracted(retracted=memory.graph.retract_observations(body.ids))


@router.post("/relations", response_model=RelationList, tags=["relations"],
             summary="Record relations (batch)", responses=responses(409))
def upsert_relations(space: SpacePath, request: Request, caller: Writer, memory: Memory, config: Config,
                     store: Idempotency, batch: RelationBatch, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    check_at_most(("body", "relations"), len(batch.relations), config.api_max_batch)
    return store.run(request, caller.key.key_id, idempotency_key, batch, lambda: RelationList(
        relations=memory.graph.upsert_relations(batch.relations, create_missing=batch.create_missing)))


@router.post("/relations/retract", response_model=Retracted, tags=["relations"],
             summary="Retract current relations (they stay in history)")
def retract_relations(space: SpacePath, caller: Writer, memory: Memory, config: Config,
                      body: RelationRetraction) -> Retracted:
    check_at_most(("body", "relations"), len(body.relations), config.api_max_batch)
    return Retracted(retracted=memory.graph.retract_relations(body.relations))

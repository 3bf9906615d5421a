"""Delegations (agents/delegations.py): a brief before delegating, the outcome after, and the feedback that ranks later briefs.

Briefing the same `delegation_id` (or body `idempotency_key`) again returns the same delegation,
and the same outcome twice is applied once, so both are safe to retry; the Idempotency-Key
header works on them too.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from agents.briefs import Brief, BriefRequest
from agents.delegations import Delegations
from agents.outcomes import AgentTrackRecord, DelegationState, OutcomeRecord, OutcomeRequest
from api.deps import Idempotency, IdempotencyKey, Memory, Reader, SpacePath, Writer, services
from api.routes import PROBLEMS, responses

router = APIRouter(prefix="/v1/spaces/{space}/delegations", tags=["delegations"], responses=PROBLEMS)

BRIEF = {"task": "Retrain the churn model on the April snapshot", "project": "Churn", "agent_role": "ml-engineer",
         "task_type": "training", "budget_tokens": 800, "delegation_id": "churn-retrain-2026-04"}
OUTCOME = {"delegation_id": "churn-retrain-2026-04", "status": "succeeded", "agent": "ml-1",
           "summary": "Retrained on the April snapshot; AUC 0.87, up from 0.86.", "metrics": {"auc": 0.87},
           "lessons": [{"text": "Pin the snapshot date in the training config"}], "helpful": []}


class Feedback(BaseModel):
    net: dict[str, int] = Field(description="Memory id -> times marked helpful minus times marked unhelpful")


def delegations(request: Request, memory) -> Delegations:
    return Delegations(memory, extractor=services(request).extractor())


@router.post("/brief", response_model=Brief, responses=responses(409),
             summary="What memory holds on a task, before delegating it (records the delegation as planned)")
def brief(space: SpacePath, request: Request, caller: Writer, memory: Memory, store: Idempotency,
          body: Annotated[BriefRequest, Body(examples=[BRIEF])], idempotency_key: IdempotencyKey = None) -> JSONResponse:
    return store.run(request, caller.key.key_id, idempotency_key, body,
                     lambda: delegations(request, memory).brief(body))


@router.post("/outcome", response_model=OutcomeRecord, responses=responses(409),
             summary="How a delegation went: status, summary, metrics, artifacts, lessons, feedback on the brief")
def outcome(space: SpacePath, request: Request, caller: Writer, memory: Memory, store: Idempotency,
            body: Annotated[OutcomeRequest, Body(examples=[OUTCOME])],
            idempotency_key: IdempotencyKey = None) -> JSONResponse:
    return store.run(request, caller.key.key_id, idempotency_key, body,
                     lambda: delegations(request, memory).record_outcome(body))


@router.get("/feedback", response_model=Feedback, summary="Net feedback per memory id, over all delegations")
def feedback(space: SpacePath, request: Request, caller: Reader, memory: Memory) -> Feedback:
    return Feedback(net=delegations(request, memory).feedback())


@router.get("/track-record", response_model=AgentTrackRecord, summary="An agent's delegations and success rate")
def track_record(space: SpacePath, request: Request, caller: Reader, memory: Memory,
                 agent: Annotated[str, Query(min_length=1, max_length=512, description="The agent's name")],
                 ) -> AgentTrackRecord:
    return delegations(request, memory).track_record(agent)


@router.get("/{delegation_id}", response_model=DelegationState, summary="A delegation as it stands")
def get(space: SpacePath, request: Request, caller: Reader, memory: Memory,
        delegation_id: Annotated[str, Path(min_length=1, max_length=200)]) -> DelegationState:
    return delegations(request, memory).get(delegation_id)

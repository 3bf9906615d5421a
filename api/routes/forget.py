"""Forget with a receipt: an entity, an agent, a delegation, a source or the whole space, from every store.

Admin scope. The answer is the receipt: counts per store (api/forget.py). No Idempotency-Key: a
stored answer is one more copy of what was forgotten, and a repeated forget finds nothing to do
(a forgotten entity id answers 404).
"""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Admin, Idempotency, Jobs, Memory, SpacePath
from api.forget import ForgetReceipt, ForgetRequest, forget
from api.routes import PROBLEMS

router = APIRouter(prefix="/v1/spaces/{space}", tags=["forget"], responses=PROBLEMS)


@router.post("/forget", response_model=ForgetReceipt,
             summary="Forget one target in every store (Neo4j, Chroma, mem0, stored answers, jobs, audit) with a receipt")
def forget_route(space: SpacePath, caller: Admin, memory: Memory, body: ForgetRequest, idempotency: Idempotency,
                 jobs: Jobs) -> ForgetReceipt:
    return forget(memory, body, idempotency=idempotency, jobs=jobs)

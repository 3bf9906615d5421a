"""Recall: hybrid retrieval over the space's graph and vectors."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from api.deps import Config, Memory, Reader, SpacePath
from api.limits import page_size
from api.routes import PROBLEMS
from memory.recall import RecallQuery, RecallResult

EXAMPLE = {"text": "what went wrong last time we retrained a churn model?", "limit": 5,
           "kinds": ["Lesson", "Delegation"]}

router = APIRouter(prefix="/v1/spaces/{space}", tags=["recall"], responses=PROBLEMS)


@router.post("/recall", response_model=RecallResult,
             summary="Answer a question in plain language with the most relevant observations and entities")
def recall(space: SpacePath, caller: Reader, memory: Memory, config: Config,
           query: Annotated[RecallQuery, Body(examples=[EXAMPLE])]) -> RecallResult:
    limit = page_size(query.limit if "limit" in query.model_fields_set else None, query.limit,
                      config.api_max_limit, ("body", "limit"))
    return memory.recall(query.model_copy(update={"limit": limit}))

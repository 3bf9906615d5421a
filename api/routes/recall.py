"""Recall: hybrid retrieval over the space's graph and vectors."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body
from fastapi.exceptions import RequestValidationError

from api.deps import Config, Memory, Reader, SpacePath
from api.limits import page_size
from api.routes import PROBLEMS
from graph.model import as_utc
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
    times = {name: utc(("body", name), getattr(query, name)) for name in ("since", "until", "as_of")}
    return memory.recall(query.model_copy(update={"limit": limit, **times}))


def utc(loc: tuple[str, ...], value: datetime | None) -> datetime | None:
    """A time as UTC, as Neo4j stores them (it refuses offsets beyond ±18:00); 422 when out of range."""
    try:
        return as_utc(value) if value is not None else None
    except ValueError as exc:
        raise RequestValidationError([{"loc": loc, "type": "value_error", "msg": str(exc)}]) from None

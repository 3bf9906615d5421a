"""The audit trail of a space: who wrote what, when, on which ids (graph/audit.py), newest first.

Admin scope: the trail names the API keys and agents behind every write, which a reader of the
space's memory need not learn.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import Admin, Config, Memory, SpacePath
from api.limits import page_size
from api.models import MAX_LIMIT
from api.routes import PROBLEMS
from graph.audit import AuditEvent, audit_page, entity_parts
from graph.errors import InvalidInput
from graph.model import UtcDatetime
from graph.reads import decode_cursor, encode_cursor

router = APIRouter(prefix="/v1/spaces/{space}", tags=["audit"], responses=PROBLEMS)


class AuditPage(BaseModel):
    items: list[AuditEvent]
    next_cursor: str | None = None


@router.get("/audit", response_model=AuditPage, summary="Who changed what and when: the space's writes, newest first")
def audit(
    space: SpacePath, caller: Admin, memory: Memory, config: Config,
    entity_id: Annotated[str | None, Query(max_length=200, description=(
        "Only writes that touched this entity (its id or name), its observations or its relations"))] = None,
    key_id: Annotated[str | None, Query(max_length=200, description="Only writes made with this API key id")] = None,
    operation: Annotated[str | None, Query(max_length=200, description="Only this route, command or tool")] = None,
    since: Annotated[UtcDatetime | None, Query(description="From this time on (any date kgmem reads)")] = None,
    until: Annotated[UtcDatetime | None, Query(description="Up to this time")] = None,
    limit: Annotated[int | None, Query(ge=1, le=MAX_LIMIT, description="Page size")] = None,
    cursor: Annotated[str | None, Query(max_length=1000, description="`next_cursor` of the previous page")] = None,
) -> AuditPage:
    size = page_size(limit, 50, config.api_max_limit)
    after = _position(cursor)
    ids = entity_parts(memory.graph.gateway, space, entity_id) if entity_id else None
    events = audit_page(memory.graph.gateway, space, entity_ids=ids, key_id=key_id, operation=operation,
                        since=since, until=until, after=after, limit=size + 1)
    more = len(events) > size
    last = events[size - 1] if more else None
    return AuditPage(items=events[:size],
                     next_cursor=encode_cursor({"at": last.at.isoformat(), "id": last.id}) if last else None)


def _position(cursor: str | None) -> tuple[datetime, str] | None:
    if not cursor:
        return None
    data = decode_cursor(cursor, "at", "id")
    try:
        return datetime.fromisoformat(data["at"]), str(data["id"])
    except (TypeError, ValueError) as exc:
        raise InvalidInput("cursor is not valid: pass back the next_cursor of the previous page unchanged") from exc

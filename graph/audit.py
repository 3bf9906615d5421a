"""The audit trail: who wrote what, when, on which ids, recorded by the one write path.

    with actor(key_id="k1", operation="POST /entities"):
        acme.upsert_entities([...])      # + one (:AuditEvent) in the same transaction

Every transaction of `SpaceGraph.write`/`write_batches` ends by creating one event, so no
writer can skip it and none is left behind by a write that rolled back:

    (:AuditEvent {id, space, at, key_id, agent, delegation_id, operation, ids, detail})

Who comes from a context variable the entry points set (`actor`): the API per request (its
key id and route), the CLI per command (key "cli"), the MCP server and agent tools per tool
call. The agent and delegation are the write's own provenance when it names them, else the
actor's. `ids` are the entity, observation and relation ids the write touched (collected by
`SpaceWriter`); `detail` is a small JSON object (counts per kind). Events are append-only: no
route or command changes or deletes one, except a forget, which scrubs forgotten ids and
strings from earlier events (graph/forget.py).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from graph.gateway import Gateway, Tx
from graph.vocabulary import normalise_name

SCHEMA = [
    "CREATE CONSTRAINT audit_event_id IF NOT EXISTS FOR (a:AuditEvent) REQUIRE a.id IS UNIQUE",
    "CREATE INDEX audit_event_space_at IF NOT EXISTS FOR (a:AuditEvent) ON (a.space, a.at)",
]

UNKNOWN_KEY = "internal"  # a write made outside any entry point that sets an actor (a library call, a test)
DEFAULT_OPERATION = "write"


@dataclass(frozen=True)
class Actor:
    key_id: str = UNKNOWN_KEY
    operation: str = DEFAULT_OPERATION
    agent: str | None = None
    delegation_id: str | None = None


NOBODY = Actor()
_actor: ContextVar[Actor] = ContextVar("kgmem_audit_actor", default=NOBODY)  # Actor is frozen: a shared default is safe


@contextmanager
def actor(*, key_id: str | None = None, operation: str | None = None, agent: str | None = None,
          delegation_id: str | None = None) -> Iterator[Actor]:
    """Writes in this block (and threads that copy its context) are recorded as this actor's; what is not
    given is kept from the enclosing block (a tool call inside a request keeps the request's key)."""
    given = {"key_id": key_id, "operation": operation, "agent": agent, "delegation_id": delegation_id}
    current = replace(_actor.get(), **{k: v for k, v in given.items() if v is not None})
    token = _actor.set(current)
    try:
        yield current
    finally:
        _actor.reset(token)


def bind_actor(*, key_id: str, operation: str) -> None:
    """Make this the actor for the rest of the current context: an API request's (each request runs in
    a context of its own, which Starlette copies into the thread a sync route runs in)."""
    _actor.set(Actor(key_id=key_id, operation=operation))


def current_actor() -> Actor:
    return _actor.get()


# -- recording ----------------------------------------------------------------------------------

RECORD_EVENT = """
CREATE (:AuditEvent {id: $id, space: $space, at: $at, key_id: $key_id, agent: $agent,
                     delegation_id: $delegation_id, operation: $operation, ids: $ids, detail: $detail})
"""

# An event of a known id: a forget that runs in several transactions keeps completing one event of its own.
RECORD_OWN_EVENT = """
MERGE (a:AuditEvent {id: $id})
ON CREATE SET a.space = $space, a.at = $at
SET a.key_id = $key_id, a.agent = $agent, a.delegation_id = $delegation_id, a.operation = $operation,
    a.ids = $ids, a.detail = $detail
"""


@dataclass
class Touched:
    """What one write transaction touched, collected by `SpaceWriter` as it goes."""

    ids: dict[str, None]  # an ordered set
    counts: dict[str, int]
    agents: dict[str, None]
    delegations: dict[str, None]

    @classmethod
    def empty(cls) -> Touched:
        return cls({}, {}, {}, {})

    def add(self, kind: str, ids: list[str], provenance: list[dict[str, Any]] = (), *, count: int | None = None) -> None:
        for item in ids:
            if item:
                self.ids.setdefault(item, None)
        self.counts[kind] = self.counts.get(kind, 0) + (len(ids) if count is None else count)
        for p in provenance:
            if p.get("agent"):
                self.agents.setdefault(p["agent"], None)
            if p.get("delegation_id"):
                self.delegations.setdefault(p["delegation_id"], None)

    def __bool__(self) -> bool:
        """Whether the transaction changed anything the trail records: a write that only took a lock (a
        repeated outcome, applied once already) leaves no event."""
        return bool(self.ids) or any(self.counts.values())


def record(tx: Tx, space: str, at: datetime, touched: Touched, *, operation: str | None = None,
           detail: dict[str, Any] | None = None, event_id: str | None = None) -> None:
    """One event for a write, in its transaction. The write's provenance names the agent and delegation
    when it has exactly one of each (else the actor's are kept)."""
    who = current_actor()
    agents, delegations = list(touched.agents), list(touched.delegations)
    tx.run(RECORD_OWN_EVENT if event_id else RECORD_EVENT, id=event_id or str(uuid.uuid4()), space=space, at=at, key_id=who.key_id,
           agent=agents[0] if len(agents) == 1 else who.agent,
           delegation_id=delegations[0] if len(delegations) == 1 else who.delegation_id,
           operation=operation or who.operation, ids=list(touched.ids),
           detail=json.dumps(detail if detail is not None else touched.counts, sort_keys=True))


def ensure_audit_schema(gateway: Gateway) -> None:
    for statement in SCHEMA:
        gateway.write(statement)


# -- reading ------------------------------------------------------------------------------------

class AuditEvent(BaseModel):
    """One write: who (API key id, agent, delegation), when, which operation, on which ids."""

    id: str
    space: str
    at: datetime
    key_id: str = Field(description='The API key\'s id; "cli" for the command line, "mcp" for `kgmem mcp`, '
                                    '"internal" for writes outside any entry point')
    agent: str | None = None
    delegation_id: str | None = None
    operation: str = Field(description="The API route, CLI command or tool that wrote", examples=["upsert_entities"])
    ids: list[str] = Field(description="The entity, observation and relation ids the write touched")
    detail: dict[str, Any] = Field(default_factory=dict, description="Counts per kind of what it touched")


def event_of(row: dict[str, Any]) -> AuditEvent:
    return AuditEvent(**{**row, "ids": row.get("ids") or [], "detail": json.loads(row["detail"]) if row.get("detail") else {}})


# Newest first; the cursor is the last event's (at, id), so a page never repeats or skips one.
AUDIT_PAGE = """
MATCH (a:AuditEvent {space: $space})
WHERE a.at IS NOT NULL AND ($since IS NULL OR a.at >= $since) AND ($until IS NULL OR a.at <= $until)
  AND ($key_id IS NULL OR a.key_id = $key_id) AND ($operation IS NULL OR a.operation = $operation)
  AND ($entity_ids IS NULL OR any(id IN a.ids WHERE id IN $entity_ids))
  AND ($after_at IS NULL OR a.at < $after_at OR (a.at = $after_at AND a.id < $after_id))
RETURN a {.*} AS event
ORDER BY a.at DESC, a.id DESC
LIMIT $limit
"""

# An entity's own ids and those of its observations and relations (live and retracted), so that
# `entity_id` finds the writes that touched any part of it.
ENTITY_PARTS = """
MATCH (e:Entity {id: $id}) WHERE e.space = $space
CALL (e) { OPTIONAL MATCH (e)-[:HAS_OBSERVATION]->(o:Observation) RETURN collect(o.id) AS observations }
CALL (e) { OPTIONAL MATCH (e)-[r]-(:Entity) RETURN collect(DISTINCT r.id) AS relations }
RETURN [e.id] + observations + relations AS ids
"""

ENTITIES_NAMED = """
MATCH (e:Entity {space: $space, name_key: $name_key})
RETURN e.id AS id
"""


def entity_parts(gateway: Gateway, space: str, name_or_id: str) -> list[str]:
    """The ids an entity's events may name: the entity's own, its observations' and relations'. A name
    (of any kind) stands for the entities of that name; an id no longer in the graph for itself."""
    ids = [row["id"] for row in gateway.rows(ENTITIES_NAMED, space=space, name_key=normalise_name(name_or_id))]
    parts: list[str] = []
    for entity_id in ids or [name_or_id]:
        rows = gateway.rows(ENTITY_PARTS, space=space, id=entity_id)
        parts += [i for i in rows[0]["ids"] if i] if rows else [entity_id]
    return list(dict.fromkeys(parts))


def audit_page(gateway: Gateway, space: str, *, entity_ids: list[str] | None = None, key_id: str | None = None,
               operation: str | None = None, since: datetime | None = None, until: datetime | None = None,
               after: tuple[datetime, str] | None = None, limit: int = 50) -> list[AuditEvent]:
    """Events of the space, newest first, after the cursor position `after` (at, id)."""
    rows = gateway.rows(AUDIT_PAGE, space=space, entity_ids=entity_ids, key_id=key_id, operation=operation,
                        since=since, until=until, after_at=after[0] if after else None,
                        after_id=after[1] if after else None, limit=limit)
    return [event_of(row["event"]) for row in rows]

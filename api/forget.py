"""Forget with a receipt: one target, every store, counts per store, one audit event without content.

    receipt = forget(memory.space("acme"), ForgetRequest(agent="ds-1"), idempotency=store, jobs=jobs)

The route (`POST /v1/spaces/{space}/forget`) and `kgmem forget` both run this. The graph, Chroma
and mem0 forget first (memory/forget.py, graph/forget.py say what each target reaches); then the
API's own stores that may hold copies: stored idempotent answers and job results that contain a
forgotten id or string are deleted, and so are the space's export archives kept on this server. Last, the forget's own audit event gets the receipt's counts.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, Field, model_validator

from api.idempotency import IdempotencyStore
from api.jobs import JobStore
from api.routes.portable import archive_path
from graph.forget import ForgetTarget, Mentions
from graph.model import InputModel
from memory.forget import forget as forget_in_memory
from memory.service import SpaceMemory

TARGETS = ("entity_id", "agent", "delegation_id", "source", "all_space")


class ForgetRequest(InputModel):
    """What to forget: exactly one target."""

    entity_id: str | None = Field(None, min_length=1, max_length=200,
                                  description="An entity: it, its observations, revisions and relations, and its mentions")
    agent: str | None = Field(None, min_length=1, max_length=200,
                              description="An agent's name: its entity, everything with provenance agent = it, its mentions")
    delegation_id: str | None = Field(None, min_length=1, max_length=200,
                                      description="A delegation: its entity and everything with provenance delegation_id = it")
    source: str | None = Field(None, min_length=1, max_length=200,
                               description="Everything with provenance source = this label")
    all_space: bool = Field(False, description="Everything in the space")

    @model_validator(mode="after")
    def _one_target(self) -> ForgetRequest:
        given = [name for name in TARGETS if getattr(self, name) not in (None, False)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(TARGETS)} (got {', '.join(given) or 'none'})")
        return self

    def target(self) -> ForgetTarget:
        if self.all_space:
            return ForgetTarget("space")
        kind = {"entity_id": "entity", "agent": "agent", "delegation_id": "delegation", "source": "source"}
        name = next(name for name in TARGETS[:4] if getattr(self, name) is not None)
        return ForgetTarget(kind[name], getattr(self, name))  # type: ignore[arg-type]


class Neo4jCounts(BaseModel):
    entities: int
    observations: int
    relations: int
    revisions: int = Field(description="Revisions of forgotten entities, and revisions that mentioned them")
    other_nodes: int = Field(description="Nodes of other kinds deleted with a space (memory-tool files, ...)")
    redacted: int = Field(description="Nodes and relationships kept, with the mentions replaced by [forgotten]")


class ForgetReceipt(BaseModel):
    """What a forget removed, per store. `audit_event_id` is the forget's own event."""

    space: str
    target: str = Field(examples=["entity"])
    audit_event_id: str
    neo4j: Neo4jCounts
    chroma_vectors: int = Field(description="Vectors of kgmem's index: entities, passages and windows")
    mem0_vectors: int
    mem0_history_rows: int = Field(description="Rows of mem0's history database (history and messages)")
    idempotency_records: int = Field(description="Stored idempotent answers that held forgotten data")
    job_results: int = Field(description="Background jobs whose results held forgotten data")
    export_archives: int = Field(description="The space's export archives kept on this server (each holds a copy)")
    audit_events_scrubbed: int = Field(description="Earlier audit events with forgotten ids or strings taken out")


def forget(memory: SpaceMemory, request: ForgetRequest, *, idempotency: IdempotencyStore,
           jobs: JobStore) -> ForgetReceipt:
    target = request.target()
    event_id = str(uuid.uuid4())
    result = forget_in_memory(memory, target, event_id)
    graph = result.graph
    if target.kind == "space":
        needles = sorted({i.casefold() for i in graph.ids})

        def confirm(text: str) -> bool:
            return True  # ids are matched whole by the query; a space has no names to check as words
    else:
        mentions = Mentions(graph.strings, graph.ids)
        needles, confirm = mentions.needles(), mentions.found
    records = idempotency.forget(needles, confirm) if needles else 0
    archives = _forget_export_archives(memory, jobs)  # before the jobs that name them may go
    job_results = jobs.forget(needles, confirm, space=memory.space if target.kind == "space" else None)
    receipt = ForgetReceipt(
        space=memory.space, target=target.kind, audit_event_id=event_id,
        neo4j=Neo4jCounts(entities=graph.entities, observations=graph.observations, relations=graph.relations,
                          revisions=graph.revisions, other_nodes=graph.other_nodes, redacted=graph.redacted),
        chroma_vectors=result.chroma_vectors, mem0_vectors=result.mem0_vectors,
        mem0_history_rows=result.mem0_history_rows, idempotency_records=records, job_results=job_results,
        export_archives=archives,
        audit_events_scrubbed=graph.audit_events_scrubbed)
    _complete_event(memory, target, receipt)
    return receipt


def _forget_export_archives(memory: SpaceMemory, jobs: JobStore) -> int:
    """Every export archive of the space kept on this server: one made before the forget holds a copy of what
    was forgotten (export again after the forget)."""
    removed = 0
    for job_id in jobs.ids_of("export", memory.space):
        path = archive_path(memory.service.settings, job_id)
        if path.exists():
            path.unlink()
            removed += 1
    return removed


def _complete_event(memory: SpaceMemory, target: ForgetTarget, receipt: ForgetReceipt) -> None:
    """The forget's own audit event gets the whole receipt (counts and the target's kind: no content)."""
    detail: dict[str, Any] = receipt.model_dump(exclude={"space", "audit_event_id"})
    memory.graph.write(lambda w: w.record_as("forget", ids=[target.digest()], detail=detail,
                                             event_id=receipt.audit_event_id))

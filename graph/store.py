"""The graph's typed Python API. Every operation is bound to one tenant (`space`).

    store = GraphStore(gateway)
    store.ensure_schema()
    acme = store.space("acme")
    acme.upsert_entities([EntityIn(kind=Kind.PROJECT, name="Churn")])
    acme.write(lambda w: w.add_observations([...]) and w.run(MY_QUERY, id=...))

`SpaceGraph.write` is kgmem's one write path: every write of every layer is a
transaction it runs, and each of those transactions ends with its audit event
(graph/audit.py: who, when, which operation, on which ids). After each commit it calls the store's `after_write` hooks
with the space; the memory layer hooks the vector index there, so the vectors of
whatever a write changed follow it, whoever wrote.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TypeVar

from graph import audit, lucene
from graph.errors import Conflict, InvalidInput
from graph.gateway import Gateway, Tx
from graph.migrations import MigrationReport, migrate
from graph.model import Entity, EntityIn, Observation, ObservationIn, PurgeReport, Relation, RelationIn, now
from graph.reads import GraphReader
from graph.records import entity as entity_from
from graph.writes import CHUNK_SIZE, MENTIONING_OBSERVATIONS, SpaceWriter

SPACE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
T = TypeVar("T")
R = TypeVar("R")
AfterWrite = Callable[[str], None]  # called with the space after a write commits


def check_space(space: str) -> str:
    if not SPACE_PATTERN.fullmatch(space):
        raise InvalidInput(
            f"space {space!r} is not valid: use 1-128 letters, digits, '_', '.', ':' or '-', starting with a letter or digit"
        )
    return space


class GraphStore:
    def __init__(self, gateway: Gateway, *, after_write: Sequence[AfterWrite] = ()) -> None:
        self.gateway = gateway
        self.after_write: list[AfterWrite] = list(after_write)

    def ensure_schema(self) -> MigrationReport:
        """Bring the database to this code's schema version (graph/migrations.py): under a lease, once."""
        return migrate(self.gateway)

    def space(self, space: str) -> SpaceGraph:
        return SpaceGraph(self, check_space(space))


class SpaceGraph(GraphReader):
    """Reads (inherited) and writes for one tenant."""

    def __init__(self, store: GraphStore, space: str) -> None:
        super().__init__(store.gateway, space)
        self.store = store

    # -- the write path ----------------------------------------------------------------------
    def write(self, work: Callable[[SpaceWriter], T]) -> T:
        """`work(writer)` in one transaction (run again after a transient failure), then the hooks."""
        result = self.gateway.write_transaction(lambda tx: self._audited(tx, work))
        self._after_write()
        return result

    def write_batches(self, rows: Sequence[R], work: Callable[[SpaceWriter, list[R]], list[T]]) -> list[T]:
        """A batch of any size as transactions of `CHUNK_SIZE` rows each, then the hooks once."""
        results: list[T] = []
        try:
            for start in range(0, len(rows), CHUNK_SIZE):
                chunk = list(rows[start : start + CHUNK_SIZE])
                results += self.gateway.write_transaction(
                    lambda tx: self._audited(tx, lambda writer: work(writer, chunk)))
        finally:
            if results:  # what committed is followed even when a later chunk failed
                self._after_write()
        return results

    def _audited(self, tx: Tx, work: Callable[[SpaceWriter], T]) -> T:
        """The work, then its audit event in the same transaction (none when it touched nothing)."""
        writer = SpaceWriter(tx, self.space, now())
        result = work(writer)
        if writer.event is not None:
            own = writer.event
            audit.record(tx, self.space, writer.at, audit.Touched({i: None for i in own["ids"]}, {}, {}, {}),
                         operation=own["operation"], detail=own["detail"], event_id=own["event_id"])
        elif writer.touched:
            audit.record(tx, self.space, writer.at, writer.touched)
        return result

    def _after_write(self) -> None:
        for hook in self.store.after_write:
            hook(self.space)

    # -- upserts ----------------------------------------------------------------------------
    def upsert_entities(self, entities: Sequence[EntityIn]) -> list[Entity]:
        """Create or update entities by (kind, name); safe to repeat."""
        try:
            return [entity_from(props) for props in self.write_batches(entities, SpaceWriter.upsert_entities)]
        except Conflict as exc:
            # MERGE on (space, kind, name) never collides; a caller-chosen id that is taken does.
            taken = sorted(e.id for e in entities if e.id)
            raise InvalidInput(f"entity id already in use: {', '.join(taken) or 'unknown'}; omit `id` to get a new one") from exc

    def add_observations(self, observations: Sequence[ObservationIn], *, create_missing: bool = False) -> list[Observation]:
        """Attach observations; the same current text on the same entity is stored once."""
        return self.write_batches(observations, lambda w, chunk: w.add_observations(chunk, create_missing=create_missing))

    def upsert_relations(self, relations: Sequence[RelationIn], *, create_missing: bool = False) -> list[Relation]:
        """Record relations; single-valued types close the fact they supersede."""
        return self.write_batches(relations, lambda w, chunk: w.upsert_relations(chunk, create_missing=create_missing))

    # -- retractions (soft) --------------------------------------------------------------------
    def retract_observations(self, observation_ids: Sequence[str]) -> int:
        return self.write(lambda w: w.retract_observations(observation_ids))

    def retract_observation_texts(self, entity_id: str, texts: Sequence[str]) -> int:
        return self.write(lambda w: w.retract_observation_texts(entity_id, texts))

    def retract_relations(self, relations: Sequence[RelationIn]) -> int:
        return sum(self.write_batches(relations, lambda w, chunk: [w.retract_relations(chunk)]))

    def retract_entity(self, entity_id: str) -> dict[str, int]:
        """Soft delete: hidden from reads, kept in history, with its current relations and observations."""
        return self.write(lambda w: w.retract_entity(entity_id))

    # -- removal (admin) --------------------------------------------------------------------------
    def delete_entity(self, entity_id: str) -> PurgeReport:
        """Hard delete: the entity, its observations, revisions and relationships, gone for good."""
        row = self.write(lambda w: w.delete_entity(entity_id))
        return PurgeReport(entity_id=entity_id, entities=1, observations=len(row["observation_ids"]),
                           relations=row["relations"], revisions=row["revisions"],
                           observation_ids=row["observation_ids"])

    def purge_entity(self, entity_id: str) -> PurgeReport:
        """Everything about an entity, for data-protection requests: a hard delete, plus other
        entities' observations that mention it by name or alias."""
        entity = self.history(entity_id).entity
        names = [entity.name, *entity.aliases]
        clauses = " ".join(lucene.phrase(name) for name in names if lucene.phrase(name))
        mentions: list[str] = []
        if clauses:
            mentions = [row["id"] for row in self.rows(
                MENTIONING_OBSERVATIONS, phrase=lucene.in_space(self.space, clauses),
                terms=[name.casefold() for name in names])]
        report = self.delete_entity(entity_id)
        extra = [m for m in mentions if m not in set(report.observation_ids)]
        if extra:
            self.write(lambda w: w.delete_observations(extra))
        return report.model_copy(update={
            "observations": report.observations + len(extra), "observation_ids": report.observation_ids + extra})

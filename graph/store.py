"""The graph's typed Python API. Every operation is bound to one tenant (`space`).

    store = GraphStore(driver)
    store.ensure_schema()
    acme = store.space("acme")
    acme.upsert_entities([EntityIn(kind=Kind.PROJECT, name="Churn")])
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from neo4j import Driver
from neo4j.exceptions import ConstraintError

from graph import lucene, writes
from graph.errors import InvalidInput, NotFound
from graph.model import (
    Entity,
    EntityHistory,
    EntityIn,
    Neighbourhood,
    Observation,
    ObservationIn,
    Page,
    PurgeReport,
    Relation,
    RelationIn,
    SearchHit,
    now,
)
from graph.reads import GraphReader
from graph.records import entity as entity_from
from graph.schema import ensure_schema

SPACE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def check_space(space: str) -> str:
    if not SPACE_PATTERN.fullmatch(space):
        raise InvalidInput(
            f"space {space!r} is not valid: use 1-128 letters, digits, '_', '.', ':' or '-', starting with a letter or digit"
        )
    return space


class GraphStore:
    def __init__(self, driver: Driver, database: str = "neo4j") -> None:
        self.driver = driver
        self.database = database

    def ensure_schema(self) -> None:
        ensure_schema(self.driver, self.database)

    def space(self, space: str) -> SpaceGraph:
        return SpaceGraph(self.driver, self.database, check_space(space))


class SpaceGraph(GraphReader):
    """Reads (inherited) and writes for one tenant."""

    def _write(self, rows: Sequence, unit) -> list:
        return writes.write_in_chunks(self.driver, self.database, rows, unit)

    # -- upserts ----------------------------------------------------------------------------
    def upsert_entities(self, entities: Sequence[EntityIn]) -> list[Entity]:
        """Create or update entities by (kind, name); safe to repeat."""
        def unit(tx, chunk):
            return writes.upsert_entities_tx(tx, self.space, chunk, now())

        try:
            return [entity_from(props) for props in self._write(entities, unit)]
        except ConstraintError as exc:
            # MERGE on (space, kind, name) never collides; a caller-chosen id that is taken does.
            taken = sorted(e.id for e in entities if e.id)
            raise InvalidInput(f"entity id already in use: {', '.join(taken) or 'unknown'}; omit `id` to get a new one") from exc

    def add_observations(self, observations: Sequence[ObservationIn], *, create_missing: bool = False) -> list[Observation]:
        """Attach observations; the same current text on the same entity is stored once."""
        def unit(tx, chunk):
            return writes.add_observations_tx(tx, self.space, chunk, now(), create_missing=create_missing)

        return self._write(observations, unit)

    def upsert_relations(self, relations: Sequence[RelationIn], *, create_missing: bool = False) -> list[Relation]:
        """Record relations; single-valued types close the fact they supersede."""
        def unit(tx, chunk):
            return writes.upsert_relations_tx(tx, self.space, chunk, now(), create_missing=create_missing)

        return self._write(relations, unit)

    # -- retractions (soft) --------------------------------------------------------------------
    def retract_observations(self, observation_ids: Sequence[str]) -> int:
        records_, _, _ = self.driver.execute_query(
            writes.RETRACT_OBSERVATIONS, ids=list(observation_ids), space=self.space, now=now(), database_=self.database)
        return len(records_)

    def retract_observation_texts(self, entity_id: str, texts: Sequence[str]) -> int:
        rows = [{"key": writes.observation_key(entity_id, text)} for text in texts]
        records_, _, _ = self.driver.execute_query(
            writes.RETRACT_OBSERVATIONS_BY_TEXT, rows=rows, space=self.space, now=now(), database_=self.database)
        return len(records_)

    def retract_relations(self, relations: Sequence[RelationIn]) -> int:
        def unit(tx, chunk):
            return [writes.retract_relations_tx(tx, self.space, chunk, now())]

        return sum(self._write(relations, unit))

    def retract_entity(self, entity_id: str) -> dict[str, int]:
        """Soft delete: hidden from reads, kept in history, with its current relations and observations."""
        records_, _, _ = self.driver.execute_query(
            writes.RETRACT_ENTITY, id=entity_id, space=self.space, now=now(), database_=self.database)
        if not records_:
            raise NotFound(f"no entity {entity_id!r} in this space")
        row = records_[0]
        return {"relations": row["relations"], "observations": row["observations"]}

    # -- removal (admin) --------------------------------------------------------------------------
    def delete_entity(self, entity_id: str) -> PurgeReport:
        """Hard delete: the entity, its observations, revisions and relationships, gone for good."""
        records_, _, _ = self.driver.execute_query(
            writes.DELETE_ENTITY, id=entity_id, space=self.space, database_=self.database)
        if not records_:
            raise NotFound(f"no entity {entity_id!r} in this space")
        row = records_[0]
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
            records_, _, _ = self.driver.execute_query(
                writes.MENTIONING_OBSERVATIONS, phrase=lucene.in_space(self.space, clauses), space=self.space,
                terms=[name.casefold() for name in names], database_=self.database, routing_="r")
            mentions = [record["id"] for record in records_]
        report = self.delete_entity(entity_id)
        extra = [m for m in mentions if m not in set(report.observation_ids)]
        if extra:
            self.driver.execute_query(writes.DELETE_OBSERVATIONS, ids=extra, space=self.space, database_=self.database)
        return report.model_copy(update={
            "observations": report.observations + len(extra), "observation_ids": report.observation_ids + extra})

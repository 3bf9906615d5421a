"""Writes: entities, observations and relations, idempotent, inside one transaction.

`SpaceWriter` is what a write transaction offers (see `SpaceGraph.write`): the
graph's own writes, and `run`/`rows` for the named queries of other modules,
all bound to one tenant and stamped with one time. Everything a write needs
(resolving names, creating missing entities, closing superseded facts, marking
what the vector index must follow) happens inside that transaction, which the
driver retries on transient errors such as deadlocks and leader switches.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from graph import lucene, records
from graph.audit import Touched
from graph.errors import InvalidInput, NotFound
from graph.gateway import Tx
from graph.model import EntityIn, EntityRef, Observation, ObservationIn, Relation, RelationIn
from graph.temporal import Fact, plan_multi_valued, plan_single_valued
from graph.vocabulary import SINGLE_VALUED, Kind, normalise_name

CHUNK_SIZE = 500  # rows per transaction in a batch write


# -- entities -------------------------------------------------------------------------------

UPSERT_ENTITIES = """
UNWIND $rows AS row
MERGE (e:Entity {space: $space, kind: row.kind, name_key: row.name_key})
ON CREATE SET e.id = row.id, e.created_at = $now, e.name = row.name, e.entity_type = row.entity_type,
              e.aliases = [], e.alias_keys = []
SET e:$(row.kind)
WITH e, row, properties(e) AS before
SET e.updated_at = $now, e.retracted_at = null,
    e.source = row.source, e.agent = row.agent, e.delegation_id = row.delegation_id,
    e.summary = coalesce(row.summary, e.summary),
    e.entity_type = CASE WHEN row.kind = 'Thing' THEN row.entity_type ELSE e.entity_type END
WITH e, row, before,
     [i IN range(0, size(row.alias_keys) - 1)
      WHERE NOT row.alias_keys[i] IN e.alias_keys AND row.alias_keys[i] <> e.name_key] AS fresh
SET e.aliases = e.aliases + [i IN fresh | row.aliases[i]],
    e.alias_keys = e.alias_keys + [i IN fresh | row.alias_keys[i]]
SET e += row.attributes
RETURN e {.*} AS entity, before, e.created_at = $now AS created, size(fresh) AS new_aliases
"""

# What recall embeds changed: the vector follows after commit (see memory/sync.py).
MARK_ENTITIES_PENDING = """
UNWIND $ids AS id
MATCH (e:Entity {id: id})
SET e.vector_status = 'pending', e.pending_since = $now
"""

CREATE_REVISIONS = """
UNWIND $revisions AS rev
MATCH (e:Entity {id: rev.entity_id})
CREATE (r:Revision {id: rev.id, space: $space, at: $now, changes: rev.changes,
                    source: rev.source, agent: rev.agent, delegation_id: rev.delegation_id})
CREATE (e)-[:HAS_REVISION]->(r)
"""


def _entity_row(entity: EntityIn) -> dict[str, Any]:
    aliases: dict[str, str] = {}
    for alias in entity.aliases:
        aliases.setdefault(normalise_name(alias), alias)
    return {
        "id": entity.id or str(uuid.uuid4()), "kind": entity.kind.value, "entity_type": entity.entity_type,
        "name": entity.name, "name_key": normalise_name(entity.name), "summary": entity.summary,
        "aliases": list(aliases.values()), "alias_keys": list(aliases.keys()), "attributes": entity.attributes,
        **entity.provenance.model_dump(),
    }


def _merge_duplicates(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per identity, later rows winning, so a chunk never MERGEs the same node twice."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["kind"], row["name_key"])
        if key in merged:
            first = merged[key]
            keys = dict(zip(first["alias_keys"], first["aliases"]))
            keys.update({k: a for k, a in zip(row["alias_keys"], row["aliases"]) if k not in keys})
            row = {**first, **{k: v for k, v in row.items() if v is not None},
                   "id": first["id"], "attributes": {**first["attributes"], **row["attributes"]},
                   "aliases": list(keys.values()), "alias_keys": list(keys.keys())}
        merged[key] = row
    return list(merged.values())


def _upsert_entities(tx: Tx, space: str, entities: list[EntityIn], at: datetime) -> list[dict]:
    rows = _merge_duplicates([_entity_row(entity) for entity in entities])
    result = tx.rows(UPSERT_ENTITIES, rows=rows, space=space, now=at)
    revisions = []
    pending = []
    for row, written in zip(rows, result):
        changes = _changes(written["before"], row, created=written["created"])
        if written["created"] or "summary" in changes or written["new_aliases"]:
            pending.append(written["entity"]["id"])
        if changes:
            revisions.append({"id": str(uuid.uuid4()), "entity_id": written["entity"]["id"],
                              "changes": json.dumps(changes, default=str, sort_keys=True),
                              "source": row["source"], "agent": row["agent"], "delegation_id": row["delegation_id"]})
    if revisions:
        tx.run(CREATE_REVISIONS, revisions=revisions, space=space, now=at)
    if pending:
        tx.run(MARK_ENTITIES_PENDING, ids=pending, now=at)
    by_key = {(w["entity"]["kind"], w["entity"]["name_key"]): w["entity"] for w in result}
    return [by_key[(r["kind"], r["name_key"])] for r in [_entity_row(e) for e in entities]]


def _changes(before: dict[str, Any], row: dict[str, Any], *, created: bool) -> dict[str, dict[str, Any]]:
    """Old and new values of what this write changes; on creation, every value it sets."""
    candidates = dict(row["attributes"])
    if row["summary"] is not None:
        candidates["summary"] = row["summary"]
    if created:
        candidates["name"] = row["name"]
        return {key: {"old": None, "new": value} for key, value in candidates.items() if value is not None}
    changes = {
        key: {"old": before.get(key), "new": value}
        for key, value in candidates.items()
        if before.get(key) != value and not (before.get(key) is None and value is None)
    }
    if before.get("retracted_at") is not None:  # writing a deleted entity again revives it: keep that on record
        changes["retracted_at"] = {"old": before["retracted_at"], "new": None}
    return changes


# -- resolving references ----------------------------------------------------------------

RESOLVE_IDS = """
UNWIND $ids AS id
MATCH (e:Entity {id: id})
WHERE e.space = $space AND e.retracted_at IS NULL
RETURN e.id AS id
"""

RESOLVE_NAMES = """
UNWIND $refs AS ref
MATCH (e:Entity {space: $space, name_key: ref.key})
WHERE (ref.kind IS NULL OR e.kind = ref.kind) AND e.retracted_at IS NULL
RETURN ref.key AS key, ref.kind AS kind, collect(e.id) AS ids, collect(e.kind) AS kinds
"""

# Aliases are found through the fulltext index, then checked exactly against the normalised keys.
RESOLVE_ALIASES = """
UNWIND $refs AS ref
CALL db.index.fulltext.queryNodes('entity_text', ref.query) YIELD node AS e
WHERE e.space = $space AND ref.key IN e.alias_keys
  AND (ref.kind IS NULL OR e.kind = ref.kind) AND e.retracted_at IS NULL
RETURN ref.key AS key, ref.kind AS kind, collect(e.id) AS ids, collect(e.kind) AS kinds
"""


def _resolve_refs(
    tx: Tx, space: str, refs: list[EntityRef], at: datetime, *, create_missing: bool = False,
) -> list[str]:
    """The entity id each ref points at, in order. Missing ones are created (by name) or reported."""
    ids = sorted({ref.id for ref in refs if ref.id})
    found_ids = {row["id"] for row in tx.rows(RESOLVE_IDS, ids=ids, space=space)} if ids else set()

    wanted = {(ref.name_key, ref.kind.value if ref.kind else None) for ref in refs if not ref.id}
    by_name: dict[tuple[str, str | None], str] = {}
    pending = [{"key": key, "kind": kind, "query": lucene.in_space(space, lucene.phrase(key)) if lucene.phrase(key) else None}
               for key, kind in sorted(wanted, key=str)]
    for query in (RESOLVE_NAMES, RESOLVE_ALIASES):
        candidates = pending if query is RESOLVE_NAMES else [p for p in pending if p["query"]]
        if not candidates:
            continue
        for row in tx.rows(query, refs=candidates, space=space):
            if len(row["ids"]) > 1:
                raise InvalidInput(
                    f"the name {row['key']!r} matches several entities ({', '.join(sorted(row['kinds']))}); give its kind or id"
                )
            by_name[(row["key"], row["kind"])] = row["ids"][0]
        pending = [p for p in pending if (p["key"], p["kind"]) not in by_name]

    missing = [ref for ref in refs if (ref.id and ref.id not in found_ids)
               or (not ref.id and (ref.name_key, ref.kind.value if ref.kind else None) not in by_name)]
    if missing and create_missing and all(not ref.id for ref in missing):
        created = _upsert_entities(tx, space, [EntityIn(kind=ref.kind or Kind.THING, name=ref.name) for ref in missing], at)
        for ref, props in zip(missing, created):
            by_name[(ref.name_key, ref.kind.value if ref.kind else None)] = props["id"]
    elif missing:
        names = ", ".join(sorted({ref.id or ref.name or "" for ref in missing}))
        raise NotFound(f"no such entity in this space: {names}")
    return [ref.id if ref.id else by_name[(ref.name_key, ref.kind.value if ref.kind else None)] for ref in refs]


# -- observations ----------------------------------------------------------------------------

ADD_OBSERVATIONS = """
UNWIND $rows AS row
MATCH (e:Entity {id: row.entity_id})
MERGE (o:Observation {space: $space, current_key: row.key})
ON CREATE SET o.id = row.id, o.entity_id = row.entity_id, o.text = row.text,
              o.search_text = CASE row.date_text WHEN '' THEN '' ELSE row.date_text + '. ' END + e.name + ': ' + row.text,
              o.valid_from = row.valid_from, o.recorded_at = $now, o.vector_status = 'pending', o.pending_since = $now,
              o.source = row.source, o.agent = row.agent, o.delegation_id = row.delegation_id,
              o.ref = row.ref, o.seq = row.seq
MERGE (e)-[:HAS_OBSERVATION]->(o)
WITH o, row, o.recorded_at = $now AS created
OPTIONAL MATCH (old:Observation {id: row.supersedes})
WHERE old.space = $space AND old.entity_id = row.entity_id AND old.id <> o.id AND old.valid_to IS NULL
SET old.valid_to = o.valid_from, old.current_key = null, old.vector_status = 'pending', old.pending_since = $now
FOREACH (_ IN CASE WHEN old IS NULL THEN [] ELSE [1] END | MERGE (o)-[:SUPERSEDES]->(old))
RETURN o {.*} AS observation
"""

# A new message in an ordered source changes its neighbours' context windows: re-index them.
REMARK_NEIGHBOURS = """
UNWIND $created AS c
MATCH (n:Observation {space: $space, source: c.source})
WHERE n.seq >= c.seq - $window AND n.seq <= c.seq + $window AND n.id <> c.id AND n.vector_status = 'indexed'
SET n.vector_status = 'pending', n.pending_since = $now
"""

# How far a message's context reaches in an ordered source (see memory/sync.py).
CONTEXT_WINDOW = 2


def observation_key(entity_id: str, text: str, ref: str | None = None) -> str:
    """Identity of a current observation: its source ref when it has one (two identical messages
    are two observations), else its normalised text (the same note twice is one)."""
    if ref:
        return f"{entity_id}:ref:{ref}"
    return f"{entity_id}:{hashlib.sha256(normalise_name(text).encode()).hexdigest()[:32]}"


def _add_observations(
    tx: Tx, space: str, observations: list[ObservationIn], at: datetime, *, create_missing: bool = False,
) -> list[Observation]:
    entity_ids = _resolve_refs(tx, space, [o.entity for o in observations], at, create_missing=create_missing)
    rows = []
    for o, entity_id in zip(observations, entity_ids):
        valid_from = None if o.undated else o.valid_from or at
        rows.append({"id": str(uuid.uuid4()), "entity_id": entity_id, "key": observation_key(entity_id, o.text, o.ref),
                     "text": o.text, "date_text": date_text(valid_from) if valid_from else "", "valid_from": valid_from,
                     "supersedes": o.supersedes, "ref": o.ref, "seq": o.seq, **o.provenance.model_dump()})
    written = tx.rows(ADD_OBSERVATIONS, rows=rows, space=space, now=at)
    result = [records.observation(row["observation"]) for row in written]
    created = [{"id": o.id, "source": o.provenance.source, "seq": o.seq} for o in result
               if o.recorded_at == at and o.seq is not None and o.provenance.source]
    if created:
        tx.run(REMARK_NEIGHBOURS, created=created, space=space, now=at, window=CONTEXT_WINDOW)
    return result


def date_text(moment: datetime) -> str:
    """The date as words ('8 May 2023'), so keyword search can match it."""
    return f"{moment.day} {moment:%B %Y}"


RETRACT_OBSERVATIONS = """
UNWIND $ids AS id
MATCH (o:Observation {id: id})
WHERE o.space = $space AND o.retracted_at IS NULL
SET o.retracted_at = $now, o.current_key = null, o.vector_status = 'pending', o.pending_since = $now
RETURN o.id AS id
"""

RETRACT_OBSERVATIONS_BY_TEXT = """
UNWIND $rows AS row
MATCH (o:Observation {space: $space, current_key: row.key})
SET o.retracted_at = $now, o.current_key = null, o.vector_status = 'pending', o.pending_since = $now
RETURN o.id AS id
"""


# -- relations -------------------------------------------------------------------------------

LOCK_SOURCES = """
UNWIND $ids AS id
MATCH (s:Entity {id: id})
WHERE s.space = $space
SET s.updated_at = $now
"""

EXISTING_FACTS = """
UNWIND $pairs AS pair
MATCH (s:Entity {id: pair.source})-[r:$(pair.type)]->(t:Entity)
WHERE r.retracted_at IS NULL AND r.space = $space
RETURN pair.source AS source, pair.type AS type, r.id AS id, t.id AS target,
       r.valid_from AS valid_from, r.valid_to AS valid_to
"""

CLOSE_FACTS = """
UNWIND $closes AS c
MATCH (:Entity {id: c.source})-[r:$(c.type)]->()
WHERE r.id = c.id
SET r.valid_to = c.valid_to
"""

CREATE_FACTS = """
UNWIND $creates AS c
MATCH (s:Entity {id: c.source}), (t:Entity {id: c.target})
CREATE (s)-[r:$(c.type)]->(t)
SET r = c.props
"""

READ_FACTS = """
UNWIND $facts AS f
MATCH (s:Entity {id: f.source})-[r:$(f.type)]->(t:Entity)
WHERE r.id = f.id
RETURN f.id AS id, r {.*} AS relation, type(r) AS type, s.id AS source_id, s.name AS source_name,
       t.id AS target_id, t.name AS target_name
"""


def _upsert_relations(
    tx: Tx, space: str, relations: list[RelationIn], at: datetime, *, create_missing: bool = False,
) -> list[Relation]:
    refs = [ref for relation in relations for ref in (relation.source, relation.target)]
    ids = _resolve_refs(tx, space, refs, at, create_missing=create_missing)
    sources, targets = ids[0::2], ids[1::2]
    # Writing to every source first locks it, so concurrent writers to one source queue up.
    tx.run(LOCK_SOURCES, ids=sorted(set(sources)), space=space, now=at)

    types = [relation.canonical_type for relation in relations]
    pairs = sorted({(source, rel_type) for source, rel_type in zip(sources, types)})
    facts: dict[tuple[str, str], list[Fact]] = {pair: [] for pair in pairs}
    for row in tx.rows(EXISTING_FACTS, pairs=[{"source": s, "type": t} for s, t in pairs], space=space):
        facts[(row["source"], row["type"])].append(
            Fact(row["id"], row["target"], row["valid_from"], row["valid_to"]))

    closes: dict[str, dict[str, Any]] = {}
    creates: list[dict[str, Any]] = []
    created: dict[str, dict[str, Any]] = {}  # new fact id -> its create row
    result_ids: list[tuple[str, str, str]] = []  # (source, type, relation id) per input row
    for relation, source, target, rel_type in zip(relations, sources, targets, types):
        valid_from = relation.valid_from or at
        known = facts[(source, rel_type)]
        planner = plan_single_valued if rel_type in SINGLE_VALUED else plan_multi_valued
        plan = planner(known, target, valid_from)
        if plan.duplicate_of:
            result_ids.append((source, rel_type, plan.duplicate_of))
            continue
        for fact_id, valid_to in plan.close.items():
            if fact_id in created:  # superseded within this batch: it is written closed
                created[fact_id]["props"]["valid_to"] = valid_to
            else:
                closes[fact_id] = {"id": fact_id, "source": source, "type": rel_type, "valid_to": valid_to}
        known[:] = [replace(f, valid_to=plan.close[f.id]) if f.id in plan.close else f for f in known]
        new_id = str(uuid.uuid4())
        known.append(Fact(new_id, target, valid_from, plan.incoming_valid_to))
        created[new_id] = {"source": source, "target": target, "type": rel_type, "props": {
            "id": new_id, "space": space, "label": relation.type, "valid_from": valid_from,
            "valid_to": plan.incoming_valid_to, "recorded_at": at, "weight": relation.weight,
            **relation.provenance.model_dump(),
        }}
        creates.append(created[new_id])
        result_ids.append((source, rel_type, new_id))

    if closes:
        tx.run(CLOSE_FACTS, closes=list(closes.values()))
    if creates:
        tx.run(CREATE_FACTS, creates=creates)
    wanted = [{"source": s, "type": t, "id": i} for s, t, i in result_ids]
    by_id = {row["id"]: records.relation_from_row(row) for row in tx.rows(READ_FACTS, facts=wanted)}
    return [by_id[i] for _, _, i in result_ids]


RETRACT_RELATIONS = """
UNWIND $rows AS row
MATCH (s:Entity {id: row.source})-[r:$(row.type)]->(t:Entity {id: row.target})
WHERE r.space = $space AND r.retracted_at IS NULL AND r.valid_to IS NULL
SET r.retracted_at = $now
RETURN r.id AS id
"""


def _retract_relations(tx: Tx, space: str, relations: list[RelationIn], at: datetime) -> list[str]:
    refs = [ref for relation in relations for ref in (relation.source, relation.target)]
    ids = _resolve_refs(tx, space, refs, at)
    rows = [{"source": s, "target": t, "type": r.canonical_type} for r, s, t in zip(relations, ids[0::2], ids[1::2])]
    return [row["id"] for row in tx.rows(RETRACT_RELATIONS, rows=rows, space=space, now=at)]


# -- deleting ----------------------------------------------------------------------------------

RETRACT_ENTITY = """
MATCH (e:Entity {id: $id})
WHERE e.space = $space AND e.retracted_at IS NULL
SET e.retracted_at = $now, e.updated_at = $now, e.vector_status = 'pending', e.pending_since = $now
WITH e
CALL (e) {
  MATCH (e)-[r]-(:Entity) WHERE r.retracted_at IS NULL
  SET r.retracted_at = $now
  RETURN count(r) AS relations
}
CALL (e) {
  MATCH (e)-[:HAS_OBSERVATION]->(o:Observation) WHERE o.retracted_at IS NULL
  SET o.retracted_at = $now, o.current_key = null, o.vector_status = 'pending', o.pending_since = $now
  RETURN count(o) AS observations
}
RETURN e.id AS id, relations, observations
"""

DELETE_ENTITY = """
MATCH (e:Entity {id: $id})
WHERE e.space = $space
CALL (e) {
  OPTIONAL MATCH (e)-[:HAS_OBSERVATION]->(o:Observation)
  WITH collect(o) AS observations
  UNWIND observations AS o
  WITH o, o.id AS observation_id
  DETACH DELETE o
  RETURN collect(observation_id) AS observation_ids
}
CALL (e) {
  OPTIONAL MATCH (e)-[:HAS_REVISION]->(r:Revision)
  WITH collect(r) AS revisions
  UNWIND revisions AS r
  DETACH DELETE r
  RETURN count(*) AS revisions
}
CALL (e) {
  OPTIONAL MATCH (e)-[r]-(:Entity)
  RETURN count(r) AS relations
}
DETACH DELETE e
RETURN observation_ids, revisions, relations
"""

MENTIONING_OBSERVATIONS = """
CALL db.index.fulltext.queryNodes('observation_text', $phrase) YIELD node
WHERE node.space = $space AND any(term IN $terms WHERE toLower(node.text) CONTAINS term)
RETURN node.id AS id
"""

DELETE_OBSERVATIONS = """
UNWIND $ids AS id
MATCH (o:Observation {id: id})
WHERE o.space = $space
DETACH DELETE o
"""


# -- the writer ----------------------------------------------------------------------------------

class SpaceWriter:
    """The writes of one transaction in one tenant, all stamped `at`. What they touch is collected in
    `touched`, for the transaction's audit event (graph/audit.py)."""

    def __init__(self, tx: Tx, space: str, at: datetime) -> None:
        self.tx = tx
        self.space = space
        self.at = at
        self.touched = Touched.empty()
        self.event: dict[str, Any] | None = None  # what `record_as` said the audit event is

    # Queries of other modules: `space` (and `now`) are bound for them. Their `id`/`ids`/`entity_id`
    # parameters are what they touch, as far as the audit trail can tell; `touch` adds more.
    def rows(self, query: str, /, **params: Any) -> list[dict[str, Any]]:
        self._touch_params(params)
        return self.tx.rows(query, **{"space": self.space, "now": self.at, **params})

    def row(self, query: str, /, **params: Any) -> dict[str, Any] | None:
        self._touch_params(params)
        return self.tx.row(query, **{"space": self.space, "now": self.at, **params})

    def run(self, query: str, /, **params: Any) -> None:
        self._touch_params(params)
        self.tx.run(query, **{"space": self.space, "now": self.at, **params})

    def touch(self, kind: str, ids: Sequence[str], provenance: Sequence[dict[str, Any]] = (), *,
              count: int | None = None) -> None:
        """Name what this transaction wrote (for its audit event): ids, and how many of `kind` (default: one per id)."""
        self.touched.add(kind, [i for i in ids if isinstance(i, str)], list(provenance), count=count)

    def record_as(self, operation: str, *, ids: list[str], detail: dict[str, Any], event_id: str) -> None:
        """This transaction's audit event is this one instead of what it touched: a forget's event names
        nothing it forgot (graph/forget.py)."""
        self.event = {"operation": operation, "ids": ids, "detail": detail, "event_id": event_id}

    def _touch_params(self, params: dict[str, Any]) -> None:
        ids = [params[name] for name in ("id", "entity_id", "memory_id") if isinstance(params.get(name), str)]
        if isinstance(params.get("ids"), list):
            ids += [i for i in params["ids"] if isinstance(i, str)]
        self.touched.add("queries", ids)

    def upsert_entities(self, entities: Sequence[EntityIn]) -> list[dict[str, Any]]:
        """The entities' stored properties, in input order (see `records.entity`)."""
        written = _upsert_entities(self.tx, self.space, list(entities), self.at)
        self.touch("entities", [e["id"] for e in written], [e.provenance.model_dump() for e in entities])
        return written

    def add_observations(self, observations: Sequence[ObservationIn], *, create_missing: bool = False) -> list[Observation]:
        written = _add_observations(self.tx, self.space, list(observations), self.at, create_missing=create_missing)
        self.touch("observations", [o.entity_id for o in written] + [o.id for o in written],
                   [o.provenance.model_dump() for o in observations])
        return written

    def upsert_relations(self, relations: Sequence[RelationIn], *, create_missing: bool = False) -> list[Relation]:
        written = _upsert_relations(self.tx, self.space, list(relations), self.at, create_missing=create_missing)
        self.touch("relations", [i for r in written for i in (r.source_id, r.id, r.target_id)],
                   [r.provenance.model_dump() for r in relations])
        return written

    def retract_relations(self, relations: Sequence[RelationIn]) -> int:
        ids = _retract_relations(self.tx, self.space, list(relations), self.at)
        self.touch("relations_retracted", ids)
        return len(ids)

    def retract_observations(self, observation_ids: Sequence[str]) -> int:
        ids = [row["id"] for row in self.tx.rows(RETRACT_OBSERVATIONS, ids=list(observation_ids), space=self.space,
                                                 now=self.at)]
        self.touch("observations_retracted", ids)
        return len(ids)

    def retract_observation_texts(self, entity_id: str, texts: Sequence[str]) -> int:
        rows = [{"key": observation_key(entity_id, text)} for text in texts]
        ids = [row["id"] for row in self.tx.rows(RETRACT_OBSERVATIONS_BY_TEXT, rows=rows, space=self.space, now=self.at)]
        self.touch("observations_retracted", [entity_id, *ids])
        return len(ids)

    def retract_entity(self, entity_id: str) -> dict[str, int]:
        """Soft delete: hidden from reads, kept in history, with its current relations and observations."""
        row = self.tx.row(RETRACT_ENTITY, id=entity_id, space=self.space, now=self.at)
        if row is None:
            raise NotFound(f"no entity {entity_id!r} in this space")
        self.touch("entities_retracted", [entity_id])
        return {"relations": row["relations"], "observations": row["observations"]}

    def delete_entity(self, entity_id: str) -> dict[str, Any]:
        """Hard delete: the entity, its observations, revisions and relationships, gone for good."""
        row = self.tx.row(DELETE_ENTITY, id=entity_id, space=self.space)
        if row is None:
            raise NotFound(f"no entity {entity_id!r} in this space")
        self.touch("entities_deleted", [entity_id])
        self.touch("observations_deleted", row["observation_ids"])
        return row

    def delete_observations(self, observation_ids: Sequence[str]) -> None:
        self.tx.run(DELETE_OBSERVATIONS, ids=list(observation_ids), space=self.space)
        self.touch("observations_deleted", list(observation_ids))

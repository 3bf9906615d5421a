"""Forgetting, in Neo4j: an entity, an agent, a delegation, a source, or a whole space, for good.

    result = forget_in_graph(acme, ForgetTarget(kind="agent", value="ds-1"))

What each target reaches (docs/operations.md says the same for operators):

- **entity** (an id): the entity, its observations, revisions and relationships (the hard delete),
  and everything that mentions it by name or alias (below).
- **agent** (a name): the `Agent` entities of that name as an entity; every observation, relation
  and revision whose provenance `agent` is it; every entity it wrote (provenance `agent`) that
  nothing else keeps (no observation or relation left), the others keep their data with the
  provenance cleared; and every mention of its name.
- **delegation** (an id): the same for the `Delegation` entity of that id and provenance
  `delegation_id`: the outcome summaries, lessons and relations written for it go with it.
- **source** (a label): the same for provenance `source`; there is no entity of that name.
- **space**: every node of the space (`forget_space`).

A *mention* is a word-bounded, case-insensitive occurrence of a forgotten string (a name or alias,
the agent's name, the delegation id, the source label) or any occurrence of a forgotten id. It is
handled by what holds it: an observation or revision that mentions it is deleted; a free-text
`Memory` entity that mentions it (or MENTIONS a forgotten entity) is forgotten whole (its mem0
memory with it, see memory/forget.py); an entity whose name or alias mentions it is forgotten as
well; any other node or relationship of the space (another entity's summary or attributes, a
memory-tool file and its versions, a delegation's `shown_ids`, an audit event's ids, agent or
delegation) keeps its place with the mention replaced by `[forgotten]`, or the id taken out of
its list. Observations whose conversation context held a forgotten line are indexed again.

All of it runs in one transaction of the write path, whose audit event is the forget's own:
operation "forget", the target's kind, its value only as a SHA-256 hash, and counts, never a name.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from graph.errors import InvalidInput, NotFound
from graph.store import SpaceGraph
from graph.vocabulary import normalise_name
from graph.writes import DELETE_ENTITY, SpaceWriter

TargetKind = Literal["entity", "agent", "delegation", "source", "space"]
PROVENANCE_FIELD = {"agent": "agent", "delegation": "delegation_id", "source": "source"}
REDACTED = "[forgotten]"
SPACE_BATCH = 2000


@dataclass(frozen=True)
class ForgetTarget:
    kind: TargetKind
    value: str = ""

    def digest(self) -> str:
        """What the forget's own audit event keeps of the value: a hash, never the value."""
        return "sha256:" + hashlib.sha256(f"{self.kind}\n{self.value}".encode()).hexdigest()


@dataclass
class GraphForgetResult:
    """What the forget removed from Neo4j, and what the other stores must forget too."""

    event_id: str
    entities: int = 0
    observations: int = 0
    relations: int = 0
    revisions: int = 0
    other_nodes: int = 0  # nodes of other labels (memory-tool files, keys' leftovers) deleted with a space
    redacted: int = 0  # nodes and relationships kept with their mentions replaced
    audit_events_scrubbed: int = 0
    context_reindexed: int = 0
    entity_ids: list[str] = field(default_factory=list)
    observation_ids: list[str] = field(default_factory=list)
    memory_ids: list[str] = field(default_factory=list)  # mem0 ids of the forgotten free-text memories
    strings: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"entities": self.entities, "observations": self.observations, "relations": self.relations,
                "revisions": self.revisions, "other_nodes": self.other_nodes, "redacted": self.redacted,
                "audit_events_scrubbed": self.audit_events_scrubbed}


# -- what a target starts from ------------------------------------------------------------------------

ENTITY_NAMES = """
MATCH (e:Entity {id: $id}) WHERE e.space = $space
RETURN e.id AS id, e.name AS name, e.aliases AS aliases, e:Memory AS memory
"""

RELATION_IDS = """
MATCH (e:Entity {id: $id})-[r]-(:Entity) WHERE e.space = $space
RETURN DISTINCT r.id AS id
"""

ROOTS_BY_KIND_AND_NAME = """
MATCH (e:Entity {space: $space, kind: $kind})
WHERE e.name_key = $name_key OR e.id = $value
RETURN e.id AS id, e.name AS name, e.aliases AS aliases
"""

PROVENANCE_ENTITIES = """
MATCH (e:Entity {space: $space}) WHERE e[$field] = $value
RETURN e.id AS id
"""

PROVENANCE_OBSERVATIONS = """
MATCH (o:Observation {space: $space}) WHERE o[$field] = $value
RETURN o.id AS id
"""

PROVENANCE_RELATIONS = """
MATCH (:Entity {space: $space})-[r]->(:Entity) WHERE r.space = $space AND r[$field] = $value
RETURN r.id AS id
"""

# Free-text memories that point at a forgotten entity; those that name it are found by the sweep.
MENTIONING_MEMORIES = """
UNWIND $ids AS id
MATCH (m:Entity:Memory {space: $space})-[:MENTIONS]->(:Entity {id: id})
RETURN DISTINCT m.id AS id
"""

# Candidates for the sweep: the space's nodes of every label kgmem gives a `space` (by label, so the
# indexes on space serve, not a scan of every tenant) with a string (or list of strings) property that
# contains a needle, compared in lower case. Python then checks words and ids exactly.
NODES_CONTAINING = """
CALL () {
  MATCH (n:Entity {space: $space}) RETURN n
  UNION MATCH (n:Observation {space: $space}) RETURN n
  UNION MATCH (:Entity {space: $space})-[:HAS_REVISION]->(n:Revision) RETURN n
  UNION MATCH (n:AuditEvent {space: $space}) RETURN n
  UNION MATCH (n:MemoryFile {space: $space}) RETURN n
  UNION MATCH (n:MemoryFileVersion {space: $space}) RETURN n
  UNION MATCH (n:MemoryDir {space: $space}) RETURN n
  UNION MATCH (n:MemoryStore {space: $space}) RETURN n
}
WITH n
WHERE any(k IN keys(n) WHERE
        (n[k] IS :: STRING AND any(s IN $needles WHERE toLower(n[k]) CONTAINS s))
        OR (n[k] IS :: LIST<STRING NOT NULL> AND any(x IN n[k] WHERE any(s IN $needles WHERE toLower(x) CONTAINS s))))
RETURN elementId(n) AS element, labels(n) AS labels, properties(n) AS props
"""

RELATIONSHIPS_CONTAINING = """
MATCH (:Entity {space: $space})-[r]->()
WHERE r.space = $space AND any(k IN keys(r) WHERE
        (r[k] IS :: STRING AND any(s IN $needles WHERE toLower(r[k]) CONTAINS s))
        OR (r[k] IS :: LIST<STRING NOT NULL> AND any(x IN r[k] WHERE any(s IN $needles WHERE toLower(x) CONTAINS s))))
RETURN elementId(r) AS element, r.id AS id, properties(r) AS props
"""

DELETE_RELATIONS = """
UNWIND $ids AS id
MATCH (:Entity {space: $space})-[r]->(:Entity)
WHERE r.id = id
DELETE r
"""

DELETE_REVISIONS_BY_PROVENANCE = """
MATCH (:Entity {space: $space})-[:HAS_REVISION]->(v:Revision) WHERE v[$field] = $value
DETACH DELETE v
RETURN count(*) AS deleted
"""

DELETE_NODES = """
UNWIND $elements AS element
MATCH (n) WHERE elementId(n) = element
DETACH DELETE n
"""

# Entities a provenance forget reached that nothing keeps any more.
ORPHANS = """
UNWIND $ids AS id
MATCH (e:Entity {id: id}) WHERE e.space = $space
  AND NOT (e)-[:HAS_OBSERVATION]->() AND NOT (e)--(:Entity)
RETURN e.id AS id
"""

CLEAR_PROVENANCE = """
UNWIND $ids AS id
MATCH (e:Entity {id: id}) WHERE e.space = $space
SET e[$field] = null, e.vector_status = 'pending', e.pending_since = $now
"""

SET_PROPERTIES = """
UNWIND $rows AS row
MATCH (n) WHERE elementId(n) = row.element
SET n += row.props
"""

SET_RELATIONSHIP_PROPERTIES = """
UNWIND $rows AS row
MATCH ()-[r]->() WHERE elementId(r) = row.element
SET r += row.props
"""

# A neighbour's conversation context held a forgotten line: it is built again by the vector sync.
REINDEX_CONTEXT = """
UNWIND $elements AS element
MATCH (o:Observation) WHERE elementId(o) = element
SET o.context = null, o.vector_status = 'pending', o.pending_since = $now
"""

MARK_PENDING = """
UNWIND $elements AS element
MATCH (n) WHERE elementId(n) = element AND (n:Entity OR n:Observation)
SET n.vector_status = 'pending', n.pending_since = $now
"""

# -- a whole space ---------------------------------------------------------------------------------------

SPACE_ITEMS = """
CALL () {
  MATCH (n:Entity {space: $space}) RETURN n
  UNION MATCH (n:Observation {space: $space}) RETURN n
}
RETURN n.id AS id, n:Observation AS observation, n:Memory AS memory
"""

SPACE_RELATIONS = """
MATCH (:Entity {space: $space})-[r]->(:Entity) WHERE r.space = $space
RETURN count(r) AS relations
"""

DELETE_SPACE_BATCH = """
MATCH (n {space: $space}) WHERE NOT (n:AuditEvent AND n.id = $keep)
WITH n LIMIT $batch
WITH n, labels(n) AS labels
DETACH DELETE n
RETURN count(*) AS deleted,
       sum(CASE WHEN 'Entity' IN labels THEN 1 ELSE 0 END) AS entities,
       sum(CASE WHEN 'Observation' IN labels THEN 1 ELSE 0 END) AS observations,
       sum(CASE WHEN 'Revision' IN labels THEN 1 ELSE 0 END) AS revisions,
       sum(CASE WHEN 'AuditEvent' IN labels THEN 1 ELSE 0 END) AS audit_events
"""


ENTITY_BY_ID_OR_NAME = """
MATCH (e:Entity {space: $space})
WHERE e.id = $value OR e.name_key = $name_key
RETURN e.id AS id, e.kind AS kind
"""


def resolve_entity(graph: SpaceGraph, name_or_id: str) -> str:
    """The id of the entity with this id or name; InvalidInput when the name is several entities'."""
    rows = graph.rows(ENTITY_BY_ID_OR_NAME, value=name_or_id, name_key=normalise_name(name_or_id))
    exact = [row for row in rows if row["id"] == name_or_id]
    if exact or len(rows) == 1:
        return (exact or rows)[0]["id"]
    if not rows:
        raise NotFound(f"no entity {name_or_id!r} in this space")
    kinds = ", ".join(f"{row['kind']} {row['id']}" for row in rows)
    raise InvalidInput(f"the name {name_or_id!r} is several entities ({kinds}); give the id of the one to forget")


def forget_in_graph(graph: SpaceGraph, target: ForgetTarget, event_id: str) -> GraphForgetResult:
    """Forget `target` in one transaction of the write path; the other stores follow (memory/forget.py)."""
    if target.kind == "space":
        return forget_space(graph, target, event_id)
    if not target.value.strip():
        raise InvalidInput(f"forget {target.kind}: give the {target.kind} to forget")
    return graph.write(lambda w: _forget(w, target, event_id))


def _forget(w: SpaceWriter, target: ForgetTarget, event_id: str) -> GraphForgetResult:
    result = GraphForgetResult(event_id=event_id)
    roots, strings = _roots(w, target)
    field_name = PROVENANCE_FIELD.get(target.kind)
    reached: list[str] = []  # entities the target's provenance names: forgotten when nothing else keeps them
    doomed_observations: list[str] = []
    doomed_relations: list[str] = []
    if field_name:
        reached = [r["id"] for r in w.tx.rows(PROVENANCE_ENTITIES, space=w.space, field=field_name, value=target.value)]
        doomed_observations = [r["id"] for r in w.tx.rows(PROVENANCE_OBSERVATIONS, space=w.space, field=field_name,
                                                           value=target.value)]
        doomed_relations = [r["id"] for r in w.tx.rows(PROVENANCE_RELATIONS, space=w.space, field=field_name,
                                                        value=target.value)]
    roots += [r["id"] for r in w.tx.rows(MENTIONING_MEMORIES, space=w.space, ids=roots)]
    matcher = Mentions(strings, [])

    # Entities whose name or alias mentions a forgotten string go as well (found by the sweep's query).
    needles = matcher.needles()
    if needles:
        for row in w.tx.rows(NODES_CONTAINING, space=w.space, needles=needles):
            props = row["props"]
            if "Entity" in row["labels"] and (matcher.found(props.get("name")) or matcher.found(props.get("aliases"))
                                              or ("Memory" in row["labels"] and matcher.found(props.get("summary")))):
                roots.append(props["id"])
    roots = list(dict.fromkeys(roots))

    for entity_id in roots:
        row = w.tx.row(ENTITY_NAMES, space=w.space, id=entity_id)
        if row is None:
            continue
        if row["memory"]:
            result.memory_ids.append(entity_id)
        result.ids += [r["id"] for r in w.tx.rows(RELATION_IDS, space=w.space, id=entity_id) if r["id"]]
        deleted = w.tx.row(DELETE_ENTITY, space=w.space, id=entity_id)
        result.entities += 1
        result.observation_ids += deleted["observation_ids"]
        result.revisions += deleted["revisions"]
        result.relations += deleted["relations"]
        result.entity_ids.append(entity_id)

    if doomed_relations:
        w.tx.run(DELETE_RELATIONS, space=w.space, ids=doomed_relations)
        result.relations += len(doomed_relations)
        result.ids += doomed_relations
    if doomed_observations:
        gone = [i for i in doomed_observations if i not in set(result.observation_ids)]
        w.tx.run(DELETE_OBSERVATION_NODES, space=w.space, ids=gone)
        result.observation_ids += gone
    if field_name:
        result.revisions += w.tx.row(DELETE_REVISIONS_BY_PROVENANCE, space=w.space, field=field_name,
                                     value=target.value)["deleted"]
        orphans = [r["id"] for r in w.tx.rows(ORPHANS, space=w.space, ids=[i for i in reached if i not in roots])]
        for entity_id in orphans:
            deleted = w.tx.row(DELETE_ENTITY, space=w.space, id=entity_id)
            result.entities += 1
            result.revisions += deleted["revisions"]
            result.entity_ids.append(entity_id)
        kept = [i for i in reached if i not in set(result.entity_ids)]
        if kept:
            w.tx.run(CLEAR_PROVENANCE, space=w.space, ids=kept, field=field_name, now=w.at)

    result.strings = strings
    result.ids = list(dict.fromkeys([*result.entity_ids, *result.observation_ids, *result.ids]))
    _sweep(w, strings, result)
    result.observations = len(result.observation_ids)
    w.record_as("forget", ids=[target.digest()], detail={"target": target.kind, **result.counts()},
                event_id=event_id)
    return result


DELETE_OBSERVATION_NODES = """
UNWIND $ids AS id
MATCH (o:Observation {id: id})
WHERE o.space = $space
DETACH DELETE o
"""


def _roots(w: SpaceWriter, target: ForgetTarget) -> tuple[list[str], list[str]]:
    """The entities the target is, and the strings whose mentions go with it."""
    if target.kind == "entity":
        row = w.tx.row(ENTITY_NAMES, space=w.space, id=target.value)
        if row is None:
            raise NotFound(f"no entity {target.value!r} in this space")
        return [row["id"]], [row["name"], *(row["aliases"] or [])]
    if target.kind in ("agent", "delegation"):
        kind = "Agent" if target.kind == "agent" else "Delegation"
        rows = w.tx.rows(ROOTS_BY_KIND_AND_NAME, space=w.space, kind=kind, name_key=normalise_name(target.value),
                         value=target.value)
        names = [name for row in rows for name in (row["name"], *(row["aliases"] or []))]
        return [row["id"] for row in rows], list(dict.fromkeys([target.value, *names]))
    return [], [target.value]


class Mentions:
    """Finds forgotten strings (whole words, any case) and ids (exact) in property values, and takes them out."""

    def __init__(self, strings: list[str], ids: list[str]) -> None:
        self.strings = [s for s in dict.fromkeys(s.strip() for s in strings) if s]
        self.ids = set(ids)
        words = sorted(self.strings, key=len, reverse=True)
        pattern = "|".join([*(rf"(?<!\w){re.escape(s)}(?!\w)" for s in words), *(re.escape(i) for i in sorted(ids))])
        self.pattern = re.compile(pattern, re.IGNORECASE) if pattern else None

    def needles(self) -> list[str]:
        return sorted({s.casefold() for s in self.strings} | {i.casefold() for i in self.ids})

    def found(self, value: Any) -> bool:
        if self.pattern is None:
            return False
        if isinstance(value, str):
            return bool(self.pattern.search(value))
        if isinstance(value, list):
            return any(self.found(item) for item in value)
        return False

    def scrubbed(self, value: Any) -> Any:
        """The value without the mentions: ids out of lists, strings replaced."""
        if isinstance(value, list):
            return [self.scrubbed(item) for item in value if not (isinstance(item, str) and item in self.ids)]
        if isinstance(value, str) and self.pattern is not None:
            return self.pattern.sub(REDACTED, value)
        return value


def _sweep(w: SpaceWriter, strings: list[str], result: GraphForgetResult) -> None:
    """Every other node and relationship of the space that still mentions what was forgotten: first the
    observations and revisions that go, then (knowing their ids too) the redactions."""
    mentions = Mentions(strings, result.ids)
    if not mentions.needles():
        return
    delete = []
    for row in _mentioning(w, mentions):
        labels, props, hits = row["labels"], row["props"], row["hits"]
        if ("Observation" in labels and not hits <= {"context"}) or "Revision" in labels:
            delete.append(row["element"])
            if "Observation" in labels:
                result.observation_ids.append(props["id"])
                result.ids.append(props["id"])
            else:
                result.revisions += 1
    if delete:
        w.tx.run(DELETE_NODES, elements=delete)
        mentions = Mentions(strings, result.ids)

    reindex, pending, rows = [], [], []
    for row in _mentioning(w, mentions):
        labels, props, hits = row["labels"], row["props"], row["hits"]
        if "Observation" in labels:  # only its context mentions it (the others are gone)
            reindex.append(row["element"])
            continue
        rows.append({"element": row["element"], "props": {key: mentions.scrubbed(props[key]) for key in hits}})
        if "AuditEvent" in labels:
            result.audit_events_scrubbed += 1
        else:
            result.redacted += 1
            pending.append(row["element"])
    if rows:
        w.tx.run(SET_PROPERTIES, rows=rows)
    if pending:
        w.tx.run(MARK_PENDING, elements=pending, now=w.at)
    if reindex:
        w.tx.run(REINDEX_CONTEXT, elements=reindex, now=w.at)
        result.context_reindexed = len(reindex)
    relationship_rows = []
    for row in w.tx.rows(RELATIONSHIPS_CONTAINING, space=w.space, needles=mentions.needles()):
        hits = {key for key, value in row["props"].items() if mentions.found(value)}
        if hits:
            relationship_rows.append({"element": row["element"],
                                      "props": {key: mentions.scrubbed(row["props"][key]) for key in hits}})
    if relationship_rows:
        w.tx.run(SET_RELATIONSHIP_PROPERTIES, rows=relationship_rows)
        result.redacted += len(relationship_rows)


def _mentioning(w: SpaceWriter, mentions: Mentions) -> list[dict[str, Any]]:
    """The space's nodes with a property that mentions a forgotten string or id, with those properties' names."""
    found = []
    for row in w.tx.rows(NODES_CONTAINING, space=w.space, needles=mentions.needles()):
        hits = {key for key, value in row["props"].items() if mentions.found(value)}
        if hits:
            found.append({**row, "hits": hits})
    return found


def forget_space(graph: SpaceGraph, target: ForgetTarget, event_id: str) -> GraphForgetResult:
    """Every node of the space, in transactions of `SPACE_BATCH` nodes; the forget's event is kept."""
    result = GraphForgetResult(event_id=event_id)
    for row in graph.rows(SPACE_ITEMS):
        if row["observation"]:
            result.observation_ids.append(row["id"])
        else:
            result.entity_ids.append(row["id"])
            if row["memory"]:
                result.memory_ids.append(row["id"])
    result.ids = [*result.entity_ids, *result.observation_ids]
    result.relations = graph.rows(SPACE_RELATIONS)[0]["relations"]

    def batch(w: SpaceWriter) -> dict[str, int]:
        counts = w.tx.row(DELETE_SPACE_BATCH, space=w.space, keep=event_id, batch=SPACE_BATCH)
        w.record_as("forget", ids=[target.digest()], detail={"target": "space", **result.counts()}, event_id=event_id)
        return counts

    while True:
        counts = graph.write(batch)
        result.entities += counts["entities"]
        result.observations += counts["observations"]
        result.revisions += counts["revisions"]
        result.audit_events_scrubbed += counts["audit_events"]
        result.other_nodes += counts["deleted"] - counts["entities"] - counts["observations"] - counts["revisions"] \
            - counts["audit_events"]
        if not counts["deleted"]:
            break
    return result

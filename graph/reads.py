"""Reads: one entity, lists, name and fulltext search, neighbourhoods and history.

Every query filters on the tenant (`space`) and, unless it is a history read,
on time: current facts by default, or the graph as it stood at `$as_of`.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from graph import lucene, records
from graph.errors import InvalidInput, NotFound
from graph.gateway import Gateway
from graph.model import Entity, EntityHistory, Neighbour, Neighbourhood, Page, SearchHit
from graph.vocabulary import Kind, normalise_name

MAX_DEPTH = 3

# -- time filters (fixed Cypher fragments, never input) ---------------------------------------


def fact_visible(var: str) -> str:
    """Valid at `$as_of` (default: now, i.e. not closed) as known at `$known_at` (default: now, i.e. not retracted)."""
    return (
        f"(CASE WHEN $as_of IS NULL THEN {var}.valid_to IS NULL "
        f"ELSE {var}.valid_from <= $as_of AND ({var}.valid_to IS NULL OR {var}.valid_to > $as_of) END) AND "
        f"(CASE WHEN $known_at IS NULL THEN {var}.retracted_at IS NULL "
        f"ELSE {var}.recorded_at <= $known_at AND ({var}.retracted_at IS NULL OR {var}.retracted_at > $known_at) END)"
    )


def entity_visible(var: str) -> str:
    """Entities have no valid time of their own; they exist from when kgmem recorded them until retracted."""
    return (
        f"(CASE WHEN $known_at IS NULL THEN {var}.retracted_at IS NULL "
        f"ELSE {var}.created_at <= $known_at AND ({var}.retracted_at IS NULL OR {var}.retracted_at > $known_at) END)"
    )


BOOKKEEPING = "['HAS_OBSERVATION', 'HAS_REVISION']"

GET_ENTITY = f"""
MATCH (e:Entity {{id: $id}})
WHERE e.space = $space AND {entity_visible('e')}
RETURN e {{.*}} AS entity
"""

FIND_BY_NAME = f"""
MATCH (e:Entity {{space: $space, name_key: $key}})
WHERE ($kind IS NULL OR e.kind = $kind) AND {entity_visible('e')}
RETURN e {{.*}} AS entity
ORDER BY e.kind
"""

FIND_BY_ALIAS = f"""
CALL db.index.fulltext.queryNodes('entity_text', $query) YIELD node AS e
WHERE e.space = $space AND $key IN e.alias_keys AND ($kind IS NULL OR e.kind = $kind) AND {entity_visible('e')}
RETURN e {{.*}} AS entity
ORDER BY e.kind
"""

# Keyset pagination on (name_key, id): stable under concurrent writes, and index-ordered.
LIST_ENTITIES_OF_KINDS = f"""
MATCH (e:Entity)
WHERE e.space = $space AND e.kind IN $kinds AND {entity_visible('e')}
  AND ($updated_since IS NULL OR e.updated_at >= $updated_since)
  AND ($after_key IS NULL OR e.name_key > $after_key OR (e.name_key = $after_key AND e.id > $after_id))
RETURN e {{.*}} AS entity
ORDER BY e.name_key, e.id
LIMIT $limit
"""

LIST_ENTITIES = f"""
MATCH (e:Entity)
WHERE e.space = $space AND e.name_key >= coalesce($after_key, '') AND {entity_visible('e')}
  AND ($updated_since IS NULL OR e.updated_at >= $updated_since)
  AND ($after_key IS NULL OR e.name_key > $after_key OR (e.name_key = $after_key AND e.id > $after_id))
RETURN e {{.*}} AS entity
ORDER BY e.name_key, e.id
LIMIT $limit
"""

SEARCH_ENTITY_TEXT = f"""
CALL db.index.fulltext.queryNodes('entity_text', $query, {{limit: $candidates}}) YIELD node AS e, score
WHERE e.space = $space AND ($kinds IS NULL OR e.kind IN $kinds) AND {entity_visible('e')}
RETURN e {{.*}} AS entity, score
"""

SEARCH_OBSERVATION_TEXT = f"""
CALL db.index.fulltext.queryNodes('observation_text', $query, {{limit: $candidates}}) YIELD node AS o, score
WHERE o.space = $space AND {fact_visible('o')}
MATCH (e:Entity)-[:HAS_OBSERVATION]->(o)
WHERE ($kinds IS NULL OR e.kind IN $kinds) AND {entity_visible('e')}
RETURN e {{.*}} AS entity, max(score) AS score
"""


# Candidates share a word with the text; the exact check (name or alias inside the text) is in Python.
# Names and aliases only, and only the fields the matching needs: the whole entities are fetched
# for the few that the text really names.
MENTION_CANDIDATES = f"""
CALL db.index.fulltext.queryNodes('entity_text', $query, {{limit: $candidates}}) YIELD node AS e, score
WHERE e.space = $space AND e.kind <> 'Memory' AND {entity_visible('e')}
RETURN e.id AS id, e.name AS name, e.aliases AS aliases
"""

# MENTION_CANDIDATES for many texts in one round trip: `queries` is [{at, query}], and each row says which text.
MENTION_CANDIDATES_MANY = f"""
UNWIND $queries AS q
CALL db.index.fulltext.queryNodes('entity_text', q.query, {{limit: $candidates}}) YIELD node AS e, score
WITH q, e WHERE e.space = $space AND e.kind <> 'Memory' AND {entity_visible('e')}
RETURN q.at AS at, e.id AS id, e.name AS name, e.aliases AS aliases
"""


def mention_query(space: str, text: str) -> str | None:
    """The fulltext query for entities that `text` may name (None when it has no words)."""
    terms = lucene.any_terms(text)
    return lucene.in_space_fields(space, terms, ("name", "aliases")) if terms else None


def mention_candidates(limit: int) -> int:
    return max(limit * 10, 100)


def mentions(text: str, rows: list[dict[str, Any]], limit: int) -> list[str]:
    """Ids of the candidate rows (`id`, `name`, `aliases`) whose name or an alias occurs in `text` as
    whole words, longest names first (ties by name), at most `limit`."""
    padded = f" {' '.join(lucene.tokens(text))} "
    found = []
    for row in rows:
        phrases = [" ".join(lucene.tokens(name)) for name in [row["name"], *(row["aliases"] or [])]]
        best = max((len(p) for p in phrases if p and f" {p} " in padded), default=0)
        if best:
            found.append((best, row["name"].casefold(), row["id"]))
    return [entity_id for *_, entity_id in sorted(found, key=lambda match: (-match[0], match[1]))[:limit]]


ENTITIES_BY_IDS = """
UNWIND $ids AS id
MATCH (e:Entity {id: id})
WHERE e.space = $space
RETURN e {.*} AS entity
"""


def _neighbourhood_query(depth: int) -> str:
    # Quantified path bounds must be literals; depth comes from the fixed range 1..MAX_DEPTH.
    return f"""
MATCH (c:Entity {{id: $id}})
WHERE c.space = $space AND {entity_visible('c')}
MATCH p = ANY SHORTEST (c) (()-[r]-() WHERE r.space = $space AND NOT type(r) IN {BOOKKEEPING}
                             AND {fact_visible('r')}){{1,{depth}}} (n:Entity)
WHERE n <> c AND {entity_visible('n')} AND ($kinds IS NULL OR n.kind IN $kinds)
WITH n, length(p) AS distance
ORDER BY distance, n.name_key, n.id
SKIP $offset LIMIT $limit
RETURN n {{.*}} AS entity, distance
"""


NEIGHBOURHOOD = {depth: _neighbourhood_query(depth) for depth in range(1, MAX_DEPTH + 1)}

RELATIONS_AMONG = f"""
MATCH (a:Entity)-[r]->(b:Entity)
WHERE a.id IN $ids AND b.id IN $ids AND r.space = $space AND NOT type(r) IN {BOOKKEEPING}
  AND {fact_visible('r')}
RETURN r {{.*}} AS relation, type(r) AS type, a.id AS source_id, a.name AS source_name,
       b.id AS target_id, b.name AS target_name
ORDER BY type, source_name, target_name
"""

OBSERVATIONS_OF = f"""
MATCH (e:Entity {{id: $id}})-[:HAS_OBSERVATION]->(o:Observation)
WHERE e.space = $space AND {fact_visible('o')}
RETURN o {{.*}} AS observation
ORDER BY o.valid_from DESC, o.id
LIMIT $limit
"""

HISTORY_ENTITY = """
MATCH (e:Entity {id: $id})
WHERE e.space = $space
RETURN e {.*} AS entity
"""

HISTORY_REVISIONS = """
MATCH (:Entity {id: $id})-[:HAS_REVISION]->(r:Revision)
RETURN r {.*} AS revision ORDER BY r.at, r.id
"""

HISTORY_OBSERVATIONS = """
MATCH (:Entity {id: $id})-[:HAS_OBSERVATION]->(o:Observation)
RETURN o {.*} AS observation ORDER BY o.recorded_at, o.id
"""

HISTORY_RELATIONS = f"""
MATCH (e:Entity {{id: $id}})-[r]-(other:Entity)
WHERE NOT type(r) IN {BOOKKEEPING}
WITH r, startNode(r) AS a, endNode(r) AS b
RETURN r {{.*}} AS relation, type(r) AS type, a.id AS source_id, a.name AS source_name,
       b.id AS target_id, b.name AS target_name
ORDER BY r.recorded_at, r.id
"""


# What a space holds, current facts only.
ENTITY_COUNTS = """
MATCH (e:Entity {space: $space}) WHERE e.retracted_at IS NULL
RETURN e.kind AS kind, count(*) AS n ORDER BY kind
"""
OBSERVATION_COUNT = """
MATCH (o:Observation {space: $space}) WHERE o.retracted_at IS NULL AND o.valid_to IS NULL
RETURN count(o) AS n
"""
RELATION_COUNTS = f"""
MATCH (:Entity {{space: $space}})-[r]->(:Entity)
WHERE NOT type(r) IN {BOOKKEEPING} AND r.valid_to IS NULL AND r.retracted_at IS NULL
RETURN type(r) AS type, count(*) AS n ORDER BY type
"""


# -- cursors -----------------------------------------------------------------------------------

def encode_cursor(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, *fields: str) -> dict[str, Any]:
    if not cursor:
        return {}
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError) as exc:
        raise InvalidInput("cursor is not valid: pass back the next_cursor of the previous page unchanged") from exc
    if not isinstance(data, dict) or not all(field in data for field in fields):
        raise InvalidInput("cursor is not valid: pass back the next_cursor of the previous page unchanged")
    return data


# -- the reader ---------------------------------------------------------------------------------

class GraphReader:
    """Read queries for one tenant."""

    def __init__(self, gateway: Gateway, space: str) -> None:
        self.gateway = gateway
        self.space = space

    def rows(self, cypher: str, /, **params: Any) -> list[dict[str, Any]]:
        """Rows of a read in this space (also for other modules' named queries); `as_of` and `known_at`
        default to now."""
        return self.gateway.rows(cypher, **{"space": self.space, "as_of": None, "known_at": None, **params})

    def get_entity(self, entity_id: str, *, known_at: datetime | None = None) -> Entity:
        rows = self.rows(GET_ENTITY, id=entity_id, known_at=known_at)
        if not rows:
            raise NotFound(f"no entity {entity_id!r} in this space")
        return records.entity(rows[0]["entity"])

    def find_by_name(self, name: str, *, kind: Kind | None = None, known_at: datetime | None = None) -> list[Entity]:
        """Entities whose name, or else an alias, is `name` (normalised)."""
        key = normalise_name(name)
        params = {"key": key, "kind": kind.value if kind else None, "known_at": known_at}
        rows = self.rows(FIND_BY_NAME, **params)
        if not rows and lucene.phrase(key):
            rows = self.rows(FIND_BY_ALIAS, query=lucene.in_space(self.space, lucene.phrase(key)), **params)
        return [records.entity(row["entity"]) for row in rows]

    def mentioned_in(self, text: str, *, limit: int = 20, known_at: datetime | None = None) -> list[Entity]:
        """Entities whose name or an alias occurs in `text` as whole words, longest names first."""
        query = mention_query(self.space, text)
        if query is None:
            return []
        rows = self.rows(MENTION_CANDIDATES, query=query, candidates=mention_candidates(limit), known_at=known_at)
        found = mentions(text, rows, limit)
        if not found:
            return []
        entities = {row["entity"]["id"]: records.entity(row["entity"]) for row in self.rows(ENTITIES_BY_IDS, ids=found)}
        return [entities[entity_id] for entity_id in found if entity_id in entities]

    def mentioned_ids(self, texts: list[str], *, limit: int = 20) -> list[list[str]]:
        """`mentioned_in`'s entity ids for each of many texts, in one round trip (a batch of writes links its
        texts to what they name without a query per text)."""
        queries = [{"at": at, "query": query} for at, text in enumerate(texts)
                   if (query := mention_query(self.space, text)) is not None]
        by_text: dict[int, list[dict[str, Any]]] = {}
        if queries:
            for row in self.rows(MENTION_CANDIDATES_MANY, queries=queries, candidates=mention_candidates(limit),
                                 known_at=None):
                by_text.setdefault(row["at"], []).append(row)
        return [mentions(text, by_text.get(at, []), limit) for at, text in enumerate(texts)]

    def list_entities(
        self, *, kinds: list[Kind] | None = None, updated_since: datetime | None = None,
        known_at: datetime | None = None, cursor: str | None = None, limit: int = 50,
    ) -> Page[Entity]:
        after = decode_cursor(cursor, "k", "i")
        params = {"updated_since": updated_since, "known_at": known_at, "after_key": after.get("k"),
                  "after_id": after.get("i"), "limit": limit + 1}
        if kinds:
            rows = self.rows(LIST_ENTITIES_OF_KINDS, kinds=[k.value for k in kinds], **params)
        else:
            rows = self.rows(LIST_ENTITIES, **params)
        items = [records.entity(row["entity"]) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]["entity"]
            next_cursor = encode_cursor({"k": last["name_key"], "i": last["id"]})
        return Page[Entity](items=items, next_cursor=next_cursor)

    def search(
        self, text: str, *, kinds: list[Kind] | None = None, limit: int = 20,
        as_of: datetime | None = None, known_at: datetime | None = None,
    ) -> list[SearchHit]:
        """Exact name and alias matches first, then fulltext over names, summaries and observations."""
        hits: dict[str, SearchHit] = {}
        kind_values = [k.value for k in kinds] if kinds else None
        for entity in self.find_by_name(text, known_at=known_at):
            if kind_values is None or entity.kind.value in kind_values:
                channel = "name" if normalise_name(entity.name) == normalise_name(text) else "alias"
                hits[entity.id] = SearchHit(entity=entity, score=100.0, matched=[channel])
        terms = lucene.any_terms(text)
        if terms:
            query = lucene.in_space(self.space, terms)
            params = {"query": query, "kinds": kind_values, "as_of": as_of, "known_at": known_at,
                      "candidates": max(limit * 5, 50)}
            for channel, cypher in (("fulltext", SEARCH_ENTITY_TEXT), ("observation", SEARCH_OBSERVATION_TEXT)):
                for row in self.rows(cypher, **params):
                    entity_id = row["entity"]["id"]
                    if entity_id in hits:
                        hit = hits[entity_id]
                        if channel not in hit.matched:
                            hit.matched.append(channel)
                            hit.score += float(row["score"])
                    else:
                        hits[entity_id] = SearchHit(entity=records.entity(row["entity"]), score=float(row["score"]),
                                                    matched=[channel])
        ranked = sorted(hits.values(), key=lambda hit: (-hit.score, hit.entity.name.casefold(), hit.entity.id))
        return ranked[:limit]

    def neighbourhood(
        self, entity_id: str, *, depth: int = 1, kinds: list[Kind] | None = None, as_of: datetime | None = None,
        known_at: datetime | None = None, cursor: str | None = None, limit: int = 50, observations: int = 20,
    ) -> Neighbourhood:
        """The entities within `depth` hops over relations valid at `as_of`, nearest first, a page at a time."""
        if not 1 <= depth <= MAX_DEPTH:
            raise InvalidInput(f"depth must be between 1 and {MAX_DEPTH}")
        center = self.get_entity(entity_id, known_at=known_at)
        offset = int(decode_cursor(cursor, "o")["o"]) if cursor else 0
        time = {"as_of": as_of, "known_at": known_at}
        rows = self.rows(NEIGHBOURHOOD[depth], id=entity_id, offset=offset, limit=limit + 1,
                          kinds=[k.value for k in kinds] if kinds else None, **time)
        neighbours = [Neighbour(entity=records.entity(row["entity"]), distance=row["distance"]) for row in rows[:limit]]
        ids = [entity_id] + [n.entity.id for n in neighbours]
        relations = [records.relation_from_row(row) for row in self.rows(RELATIONS_AMONG, ids=ids, **time)]
        facts = [records.observation(row["observation"])
                 for row in self.rows(OBSERVATIONS_OF, id=entity_id, limit=observations, **time)]
        next_cursor = encode_cursor({"o": offset + limit}) if len(rows) > limit else None
        return Neighbourhood(center=center, neighbours=neighbours, relations=relations, observations=facts,
                             next_cursor=next_cursor)

    def counts(self) -> dict[str, Any]:
        """Current entities by kind, observations, and relations by type."""
        return {"entities": {row["kind"]: row["n"] for row in self.rows(ENTITY_COUNTS)},
                "observations": self.rows(OBSERVATION_COUNT)[0]["n"],
                "relations": {row["type"]: row["n"] for row in self.rows(RELATION_COUNTS)}}

    def history(self, entity_id: str) -> EntityHistory:
        rows = self.rows(HISTORY_ENTITY, id=entity_id)
        if not rows:
            raise NotFound(f"no entity {entity_id!r} in this space")
        return EntityHistory(
            entity=records.entity(rows[0]["entity"]),
            revisions=[records.revision(r["revision"]) for r in self.rows(HISTORY_REVISIONS, id=entity_id)],
            observations=[records.observation(r["observation"]) for r in self.rows(HISTORY_OBSERVATIONS, id=entity_id)],
            relations=[records.relation_from_row(r) for r in self.rows(HISTORY_RELATIONS, id=entity_id)],
        )

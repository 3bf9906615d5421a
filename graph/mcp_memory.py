"""The reference MCP memory server's nine tools, on kgmem's graph (one tenant).

`@modelcontextprotocol/server-memory` keeps a flat knowledge graph: entities
`{name, entityType, observations[]}` and relations `{from, to, relationType}`,
with names unique. `McpMemory` gives the same operations, the same field names
(`model_dump(by_alias=True)` is the reference JSON) and the same outcomes for
duplicates and missing items, stored as kgmem entities, observations and
relations:

- an entity's kind is `kind_for_type(entityType)` (`"project"` -> Project,
  anything unknown -> Thing) and `entity_type` keeps the string as given; an
  MCP name is looked up regardless of kind, by its normalised name and then by
  alias, as everywhere in kgmem, so `"Ada  Lovelace"` and `"ada lovelace"` are one name;
- `relationType` becomes a canonical type (`"works at"` -> `WORKS_AT`), the
  original string stays in the relation's `label` and is what comes back;
- deleting is kgmem's soft retraction: hidden from every read here, kept in
  `SpaceGraph.history`;
- `read_graph` is paged (`cursor`, `limit`, `nextCursor`) and `search_nodes`
  capped (`limit`), so neither can flood a client's context.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from graph import lucene
from graph.errors import InvalidInput, NotFound
from graph.model import MAX_TEXT_CHARS, EntityIn, EntityRef, ObservationIn, Provenance, RelationIn, now
from graph.store import SpaceGraph
from graph.vocabulary import kind_for_type, normalise_name, relation_type

DEFAULT_PAGE = 100
MAX_PAGE = 1000
DEFAULT_SEARCH_LIMIT = 50
MAX_SEARCH_LIMIT = 1000
SEARCH_QUERY_MAX_LENGTH = 2048  # as the reference server

RelationScope = Literal["touching", "among"]


# -- the reference server's shapes ---------------------------------------------------------------
# The input models' JSON Schemas are the tools' input schemas (agents/mcp_server.py), and must equal the
# reference's field for field: so limits are checked by validators, which add nothing to the schema, and
# the models carry no docstring (it would become a description the reference's schema does not have).

class McpModel(BaseModel):
    # Field names are the reference server's (aliases); Python names work too.
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


def _bounded(what: str, limit: int):
    def check(value: str) -> str:
        if not value.strip():
            raise ValueError(f"{what} must contain a visible character")
        if len(value) > limit:
            raise ValueError(f"{what} may be at most {limit} characters, not {len(value)}")
        return value

    return AfterValidator(check)


def _visible_name(value: str) -> str:
    if not normalise_name(value):
        raise ValueError("a name must contain a visible character")
    return value


EntityName = Annotated[str, _bounded("a name", 512), AfterValidator(_visible_name)]
TypeName = Annotated[str, _bounded("a type", 100)]
ObservationText = Annotated[str, _bounded("an observation", MAX_TEXT_CHARS)]


class McpEntity(McpModel):
    name: EntityName = Field(description="The name of the entity")
    entity_type: TypeName = Field(alias="entityType", description="The type of the entity")
    observations: list[ObservationText] = Field(
        description="An array of observation contents associated with the entity")


class McpRelation(McpModel):
    from_: EntityName = Field(alias="from", description="The name of the entity where the relation starts")
    to: EntityName = Field(description="The name of the entity where the relation ends")
    relation_type: TypeName = Field(alias="relationType", description="The type of the relation")


class ObservationAddition(McpModel):
    entity_name: EntityName = Field(alias="entityName", description="The name of the entity to add the observations to")
    contents: list[ObservationText] = Field(description="An array of observation contents to add")


class ObservationsAdded(McpModel):
    entity_name: str = Field(alias="entityName")
    added_observations: list[str] = Field(alias="addedObservations")


class ObservationDeletion(McpModel):
    entity_name: EntityName = Field(alias="entityName", description="The name of the entity containing the observations")
    observations: list[str] = Field(description="An array of observations to delete")


class DeleteResult(McpModel):
    """What the reference's delete tools return: always success, with a message naming what matched nothing."""

    success: bool = True
    message: str


class KnowledgeGraph(McpModel):
    entities: list[McpEntity] = Field(default_factory=list)
    relations: list[McpRelation] = Field(default_factory=list)


class KnowledgeGraphPage(KnowledgeGraph):
    next_cursor: str | None = Field(
        default=None, alias="nextCursor", description="Pass back as `cursor` for the next page; null on the last page"
    )


M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], items: Iterable[M | Mapping[str, Any]]) -> list[M]:
    return [item if isinstance(item, model) else model.model_validate(item) for item in items]


def _names(names: Sequence[str]) -> list[str]:
    if isinstance(names, str):
        raise InvalidInput("give a list of names, not one string")
    return list(names)


# -- queries (fixed text; every input is a parameter, every match filtered on $space) --------
# The USING INDEX hints pin the index seeks: planned on a small or empty database, Neo4j picks the
# (space) index instead and filters the whole tenant.

# By normalised name through the (space, name_key) index, then by alias through the fulltext
# index (required to hold the tenant, see graph/lucene.py), checked exactly against alias_keys.
ENTITIES_BY_NAME = """
UNWIND $keys AS key
MATCH (e:Entity {space: $space, name_key: key})
USING INDEX e:Entity(space, name_key)
WHERE e.retracted_at IS NULL
RETURN key, e.id AS id, e.name AS name, coalesce(e.entity_type, e.kind) AS entity_type, e.kind AS kind
ORDER BY key, e.kind, e.id
"""

ENTITIES_BY_ALIAS = """
UNWIND $refs AS ref
CALL db.index.fulltext.queryNodes('entity_text', ref.query) YIELD node AS e
WHERE e.space = $space AND ref.key IN e.alias_keys AND e.retracted_at IS NULL
RETURN ref.key AS key, e.id AS id, e.name AS name, coalesce(e.entity_type, e.kind) AS entity_type, e.kind AS kind
ORDER BY key, e.kind, e.id
"""

# Current observations, oldest first (the order they were recorded, then their stamped valid_from).
CURRENT_OBSERVATIONS = """
UNWIND $ids AS id
MATCH (e:Entity {id: id})-[:HAS_OBSERVATION]->(o:Observation)
USING INDEX e:Entity(id)
WHERE e.space = $space AND o.space = $space AND o.valid_to IS NULL AND o.retracted_at IS NULL
WITH id, o ORDER BY o.recorded_at, o.valid_from, o.id
RETURN id, collect(o.text) AS texts
"""

_RELATION_FILTER = """
USING INDEX a:Entity(id)
WHERE a.space = $space AND r.space = $space AND NOT type(r) IN ['HAS_OBSERVATION', 'HAS_REVISION']
  AND r.valid_to IS NULL AND r.retracted_at IS NULL AND b.retracted_at IS NULL
"""

_RELATION_RETURN = """
WITH DISTINCT r
WITH r, startNode(r) AS s, endNode(r) AS t
RETURN s.name AS source, t.name AS target, coalesce(r.label, type(r)) AS label
ORDER BY s.name_key, type(r), t.name_key, r.id
"""

# Current relations with at least one end among $ids (the reference's search_nodes and open_nodes),
# with both ends among them, or going out of them (read_graph: each relation once over all pages).
RELATIONS = {
    "touching": "UNWIND $ids AS id\nMATCH (a:Entity {id: id})-[r]-(b:Entity)" + _RELATION_FILTER + _RELATION_RETURN,
    "among": "UNWIND $ids AS id\nMATCH (a:Entity {id: id})-[r]-(b:Entity)" + _RELATION_FILTER
             + "  AND b.id IN $ids\n" + _RELATION_RETURN,
    "outgoing": "UNWIND $ids AS id\nMATCH (a:Entity {id: id})-[r]->(b:Entity)" + _RELATION_FILTER + _RELATION_RETURN,
}

# Current relations that already say (source, type, target), so create_relations can report only new ones.
EXISTING_RELATIONS = """
UNWIND $rows AS row
MATCH (s:Entity {id: row.source})-[r]->(t:Entity {id: row.target})
WHERE s.space = $space AND r.space = $space AND type(r) = row.type
  AND r.valid_to IS NULL AND r.retracted_at IS NULL
RETURN DISTINCT row.source AS source, row.type AS type, row.target AS target
"""

# The reference's search: a case-insensitive substring of the name, the type or a current observation.
# The tenant is matched first (index on space), CONTAINS filters only that tenant's entities.
SUBSTRING_SEARCH = """
MATCH (e:Entity)
WHERE e.space = $space AND e.retracted_at IS NULL
WITH e, CASE
  WHEN toLower(e.name) CONTAINS $needle THEN 0
  WHEN toLower(coalesce(e.entity_type, e.kind)) CONTAINS $needle THEN 1
  WHEN EXISTS {
    MATCH (e)-[:HAS_OBSERVATION]->(o:Observation)
    WHERE o.valid_to IS NULL AND o.retracted_at IS NULL AND toLower(o.text) CONTAINS $needle
  } THEN 2
END AS rank
WHERE rank IS NOT NULL
RETURN e.id AS id, e.name AS name, coalesce(e.entity_type, e.kind) AS entity_type, e.kind AS kind
ORDER BY rank, e.name_key, e.id
LIMIT $limit
"""


@dataclass(frozen=True)
class _Node:
    id: str
    name: str
    entity_type: str
    kind: str


def _node(row: Mapping[str, Any]) -> _Node:
    return _Node(id=row["id"], name=row["name"], entity_type=row["entity_type"], kind=row["kind"])


def _check_limit(value: int, maximum: int, what: str) -> int:
    if not 1 <= value <= maximum:
        raise InvalidInput(f"{what} must be between 1 and {maximum}, not {value}")
    return value


def _distinct(texts: Iterable[str]) -> list[str]:
    """Texts in order, without repeats (as kgmem sees repeats: the same normalised text)."""
    seen: dict[str, str] = {}
    for text in texts:
        seen.setdefault(normalise_name(text), text)
    return list(seen.values())


def _stamps(count: int) -> list[datetime]:
    """Distinct, increasing valid_from times just before now, so a batch keeps its order when read back."""
    base = now() - timedelta(microseconds=count)
    return [base + timedelta(microseconds=i) for i in range(count)]


class McpMemory:
    """The reference MCP memory server's operations on one kgmem tenant."""

    def __init__(self, graph: SpaceGraph, *, provenance: Provenance | None = None) -> None:
        self.graph = graph
        self.provenance = provenance or Provenance(source="mcp")

    # -- plumbing -----------------------------------------------------------------------------------
    def _read(self, cypher: str, /, **params: Any) -> list[dict[str, Any]]:
        return self.graph.rows(cypher, **params)

    def _resolve(self, names: Iterable[str]) -> dict[str, list[_Node]]:
        """Current entities per normalised name: by name (any kind), else by alias. Two queries for any number."""
        keys = sorted({normalise_name(name) for name in names} - {""})
        found: dict[str, list[_Node]] = {key: [] for key in keys}
        if not keys:
            return found
        for row in self._read(ENTITIES_BY_NAME, keys=keys):
            found[row["key"]].append(_node(row))
        refs = [{"key": key, "query": lucene.in_space(self.graph.space, lucene.phrase(key))}
                for key in keys if not found[key] and lucene.phrase(key)]
        if refs:
            for row in self._read(ENTITIES_BY_ALIAS, refs=refs):
                if all(node.id != row["id"] for node in found[row["key"]]):
                    found[row["key"]].append(_node(row))
        return found

    def _one(self, found: dict[str, list[_Node]], names: Sequence[str]) -> dict[str, _Node]:
        """The single entity each name points at; NotFound names every missing one, nothing is written."""
        missing = sorted({name for name in names if not found.get(normalise_name(name))})
        if missing:
            raise NotFound(f"no entity named {', '.join(repr(name) for name in missing)} in this space")
        result: dict[str, _Node] = {}
        for name in names:
            nodes = found[normalise_name(name)]
            if len(nodes) > 1:
                kinds = ", ".join(sorted(node.kind for node in nodes))
                raise InvalidInput(
                    f"the name {name!r} matches several entities ({kinds}); MCP names must be unique, "
                    "so rename one or write through kgmem's API with the kind"
                )
            result[name] = nodes[0]
        return result

    def _observations(self, ids: Sequence[str]) -> dict[str, list[str]]:
        if not ids:
            return {}
        return {row["id"]: row["texts"] for row in self._read(CURRENT_OBSERVATIONS, ids=list(ids))}

    def _relations(self, ids: Sequence[str], scope: str) -> list[McpRelation]:
        if not ids:
            return []
        return [McpRelation(from_=row["source"], to=row["target"], relation_type=row["label"])
                for row in self._read(RELATIONS[scope], ids=list(ids))]

    def _graph(self, nodes: Sequence[_Node], scope: str) -> KnowledgeGraph:
        ids = [node.id for node in nodes]
        texts = self._observations(ids)
        entities = [McpEntity(name=n.name, entity_type=n.entity_type, observations=texts.get(n.id, [])) for n in nodes]
        return KnowledgeGraph(entities=entities, relations=self._relations(ids, scope))

    # -- writes -----------------------------------------------------------------------------------------
    def create_entities(self, entities: Sequence[McpEntity | Mapping[str, Any]]) -> list[McpEntity]:
        """Create the entities whose name is new (in the space, and earlier in the batch); return only those."""
        wanted = _parse(McpEntity, entities)
        existing = self._resolve(entity.name for entity in wanted)
        fresh: dict[str, McpEntity] = {}
        for entity in wanted:
            key = normalise_name(entity.name)
            if not existing.get(key) and key not in fresh:
                fresh[key] = entity
        if not fresh:
            return []
        created = self.graph.upsert_entities([
            EntityIn(kind=kind_for_type(e.entity_type), name=e.name, entity_type=e.entity_type,
                     provenance=self.provenance)
            for e in fresh.values()
        ])
        kept = [_distinct(entity.observations) for entity in fresh.values()]
        pairs = [(stored.id, text) for stored, texts in zip(created, kept) for text in texts]
        if pairs:
            self.graph.add_observations([
                ObservationIn(entity=EntityRef(id=entity_id), text=text, valid_from=stamp, provenance=self.provenance)
                for (entity_id, text), stamp in zip(pairs, _stamps(len(pairs)))
            ])
        return [McpEntity(name=stored.name, entity_type=stored.entity_type, observations=texts)
                for stored, texts in zip(created, kept)]

    def create_relations(self, relations: Sequence[McpRelation | Mapping[str, Any]]) -> list[McpRelation]:
        """Record the relations not already current (same ends, same canonical type); return only the new ones.

        Raises InvalidInput for a type kgmem cannot store, NotFound naming every missing end; either way nothing
        is written.
        """
        wanted = _parse(McpRelation, relations)
        types = [relation_type(r.relation_type) for r in wanted]  # InvalidInput names the offending type
        names = [name for r in wanted for name in (r.from_, r.to)]
        ends = self._one(self._resolve(names), names)
        triples = [(ends[r.from_].id, rel_type, ends[r.to].id) for r, rel_type in zip(wanted, types)]
        if not triples:
            return []
        rows = [{"source": s, "type": t, "target": o} for s, t, o in sorted(set(triples))]
        current = {(row["source"], row["type"], row["target"]) for row in self._read(EXISTING_RELATIONS, rows=rows)}
        fresh: list[RelationIn] = []
        for relation, triple in zip(wanted, triples):
            if triple in current:
                continue
            current.add(triple)  # later duplicates in the batch are skipped too
            fresh.append(RelationIn(source=EntityRef(id=triple[0]), type=relation.relation_type,
                                    target=EntityRef(id=triple[2]), provenance=self.provenance))
        if not fresh:
            return []
        return [McpRelation(from_=r.source_name, to=r.target_name, relation_type=r.label)
                for r in self.graph.upsert_relations(fresh)]

    def add_observations(
        self, observations: Sequence[ObservationAddition | Mapping[str, Any]],
    ) -> list[ObservationsAdded]:
        """Append the contents each entity does not hold yet; NotFound (naming them) if an entity is missing."""
        wanted = _parse(ObservationAddition, observations)
        names = [item.entity_name for item in wanted]
        targets = self._one(self._resolve(names), names)
        held = self._observations(sorted({node.id for node in targets.values()}))
        seen = {entity_id: {normalise_name(text) for text in texts} for entity_id, texts in held.items()}
        results: list[ObservationsAdded] = []
        pairs: list[tuple[str, str]] = []
        for item in wanted:
            entity_id = targets[item.entity_name].id
            keys = seen.setdefault(entity_id, set())
            added = []
            for text in item.contents:
                if normalise_name(text) not in keys:
                    keys.add(normalise_name(text))
                    added.append(text)
                    pairs.append((entity_id, text))
            results.append(ObservationsAdded(entity_name=item.entity_name, added_observations=added))
        if pairs:
            self.graph.add_observations([
                ObservationIn(entity=EntityRef(id=entity_id), text=text, valid_from=stamp, provenance=self.provenance)
                for (entity_id, text), stamp in zip(pairs, _stamps(len(pairs)))
            ])
        return results

    # -- deletes (soft: retracted, still in history) ---------------------------------------------------
    def delete_entities(self, entity_names: Sequence[str]) -> DeleteResult:
        """Retract the named entities with their relations and observations; names that match nothing are reported."""
        entity_names = _names(entity_names)
        found = self._resolve(entity_names)
        deleted, not_found = [], []
        for name in entity_names:
            nodes = found.get(normalise_name(name), [])
            for node in nodes:
                try:
                    self.graph.retract_entity(node.id)  # the store retracts one entity per call
                except NotFound:  # retracted meanwhile: a repeated name in this batch, or another writer
                    pass
            (deleted if nodes else not_found).append(name)
        if not not_found:
            return DeleteResult(message="Entities deleted successfully")
        return DeleteResult(message=f"Deleted {len(deleted)} of {len(entity_names)} entities. "
                                    f"Not found: {', '.join(not_found)}")

    def delete_observations(self, deletions: Sequence[ObservationDeletion | Mapping[str, Any]]) -> DeleteResult:
        """Retract the given current observations; texts and entities that match nothing are passed over."""
        wanted = _parse(ObservationDeletion, deletions)
        found = self._resolve(item.entity_name for item in wanted)
        texts: dict[str, list[str]] = {}
        missing: list[str] = []
        for item in wanted:
            nodes = found.get(normalise_name(item.entity_name), [])
            if not nodes:
                missing.append(item.entity_name)
            for node in nodes:
                texts.setdefault(node.id, []).extend(t for t in item.observations if t.strip())
        # The store retracts one entity's texts per call.
        deleted = sum(self.graph.retract_observation_texts(entity_id, batch)
                      for entity_id, batch in texts.items() if batch)
        requested = sum(len(item.observations) for item in wanted)
        if deleted == requested:
            return DeleteResult(message="Observations deleted successfully")
        message = f"Deleted {deleted} of {requested} observations."
        if missing:
            message += f" Entities not found: {', '.join(missing)}"
        return DeleteResult(message=message)

    def delete_relations(self, relations: Sequence[McpRelation | Mapping[str, Any]]) -> DeleteResult:
        """Retract the current relations that match (ends by name, type canonically); the rest match nothing."""
        wanted = _parse(McpRelation, relations)
        found = self._resolve(name for r in wanted for name in (r.from_, r.to))
        retract: list[RelationIn] = []
        for relation in wanted:
            try:
                relation_type(relation.relation_type)
            except InvalidInput:
                continue  # a type kgmem cannot hold was never stored: nothing to delete
            for source in found.get(normalise_name(relation.from_), []):
                for target in found.get(normalise_name(relation.to), []):
                    retract.append(RelationIn(source=EntityRef(id=source.id), type=relation.relation_type,
                                              target=EntityRef(id=target.id), provenance=self.provenance))
        deleted = self.graph.retract_relations(retract) if retract else 0
        if deleted >= len(wanted):
            return DeleteResult(message="Relations deleted successfully")
        return DeleteResult(message=f"Deleted {deleted} of {len(wanted)} relations. The rest matched nothing.")

    # -- reads ------------------------------------------------------------------------------------------
    def read_graph(self, *, cursor: str | None = None, limit: int = DEFAULT_PAGE) -> KnowledgeGraphPage:
        """One page of entities (by name), their observations, and the relations going out of them.

        Walking every page with `nextCursor` returns each entity and each current relation exactly once.
        """
        page = self.graph.list_entities(cursor=cursor, limit=_check_limit(limit, MAX_PAGE, "limit"))
        nodes = [_Node(id=e.id, name=e.name, entity_type=e.entity_type, kind=e.kind.value) for e in page.items]
        graph = self._graph(nodes, "outgoing")
        return KnowledgeGraphPage(entities=graph.entities, relations=graph.relations, next_cursor=page.next_cursor)

    def search_nodes(
        self, query: str, *, limit: int = DEFAULT_SEARCH_LIMIT, relations: RelationScope = "touching",
    ) -> KnowledgeGraph:
        """Entities whose name, type or an observation contains `query` (any case), then kgmem's own search hits
        (exact name and alias, fulltext over names, summaries and observations); at most `limit`, with the
        relations touching them (`relations="among"`: only those between them)."""
        if len(query) > SEARCH_QUERY_MAX_LENGTH:
            raise InvalidInput(f"query must be at most {SEARCH_QUERY_MAX_LENGTH} characters")
        limit = _check_limit(limit, MAX_SEARCH_LIMIT, "limit")
        hits = self.graph.search(query, limit=limit)
        score = {hit.entity.id: hit.score for hit in hits}
        substring = [_node(row) for row in self._read(SUBSTRING_SEARCH, needle=query.lower(), limit=limit)]
        order = {node.id: position for position, node in enumerate(substring)}
        substring.sort(key=lambda node: (-score.get(node.id, 0.0), order[node.id]))
        nodes = substring + [
            _Node(id=h.entity.id, name=h.entity.name, entity_type=h.entity.entity_type, kind=h.entity.kind.value)
            for h in hits if h.entity.id not in order
        ]
        return self._graph(nodes[:limit], relations)

    def open_nodes(self, names: Sequence[str], *, relations: RelationScope = "touching") -> KnowledgeGraph:
        """The named entities (unknown names are ignored) with the relations touching them
        (`relations="among"`: only those between them)."""
        names = _names(names)
        found = self._resolve(names)
        nodes: dict[str, _Node] = {}
        for name in names:
            for node in found.get(normalise_name(name), []):
                nodes.setdefault(node.id, node)
        return self._graph(list(nodes.values()), relations)

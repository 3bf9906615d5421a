"""Hybrid recall: candidates from several channels in one tenant, rescored and fused.

1. Candidates. Each channel returns its best items (an item is an observation or an entity):
   - keyword: BM25 over Neo4j's fulltext index of observations ("date. entity: text");
   - keyword_window: BM25 over the same messages with their neighbours in an ordered source;
   - entity: BM25 over entity names, aliases and summaries;
   - vector / vector_window: Chroma nearest neighbours of items and of message windows;
   - name: entities named in the query;
   - graph: expansion from the best hits over relations (up to 2 hops, weighted by type).
2. Rescoring. Every candidate's cosine similarity to the query is computed exactly from
   its stored vectors, so an item found by one channel is still judged by all of them.
3. Fusion. A weighted sum of per-channel scores normalised over the candidates, times
   boosts: for observations of entities the query names, and for time-bearing text when
   the query asks "when". Feedback on earlier briefs adds to the score.

Why score fusion and not reciprocal-rank fusion: on the LoCoMo benchmark (see
BENCHMARKS.md) rank fusion lost 0.03-0.08 recall@10 against normalised scores,
because it throws away how far ahead a channel's best item is.

What runs and with what weights is a `RecallConfig`, so callers and benchmarks
declare a configuration instead of branching in code.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, model_serializer

from graph import lucene, records
from graph.errors import ChromaUnavailable
from graph.gateway import Gateway
from graph.model import InputModel, Provenance
from graph.reads import (
    entity_visible,
    fact_visible,
    mention_candidates,
    mention_query,
    mentions,
)
from graph.vocabulary import Kind
from memory.embedder import Embedder
from memory.index import VectorIndex, item_of
from memory.rerank import Reranker

ItemType = Literal["observation", "entity"]

# How much relevance a hop over each relation type carries; unknown types get DEFAULT_RELATION_WEIGHT.
RELATION_WEIGHTS: dict[str, float] = {
    "LEARNED_FROM": 1.0, "APPLIES_TO": 1.0, "RESOLVED_BY": 0.9, "CAUSED": 0.9, "SUPERSEDES": 0.8,
    "PRODUCED": 0.8, "VERSION_OF": 0.8, "EVALUATED_IN": 0.7, "USES_FEATURE": 0.6, "TRAINED_ON": 0.6,
    "DELEGATED_TO": 0.6, "PART_OF": 0.6, "DEPENDS_ON": 0.6, "FEEDS_INTO": 0.6, "LEADS_ANALYSIS_FOR": 0.5,
    "USES_TECHNOLOGY": 0.5, "IN_STAGE": 0.4, "MENTIONS": 0.5, "RELATED_TO": 0.5,
}
DEFAULT_RELATION_WEIGHT = 0.4

# Closed-class English words and question words: they carry no topic, so they leave the keyword query.
QUERY_STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between both but
by can could did do does doing down during each few for from further had has have having he her here hers herself
him himself his how i if in into is it its itself just me more most my myself no nor not now of off on once only or
other our ours ourselves out over own same she should so some such than that the their theirs them themselves then
there these they this those through to too under until up very was we were what when where which while who whom why
will with would you your yours yourself yourselves s t don shall may might must ever also kind kinds type types
""".split())
TIME_QUESTION = re.compile(r"^\s*(when|how long)\b", re.IGNORECASE)
TIME_WORDS = re.compile(
    r"\b(yesterday|today|tonight|tomorrow|last|next|ago|week|weekend|month|year|monday|tuesday|wednesday|thursday|"
    r"friday|saturday|sunday|january|february|march|april|may|june|july|august|september|october|november|"
    r"december|\d{4})\b", re.IGNORECASE)

KEYWORD_CHANNELS = ("keyword", "keyword_window", "entity")
VECTOR_CHANNEL_TYPES = {"vector": ["observation", "entity"], "vector_window": ["window"]}  # Chroma's `type`s
VECTOR_CHANNELS = tuple(VECTOR_CHANNEL_TYPES)
VECTOR_ID_TYPES = {"obs": ("vector", "observation"), "ent": ("vector", "entity"), "win": ("vector_window", "observation")}
VECTOR_OVERSAMPLE = 3  # bare kNN ids fetched per wanted hit, so that filtering still leaves enough
# Candidates carry the start of their text only (the time boost and the reranker read it); the final items come whole.
TEXT_SHIPPED = 4000
MAX_PASSAGES_RESCORED = 200  # nearest passages asked for when rescoring the candidates of several passages


class RecallConfig(BaseModel):
    """Which channels run, how deep, and how they are weighed. A weight of 0 turns a channel off."""

    # 30 beat 100 on LoCoMo (recall@10 0.759 against 0.750) and halves the rows each query handles.
    candidates: int = Field(30, ge=1, le=500, description="Items each channel contributes")
    weights: dict[str, float] = Field(default_factory=lambda: {
        "keyword": 0.75, "keyword_window": 1.0, "entity": 0.75,
        "vector": 1.0, "vector_window": 1.0, "graph": 0.5,
    })
    name_matches: bool = True
    named_boost: float = Field(0.5, ge=0, description="Boost for observations of entities the query names")
    time_boost: float = Field(0.5, ge=0, description="Boost for time-bearing text when the query asks when")
    query_stopwords: bool = True
    expansion_depth: int = Field(1, ge=0, le=2)
    expansion_seeds: int = Field(5, ge=0, le=50)
    observations_per_entity: int = Field(5, ge=0, le=50)
    recency_half_life_days: float | None = Field(None, gt=0, description="Newer items score higher when set")
    recency_weight: float = Field(0.1, ge=0, le=1)
    rerank_top: int = Field(30, ge=0, le=200, description="How many fused results a configured cross-encoder reorders")

    def on(self, channel: str) -> bool:
        return self.weights.get(channel, 0.0) > 0


class RecallQuery(InputModel):
    text: str = Field(min_length=1, max_length=4000)
    limit: int = Field(10, ge=1, le=100)
    kinds: list[Kind] | None = Field(None, description="Only items about entities of these kinds")
    types: list[ItemType] | None = Field(None, description="Only observations, or only entities")
    project_id: str | None = None
    agent: str | None = None
    since: datetime | None = Field(None, description="Only items still valid at or after this time")
    until: datetime | None = Field(None, description="Only items that began before this time")
    as_of: datetime | None = Field(None, description="Facts valid at this time instead of now")
    explain: bool = Field(False, description=(
        "Say why each item was retrieved: each channel's score and rank, the boosts, the passage that matched "
        "and, for graph hits, the relation path (each item's `explanation`)"))


class EntityBrief(BaseModel):
    id: str
    name: str
    kind: str
    entity_type: str


class ChannelScore(BaseModel):
    """What one channel made of an item: its own score, where that ranks, and what it added to the fused score."""

    channel: str
    score: float = Field(description="The channel's own score: BM25 for keyword channels, cosine for vector ones")
    rank: int = Field(description="The item's place among this query's candidates in this channel (1 is best)")
    weight: float = Field(description="The channel's weight in the fusion")
    contribution: float = Field(description="What the channel added to the fused score (weight times normalised score)")


class Boost(BaseModel):
    """A boost fusion applied on top of the channels."""

    name: Literal["named", "time", "recency", "feedback"]
    effect: Literal["multiply", "add"]
    value: float = Field(description="The factor (multiply) or the amount added to the fused score (add)")
    reason: str


class RelationPath(BaseModel):
    """How graph expansion reached an item: from a seed entity over these relations."""

    seed: EntityBrief
    relations: list[str] = Field(description="Relation types, hop by hop (HAS_OBSERVATION for a seed's observation)")
    via: list[str] = Field(default_factory=list, description="Names of the entities between the seed and the item")


class Explanation(BaseModel):
    """Why an item was retrieved, from what ranking computed (no second recall)."""

    channels: list[ChannelScore]
    boosts: list[Boost] = Field(default_factory=list)
    passage: str = Field(description="The passage that matched: the best passage of a long text, else the text")
    passage_start: int
    passage_end: int
    terms: list[tuple[int, int]] = Field(default_factory=list, description=(
        "Offsets in `text` of the query's keywords, as [start, end) pairs"))
    path: RelationPath | None = None
    rerank: float | None = Field(None, description="The cross-encoder's score, when one reordered the results")


class RecallItem(BaseModel):
    id: str
    type: ItemType
    text: str
    score: float
    channels: list[str]
    entity: EntityBrief
    ref: str | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    recorded_at: datetime | None = None
    provenance: Provenance = Field(default_factory=Provenance)
    highlight: str | None = Field(None, description=(
        "For a text longer than the embedding model reads at once: the passage of it that matched best "
        "(`text` is the whole of it)"))
    explanation: Explanation | None = Field(None, description="Why it was retrieved; only when the query asks to `explain`")

    @model_serializer(mode="wrap")
    def _without_unasked_explanation(self, handler):  # a query without `explain` reads as before
        data = handler(self)
        if self.explanation is None and isinstance(data, dict):
            data.pop("explanation", None)
        return data


class RecallResult(BaseModel):
    query: str
    items: list[RecallItem]
    took_ms: float
    channel_hits: dict[str, int]
    degraded: list[str] = Field(default_factory=list, description=(
        "What this answer could not use in full, as `part: why`: the vector index while it is rebuilt from "
        "Neo4j or unreachable (the other channels still ran). Empty when every channel ran on the whole index"))


# -- queries ------------------------------------------------------------------------------------

# Candidates travel as a few flat columns without datetimes: decoding whole rows (and above all
# their temporal values) cost more than the index lookups. Only the final items are fetched whole.
def _observation_columns(o: str, e: str) -> str:
    return (f"{o}.id AS id, left({o}.text, {TEXT_SHIPPED}) AS text, {o}.valid_from.epochMillis AS began, "
            f"coalesce({o}.passages, 1) AS passages, "
            f"{e}.id AS entity_id, {e}.name AS entity_name, {e}.kind AS entity_kind, {e}.entity_type AS entity_type")


def _entity_columns(e: str) -> str:
    return (f"{e}.id AS id, left(coalesce({e}.summary, {e}.name), {TEXT_SHIPPED}) AS text, "
            f"{e}.created_at.epochMillis AS began, coalesce({e}.passages, 1) AS passages, "
            f"{e}.id AS entity_id, {e}.name AS entity_name, {e}.kind AS entity_kind, {e}.entity_type AS entity_type")


# The agent and time-range filters every observation channel applies in Neo4j (Chroma applies its own).
OBSERVATION_FILTERS = """($kinds IS NULL OR e.kind IN $kinds) AND ($agent IS NULL OR o.agent = $agent)
  AND ($since IS NULL OR o.valid_to IS NULL OR o.valid_to >= $since) AND ($until IS NULL OR o.valid_from <= $until)"""
ENTITY_FILTERS = """($kinds IS NULL OR e.kind IN $kinds) AND ($agent IS NULL OR e.agent = $agent)
  AND ($until IS NULL OR e.created_at <= $until)"""


def _keyword_part(channel: str, index: str) -> str:
    # The UNWIND runs the index lookup only when the channel is on.
    return f"""
  UNWIND CASE WHEN '{channel}' IN $channels THEN [1] ELSE [] END AS on
  CALL db.index.fulltext.queryNodes('{index}', $query, {{limit: $k}}) YIELD node AS o, score
  WHERE o.space = $space AND {fact_visible('o')}
  MATCH (e:Entity)-[:HAS_OBSERVATION]->(o)
  WHERE {OBSERVATION_FILTERS} AND {entity_visible('e')}
  RETURN '{channel}' AS channel, {_observation_columns('o', 'e')}, score, null AS aliases"""


# The keyword channels in one round trip: BM25 over messages, over messages with their
# neighbours, and over entities' names, aliases and summaries; and the candidates for the entities
# the query names (graph/reads.py's mention lookup), whose whole names are matched here in Python.
KEYWORD_CHANNELS_QUERY = f"""
CALL () {{{_keyword_part('keyword', 'observation_text')}
  UNION ALL{_keyword_part('keyword_window', 'observation_context')}
  UNION ALL
  UNWIND CASE WHEN 'entity' IN $channels THEN [1] ELSE [] END AS on
  CALL db.index.fulltext.queryNodes('entity_text', $query, {{limit: $k}}) YIELD node AS e, score
  WHERE e.space = $space AND {ENTITY_FILTERS} AND {entity_visible('e')}
  RETURN 'entity' AS channel, {_entity_columns('e')}, score, null AS aliases
  UNION ALL
  UNWIND CASE WHEN $mentions IS NULL THEN [] ELSE [1] END AS on
  CALL db.index.fulltext.queryNodes('entity_text', $mentions, {{limit: $mention_candidates}}) YIELD node AS e, score
  WHERE e.space = $space AND e.kind <> 'Memory' AND {entity_visible('e')}
  RETURN 'name' AS channel, e.id AS id,
         CASE WHEN e.summary IS NULL OR e.summary = '' THEN e.name ELSE e.summary END AS text,
         e.created_at.epochMillis AS began, 1 AS passages, e.id AS entity_id, e.name AS entity_name,
         e.kind AS entity_kind, coalesce(e.entity_type, e.kind) AS entity_type, score, e.aliases AS aliases
}}
RETURN *
"""
NAMES_MATCHED = 10  # entities the query names, at most

# Items the vector channels found, fetched (and filtered) in one round trip.
FETCH_VECTOR_HITS = f"""
CALL () {{
  UNWIND $observation_ids AS id
  MATCH (e:Entity)-[:HAS_OBSERVATION]->(o:Observation {{id: id}})
  WHERE o.space = $space AND {fact_visible('o')} AND {OBSERVATION_FILTERS} AND {entity_visible('e')}
  RETURN 'observation' AS type, {_observation_columns('o', 'e')}
  UNION ALL
  UNWIND $entity_ids AS id
  MATCH (e:Entity {{id: id}})
  WHERE e.space = $space AND {ENTITY_FILTERS} AND {entity_visible('e')}
  RETURN 'entity' AS type, {_entity_columns('e')}
}}
RETURN *
"""


def _graph_query(depth: int) -> str:
    """Expansion from the seeds over relations, and the seeds' recent observations, in one round trip.
    Variable-length bounds must be literals; depth comes from the fixed set {1, 2}."""
    return f"""
CALL () {{
  UNWIND CASE WHEN $expand THEN $seeds ELSE [] END AS seed
  MATCH (s:Entity {{id: seed}})
  WHERE s.space = $space
  MATCH p = (s)-[rels*1..{depth}]-(e:Entity)
  WHERE e <> s AND all(r IN rels WHERE r.space = $space AND NOT type(r) IN ['HAS_OBSERVATION', 'HAS_REVISION']
                       AND {fact_visible('r')}) AND {ENTITY_FILTERS} AND {entity_visible('e')}
  RETURN 'expansion' AS part, {_entity_columns('e')}, [r IN rels | type(r)] AS types, s.id AS seed,
         [n IN nodes(p)[1..-1] | n.name] AS via
  LIMIT 500
  UNION ALL
  UNWIND $ids AS id
  MATCH (e:Entity {{id: id}})-[:HAS_OBSERVATION]->(o:Observation)
  WHERE e.space = $space AND {fact_visible('o')} AND {OBSERVATION_FILTERS}
  WITH e, o ORDER BY o.valid_from DESC, o.id
  WITH e, collect(o)[..$per_entity] AS recent
  UNWIND recent AS o
  RETURN 'recent' AS part, {_observation_columns('o', 'e')}, null AS types, null AS seed, null AS via
}}
RETURN *
"""


GRAPH_QUERIES = {depth: _graph_query(depth) for depth in (1, 2)}

# The final items, whole, in one round trip.
ITEMS_BY_ID = """
CALL () {
  UNWIND $observation_ids AS id
  MATCH (o:Observation {id: id})
  WHERE o.space = $space
  RETURN 'obs:' + o.id AS key,
         o {.id, .text, .valid_from, .valid_to, .recorded_at, .ref, .source, .agent, .delegation_id} AS item
  UNION ALL
  UNWIND $entity_ids AS id
  MATCH (e:Entity {id: id})
  WHERE e.space = $space
  RETURN 'ent:' + e.id AS key, e {.id, .name, .summary, .created_at, .source, .agent, .delegation_id} AS item
}
RETURN key, item
"""

# Entities that belong to a project: the project itself and what hangs off it within two hops.
PROJECT_SCOPE = f"""
MATCH (p:Project {{id: $project_id}})
WHERE p.space = $space
OPTIONAL MATCH (p)-[rels*1..2]-(n:Entity)
WHERE all(r IN rels WHERE r.space = $space AND {fact_visible('r')})
RETURN p.id AS project, collect(DISTINCT n.id) AS members
"""


def keyword_terms(text: str, *, drop_stopwords: bool) -> str:
    """The Lucene OR-query of the text's topical words ('' if it has none)."""
    terms = lucene.any_terms(text).split()
    kept = [w for w in terms if w not in QUERY_STOPWORDS] if drop_stopwords else terms
    return " ".join(kept or terms)


def _unavailable_note(exc: ChromaUnavailable) -> str:
    return f"vectors: {exc}; this answer comes from keywords, names and the graph only"


def _vector_ref(vector_id: str) -> tuple[str | None, str | None, str]:
    """(channel, item type, item id) of a Chroma id such as "win:<observation id>" or a passage's "obs:<id>#2"."""
    prefix, _, item_id = item_of(vector_id)[0].partition(":")
    channel, item_type = VECTOR_ID_TYPES.get(prefix, (None, None))
    return channel, item_type, item_id


class _Candidate:
    __slots__ = ("key", "type", "id", "text", "began", "entity", "scores", "channels", "passages", "passage",
                 "contributions", "boosts", "path")

    def __init__(self, key: str, item_type: ItemType, row: dict[str, Any]) -> None:
        self.key = key
        self.type = item_type
        self.id: str = row["id"]
        self.text: str = row.get("text") or ""
        self.began: float | None = row["began"] / 1000 if row.get("began") is not None else None  # epoch seconds
        self.entity = {"id": row["entity_id"], "name": row["entity_name"], "kind": row["entity_kind"],
                       "entity_type": row.get("entity_type") or row["entity_kind"]}
        self.scores: dict[str, float] = {}
        self.channels: list[str] = []
        self.passages: int = row.get("passages") or 1
        self.passage: tuple[int, int] | None = None  # the best passage's offsets, for an item of several
        # What fusion did, kept for explanations: each channel's share of the fused score, the boosts, the graph path.
        self.contributions: dict[str, float] = {}
        self.boosts: list[Boost] = []
        self.path: tuple[str, list[str], list[str]] | None = None  # (seed entity id, relation types, names between)

    def hit(self, channel: str, score: float) -> None:
        self.scores[channel] = max(self.scores.get(channel, float("-inf")), score)
        if channel not in self.channels:
            self.channels.append(channel)


@dataclass
class Gathered:
    """The candidates of one query, before fusion."""

    pool: dict[str, _Candidate]
    named: set[str]  # entities the query names
    members: set[str] | None  # the project's entities when the query is scoped to one
    degraded: list[str] = field(default_factory=list)  # RecallResult.degraded


class Recall:
    """Runs hybrid recall for one tenant at a time."""

    def __init__(self, gateway: Gateway, index: VectorIndex | None, embedder: Embedder,
                 config: RecallConfig | None = None, reranker: Reranker | None = None) -> None:
        self.gateway = gateway
        self.index = index
        self.embedder = embedder
        self.config = config or RecallConfig()
        self.reranker = reranker

    def _rows(self, cypher: str, **params: Any) -> list[dict[str, Any]]:
        return self.gateway.rows(cypher, **{"as_of": None, "known_at": None, **params})

    def recall(self, space: str, query: RecallQuery, *, config: RecallConfig | None = None,
               boosts: dict[str, float] | None = None) -> RecallResult:
        """`boosts` adds to the fused score of items by id (feedback on earlier briefs)."""
        started = time.perf_counter()
        cfg = config or self.config
        gathered = self.gather(space, query, cfg)
        items = self.rank(query, cfg, gathered, boosts)
        if self.reranker is not None and cfg.rerank_top:
            items = self._rerank(query.text, items, cfg.rerank_top)
        items = items[: query.limit]
        hits: dict[str, int] = defaultdict(int)
        for candidate in gathered.pool.values():
            for channel in candidate.channels:
                hits[channel] += 1
        results = self._results(space, items)
        if query.explain:
            results = explained(results, items, gathered, cfg, query)
        return RecallResult(query=query.text, items=results,
                            took_ms=round((time.perf_counter() - started) * 1000, 2), channel_hits=dict(hits),
                            degraded=gathered.degraded)

    def gather(self, space: str, query: RecallQuery, cfg: RecallConfig) -> Gathered:
        """Step 1 and 2: every channel's candidates, rescored against the query (no fusion yet)."""
        base = {"space": space, "as_of": query.as_of, "kinds": [k.value for k in query.kinds] if query.kinds else None,
                "agent": query.agent, "since": query.since, "until": query.until}
        pool: dict[str, _Candidate] = {}
        vector = self.embedder.embed_one(query.text) if any(cfg.on(c) for c in VECTOR_CHANNELS) else None
        name_rows = self._keyword(query, cfg, base, pool)
        try:
            self._vector(query, cfg, base, vector, pool)
            degraded = self._rebuild_note(vector)
        except ChromaUnavailable as exc:  # the other channels still answer; a damaged store (503) does not degrade
            vector, degraded = None, [_unavailable_note(exc)]
        named = self._names(query, base, pool, name_rows)
        self._graph(cfg, base, pool, named)
        if vector is not None:
            try:
                self._rescore(vector, pool)
            except ChromaUnavailable as exc:
                degraded.append(_unavailable_note(exc))
        members = self._project_members(space, query) if query.project_id else None
        return Gathered(pool, named, members, degraded)

    def _rebuild_note(self, vector: list[float] | None) -> list[str]:
        """While the vector index is rebuilt from Neo4j (by this process or another), its channels see part of it."""
        since = self.index.rebuilding_since() if vector is not None and self.index is not None else None
        if since is None:
            return []
        return [f"vectors: the vector index is being rebuilt from Neo4j (since {since:%Y-%m-%d %H:%M:%S} UTC); "
                "the vector channels see only the part rebuilt so far"]

    def rank(self, query: RecallQuery, cfg: RecallConfig, gathered: Gathered,
             boosts: dict[str, float] | None = None) -> list[_Candidate]:
        """Step 3: fuse the gathered candidates by `cfg`'s weights and boosts; the query's filters applied.
        Pure: the same gathered pool ranks under many configurations (benchmarks tune defaults this way)."""
        ranked = self._fuse(query, cfg, gathered.pool, gathered.named, boosts or {})
        return [c for c in ranked if self._passes(c, query, gathered.members)]

    # -- candidates -----------------------------------------------------------------------------
    def _add(self, pool: dict[str, _Candidate], item_type: ItemType, row: dict[str, Any]) -> _Candidate:
        key = f"{'obs' if item_type == 'observation' else 'ent'}:{row['id']}"
        if key not in pool:
            pool[key] = _Candidate(key, item_type, row)
        return pool[key]

    def _keyword(self, query: RecallQuery, cfg: RecallConfig, base: dict, pool: dict[str, _Candidate]) -> list[dict]:
        """The keyword channels' candidates into the pool; returns the rows of entities the query may name."""
        terms = keyword_terms(query.text, drop_stopwords=cfg.query_stopwords)
        channels = [channel for channel in KEYWORD_CHANNELS if cfg.on(channel)]
        mentions = mention_query(base["space"], query.text) if cfg.name_matches else None
        if not terms or not (channels or mentions):
            return []
        rows = self._rows(KEYWORD_CHANNELS_QUERY, query=lucene.in_space(base["space"], terms), k=cfg.candidates,
                          channels=channels, mentions=mentions, mention_candidates=mention_candidates(NAMES_MATCHED),
                          **base)
        name_rows = []
        for row in rows:
            if row["channel"] == "name":
                name_rows.append(row)
                continue
            item_type = "entity" if row["channel"] == "entity" else "observation"
            self._add(pool, item_type, row).hit(row["channel"], float(row["score"]))
        return name_rows

    def _vector(self, query, cfg, base, vector, pool) -> None:
        if vector is None or self.index is None:
            return
        channels = [channel for channel in VECTOR_CHANNEL_TYPES if cfg.on(channel)]
        if not channels:
            return
        # The graph filters everything but the project (applied after fusion), so a project-scoped
        # query, or one whose space is crowded out of the nearest ids, lets Chroma pre-filter.
        hits = None if query.project_id else self._nearest_unfiltered(vector, cfg, base, channels)
        if hits is None:
            hits = self._nearest_filtered(vector, query, cfg, base, channels)
        for channel, rows in hits.items():
            for row in rows:
                candidate = self._add(pool, row["type"], row)
                if channel not in candidate.channels:
                    candidate.channels.append(channel)

    def _nearest_unfiltered(self, vector, cfg, base, channels) -> dict[str, list[dict]] | None:
        """The bare kNN, over-fetched and filtered by the graph; None when too few hits pass."""
        wide = cfg.candidates * VECTOR_OVERSAMPLE
        ids = self.index.nearest(vector, wide)
        by_channel: dict[str, list[tuple[str, str]]] = {channel: [] for channel in channels}
        for vector_id in ids:
            channel, item_type, item_id = _vector_ref(vector_id)
            if channel in by_channel:
                by_channel[channel].append((item_type, item_id))
        hits = self._fetch_vector_hits(by_channel, base, cfg.candidates)
        if len(ids) == wide and sum(len(rows) for rows in hits.values()) < cfg.candidates:
            return None
        return hits

    def _nearest_filtered(self, vector, query, cfg, base, channels) -> dict[str, list[dict]]:
        at = query.as_of.timestamp() if query.as_of else None
        by_channel: dict[str, list[tuple[str, str]]] = {}
        for channel in channels:
            found = self.index.query(vector, space=base["space"], k=cfg.candidates, types=VECTOR_CHANNEL_TYPES[channel],
                                     kinds=base["kinds"], project_id=query.project_id, agent=query.agent, at=at)
            by_channel[channel] = [_vector_ref(hit.id)[1:] for hit in found]
        return self._fetch_vector_hits(by_channel, base, cfg.candidates)

    def _fetch_vector_hits(self, by_channel, base, k) -> dict[str, list[dict]]:
        """The graph's rows for vector hits, nearest first, at most `k` per channel. A vector whose
        item is gone, invalid, in another space or filtered out has no row and is dropped. Ids go
        in slices of `k` per channel, so a space that owns its neighbourhood takes one round trip."""
        found: dict[str, list[dict]] = {channel: [] for channel in by_channel}
        offset = 0
        while True:
            short = [channel for channel, pairs in by_channel.items() if len(found[channel]) < k and offset < len(pairs)]
            if not short:
                return found
            wanted = {channel: by_channel[channel][offset:offset + k] for channel in short}
            pairs = [pair for chunk in wanted.values() for pair in chunk]
            rows = {(row["type"], row["id"]): row for row in self._rows(
                FETCH_VECTOR_HITS, observation_ids=sorted({i for t, i in pairs if t == "observation"}),
                entity_ids=sorted({i for t, i in pairs if t == "entity"}), **base)}
            for channel, chunk in wanted.items():
                found[channel] += [rows[pair] for pair in chunk if pair in rows][: k - len(found[channel])]
            offset += k

    def _names(self, query: RecallQuery, base: dict, pool: dict[str, _Candidate], rows: list[dict]) -> set[str]:
        """Ids of the entities the query names; they are candidates and boost their observations."""
        by_id = {row["id"]: row for row in rows}
        named = set()
        candidates = [{"id": row["id"], "name": row["entity_name"], "aliases": row["aliases"]} for row in rows]
        for entity_id in mentions(query.text, candidates, NAMES_MATCHED):
            named.add(entity_id)
            row = by_id[entity_id]
            if base["kinds"] and row["entity_kind"] not in base["kinds"]:
                continue
            self._add(pool, "entity", row).hit("name", 1.0)
        return named

    def _graph(self, cfg: RecallConfig, base: dict, pool: dict[str, _Candidate], named: set[str]) -> None:
        """Neighbours of the entities behind the strongest candidates, and their recent observations."""
        if not cfg.on("graph") or not cfg.expansion_seeds:
            return
        strongest = sorted(pool.values(), key=lambda c: (-max(c.scores.values(), default=0.0), c.key))
        seeds: list[str] = [entity_id for entity_id in sorted(named)]
        for candidate in strongest:
            if len(seeds) >= cfg.expansion_seeds:
                break
            if candidate.entity["id"] not in seeds:
                seeds.append(candidate.entity["id"])
        if not seeds or not (cfg.expansion_depth or cfg.observations_per_entity):
            return
        lessons_and_named = [s for s in seeds if s not in named]  # a named person's whole history would flood
        rows = self._rows(GRAPH_QUERIES[cfg.expansion_depth or 1], seeds=seeds, expand=bool(cfg.expansion_depth),
                          ids=lessons_and_named if cfg.observations_per_entity else [],
                          per_entity=cfg.observations_per_entity, **base)
        for row in rows:
            if row["part"] != "expansion":
                continue
            weight = 1.0
            for hop, rel_type in enumerate(row["types"]):
                weight *= RELATION_WEIGHTS.get(rel_type, DEFAULT_RELATION_WEIGHT) * (0.5 if hop else 1.0)
            candidate = self._add(pool, "entity", row)
            if weight > candidate.scores.get("graph", 0.0):
                candidate.path = (row["seed"], row["types"], row["via"])
            candidate.hit("graph", weight)
        for row in rows:
            if row["part"] != "recent":
                continue
            candidate = self._add(pool, "observation", row)
            if candidate.path is None and "graph" not in candidate.scores:
                candidate.path = (row["entity_id"], ["HAS_OBSERVATION"], [])
            candidate.hit("graph", 0.5)

    def _rescore(self, vector: list[float], pool: dict[str, _Candidate]) -> None:
        """Exact cosine of every candidate (and its window) with the query, from the stored vectors."""
        if self.index is None or not pool:
            return
        ids = [c.key for c in pool.values()] + [f"win:{c.id}" for c in pool.values() if c.type == "observation"]
        stored = self.index.vectors(ids)
        if not stored:
            return
        keys = list(stored)
        # Vectors are normalised, so dot products are cosines.
        similarity = dict(zip(keys, (np.asarray([stored[k] for k in keys]) @ np.asarray(vector)).tolist()))
        for candidate in pool.values():
            if candidate.key in similarity:
                candidate.scores["vector"] = similarity[candidate.key]
            window_key = f"win:{candidate.id}"
            if candidate.type == "observation" and window_key in similarity:
                candidate.scores["vector_window"] = similarity[window_key]
        self._best_passages(vector, pool)

    def _best_passages(self, vector: list[float], pool: dict[str, _Candidate]) -> None:
        """A text of several passages scores as its best passage, which becomes the hit's highlight."""
        long = {c.key: c for c in pool.values() if c.passages > 1}
        if not long:
            return
        wanted = min(sum(c.passages for c in long.values()), MAX_PASSAGES_RESCORED)
        for item, (_, similarity, start, end) in self.index.best_passages(vector, list(long), wanted).items():
            candidate = long.get(item)
            if candidate is None:
                continue
            candidate.passage = (start, end)
            candidate.scores["vector"] = max(similarity, candidate.scores.get("vector", similarity))

    # -- fusion ------------------------------------------------------------------------------------
    def _fuse(self, query: RecallQuery, cfg: RecallConfig, pool: dict[str, _Candidate], named: set[str],
              boosts: dict[str, float]) -> list[_Candidate]:
        candidates = list(pool.values())
        fused = {c.key: 0.0 for c in candidates}
        for channel in (*KEYWORD_CHANNELS, "name", "graph"):  # by their maximum: 0 stays "not found"
            weight = cfg.weights.get(channel, 1.0 if channel == "name" else 0.0)
            top = max((c.scores.get(channel, 0.0) for c in candidates), default=0.0)
            if weight and top > 0:
                for c in candidates:
                    share = weight * c.scores.get(channel, 0.0) / top
                    fused[c.key] += share
                    c.contributions[channel] = share
        for channel in VECTOR_CHANNELS:  # min-max: cosines have no natural zero
            weight = cfg.weights.get(channel, 0.0)
            values = [c.scores[channel] for c in candidates if channel in c.scores]
            if weight and values:
                low, high = min(values), max(values)
                for c in candidates:
                    if channel in c.scores and high > low:
                        share = weight * (c.scores[channel] - low) / (high - low)
                        fused[c.key] += share
                        c.contributions[channel] = share
        asks_when = bool(TIME_QUESTION.match(query.text))
        now = time.time()
        top_score = max(fused.values(), default=0.0)
        for c in candidates:
            c.boosts = []
            if c.type == "observation" and c.entity["id"] in named:
                fused[c.key] *= 1 + cfg.named_boost
                c.boosts.append(Boost(name="named", effect="multiply", value=1 + cfg.named_boost,
                                      reason=f"the query names {c.entity['name']}"))
            if asks_when and TIME_WORDS.search(c.text):
                fused[c.key] *= 1 + cfg.time_boost
                c.boosts.append(Boost(name="time", effect="multiply", value=1 + cfg.time_boost,
                                      reason="the query asks when and the text carries a time"))
            if cfg.recency_half_life_days and c.began is not None:
                age_days = max(0.0, (now - c.began) / 86400)
                added = cfg.recency_weight * top_score * 0.5 ** (age_days / cfg.recency_half_life_days)
                fused[c.key] += added
                c.boosts.append(Boost(name="recency", effect="add", value=added, reason=f"{age_days:.0f} days old"))
            if boosts.get(c.id):
                fused[c.key] += boosts[c.id] * top_score
                c.boosts.append(Boost(name="feedback", effect="add", value=boosts[c.id] * top_score,
                                      reason="earlier briefs' outcomes voted on it"))
        for c in candidates:
            c.scores["fused"] = fused[c.key]
        return sorted(candidates, key=lambda c: (-fused[c.key], c.key))

    def _rerank(self, text: str, items: list[_Candidate], top: int) -> list[_Candidate]:
        head, tail = items[:top], items[top:]
        scores = self.reranker.scores(text, [c.text for c in head])
        for candidate, score in zip(head, scores):
            candidate.scores["rerank"] = score
            candidate.channels.append("rerank")
        return sorted(head, key=lambda c: (-c.scores["rerank"], c.key)) + tail

    def _project_members(self, space: str, query: RecallQuery) -> set[str]:
        rows = self._rows(PROJECT_SCOPE, space=space, project_id=query.project_id, as_of=query.as_of)
        return {rows[0]["project"], *rows[0]["members"]} if rows else set()

    @staticmethod
    def _passes(c: _Candidate, query: RecallQuery, members: set[str] | None) -> bool:
        """Filters left after the channels (which apply kinds, agent and time range themselves)."""
        if query.types and c.type not in query.types:
            return False
        return members is None or c.entity["id"] in members

    def _results(self, space: str, items: list[_Candidate]) -> list[RecallItem]:
        """The final items, fetched whole in one query."""
        if not items:
            return []
        whole = {row["key"]: row["item"] for row in self._rows(
            ITEMS_BY_ID, observation_ids=[c.id for c in items if c.type == "observation"],
            entity_ids=[c.id for c in items if c.type == "entity"], space=space)}
        return [self._result(c, whole[c.key]) for c in items if c.key in whole]

    @staticmethod
    def _result(c: _Candidate, props: dict[str, Any]) -> RecallItem:
        text = props["text"] if c.type == "observation" else (props.get("summary") or props.get("name") or "")
        return RecallItem(
            id=c.id, type=c.type, text=text, highlight=text[c.passage[0]:c.passage[1]] if c.passage else None,
            score=round(c.scores["fused"], 6), channels=c.channels,
            entity=EntityBrief(**c.entity), ref=props.get("ref"),
            valid_from=props.get("valid_from") or props.get("created_at"), valid_to=props.get("valid_to"),
            recorded_at=props.get("recorded_at") or props.get("created_at"), provenance=records.provenance(props),
        )


# -- explanations ------------------------------------------------------------------------------------
def explained(results: list[RecallItem], items: list[_Candidate], gathered: Gathered, cfg: RecallConfig,
              query: RecallQuery) -> list[RecallItem]:
    """The results, each with why it was retrieved: read off the ranked candidates, nothing queried again."""
    ranks = _channel_ranks(gathered.pool)
    by_id = {(c.type, c.id): c for c in items}
    seeds = {c.entity["id"]: c.entity for c in gathered.pool.values()}
    terms = keyword_terms(query.text, drop_stopwords=cfg.query_stopwords).split()
    explained_items = []
    for item in results:
        c = by_id[(item.type, item.id)]
        channels = [ChannelScore(channel=channel, score=round(c.scores[channel], 6), rank=ranks[channel][c.key],
                                 weight=cfg.weights.get(channel, 1.0 if channel == "name" else 0.0),
                                 contribution=round(c.contributions.get(channel, 0.0), 6))
                    for channel in (*KEYWORD_CHANNELS, "name", *VECTOR_CHANNELS, "graph") if channel in c.scores]
        start, end = c.passage if c.passage else (0, len(item.text))
        path = None
        if c.path is not None:
            seed_id, relations, via = c.path
            seed = seeds.get(seed_id) or {"id": seed_id, "name": seed_id, "kind": "", "entity_type": ""}
            path = RelationPath(seed=EntityBrief(**seed), relations=relations, via=via)
        explained_items.append(item.model_copy(update={"explanation": Explanation(
            channels=channels, boosts=c.boosts, passage=item.text[start:end], passage_start=start, passage_end=end,
            terms=term_offsets(item.text, terms), path=path, rerank=c.scores.get("rerank"))}))
    return explained_items


def _channel_ranks(pool: dict[str, _Candidate]) -> dict[str, dict[str, int]]:
    """Each channel's order of the candidates it scored, best first (ties by key, as fusion breaks them)."""
    ranks: dict[str, dict[str, int]] = {}
    channels = {channel for c in pool.values() for channel in c.scores if channel not in ("fused", "rerank")}
    for channel in channels:
        scored = sorted((c for c in pool.values() if channel in c.scores), key=lambda c: (-c.scores[channel], c.key))
        ranks[channel] = {c.key: place for place, c in enumerate(scored, start=1)}
    return ranks


def term_offsets(text: str, terms: list[str], limit: int = 50) -> list[tuple[int, int]]:
    """Where the query's keywords occur in the text, as whole words, case-insensitively (at most `limit`)."""
    words = [re.escape(term) for term in terms if term.isalnum()]
    if not words:
        return []
    pattern = re.compile(r"\b(?:" + "|".join(words) + r")\b", re.IGNORECASE)
    return [match.span() for match in pattern.finditer(text)][:limit]

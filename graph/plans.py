"""The hot queries and their plans: used by the query-plan test and printed by the benchmark.

A hot query must start from an index (seek or fulltext) and never scan every node,
every node of a label, or every relationship of a type: those grow with the whole
database, not with the tenant or the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from graph import audit, reads, writes
from graph.gateway import Gateway

FORBIDDEN_OPERATORS = frozenset({
    "AllNodesScan", "NodeByLabelScan", "NodeIndexScan", "DirectedRelationshipIndexScan", "UndirectedRelationshipIndexScan", "UnionNodeByLabelsScan", "IntersectionNodeByLabelsScan",
    "AllRelationshipsScan", "DirectedRelationshipTypeScan", "UndirectedRelationshipTypeScan",
    "DirectedAllRelationshipsScan", "UndirectedAllRelationshipsScan",
})

_T = datetime(2026, 1, 1, tzinfo=UTC)
_ID = "00000000-0000-0000-0000-000000000000"
_TIME = {"as_of": None, "known_at": None}


@dataclass(frozen=True)
class HotQuery:
    name: str
    cypher: str
    params: dict[str, Any]


def hot_queries(space: str) -> list[HotQuery]:
    s = {"space": space}
    entity_row = {"id": _ID, "kind": "Project", "entity_type": "Project", "name": "x", "name_key": "x",
                  "summary": None, "aliases": [], "alias_keys": [], "attributes": {}, "source": None,
                  "agent": None, "delegation_id": None}
    queries = [
        HotQuery("get entity by id", reads.GET_ENTITY, {**s, **_TIME, "id": _ID}),
        HotQuery("find by name", reads.FIND_BY_NAME, {**s, **_TIME, "key": "x", "kind": None}),
        HotQuery("find by alias", reads.FIND_BY_ALIAS, {**s, **_TIME, "key": "x", "kind": None, "query": '+space:"s" +("x")'}),
        HotQuery("list entities", reads.LIST_ENTITIES,
                 {**s, **_TIME, "updated_since": None, "after_key": None, "after_id": None, "limit": 51}),
        HotQuery("list entities of kinds", reads.LIST_ENTITIES_OF_KINDS,
                 {**s, **_TIME, "kinds": ["Project"], "updated_since": None, "after_key": None, "after_id": None, "limit": 51}),
        HotQuery("fulltext over entities", reads.SEARCH_ENTITY_TEXT, {**s, **_TIME, "query": "x", "kinds": None, "candidates": 50}),
        HotQuery("fulltext over observations", reads.SEARCH_OBSERVATION_TEXT, {**s, **_TIME, "query": "x", "kinds": None, "candidates": 50}),
        *[HotQuery(f"neighbourhood depth {d}", reads.NEIGHBOURHOOD[d], {**s, **_TIME, "id": _ID, "offset": 0, "limit": 51, "kinds": None})
          for d in sorted(reads.NEIGHBOURHOOD)],
        HotQuery("relations among entities", reads.RELATIONS_AMONG, {**s, **_TIME, "ids": [_ID]}),
        HotQuery("observations of an entity", reads.OBSERVATIONS_OF, {**s, **_TIME, "id": _ID, "limit": 20}),
        HotQuery("history: revisions", reads.HISTORY_REVISIONS, {"id": _ID}),
        HotQuery("history: observations", reads.HISTORY_OBSERVATIONS, {"id": _ID}),
        HotQuery("history: relations", reads.HISTORY_RELATIONS, {"id": _ID}),
        HotQuery("upsert entities", writes.UPSERT_ENTITIES, {**s, "rows": [entity_row], "now": _T}),
        HotQuery("resolve ids", writes.RESOLVE_IDS, {**s, "ids": [_ID]}),
        HotQuery("resolve names", writes.RESOLVE_NAMES, {**s, "refs": [{"key": "x", "kind": None}]}),
        HotQuery("resolve aliases", writes.RESOLVE_ALIASES, {**s, "refs": [{"key": "x", "kind": None, "query": "x"}]}),
        HotQuery("add observations", writes.ADD_OBSERVATIONS, {**s, "now": _T, "rows": [
            {"id": _ID, "entity_id": _ID, "key": "k", "text": "t", "date_text": "1 January 2026", "valid_from": _T,
             "supersedes": None, "ref": None, "seq": None,
             "source": None, "agent": None, "delegation_id": None}]}),
        HotQuery("existing facts", writes.EXISTING_FACTS, {**s, "pairs": [{"source": _ID, "type": "PART_OF"}]}),
        HotQuery("close facts", writes.CLOSE_FACTS, {"closes": [{"id": _ID, "source": _ID, "type": "PART_OF", "valid_to": _T}]}),
        HotQuery("create facts", writes.CREATE_FACTS, {"creates": [{"source": _ID, "target": _ID, "type": "PART_OF", "props": {}}]}),
        HotQuery("retract observations", writes.RETRACT_OBSERVATIONS, {**s, "ids": [_ID], "now": _T}),
        HotQuery("retract relations", writes.RETRACT_RELATIONS, {**s, "now": _T, "rows": [{"source": _ID, "target": _ID, "type": "PART_OF"}]}),
        HotQuery("retract entity", writes.RETRACT_ENTITY, {**s, "id": _ID, "now": _T}),
        HotQuery("delete entity", writes.DELETE_ENTITY, {**s, "id": _ID}),
        HotQuery("audit page", audit.AUDIT_PAGE, {**s, "since": None, "until": None, "key_id": None,
                                                  "operation": None, "entity_ids": None, "after_at": _T,
                                                  "after_id": _ID, "limit": 50}),
    ]
    return queries


def plan_operators(gateway: Gateway, query: HotQuery) -> list[str]:
    """Operator names of the query's plan, without the '@neo4j' suffix."""
    summary = gateway.explain(query.cypher, query.params)
    operators: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        operators.append(node["operatorType"].split("@")[0])
        for child in node.get("children", []):
            walk(child)

    walk(summary.plan)
    return operators


def scans(operators: list[str]) -> list[str]:
    return [op for op in operators if op in FORBIDDEN_OPERATORS]

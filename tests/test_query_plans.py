"""The hot queries start from indexes, so reads stay fast at millions of nodes.

The planner picks plans from statistics, so the graph is seeded first: with an
empty database a label scan can look as cheap as an index seek.
"""

import pytest

from graph.model import EntityIn, EntityRef, ObservationIn, RelationIn
from graph.plans import hot_queries, plan_operators, scans
from graph.vocabulary import Kind


@pytest.fixture(scope="module")
def seeded(graph_store, gateway):
    space = "plans-seed"
    graph = graph_store.space(space)
    graph.upsert_entities([EntityIn(kind=kind, name=f"{kind.value} {i}") for i in range(300) for kind in
                           (Kind.PROJECT, Kind.AGENT, Kind.DELEGATION, Kind.FEATURE, Kind.THING)])
    graph.add_observations([ObservationIn(entity=EntityRef(name=f"Project {i}", kind=Kind.PROJECT), text=f"note {i}") for i in range(300)])
    graph.upsert_relations([RelationIn(source=EntityRef(name=f"Delegation {i}", kind=Kind.DELEGATION), type="PART_OF",
                                       target=EntityRef(name=f"Project {i % 30}", kind=Kind.PROJECT)) for i in range(300)])
    gateway.write("CALL db.prepareForReplanning()")
    yield space
    # IN TRANSACTIONS needs an auto-commit transaction
    gateway.run_implicit("MATCH (n {space: $s}) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 2000 ROWS", s=space)


@pytest.mark.parametrize("query", hot_queries("plans-seed"), ids=lambda q: q.name)
def test_hot_query_uses_an_index(query, seeded, gateway):
    operators = plan_operators(gateway, query)
    assert scans(operators) == [], f"{query.name} scans: {operators}"
    assert any("Index" in op or op == "ProcedureCall" for op in operators), f"{query.name} uses no index: {operators}"


def test_the_check_catches_a_scan(gateway, seeded):
    from graph.plans import HotQuery

    bad = HotQuery("unanchored", "MATCH (e:Entity) WHERE e.summary = $x RETURN e", {"x": "y"})
    assert scans(plan_operators(gateway, bad)) == ["NodeByLabelScan"]

"""Concurrent writers lose nothing and duplicate nothing."""

from concurrent.futures import ThreadPoolExecutor

from graph.model import EntityIn, EntityRef, ObservationIn, RelationIn
from graph.vocabulary import Kind

WRITERS = 20


def count(gateway, space, cypher):
    return gateway.rows(cypher, space=space)[0]["n"]


def test_twenty_writers_on_the_same_entities_and_relations(graph, gateway, space):
    def writer(n: int) -> None:
        graph.upsert_entities([EntityIn(kind=Kind.PROJECT, name="churn"), EntityIn(kind=Kind.AGENT, name=f"agent {n % 4}")])
        graph.add_observations([
            ObservationIn(entity=EntityRef(name="churn", kind=Kind.PROJECT), text="shared note"),
            ObservationIn(entity=EntityRef(name="churn", kind=Kind.PROJECT), text=f"note from writer {n}"),
        ])
        graph.upsert_relations([
            RelationIn(source=EntityRef(name=f"agent {n % 4}"), type="LEADS_ANALYSIS_FOR", target=EntityRef(name="churn")),
        ])

    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        list(pool.map(writer, range(WRITERS)))

    assert count(gateway, space, "MATCH (e:Project {space: $space}) RETURN count(e) AS n") == 1
    assert count(gateway, space, "MATCH (e:Agent {space: $space}) RETURN count(e) AS n") == 4
    assert count(gateway, space, "MATCH (o:Observation {space: $space}) RETURN count(o) AS n") == WRITERS + 1
    assert count(gateway, space,
                 "MATCH (:Agent {space: $space})-[r:LEADS_ANALYSIS_FOR]->(:Project) RETURN count(r) AS n") == 4


def test_concurrent_single_valued_writes_leave_one_current_fact(graph, gateway, space):
    graph.upsert_entities([EntityIn(kind=Kind.DELEGATION, name="d")] + [EntityIn(kind=Kind.AGENT, name=f"a{i}") for i in range(WRITERS)])

    def assign(n: int) -> None:
        graph.upsert_relations([RelationIn(source=EntityRef(name="d"), type="DELEGATED_TO", target=EntityRef(name=f"a{n}"))])

    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        list(pool.map(assign, range(WRITERS)))

    assert count(gateway, space,
                 "MATCH (:Delegation {space: $space})-[r:DELEGATED_TO]->() WHERE r.valid_to IS NULL RETURN count(r) AS n") == 1
    assert count(gateway, space, "MATCH (:Delegation {space: $space})-[r:DELEGATED_TO]->() RETURN count(r) AS n") == WRITERS

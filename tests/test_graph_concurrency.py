"""Concurrent writers lose nothing and duplicate nothing."""

from concurrent.futures import ThreadPoolExecutor

from graph.model import EntityIn, EntityRef, ObservationIn, RelationIn
from graph.vocabulary import Kind

WRITERS = 20


def count(neo4j_driver, space, cypher):
    records, _, _ = neo4j_driver.execute_query(cypher, space=space)
    return records[0][0]


def test_twenty_writers_on_the_same_entities_and_relations(graph, neo4j_driver, space):
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

    assert count(neo4j_driver, space, "MATCH (e:Project {space: $space}) RETURN count(e)") == 1
    assert count(neo4j_driver, space, "MATCH (e:Agent {space: $space}) RETURN count(e)") == 4
    assert count(neo4j_driver, space, "MATCH (o:Observation {space: $space}) RETURN count(o)") == WRITERS + 1
    assert count(neo4j_driver, space,
                 "MATCH (:Agent {space: $space})-[r:LEADS_ANALYSIS_FOR]->(:Project) RETURN count(r)") == 4


def test_concurrent_single_valued_writes_leave_one_current_fact(graph, neo4j_driver, space):
    graph.upsert_entities([EntityIn(kind=Kind.DELEGATION, name="d")] + [EntityIn(kind=Kind.AGENT, name=f"a{i}") for i in range(WRITERS)])

    def assign(n: int) -> None:
        graph.upsert_relations([RelationIn(source=EntityRef(name="d"), type="DELEGATED_TO", target=EntityRef(name=f"a{n}"))])

    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        list(pool.map(assign, range(WRITERS)))

    assert count(neo4j_driver, space,
                 "MATCH (:Delegation {space: $space})-[r:DELEGATED_TO]->() WHERE r.valid_to IS NULL RETURN count(r)") == 1
    assert count(neo4j_driver, space, "MATCH (:Delegation {space: $space})-[r:DELEGATED_TO]->() RETURN count(r)") == WRITERS

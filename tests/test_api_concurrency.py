"""20 writers upsert the same entities and relations at once through the API: no duplicates, nothing lost."""

from __future__ import annotations

import threading

from graph.model import EntityIn, EntityRef, ObservationIn, RelationIn
from graph.vocabulary import Kind

WRITERS = 20
ENTITIES = [EntityIn(kind=Kind.PROJECT, name="Churn model"), EntityIn(kind=Kind.AGENT, name="ds-1"),
            EntityIn(kind=Kind.AGENT, name="mle-1"), EntityIn(kind=Kind.DATASET, name="customers-2025"),
            EntityIn(kind=Kind.LESSON, name="Pin the snapshot")]
RELATIONS = [
    RelationIn(source=EntityRef(name="ds-1"), type="LEADS_ANALYSIS_FOR", target=EntityRef(name="Churn model")),
    RelationIn(source=EntityRef(name="mle-1"), type="DEPENDS_ON", target=EntityRef(name="customers-2025")),
    RelationIn(source=EntityRef(name="Pin the snapshot"), type="APPLIES_TO", target=EntityRef(name="Churn model")),
]


def test_twenty_writers_at_once(live_api, space, gateway):
    token = live_api.token([space], ["read", "write"])
    barrier = threading.Barrier(WRITERS)
    failures: list[BaseException] = []

    def write(n: int) -> None:
        try:
            with live_api.client(space, token=token) as kg:
                barrier.wait()
                kg.upsert_entities(ENTITIES)
                kg.upsert_relations(RELATIONS)
                kg.add_observations(
                    [ObservationIn(entity=EntityRef(kind=Kind.PROJECT, name="Churn model"), text=f"writer {n} run {i}")
                     for i in range(3)]
                    + [ObservationIn(entity=EntityRef(name="ds-1"), text="everyone saw the same thing")])
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []

    def rows(cypher: str) -> list[dict]:
        return gateway.rows(cypher, space=space)

    entities = rows("MATCH (e:Entity {space: $space}) RETURN e.kind AS kind, e.name_key AS key, count(*) AS n")
    assert sorted((r["kind"], r["key"], r["n"]) for r in entities) == sorted(
        (e.kind.value, e.name.casefold(), 1) for e in ENTITIES)
    relations = rows("MATCH (a:Entity {space: $space})-[r]->(b:Entity) "
                     "WHERE NOT type(r) IN ['HAS_OBSERVATION', 'HAS_REVISION'] "
                     "RETURN a.name AS a, type(r) AS type, b.name AS b, count(*) AS n, "
                     "count(CASE WHEN r.valid_to IS NULL AND r.retracted_at IS NULL THEN 1 END) AS current")
    assert sorted((r["a"], r["type"], r["b"], r["n"], r["current"]) for r in relations) == sorted(
        (rel.source.name, rel.type, rel.target.name, 1, 1) for rel in RELATIONS)
    texts = [r["text"] for r in rows("MATCH (o:Observation {space: $space}) WHERE o.retracted_at IS NULL "
                                     "RETURN o.text AS text")]
    expected = {f"writer {n} run {i}" for n in range(WRITERS) for i in range(3)} | {"everyone saw the same thing"}
    assert sorted(texts) == sorted(expected)  # every observation there, the shared one once
    with live_api.client(space, token=token) as kg:
        assert len(kg.history(kg.search("Churn model").items[0].entity.id).observations) == WRITERS * 3

"""Constraints and indexes. `ensure_schema` is idempotent and runs at start-up."""

from __future__ import annotations

from neo4j import Driver

from graph.vocabulary import DECLARED_RELATIONS

CONSTRAINTS = [
    "CREATE CONSTRAINT entity_identity IF NOT EXISTS "
    "FOR (e:Entity) REQUIRE (e.space, e.kind, e.name_key) IS UNIQUE",
    "CREATE CONSTRAINT entity_id IF NOT EXISTS FOR (e:Entity) REQUIRE e.id IS UNIQUE",
    "CREATE CONSTRAINT observation_id IF NOT EXISTS FOR (o:Observation) REQUIRE o.id IS UNIQUE",
    # Only current observations carry a key, so a text can be re-added after it was retracted.
    "CREATE CONSTRAINT observation_current IF NOT EXISTS "
    "FOR (o:Observation) REQUIRE (o.space, o.current_key) IS UNIQUE",
    "CREATE CONSTRAINT revision_id IF NOT EXISTS FOR (r:Revision) REQUIRE r.id IS UNIQUE",
]

INDEXES = [
    "CREATE INDEX entity_space_kind IF NOT EXISTS FOR (e:Entity) ON (e.space, e.kind)",
    "CREATE INDEX entity_space_name IF NOT EXISTS FOR (e:Entity) ON (e.space, e.name_key)",
    "CREATE INDEX entity_space_updated IF NOT EXISTS FOR (e:Entity) ON (e.space, e.updated_at)",
    "CREATE INDEX entity_space IF NOT EXISTS FOR (e:Entity) ON (e.space)",
    "CREATE INDEX observation_space_recorded IF NOT EXISTS FOR (o:Observation) ON (o.space, o.recorded_at)",
    # The vector sync looks for pending items across all tenants.
    "CREATE INDEX observation_vector_status IF NOT EXISTS FOR (o:Observation) ON (o.vector_status)",
    "CREATE INDEX entity_vector_status IF NOT EXISTS FOR (e:Entity) ON (e.vector_status)",
    # `space` is indexed too so that queries can require the tenant inside Lucene (see graph/lucene.py).
    "CREATE FULLTEXT INDEX entity_text IF NOT EXISTS FOR (e:Entity) ON EACH [e.name, e.aliases, e.summary, e.space]",
    "CREATE FULLTEXT INDEX observation_text IF NOT EXISTS FOR (o:Observation) ON EACH [o.text, o.space]",
]


def relation_indexes() -> list[str]:
    # Relationship indexes need a literal type; these come from the fixed vocabulary, never from input.
    statements = []
    for rel_type in sorted(DECLARED_RELATIONS):
        name = f"rel_{rel_type.lower()}_space"
        statements.append(f"CREATE INDEX {name} IF NOT EXISTS FOR ()-[r:{rel_type}]-() ON (r.space, r.valid_to)")
    return statements


def ensure_schema(driver: Driver, database: str = "neo4j", *, wait_s: float = 120) -> None:
    for statement in CONSTRAINTS + INDEXES + relation_indexes():
        driver.execute_query(statement, database_=database)
    driver.execute_query("CALL db.awaitIndexes($seconds)", seconds=int(wait_s), database_=database)

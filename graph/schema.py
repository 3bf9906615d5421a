"""Constraints and indexes: today's schema, created by graph/migrations.py (step 1, then at every start)."""

from __future__ import annotations

from graph import audit
from graph.gateway import Gateway
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
    "CREATE INDEX observation_source_seq IF NOT EXISTS FOR (o:Observation) ON (o.space, o.source, o.seq)",
    # The vector sync looks for pending items across all tenants.
    "CREATE INDEX observation_vector_status IF NOT EXISTS FOR (o:Observation) ON (o.vector_status)",
    "CREATE INDEX entity_vector_status IF NOT EXISTS FOR (e:Entity) ON (e.vector_status)",
]

# Fulltext indexes: `space` is indexed too, so queries require the tenant inside Lucene (see
# graph/lucene.py); the english analyzer stems ("retrained" finds "retraining") and drops stopwords.
FULLTEXT = {
    "entity_text": "FOR (e:Entity) ON EACH [e.name, e.aliases, e.summary, e.space]",
    "observation_text": "FOR (o:Observation) ON EACH [o.search_text, o.space]",
    # The message with its neighbours in an ordered source, kept by the vector sync.
    "observation_context": "FOR (o:Observation) ON EACH [o.context, o.space]",
}
ANALYZER = "english"


def fulltext_statement(name: str) -> str:
    return (f"CREATE FULLTEXT INDEX {name} IF NOT EXISTS {FULLTEXT[name]} "
            f"OPTIONS {{indexConfig: {{`fulltext.analyzer`: '{ANALYZER}'}}}}")


def outdated_fulltext(gateway: Gateway) -> list[str]:
    """Fulltext indexes from an older kgmem whose analyzer or properties differ: dropped and rebuilt."""
    outdated = []
    for row in gateway.rows("SHOW FULLTEXT INDEXES YIELD name, properties, options RETURN name, properties, options"):
        if row["name"] not in FULLTEXT:
            continue
        analyzer = (row["options"] or {}).get("indexConfig", {}).get("fulltext.analyzer")
        wanted = [part.split(".")[1] for part in FULLTEXT[row["name"]].split("[")[1].rstrip("]").split(", ")]
        if analyzer != ANALYZER or list(row["properties"]) != wanted:
            outdated.append(row["name"])
    return outdated


def relation_indexes() -> list[str]:
    # Relationship indexes need a literal type; these come from the fixed vocabulary, never from input.
    statements = []
    for rel_type in sorted(DECLARED_RELATIONS):
        name = f"rel_{rel_type.lower()}_space"
        statements.append(f"CREATE INDEX {name} IF NOT EXISTS FOR ()-[r:{rel_type}]-() ON (r.space, r.valid_to)")
    return statements


def statements() -> list[str]:
    """Every constraint and index, each created only if missing."""
    return CONSTRAINTS + INDEXES + audit.SCHEMA + [fulltext_statement(name) for name in FULLTEXT] + relation_indexes()


def ensure_schema(gateway: Gateway) -> None:
    """Create whichever constraints and indexes are missing. graph/migrations.py runs it as step 1 and again
    at every start, so one added here reaches existing databases; a change to an existing one needs a step."""
    for statement in statements():
        gateway.write(statement)

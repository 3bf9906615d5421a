"""The read-only guard behind `kgmem cypher`, against a real Neo4j."""

import json
import time
from datetime import UTC, datetime

import pytest

from dataclasses import replace

from cypher_helpers import doubled_string, slow_to_plan
from graph import Gateway, Neo4jTarget
from graph.errors import CypherFailed, CypherRefused, InvalidInput, QueryTimeout
from graph.guard import (
    BUILT_IN_FUNCTION_NAMESPACES,
    DEFAULT_MAX_BYTES,
    called_functions,
    check_read_only,
    run_read_only,
)

# A small recorded history in the test's space, written as kgmem writes it (docs/schema.md).
SEED = """
CREATE (p:Entity:Project {id: randomUUID(), space: $space, kind: 'Project', entity_type: 'Project',
                          name: 'Churn', name_key: 'churn', status: 'active',
                          created_at: datetime('2025-03-01T09:00:00Z'), updated_at: datetime('2025-03-01T09:00:00Z')})
CREATE (a:Entity:Agent {id: randomUUID(), space: $space, kind: 'Agent', entity_type: 'Agent',
                        name: 'ds-1', name_key: 'ds-1', role: 'data-scientist',
                        created_at: datetime('2025-03-01T09:00:00Z'), updated_at: datetime('2025-03-01T09:00:00Z')})
CREATE (b:Entity:Agent {id: randomUUID(), space: $space, kind: 'Agent', entity_type: 'Agent',
                        name: 'mle-1', name_key: 'mle-1', role: 'ml-engineer',
                        created_at: datetime('2025-03-01T09:00:00Z'), updated_at: datetime('2025-03-01T09:00:00Z')})
CREATE (d1:Entity:Delegation {id: randomUUID(), space: $space, kind: 'Delegation', entity_type: 'Delegation',
                              name: 'train churn v2', name_key: 'train churn v2', task_type: 'train',
                              status: 'succeeded', created_at: datetime('2025-03-03T10:00:00Z'),
                              updated_at: datetime('2025-03-03T10:00:00Z')})
CREATE (d2:Entity:Delegation {id: randomUUID(), space: $space, kind: 'Delegation', entity_type: 'Delegation',
                              name: 'deploy churn v2', name_key: 'deploy churn v2', task_type: 'deploy',
                              status: 'failed', failure_cause: 'timeout', created_at: datetime('2025-03-04T10:00:00Z'),
                              updated_at: datetime('2025-03-04T10:00:00Z')})
CREATE (l:Entity:Lesson {id: randomUUID(), space: $space, kind: 'Lesson', entity_type: 'Lesson',
                         name: 'Set deploy timeouts', name_key: 'set deploy timeouts', severity: 'high',
                         created_at: datetime('2025-03-05T10:00:00Z'), updated_at: datetime('2025-03-05T10:00:00Z')})
CREATE (e1:Entity:Experiment {id: randomUUID(), space: $space, kind: 'Experiment', entity_type: 'Experiment',
                              name: 'exp-a', name_key: 'exp-a', metric_auc: 0.81,
                              created_at: datetime('2025-03-02T10:00:00Z'), updated_at: datetime('2025-03-02T10:00:00Z')})
CREATE (e2:Entity:Experiment {id: randomUUID(), space: $space, kind: 'Experiment', entity_type: 'Experiment',
                              name: 'exp-b', name_key: 'exp-b', metric_auc: 0.86,
                              created_at: datetime('2025-03-02T11:00:00Z'), updated_at: datetime('2025-03-02T11:00:00Z')})
CREATE (o:Observation {id: randomUUID(), space: $space, text: 'Retraining on the March snapshot doubled recall',
                       valid_from: datetime('2025-03-03T12:00:00Z'), recorded_at: datetime('2025-03-03T12:00:00Z')})
CREATE (p)-[:HAS_OBSERVATION]->(o)
WITH *, {space: $space, recorded_at: datetime('2025-03-01T09:00:00Z')} AS rel
CREATE (d1)-[r1:DELEGATED_TO]->(a) SET r1 += rel, r1.id = randomUUID(), r1.valid_from = datetime('2025-03-03T10:00:00Z')
CREATE (d2)-[r2:DELEGATED_TO]->(a) SET r2 += rel, r2.id = randomUUID(), r2.valid_from = datetime('2025-03-04T10:00:00Z'),
                                        r2.valid_to = datetime('2025-03-04T12:00:00Z')
CREATE (d2)-[r3:DELEGATED_TO]->(b) SET r3 += rel, r3.id = randomUUID(), r3.valid_from = datetime('2025-03-04T12:00:00Z')
CREATE (d1)-[r4:PART_OF]->(p) SET r4 += rel, r4.id = randomUUID(), r4.valid_from = datetime('2025-03-03T10:00:00Z')
CREATE (d2)-[r5:PART_OF]->(p) SET r5 += rel, r5.id = randomUUID(), r5.valid_from = datetime('2025-03-04T10:00:00Z')
CREATE (l)-[r6:LEARNED_FROM]->(d2) SET r6 += rel, r6.id = randomUUID(), r6.valid_from = datetime('2025-03-05T10:00:00Z')
CREATE (l)-[r7:APPLIES_TO]->(p) SET r7 += rel, r7.id = randomUUID(), r7.valid_from = datetime('2025-03-05T10:00:00Z')
"""


@pytest.fixture
def seeded(gateway, space):
    gateway.write(SEED, space=space)
    return space


@pytest.fixture(scope="module")
def system_gateway(neo4j_server):
    """The same server's system database, where users live (SHOW USERS runs only there)."""
    opened = Gateway.to(replace(neo4j_server, database="system"))
    yield opened
    opened.close()


@pytest.fixture
def snapshot(gateway, system_gateway):
    return lambda space: take_snapshot(gateway, system_gateway, space)


def take_snapshot(gateway, system_gateway, space: str) -> dict:
    """What a hostile query could have changed: data, schema, tokens, users."""
    def scalar(query: str, **params):
        (value,) = gateway.rows(query, **params)[0].values()
        return value

    return {
        "space_nodes": scalar("MATCH (n {space: $space}) RETURN count(n)", space=space),
        "space_relationships": scalar("MATCH ({space: $space})-[r]->() RETURN count(r)", space=space),
        "space_properties": scalar(
            "MATCH (n {space: $space}) RETURN collect(n.name + ':' + toString(size(keys(n))))", space=space
        ),
        "all_nodes": scalar("MATCH (n) RETURN count(n)"),
        "marked": scalar("MATCH (n) WHERE n:Hostile OR n.pwned IS NOT NULL RETURN count(n)"),
        "indexes": scalar("SHOW INDEXES YIELD name RETURN collect(name)"),
        "constraints": scalar("SHOW CONSTRAINTS YIELD name RETURN collect(name)"),
        "labels": scalar("CALL db.labels() YIELD label RETURN collect(label)"),
        "users": system_gateway.rows("SHOW USERS YIELD user RETURN collect(user) AS users")[0]["users"],
    }


# (query, what the refusal must name)
HOSTILE = [
    # writes
    ("CREATE (n:Hostile {space: $space}) RETURN n", "writes"),
    ("MERGE (n:Hostile {space: $space}) RETURN n", "writes"),
    ("MATCH (n:Entity {space: $space}) SET n.pwned = true RETURN count(n)", "writes"),
    ("MATCH (n:Entity {space: $space}) SET n:Hostile", "writes"),
    ("MATCH (n:Entity {space: $space}) WHERE n:Lesson DELETE n", "writes"),
    ("MATCH (n:Entity {space: $space}) DETACH DELETE n", "writes"),
    ("MATCH (n:Entity {space: $space}) REMOVE n.name RETURN n", "writes"),
    ("MATCH (n:Entity {space: $space}) FOREACH (x IN [1] | SET n.pwned = x)", "writes"),
    ("MATCH (a:Agent {space: $space}), (b:Project {space: $space}) CREATE (a)-[:PWNED]->(b)", "writes"),
    # writes hidden in a subquery or after a UNION
    ("MATCH (n:Entity {space: $space}) CALL (n) { SET n.pwned = true } RETURN count(*) AS c", "writes"),
    ("MATCH (n:Project {space: $space}) RETURN n.name AS name "
     "UNION MATCH (m:Entity {space: $space}) SET m.pwned = true RETURN m.name AS name", "writes"),
    ("MATCH (n:Entity {space: $space}) CALL (n) { SET n.pwned = true } IN TRANSACTIONS RETURN count(*) AS c",
     "writes"),
    ("CALL () { MATCH (n:Entity {space: $space}) RETURN n } IN TRANSACTIONS RETURN count(n) AS c", "IN TRANSACTIONS"),
    # schema
    ("CREATE INDEX hostile_index FOR (n:Hostile) ON (n.x)", "schema"),
    ("CREATE FULLTEXT INDEX hostile_text FOR (n:Hostile) ON EACH [n.x]", "schema"),
    ("DROP INDEX hostile_index IF EXISTS", "schema"),
    ("CREATE CONSTRAINT hostile_unique FOR (n:Hostile) REQUIRE n.x IS UNIQUE", "schema"),
    ("DROP CONSTRAINT hostile_unique IF EXISTS", "schema"),
    # LOAD CSV, in every disguise
    ("LOAD CSV FROM 'file:///etc/passwd' AS line RETURN line", "LOAD CSV"),
    ("LOAD CSV WITH HEADERS FROM 'https://example.com/users.csv' AS row RETURN row.name", "LOAD CSV"),
    ("LOAD CSV FROM $url AS line RETURN count(line) AS lines", "LOAD CSV"),
    ("CALL () { LOAD CSV FROM 'file:///etc/hosts' AS line RETURN line } RETURN line", "LOAD CSV"),
    ("MATCH (n:Project {space: $space}) RETURN n.name AS x "
     "UNION ALL LOAD CSV FROM 'file:///etc/passwd' AS l RETURN l[0] AS x", "LOAD CSV"),
    # procedures that write, administer, or are not on the allow-list
    ("CALL db.createLabel('Hostile')", "writes"),
    ("CALL db.createProperty('pwned')", "writes"),
    ("CALL db.createRelationshipType('PWNED')", "writes"),
    ("CALL dbms.components()", "DBMS procedure"),
    ("CALL dbms.listConfig()", "DBMS procedure"),
    ("CALL dbms.listConnections()", "DBMS procedure"),
    ("CALL dbms.setConfigValue('db.logs.query.enabled', 'OFF')", "dbms.setConfigValue"),
    ("CALL dbms.security.createUser('mallory', 'secret-password', false)", "dbms.security.createUser"),
    ("CALL db.clearQueryCaches()", "DBMS procedure"),
    ("CALL db.awaitIndexes(5)", "procedure db.awaitIndexes is not allowed"),
    ("CALL db.prepareForReplanning()", "procedure db.prepareForReplanning is not allowed"),
    ("CALL db.stats.collect('QUERIES')", "procedure db.stats.collect is not allowed"),
    # APOC: reaches files and the network (not installed here: Neo4j cannot even plan it)
    ("CALL apoc.load.json('https://example.com/x.json') YIELD value RETURN value", "apoc.load.json"),
    ("CALL apoc.import.csv([{fileName: 'file:///x.csv', labels: ['Hostile']}], [], {})", "apoc.import.csv"),
    ("CALL apoc.export.csv.all('/tmp/everything.csv', {})", "apoc.export.csv.all"),
    ("CALL apoc.cypher.runWrite('CREATE (n:Hostile)', {})", "apoc.cypher.runWrite"),
    ("CALL apoc.cypher.run('MATCH (n) DETACH DELETE n', {}) YIELD value RETURN value", "apoc.cypher.run"),
    ("RETURN apoc.static.get('secret') AS secret", "apoc.static.get"),
    # administration
    ("CREATE USER mallory SET PASSWORD 'secret-password'", "administers"),
    ("ALTER USER mallory SET PASSWORD 'secret-password'", "administers"),
    ("SHOW USERS", "administers"),
    ("SHOW CURRENT USER", "administers"),
    ("SHOW DATABASES", "administers"),
    ("GRANT ROLE admin TO mallory", "administration commands"),
    ("CREATE DATABASE hostile", "administration commands"),
    ("STOP DATABASE hostile", "administration commands"),
    ("USE system SHOW USERS", "USE"),
    ("USE system MATCH (n) RETURN n", "system database"),
    ("SHOW TRANSACTIONS", "SHOW TRANSACTIONS"),
    ("TERMINATE TRANSACTIONS 'neo4j-transaction-1'", "TERMINATE TRANSACTIONS"),
    ("SHOW SETTINGS", "SHOW SETTINGS"),
    # not one well-formed query
    ("MATCH (n RETURN n", "invalid query"),
    ("MATCH (n:Entity) RETURN n; MATCH (m) DETACH DELETE m", "invalid query"),
    ("PROFILE MATCH (n:Entity) RETURN n", "invalid query"),
    ("   ", "empty"),
]


@pytest.mark.parametrize(("query", "reason"), HOSTILE, ids=[query[:60] for query, _ in HOSTILE])
def test_hostile_query_is_refused_and_changes_nothing(gateway, snapshot, seeded, query, reason):
    before = snapshot(seeded)
    with pytest.raises(CypherRefused) as refusal:
        run_read_only(gateway, query, {"space": seeded, "url": "file:///etc/passwd"})
    message = str(refusal.value)
    assert message.startswith(("refused: ", "invalid query: ")), message
    assert reason in message
    assert "\n" not in message
    assert snapshot(seeded) == before


# Queries that would read kgmem's own bookkeeping nodes: API keys (with their hashes) and the API's records.
BOOKKEEPING = [
    ("MATCH (k:ApiKey) RETURN k.hash AS hash", "ApiKey"),
    ("MATCH (k:`ApiKey`) RETURN properties(k) AS p", "ApiKey"),
    ("MATCH (k:ApiKey) RETURN count(k) AS n", "ApiKey"),
    ("MATCH (n:Entity|ApiKey) RETURN n", "ApiKey"),
    ("MATCH (n:Entity) WHERE n:ApiKey OR n:Project RETURN n", "ApiKey"),
    ("MATCH (p:Project {space: $space}) MATCH (k:ApiKey) RETURN p, k", "ApiKey"),
    ("MATCH (r:IdempotencyRecord) RETURN r", "IdempotencyRecord"),
    ("MATCH (j:ApiJob) RETURN j", "ApiJob"),
    ("MATCH (n) RETURN n", "unlabelled node pattern"),
    ("MATCH (n) WHERE n.hash IS NOT NULL RETURN n.hash AS hash", "unlabelled node pattern"),
    ("MATCH (n) WHERE 'ApiKey' IN labels(n) RETURN n", "unlabelled node pattern"),
    ("MATCH (p:Project {space: $space}) MATCH (n) WHERE n.key_id IS NOT NULL RETURN n", "unlabelled node pattern"),
    ("RETURN COLLECT { MATCH (n) RETURN n.hash } AS hashes", "unlabelled node pattern"),
    ("MATCH (n) WHERE id(n) = 0 RETURN n", "internal id"),
    ("MATCH (n) WHERE elementId(n) = '4:x:0' RETURN n", "element id"),
]


@pytest.mark.parametrize(("query", "reason"), BOOKKEEPING, ids=[query[:60] for query, _ in BOOKKEEPING])
def test_bookkeeping_nodes_are_out_of_reach(gateway, seeded, query, reason):
    gateway.write("CREATE CONSTRAINT api_key_id IF NOT EXISTS FOR (k:ApiKey) REQUIRE k.key_id IS UNIQUE")
    with pytest.raises(CypherRefused) as refusal:
        run_read_only(gateway, query, {"space": seeded})
    assert reason in str(refusal.value)


def test_labelled_reads_and_counting_all_nodes_stay_allowed(gateway, seeded):
    assert run_read_only(gateway, "MATCH (n) RETURN count(n) AS n").rows[0]["n"] >= 1
    rows = run_read_only(gateway, "MATCH (a:Entity {space: $space})-[r]->(b) RETURN DISTINCT labels(b) AS l",
                         {"space": seeded}).rows
    assert rows and all("ApiKey" not in row["l"] for row in rows)


def test_the_hostile_corpus_is_big_enough():
    assert len(HOSTILE) >= 30


# (query, params besides space, expected rows) over SEED
ANALYST_QUERIES = [
    ("MATCH (e:Entity {space: $space}) WHERE e.retracted_at IS NULL "
     "RETURN e.kind AS kind, count(*) AS n ORDER BY kind", {},
     [{"kind": "Agent", "n": 2}, {"kind": "Delegation", "n": 2}, {"kind": "Experiment", "n": 2},
      {"kind": "Lesson", "n": 1}, {"kind": "Project", "n": 1}]),
    # the example from docs/schema.md
    ("MATCH (p:Project {space: $space}) "
     "OPTIONAL MATCH (l:Lesson)-[r:APPLIES_TO]->(p) WHERE r.valid_to IS NULL AND r.retracted_at IS NULL "
     "RETURN p.name AS project, count(l) AS lessons ORDER BY lessons DESC", {},
     [{"project": "Churn", "lessons": 1}]),
    ("MATCH (d:Delegation {space: $space})-[r:DELEGATED_TO]->(a:Agent) "
     "WHERE r.valid_to IS NULL AND r.retracted_at IS NULL "
     "RETURN a.name AS agent, d.status AS status ORDER BY agent", {},
     [{"agent": "ds-1", "status": "succeeded"}, {"agent": "mle-1", "status": "failed"}]),
    # who held the deploy before it was handed over: the graph as of a time
    ("MATCH (d:Delegation {space: $space, name: 'deploy churn v2'})-[r:DELEGATED_TO]->(a:Agent) "
     "WHERE r.valid_from <= $at AND (r.valid_to IS NULL OR r.valid_to > $at) "
     "RETURN a.name AS agent", {"at": datetime(2025, 3, 4, 11, tzinfo=UTC)},
     [{"agent": "ds-1"}]),
    ("MATCH (d:Delegation {space: $space}) WHERE d.status = 'failed' "
     "RETURN d.failure_cause AS cause, count(*) AS failures ORDER BY failures DESC", {},
     [{"cause": "timeout", "failures": 1}]),
    ("MATCH (e:Experiment {space: $space}) WHERE e.metric_auc > $threshold "
     "RETURN e.name AS experiment, e.metric_auc AS auc ORDER BY auc DESC", {"threshold": 0.8},
     [{"experiment": "exp-b", "auc": 0.86}, {"experiment": "exp-a", "auc": 0.81}]),
    ("MATCH (d:Delegation {space: $space}) "
     "RETURN date.truncate('week', d.created_at) AS week, count(*) AS delegations", {},
     [{"week": "2025-03-03", "delegations": 2}]),
    ("MATCH (a:Agent {space: $space}) WHERE NOT EXISTS { "
     "MATCH (d:Delegation {status: 'failed'})-[r:DELEGATED_TO]->(a) WHERE r.valid_to IS NULL } "
     "RETURN a.name AS agent", {},
     [{"agent": "ds-1"}]),
    ("MATCH (l:Lesson {space: $space})-[:LEARNED_FROM]->(d:Delegation)-[:PART_OF]->(p:Project) "
     "RETURN l.name AS lesson, d.name AS delegation, p.name AS project", {},
     [{"lesson": "Set deploy timeouts", "delegation": "deploy churn v2", "project": "Churn"}]),
    ("MATCH (e:Entity {space: $space})-[:HAS_OBSERVATION]->(o:Observation) "
     "WHERE o.valid_to IS NULL AND o.retracted_at IS NULL AND toLower(o.text) CONTAINS $word "
     "RETURN e.name AS entity, o.text AS text", {"word": "recall"},
     [{"entity": "Churn", "text": "Retraining on the March snapshot doubled recall"}]),
    ("MATCH (a:Agent {space: $space}) RETURN a.role AS role, COUNT { (a)<-[:DELEGATED_TO]-() } AS handled "
     "ORDER BY role", {},
     [{"role": "data-scientist", "handled": 2}, {"role": "ml-engineer", "handled": 1}]),
    ("CALL db.labels() YIELD label WHERE label IN ['Delegation', 'Lesson'] RETURN label ORDER BY label", {},
     [{"label": "Delegation"}, {"label": "Lesson"}]),
    ("CALL db.relationshipTypes() YIELD relationshipType WHERE relationshipType = 'LEARNED_FROM' "
     "RETURN relationshipType", {},
     [{"relationshipType": "LEARNED_FROM"}]),
    ("SHOW INDEXES YIELD type WHERE type = 'LOOKUP' RETURN count(*) > 0 AS has_lookup_indexes", {},
     [{"has_lookup_indexes": True}]),
    ("CYPHER runtime=slotted MATCH (p:Project {space: $space}) RETURN p.name AS name, "
     "vector.similarity.cosine([1.0, 0.0], [1.0, 0.0]) AS same", {},
     [{"name": "Churn", "same": 1.0}]),
]


@pytest.mark.parametrize(("query", "params", "expected"), ANALYST_QUERIES,
                         ids=[query[:60] for query, _, _ in ANALYST_QUERIES])
def test_analyst_query_runs_and_answers(gateway, snapshot, seeded, query, params, expected):
    before = snapshot(seeded)
    result = run_read_only(gateway, query, {"space": seeded, **params})
    assert result.rows == expected
    assert result.columns == list(expected[0])
    assert result.truncated is False
    assert result.elapsed_ms > 0
    assert snapshot(seeded) == before


def test_there_are_enough_analyst_queries():
    assert len(ANALYST_QUERIES) >= 10


def test_check_read_only_reports_the_plan(gateway):
    explained = check_read_only(gateway, "SHOW INDEXES YIELD name RETURN name")
    assert explained.query_type == "r"
    assert "ShowIndexes@neo4j" in explained.operators


def test_row_cap_truncates_and_says_so(gateway):
    result = run_read_only(gateway, "UNWIND range(1, 2500) AS i RETURN i", max_rows=1000)
    assert result.truncated is True
    assert len(result.rows) == 1000
    assert result.rows[-1] == {"i": 1000}


def test_a_result_exactly_at_the_cap_is_not_truncated(gateway):
    result = run_read_only(gateway, "UNWIND range(1, 25) AS i RETURN i", max_rows=25)
    assert result.truncated is False
    assert len(result.rows) == 25


@pytest.mark.parametrize(("timeout_s", "max_rows", "max_bytes"), [(0, 10, 100), (-1, 10, 100), (1, 0, 100),
                                                                   (1, 10, 0)])
def test_limits_cannot_be_switched_off(gateway, timeout_s, max_rows, max_bytes):
    with pytest.raises(InvalidInput):
        run_read_only(gateway, "RETURN 1 AS one", timeout_s=timeout_s, max_rows=max_rows, max_bytes=max_bytes)


def test_a_long_query_is_stopped_at_its_timeout(gateway):
    started = time.monotonic()
    with pytest.raises(QueryTimeout, match="longer than its 1 s time limit"):
        run_read_only(
            gateway,
            "UNWIND range(1, 100000) AS a UNWIND range(1, 100000) AS b RETURN count(*) AS pairs",
            timeout_s=1,
        )
    assert time.monotonic() - started < 15


def test_planning_is_stopped_at_the_same_time_limit(gateway):
    """The time limit covers planning: 60 patterns keep the planner busy for half a minute, not 1 s."""
    started = time.monotonic()
    with pytest.raises(QueryTimeout, match="still planning the query at its 1 s time limit"):
        run_read_only(gateway, slow_to_plan(), timeout_s=1)
    assert time.monotonic() - started < 10


def test_the_answer_stops_at_its_size_cap_and_says_so(gateway):
    result = run_read_only(gateway, doubled_string(20, rows=40))  # 40 rows of 1 MiB
    assert result.truncated is True
    assert result.truncated_by == "max_bytes"
    assert 0 < len(result.rows) < 40
    assert len(result.model_dump_json().encode()) <= DEFAULT_MAX_BYTES + 1024


def test_the_row_cap_says_it_was_the_row_cap(gateway):
    result = run_read_only(gateway, "UNWIND range(1, 20) AS i RETURN i", max_rows=10)
    assert (result.truncated, result.truncated_by) == (True, "max_rows")
    assert run_read_only(gateway, "RETURN 1 AS one").truncated_by is None


def test_a_first_row_over_the_size_cap_is_refused_in_words(gateway):
    with pytest.raises(CypherFailed, match="first row alone is over the answer's 1 MiB size cap"):
        run_read_only(gateway, doubled_string(21), max_bytes=1024 * 1024)


def test_a_query_past_the_transaction_memory_limit_fails_alone(managed_neo4j):
    """The managed Neo4j's db.memory.transaction.max stops a query that collects too much; the analyst
    hears why (not 'retry later'), and Neo4j goes on serving."""
    uri, (user, password) = managed_neo4j.connection()
    local = Gateway.to(Neo4jTarget(uri, user, password, "neo4j"))
    collect_too_much = "UNWIND range(1, 3000000) AS i WITH collect(toString(i) + 'abcdefghij') AS c RETURN size(c)"
    try:
        with pytest.raises(CypherFailed, match="ran out of memory.*db.memory.transaction.max threshold"):
            run_read_only(local, collect_too_much, timeout_s=60)
        assert local.rows("RETURN 1 AS one") == [{"one": 1}]
    finally:
        local.close()


def test_a_runtime_error_is_one_clear_line(gateway):
    with pytest.raises(CypherFailed, match=r"^Neo4j stopped the query: / by zero$"):
        run_read_only(gateway, "UNWIND [1, 0] AS d RETURN 1 / d AS x")


def test_syntax_errors_point_into_the_analysts_own_text(gateway):
    with pytest.raises(CypherRefused) as refusal:
        run_read_only(gateway, "MATCH (n)\nRETURN n ORDER")
    assert str(refusal.value).startswith("invalid query: ")
    assert "(line 2, column 15 (offset: 24))" in str(refusal.value)


def test_parameters_stay_values_never_cypher(gateway, snapshot, seeded):
    query = "MATCH (e:Entity {space: $space}) WHERE e.name = $name RETURN count(e) AS n"
    before = snapshot(seeded)
    injected = "x' OR 1=1 WITH e DETACH DELETE e //"
    assert run_read_only(gateway, query, {"space": seeded, "name": injected}).rows == [{"n": 0}]
    assert run_read_only(gateway, query, {"space": seeded, "name": "Churn"}).rows == [{"n": 1}]
    assert run_read_only(gateway, "RETURN $text AS text", {"text": injected}).rows == [{"text": injected}]
    assert snapshot(seeded) == before


def test_graph_and_temporal_values_become_plain_json(gateway, seeded):
    result = run_read_only(
        gateway,
        "MATCH p = (d:Delegation {space: $space, name: 'train churn v2'})-[r:DELEGATED_TO]->(a:Agent) "
        "RETURN d, r, a, p, d.created_at AS created, date('2025-03-03') AS day, time('10:15:00Z') AS at, "
        "duration('P1DT2H') AS span, point({x: 1.5, y: 2.0}) AS spot, $blob AS blob",
        {"space": seeded, "blob": b"\x00\x01kg"},
    )
    row = result.rows[0]
    json.dumps(result.model_dump())  # raises on anything that is not plain JSON
    delegation, relation, agent, path = row["d"], row["r"], row["a"], row["p"]
    assert delegation["labels"] == ["Delegation", "Entity"]
    assert delegation["properties"]["name"] == "train churn v2"
    assert delegation["properties"]["created_at"] == "2025-03-03T10:00:00.000000000+00:00"
    assert relation["type"] == "DELEGATED_TO"
    assert (relation["start"], relation["end"]) == (delegation["element_id"], agent["element_id"])
    assert relation["properties"]["valid_from"] == "2025-03-03T10:00:00.000000000+00:00"
    assert [node["properties"]["name"] for node in path["nodes"]] == ["train churn v2", "ds-1"]
    assert [rel["element_id"] for rel in path["relationships"]] == [relation["element_id"]]
    assert row["created"] == "2025-03-03T10:00:00.000000000+00:00"
    assert row["day"] == "2025-03-03"
    assert row["at"] == "10:15:00.000000000+00:00"
    assert row["span"] == "P1DT2H"
    assert row["spot"] == {"srid": 7203, "coordinates": [1.5, 2.0]}
    assert row["blob"] == "AAFrZw=="


def test_the_function_scan_sees_namespaced_calls_in_real_plans(gateway):
    """The plugin-function check reads the plan's Details; make sure calls show up there."""
    plan = gateway.explain(
        "RETURN date.truncate('week', datetime()) AS week, "
        "vector.similarity.cosine([1.0], [1.0]) AS same, toUpper('x') AS up"
    ).plan
    details = " ".join(str(operator["args"].get("Details", "")) for operator in [plan, *plan["children"]])
    assert called_functions(details) == {"date", "vector"}
    assert called_functions(details) <= BUILT_IN_FUNCTION_NAMESPACES

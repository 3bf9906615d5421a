"""Forget with a receipt: after a forget, the receipt counts what went, and a scan of every store
(every Neo4j node and relationship of the space, every stored answer and job, every Chroma collection,
mem0's history database) finds neither the forgotten strings nor the forgotten ids."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import time

import pytest
from cli_helpers import KGMEM, assert_one_error_line

from agents.briefs import BriefRequest
from agents.outcomes import OutcomeRequest
from graph.model import EntityIn, EntityRef, ObservationIn, Provenance, RelationIn
from graph.vocabulary import Kind
from memory.free_text import history_db_path

NAME = "Quillondra Vex"
LONG = " ".join(f"Quillondra Vex reviewed shard {n} of the Atlas ledger and signed it off." for n in range(80))


def scan(live_api, space: str, needles: list[str]) -> list[str]:
    """Where any needle (case-insensitive) is still found: one line per hit, naming the store."""
    wanted = [n.lower() for n in needles]
    texts: list[tuple[str, str]] = []
    gateway = live_api.gateway
    for row in gateway.rows("MATCH (n {space: $space}) RETURN labels(n) AS labels, properties(n) AS props",
                            space=space):
        texts.append((f"neo4j node {row['labels']}", json.dumps(row["props"], default=str)))
    for row in gateway.rows("MATCH ()-[r]->() WHERE r.space = $space RETURN type(r) AS type, properties(r) AS props",
                            space=space):
        texts.append((f"neo4j relationship {row['type']}", json.dumps(row["props"], default=str)))
    for row in gateway.rows("MATCH (n) WHERE n:IdempotencyRecord OR n:ApiJob RETURN labels(n) AS labels, "
                            "properties(n) AS props"):
        texts.append((f"neo4j {row['labels']}", json.dumps(row["props"], default=str)))
    chroma = live_api.app.state.services.chroma()
    for collection in chroma.list_collections():
        got = chroma.get_collection(collection.name).get(include=["documents", "metadatas"])
        for vector_id, document, metadata in zip(got["ids"], got["documents"], got["metadatas"]):
            texts.append((f"chroma {collection.name}", json.dumps([vector_id, document, metadata], default=str)))
    history = history_db_path(live_api.settings)
    with sqlite3.connect(history if history.exists() else ":memory:") as db:  # none until mem0 is first used
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            for row in db.execute(f"SELECT * FROM {table}"):  # table names from sqlite_master
                texts.append((f"mem0 history.db {table}", json.dumps(row, default=str)))
    return [f"{where}: {needle!r} in {text[:300]}" for where, text in texts for needle in wanted if needle in text.lower()]


def forget(live_api, space: str, token: str, body: dict) -> dict:
    with live_api.http(token) as http:
        answer = http.post(f"/v1/spaces/{space}/forget", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture
def admin(live_api, space):
    return live_api.token([space])


def test_forgetting_an_entity_leaves_no_trace_in_any_store(live_api, space, admin):
    with live_api.client(space, token=admin) as kg:
        (person,) = kg.upsert_entities([EntityIn(kind=Kind.PERSON, name=NAME, summary="joined in May")],
                                       idempotency_key="seed-person-1")  # the stored answer holds the name
        kg.upsert_entities([EntityIn(kind=Kind.PERSON, name=NAME, summary="leads the Atlas audit")])  # a revision
        kg.upsert_entities([EntityIn(kind=Kind.PROJECT, name="Atlas"), EntityIn(kind=Kind.PERSON, name="Ben Ode")])
        own = kg.add_observations([
            ObservationIn(entity=EntityRef(id=person.id), text="Prefers written reviews over meetings"),
            ObservationIn(entity=EntityRef(id=person.id), text=LONG),  # several passages
        ])
        chat = kg.add_observations([  # a conversation: each turn gets a window vector with its neighbours
            ObservationIn(entity=EntityRef(name=speaker, kind=Kind.PERSON), text=text, seq=seq,
                          provenance=Provenance(source="standup-12"))
            for seq, (speaker, text) in enumerate([(NAME, "The ledger export is late again"),
                                                   ("Ben Ode", "I will chase the vendor today"),
                                                   (NAME, "Thanks, ping me when it lands")])])
        (relation,) = kg.upsert_relations([RelationIn(source=EntityRef(id=person.id), type="LEADS_ANALYSIS_FOR",
                                                      target=EntityRef(name="Atlas"))])
        (mention,) = kg.add_observations([ObservationIn(entity=EntityRef(name="Atlas"),
                                                        text=f"{NAME} signed off the Atlas budget")])
        memory = kg.add_memory(f"{NAME} likes the standup short", user_id="alice", infer=False).results[0]
        kept = kg.add_observations([ObservationIn(entity=EntityRef(name="Atlas"), text="The budget is final")])[0]

    services = live_api.app.state.services
    index = services.memory().index
    theirs = [o.id for o in own] + [chat[0].id, chat[2].id]
    vectors = {v for v in index.all_ids(space) if any(i in v for i in [*theirs, person.id, mention.id, memory.id])}
    assert {f"win:{chat[0].id}", f"obs:{own[1].id}#1"} <= vectors  # windows and passages exist to be forgotten
    needles = [NAME, person.id, relation.id, mention.id, memory.id, *theirs]
    assert scan(live_api, space, needles)  # the scan finds what is there

    receipt = forget(live_api, space, admin, {"entity_id": person.id})

    assert receipt["target"] == "entity"
    assert receipt["neo4j"]["entities"] == 2  # the person and the free-text memory that mentioned them
    assert receipt["neo4j"]["observations"] == len(theirs) + 1  # theirs and the mention
    assert receipt["neo4j"]["relations"] >= 2  # LEADS_ANALYSIS_FOR, and the memory's MENTIONS
    assert receipt["neo4j"]["revisions"] >= 3  # the person's two, the memory's one
    assert receipt["chroma_vectors"] >= len(vectors)
    assert receipt["mem0_vectors"] == 1 and receipt["mem0_history_rows"] >= 1
    assert receipt["idempotency_records"] == 1
    assert receipt["audit_events_scrubbed"] >= 5
    assert scan(live_api, space, needles) == []

    # What did not mention them stays, and is still found.
    with live_api.client(space, token=admin) as kg:
        assert [o.text for o in kg.history(kept.entity_id).observations] == ["The budget is final"]
        assert kg.recall("is the budget final?", limit=3).items[0].id == kept.id
    # The forget's own audit event: who, when, what kind, counts, and no content.
    with live_api.http(admin) as http:
        (event,) = http.get(f"/v1/spaces/{space}/audit", params={"operation": "forget"}).json()["items"]
    assert event["id"] == receipt["audit_event_id"] and event["key_id"] == admin.split("_")[1]
    assert event["detail"]["target"] == "entity" and event["detail"]["mem0_vectors"] == 1
    assert event["ids"] and event["ids"][0].startswith("sha256:")


def test_forgetting_a_delegation_takes_its_outcome_and_lessons(live_api, space, admin):
    with live_api.client(space, token=admin) as kg:
        kg.upsert_entities([EntityIn(kind=Kind.PROJECT, name="churn")])
        brief = kg.brief(BriefRequest(task="Retrain the churn model on the March snapshot", project="churn",
                                      delegation_id="d-zx81"))
        kg.record_outcome(OutcomeRequest(
            delegation_id=brief.delegation_id, status="succeeded", agent="ml-ana",
            summary="Retrained on March; recall up four points",
            lessons=[{"text": "Always drop the February duplicates before retraining"}]))
        other = kg.add_observations([ObservationIn(entity=EntityRef(name="churn"), text="Owned by the growth team")])[0]
    written = live_api.gateway.rows(
        "MATCH (n {space: $space}) WHERE NOT n:AuditEvent AND (n.delegation_id = 'd-zx81' OR n.name = 'd-zx81') "
        "RETURN n.id AS id, labels(n) AS labels, n.name AS name", space=space)
    assert scan(live_api, space, ["d-zx81", "February duplicates"])

    receipt = forget(live_api, space, admin, {"delegation_id": "d-zx81"})

    assert receipt["neo4j"]["entities"] >= 2 and receipt["neo4j"]["observations"] >= 1  # delegation, lesson, outcome
    left = {row["id"] for row in live_api.gateway.rows("MATCH (n {space: $space}) RETURN n.id AS id", space=space)}
    gone = [row for row in written if row["id"] not in left]
    # The delegation, its outcome and its lesson are gone; the project and the agent it wrote about stay.
    assert {label for row in gone for label in row["labels"]} >= {"Delegation", "Lesson", "Observation"}
    assert {row["name"] for row in written if row["id"] in left} <= {"churn", "ml-ana"}
    assert scan(live_api, space, ["d-zx81", "February duplicates", "recall up four points",
                                  *(row["id"] for row in gone)]) == []
    with live_api.client(space, token=admin) as kg:
        assert [o.text for o in kg.history(other.entity_id).observations] == ["Owned by the growth team"]


def test_forgetting_an_agent_takes_what_it_wrote_and_clears_it_from_what_others_keep(live_api, space, admin):
    by_agent = Provenance(agent="ds-9")
    with live_api.client(space, token=admin) as kg:
        (agent, scratch, shared) = kg.upsert_entities([
            EntityIn(kind=Kind.AGENT, name="ds-9", attributes={"role": "data-scientist"}),
            EntityIn(kind=Kind.THING, name="scratch table", provenance=by_agent),  # nothing else keeps it
            EntityIn(kind=Kind.DATASET, name="sessions", provenance=by_agent)])
        written = kg.add_observations([ObservationIn(entity=EntityRef(id=shared.id), text="Deduplicated by user",
                                                     provenance=by_agent)])[0]
        kept = kg.add_observations([ObservationIn(entity=EntityRef(id=shared.id), text="Refreshed hourly")])[0]
        mention = kg.add_observations([ObservationIn(entity=EntityRef(id=shared.id),
                                                     text="ds-9 said the backfill is done")])[0]

    receipt = forget(live_api, space, admin, {"agent": "ds-9"})

    assert receipt["neo4j"]["entities"] == 2  # the agent and its scratch table
    assert receipt["neo4j"]["observations"] == 2  # what it wrote, and the mention of it
    assert scan(live_api, space, ["ds-9", agent.id, scratch.id, written.id, mention.id]) == []
    with live_api.client(space, token=admin) as kg:
        sessions = kg.get_entity(shared.id)  # kept: another's observation is on it
        assert sessions.provenance.agent is None
        assert [o.id for o in kg.history(shared.id).observations] == [kept.id]


def test_forgetting_a_source_takes_every_fact_it_provided(live_api, space, admin):
    with live_api.client(space, token=admin) as kg:
        kg.upsert_entities([EntityIn(kind=Kind.DATASET, name="orders")])
        scraped = kg.add_observations([
            ObservationIn(entity=EntityRef(name="orders"), text="Row counts doubled on Friday",
                          provenance=Provenance(source="scraper-x9")),
            ObservationIn(entity=EntityRef(name="refunds", kind=Kind.DATASET), text="Refunds lag by a day",
                          provenance=Provenance(source="scraper-x9"))], create_missing=True)
        kept = kg.add_observations([ObservationIn(entity=EntityRef(name="orders"), text="Owned by finance",
                                                  provenance=Provenance(source="wiki"))])[0]

    receipt = forget(live_api, space, admin, {"source": "scraper-x9"})

    assert receipt["neo4j"]["observations"] == 2
    assert scan(live_api, space, ["scraper-x9", *(o.id for o in scraped)]) == []
    with live_api.client(space, token=admin) as kg:
        assert [o.text for o in kg.history(kept.entity_id).observations] == ["Owned by finance"]


def test_forgetting_a_space_empties_every_store_but_keeps_the_forget_event(live_api, space, admin):
    with live_api.client(space, token=admin) as kg:
        (entity,) = kg.upsert_entities([EntityIn(kind=Kind.PROJECT, name="Osprey")], idempotency_key="osprey-1")
        kg.add_observations([ObservationIn(entity=EntityRef(id=entity.id), text="Osprey ships in June")])
        memory = kg.add_memory("Osprey needs a new owner", user_id="bo", infer=False).results[0]
    with live_api.http(admin) as http:
        export = http.post(f"/v1/spaces/{space}/admin/export").json()
        for _ in range(600):
            job = http.get(f"/v1/spaces/{space}/admin/jobs/{export['id']}").json()
            if job["state"] in ("succeeded", "failed"):
                break
            time.sleep(0.2)
        assert job["state"] == "succeeded", job
        assert http.get(f"/v1/spaces/{space}/admin/exports/{export['id']}").status_code == 200

    receipt = forget(live_api, space, admin, {"all_space": True})

    assert receipt["neo4j"]["entities"] == 2 and receipt["neo4j"]["observations"] == 1
    assert receipt["mem0_vectors"] == 1 and receipt["idempotency_records"] == 1
    assert receipt["job_results"] == 1 and receipt["export_archives"] == 1  # the export job, and its archive
    with live_api.http(admin) as http:
        assert http.get(f"/v1/spaces/{space}/admin/exports/{export['id']}").status_code == 404
    assert scan(live_api, space, ["Osprey", entity.id, memory.id]) == []
    remaining = live_api.gateway.rows("MATCH (n {space: $space}) RETURN labels(n) AS labels, n.operation AS op",
                                      space=space)
    assert remaining == [{"labels": ["AuditEvent"], "op": "forget"}]


def test_the_forget_route_and_command_refuse_what_is_not_one_target(live_api, space, admin):
    with live_api.http(admin) as http:
        two = http.post(f"/v1/spaces/{space}/forget", json={"agent": "a", "source": "b"})
        unknown = http.post(f"/v1/spaces/{space}/forget", json={"entity_id": "no-such-id"})
    with live_api.http(live_api.token([space], ["read", "write"])) as http:
        writer = http.post(f"/v1/spaces/{space}/forget", json={"source": "b"})
    assert two.status_code == 422 and "exactly one" in json.dumps(two.json())
    assert unknown.status_code == 404 and "no-such-id" in unknown.json()["detail"]
    assert writer.status_code == 403 and "admin" in writer.json()["detail"]
    env = {**os.environ, "COLUMNS": "300"}
    refused = subprocess.run([KGMEM, "forget", "--space", space, "--agent", "a", "--source", "b", "--yes"],
                             capture_output=True, text=True, env=env, timeout=300, check=False)
    assert "exactly one of --entity" in assert_one_error_line(refused)


def test_kgmem_forget_asks_first_and_prints_the_receipt(graph, gateway, settings, tmp_path):
    graph.upsert_entities([EntityIn(kind=Kind.PERSON, name="Ysolde Trask")])
    graph.add_observations([ObservationIn(entity=EntityRef(name="Ysolde Trask"), text="Runs the Tuesday review")])
    # The test session's KGMEM_HOME leads the command to its managed Neo4j; Chroma is the test's own.
    env = {**os.environ, "COLUMNS": "300", "KGMEM_CHROMA_PATH": str(tmp_path / "chroma")}

    def kgmem(*args: str, answer: str = "") -> subprocess.CompletedProcess:
        return subprocess.run([KGMEM, "forget", "--space", graph.space, *args], input=answer, capture_output=True,
                              text=True, env=env, timeout=300, check=False)

    declined = kgmem("--entity", "ysolde trask", answer="n\n")
    assert declined.returncode == 1 and "Aborted" in declined.stderr
    assert graph.rows("MATCH (e:Entity {space: $space}) RETURN e.name AS name") == [{"name": "Ysolde Trask"}]

    done = kgmem("--entity", "ysolde trask", "--yes")
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"Neo4j entities\s*│\s*1\s", done.stdout), done.stdout
    assert re.search(r"Neo4j observations\s*│\s*1\s", done.stdout), done.stdout
    rows = gateway.rows("MATCH (n {space: $space}) RETURN labels(n) AS labels, properties(n) AS props", space=graph.space)
    assert [row["labels"] for row in rows if "Ysolde" in json.dumps(row["props"], default=str)] == []
    (event,) = [row["props"] for row in rows if row["props"].get("operation") == "forget"]
    assert event["key_id"] == "cli"

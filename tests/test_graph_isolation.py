"""No operation of one tenant can read or change another tenant's data."""

import inspect
import uuid

import pytest

from graph.errors import InvalidInput, NotFound
from graph.model import EntityIn, EntityRef, ObservationIn, RelationIn
from graph.store import SpaceGraph
from graph.vocabulary import Kind
from graph.writes import SpaceWriter


@pytest.fixture
def tenants(graph_store, space, gateway):
    """Tenant A with a small graph, and an empty tenant B that tries to reach it."""
    a = graph_store.space(space)
    b_name = f"{space}-b"
    b = graph_store.space(b_name)
    a.upsert_entities([EntityIn(kind=Kind.PROJECT, name="Secret Project", aliases=["skunkworks"]),
                       EntityIn(kind=Kind.AGENT, name="spy")])
    a.add_observations([ObservationIn(entity=EntityRef(name="secret project"), text="budget is 2M")])
    a.upsert_relations([RelationIn(source=EntityRef(name="spy"), type="LEADS_ANALYSIS_FOR", target=EntityRef(name="secret project"))])
    yield a, b
    gateway.write("MATCH (n {space: $s}) DETACH DELETE n", s=b_name)


def a_ids(a):
    project = a.find_by_name("Secret Project")[0]
    agent = a.find_by_name("spy")[0]
    observation = a.history(project.id).observations[0]
    return project, agent, observation


def test_reads_cannot_see_another_tenant(tenants):
    a, b = tenants
    project, _, _ = a_ids(a)
    with pytest.raises(NotFound):
        b.get_entity(project.id)
    with pytest.raises(NotFound):
        b.neighbourhood(project.id)
    with pytest.raises(NotFound):
        b.history(project.id)
    assert b.find_by_name("Secret Project") == []
    assert b.find_by_name("skunkworks") == []
    assert b.mentioned_in("what is the budget of the Secret Project and skunkworks?") == []
    assert b.mentioned_ids(["what is the budget of the Secret Project?", "and skunkworks?"]) == [[], []]
    assert a.mentioned_ids(["what is the budget of the Secret Project?", "and skunkworks?"]) == [[project.id]] * 2
    assert b.list_entities().items == []
    assert b.search("secret budget skunkworks") == []


def test_writes_cannot_reach_another_tenant(tenants):
    a, b = tenants
    project, agent, observation = a_ids(a)
    with pytest.raises(NotFound):
        b.add_observations([ObservationIn(entity=EntityRef(id=project.id), text="pwned")])
    with pytest.raises(NotFound):
        b.upsert_relations([RelationIn(source=EntityRef(id=agent.id), type="PART_OF", target=EntityRef(id=project.id))])
    with pytest.raises(NotFound):
        b.retract_relations([RelationIn(source=EntityRef(id=agent.id), type="LEADS_ANALYSIS_FOR", target=EntityRef(id=project.id))])
    with pytest.raises(NotFound):
        b.retract_entity(project.id)
    with pytest.raises(NotFound):
        b.delete_entity(project.id)
    with pytest.raises(NotFound):
        b.purge_entity(project.id)
    assert b.retract_observations([observation.id]) == 0
    assert b.retract_observation_texts(project.id, ["budget is 2M"]) == 0

    # A twin by the same name in B is B's own entity; A's is untouched.
    twin = b.upsert_entities([EntityIn(kind=Kind.PROJECT, name="Secret Project", summary="decoy")])[0]
    assert twin.id != project.id
    after = a.history(project.id)
    assert after.entity.retracted_at is None and after.entity.summary is None
    assert [o.retracted_at for o in after.observations] == [None]
    assert [r.retracted_at for r in after.relations] == [None]


def test_an_id_chosen_by_another_tenant_cannot_be_claimed(tenants):
    a, b = tenants
    project, _, _ = a_ids(a)
    with pytest.raises(InvalidInput, match="already in use"):
        b.upsert_entities([EntityIn(kind=Kind.PROJECT, name=f"other {uuid.uuid4()}", id=project.id)])
    assert a.get_entity(project.id).name == "Secret Project"


SPACE_ENTITY_IDS = "MATCH (e:Entity {space: $space}) RETURN e.id AS id"
AUDIT_EVENTS = "MATCH (e:AuditEvent {space: $space}) RETURN e.id AS id, e.ids AS ids ORDER BY id"


def test_counts_and_rows_are_bound_to_the_tenant(tenants):
    a, b = tenants
    project, agent, _ = a_ids(a)
    assert a.counts() == {"entities": {"Agent": 1, "Project": 1}, "observations": 1,
                          "relations": {"LEADS_ANALYSIS_FOR": 1}}
    assert b.counts() == {"entities": {}, "observations": 0, "relations": {}}
    assert sorted(row["id"] for row in a.rows(SPACE_ENTITY_IDS)) == sorted([project.id, agent.id])
    assert b.rows(SPACE_ENTITY_IDS) == []
    assert b.rows("MATCH (e:Entity {id: $id}) WHERE e.space = $space RETURN e.id AS id", id=project.id) == []


def test_the_write_path_is_bound_to_the_tenant(tenants):
    a, b = tenants
    project, agent, observation = a_ids(a)
    before = a.history(project.id)
    a_audit = a.rows(AUDIT_EVENTS)
    project_ref, agent_ref = EntityRef(id=project.id), EntityRef(id=agent.id)
    # Each of the writer's operations, given A's ids inside B's transaction: not found, or nothing done.
    refused = [
        lambda w: w.add_observations([ObservationIn(entity=project_ref, text="pwned")]),
        lambda w: w.upsert_relations([RelationIn(source=agent_ref, type="PART_OF", target=project_ref)]),
        lambda w: w.retract_relations([RelationIn(source=agent_ref, type="LEADS_ANALYSIS_FOR", target=project_ref)]),
        lambda w: w.retract_entity(project.id),
        lambda w: w.delete_entity(project.id),
    ]
    for work in refused:
        with pytest.raises(NotFound):
            b.write(work)
    with pytest.raises(NotFound):
        b.write_batches([project_ref], lambda w, chunk: w.add_observations(
            [ObservationIn(entity=ref, text="pwned") for ref in chunk]))
    assert b.write(lambda w: w.retract_observations([observation.id])) == 0
    assert b.write(lambda w: w.retract_observation_texts(project.id, ["budget is 2M"])) == 0
    b.write(lambda w: w.delete_observations([observation.id]))
    assert b.write(lambda w: (w.space, w.rows(SPACE_ENTITY_IDS), w.row(SPACE_ENTITY_IDS))) == (b.space, [], None)
    b.write(lambda w: w.run("MATCH (e:Entity {space: $space}) SET e.pwned = true"))
    # Naming A's ids in B's audit event records it in B's trail; A's trail is untouched.
    b.write(lambda w: w.touch("entities", [project.id]))
    b.write(lambda w: w.record_as("forget", ids=[project.id], detail={}, event_id=str(uuid.uuid4())))
    assert a.rows(AUDIT_EVENTS) == a_audit
    assert {row["space"] for row in b.rows("MATCH (e:AuditEvent {space: $space}) RETURN e.space AS space")} == {b.space}

    # What B writes through its writer is B's own; A's entity is untouched.
    (twin,) = b.write(lambda w: w.upsert_entities([EntityIn(kind=Kind.PROJECT, name="Secret Project",
                                                            summary="decoy")]))
    (batched,) = b.write_batches([EntityIn(kind=Kind.AGENT, name="spy")], lambda w, chunk: w.upsert_entities(chunk))
    assert twin["id"] != project.id and twin["space"] == b.space
    assert batched["id"] != agent.id and batched["space"] == b.space
    after = a.history(project.id)
    assert after.entity == before.entity and after.entity.summary is None
    assert after.observations == before.observations and after.relations == before.relations
    assert a.get_entity(agent.id).attributes.get("pwned") is None


COVERED = {
    "get_entity", "neighbourhood", "history", "find_by_name", "mentioned_in", "mentioned_ids", "list_entities",
    "search",
    "add_observations", "upsert_relations", "retract_relations", "retract_entity", "delete_entity", "purge_entity",
    "retract_observations", "retract_observation_texts", "upsert_entities",
    "counts", "rows", "write", "write_batches",
}


WRITER_COVERED = {
    "add_observations", "upsert_relations", "retract_relations", "retract_entity", "delete_entity",
    "retract_observations", "retract_observation_texts", "delete_observations", "upsert_entities",
    "rows", "row", "run", "touch", "record_as",
}


def test_every_public_operation_is_covered_above():
    public = {name for name, _ in inspect.getmembers(SpaceGraph, inspect.isfunction) if not name.startswith("_")}
    assert public - COVERED == set(), "add an isolation case for each new operation"
    writer = {name for name, _ in inspect.getmembers(SpaceWriter, inspect.isfunction) if not name.startswith("_")}
    assert writer - WRITER_COVERED == set(), "add an isolation case for each new writer operation"

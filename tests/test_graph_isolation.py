"""No operation of one tenant can read or change another tenant's data."""

import inspect
import uuid

import pytest

from graph.errors import InvalidInput, NotFound
from graph.model import EntityIn, EntityRef, ObservationIn, RelationIn
from graph.store import SpaceGraph
from graph.vocabulary import Kind


@pytest.fixture
def tenants(graph_store, space, neo4j_driver):
    """Tenant A with a small graph, and an empty tenant B that tries to reach it."""
    a = graph_store.space(space)
    b_name = f"{space}-b"
    b = graph_store.space(b_name)
    a.upsert_entities([EntityIn(kind=Kind.PROJECT, name="Secret Project", aliases=["skunkworks"]),
                       EntityIn(kind=Kind.AGENT, name="spy")])
    a.add_observations([ObservationIn(entity=EntityRef(name="secret project"), text="budget is 2M")])
    a.upsert_relations([RelationIn(source=EntityRef(name="spy"), type="LEADS_ANALYSIS_FOR", target=EntityRef(name="secret project"))])
    yield a, b
    neo4j_driver.execute_query("MATCH (n {space: $s}) DETACH DELETE n", s=b_name)


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


COVERED = {
    "get_entity", "neighbourhood", "history", "find_by_name", "mentioned_in", "list_entities", "search",
    "add_observations", "upsert_relations", "retract_relations", "retract_entity", "delete_entity", "purge_entity",
    "retract_observations", "retract_observation_texts", "upsert_entities",
}


def test_every_public_operation_is_covered_above():
    public = {name for name, _ in inspect.getmembers(SpaceGraph, inspect.isfunction) if not name.startswith("_")}
    assert public - COVERED == set(), "add an isolation case for each new operation"

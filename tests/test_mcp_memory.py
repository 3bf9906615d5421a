"""The reference MCP memory server's nine tools on kgmem's graph, against a real Neo4j.

Each test states one behaviour of `@modelcontextprotocol/server-memory` (or of its
mapping onto kgmem) and checks it through the public API, and where it matters
in the stored graph itself.
"""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from graph.errors import InvalidInput, NotFound
from graph.mcp_memory import KnowledgeGraph, McpMemory, McpRelation
from graph.store import GraphStore
from graph.vocabulary import Kind


@pytest.fixture
def store(graph_store) -> GraphStore:
    return graph_store


@pytest.fixture
def space_graph(graph):
    return graph


@pytest.fixture
def memory(space_graph) -> McpMemory:
    return McpMemory(space_graph)


@pytest.fixture
def other_space(gateway):
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    while True:
        records = gateway.write(
            "MATCH (n {space: $space}) WITH n LIMIT 5000 DETACH DELETE n RETURN count(*) AS deleted", space=name)
        if records[0]["deleted"] == 0:
            return


def scalar(gateway, cypher, **params):
    (row,) = gateway.rows(cypher, **params)
    (value,) = row.values()
    return value


def entity(name, entity_type="person", observations=()):
    return {"name": name, "entityType": entity_type, "observations": list(observations)}


def rel(source, target, relation_type):
    return {"from": source, "to": target, "relationType": relation_type}


def names(graph: KnowledgeGraph) -> list[str]:
    return [e.name for e in graph.entities]


def triples(graph: KnowledgeGraph) -> set[tuple[str, str, str]]:
    return {(r.from_, r.relation_type, r.to) for r in graph.relations}


def observations_of(memory: McpMemory, name: str) -> list[str]:
    (found,) = memory.open_nodes([name]).entities
    return found.observations


# -- create_entities --------------------------------------------------------------------------------

def test_create_entities_returns_the_new_entities_in_the_reference_shape(memory):
    created = memory.create_entities([
        entity("Alice", "person", ["likes tea", "speaks French"]),
        entity("Churn", "project"),
    ])
    assert [e.model_dump(by_alias=True) for e in created] == [
        {"name": "Alice", "entityType": "person", "observations": ["likes tea", "speaks French"]},
        {"name": "Churn", "entityType": "project", "observations": []},
    ]


def test_create_entities_maps_the_type_to_a_kind_and_keeps_the_type_string(memory, space_graph):
    memory.create_entities([entity("Churn", "project"), entity("Lisbon", "city")])
    (churn,) = space_graph.find_by_name("Churn")
    (lisbon,) = space_graph.find_by_name("Lisbon")
    assert (churn.kind, churn.entity_type) == (Kind.PROJECT, "project")
    assert (lisbon.kind, lisbon.entity_type) == (Kind.THING, "city")
    assert churn.provenance.source == "mcp"


def test_create_entities_skips_names_that_exist_in_any_kind_or_earlier_in_the_batch(memory, gateway, space):
    memory.create_entities([entity("Alice", "person", ["likes tea"])])
    created = memory.create_entities([
        entity("Alice", "project", ["is a project"]),  # the name exists (as a Thing): skipped, not a second entity
        entity("alice", "person"),                      # names are compared normalised
        entity("Bob", "person", ["first"]),
        entity("Bob", "city", ["second"]),              # a repeat within the batch: the first one wins
    ])
    assert [e.model_dump(by_alias=True) for e in created] == [
        {"name": "Bob", "entityType": "person", "observations": ["first"]}]
    assert scalar(gateway, "MATCH (e:Entity {space: $space}) RETURN count(e)", space=space) == 2
    assert observations_of(memory, "Alice") == ["likes tea"]


def test_create_entities_repeated_is_a_no_op(memory, gateway, space):
    batch = [entity("Alice", "person", ["likes tea"])]
    assert len(memory.create_entities(batch)) == 1
    assert memory.create_entities(batch) == []
    assert scalar(gateway, "MATCH (o:Observation {space: $space}) RETURN count(o)", space=space) == 1


def test_create_entities_rejects_names_and_types_that_cannot_be_stored(memory):
    with pytest.raises(ValidationError, match="visible"):
        memory.create_entities([entity("   ", "person")])
    with pytest.raises(ValidationError, match="entityType"):
        memory.create_entities([{"name": "Alice", "entityType": ""}])


def test_observations_keep_the_order_they_were_written_in(memory):
    texts = [f"fact {i}" for i in range(12)]
    memory.create_entities([entity("Alice", "person", texts[:8])])
    memory.add_observations([{"entityName": "Alice", "contents": texts[8:]}])
    assert observations_of(memory, "Alice") == texts


# -- create_relations ----------------------------------------------------------------------------

def test_create_relations_returns_the_new_relations_and_skips_duplicates(memory):
    memory.create_entities([entity("Alice"), entity("Acme", "company"), entity("Bob")])
    first = memory.create_relations([rel("Alice", "Acme", "works at"), rel("Alice", "Acme", "works at"),
                                     rel("Bob", "Acme", "works at")])
    assert [r.model_dump(by_alias=True) for r in first] == [
        {"from": "Alice", "to": "Acme", "relationType": "works at"},
        {"from": "Bob", "to": "Acme", "relationType": "works at"},
    ]
    again = memory.create_relations([rel("Alice", "Acme", "works at"), rel("Alice", "Bob", "knows")])
    assert [r.model_dump(by_alias=True) for r in again] == [{"from": "Alice", "to": "Bob", "relationType": "knows"}]


def test_free_form_relation_types_round_trip_and_are_stored_canonically(memory, gateway, space):
    memory.create_entities([entity("Alice"), entity("Acme", "company")])
    memory.create_relations([rel("Alice", "Acme", "works at")])
    stored = scalar(gateway, "MATCH (:Entity {space: $space})-[r]->(:Entity) RETURN collect([type(r), r.label])",
                    space=space)
    assert stored == [["WORKS_AT", "works at"]]
    assert triples(memory.read_graph()) == {("Alice", "works at", "Acme")}
    # The same canonical type in another spelling is the same relation.
    assert memory.create_relations([rel("alice", "ACME", "WORKS_AT")]) == []


def test_create_relations_rejects_a_type_kgmem_cannot_store_and_writes_nothing(memory, gateway, space):
    memory.create_entities([entity("Alice"), entity("Bob")])
    with pytest.raises(InvalidInput, match="relation type '42' is not allowed"):
        memory.create_relations([rel("Alice", "Bob", "knows"), rel("Alice", "Bob", "42")])
    with pytest.raises(InvalidInput, match="reserved"):
        memory.create_relations([rel("Alice", "Bob", "has observation")])
    assert scalar(gateway, "MATCH (:Entity {space: $space})-[r]->(:Entity) RETURN count(r)", space=space) == 0


def test_create_relations_to_a_missing_entity_raises_not_found_and_writes_nothing(memory, gateway, space):
    memory.create_entities([entity("Alice"), entity("Bob")])
    with pytest.raises(NotFound, match="'Ghost'"):
        memory.create_relations([rel("Alice", "Bob", "knows"), rel("Alice", "Ghost", "knows")])
    assert scalar(gateway, "MATCH (:Entity {space: $space})-[r]->(:Entity) RETURN count(r)", space=space) == 0


# -- add_observations ------------------------------------------------------------------------------

def test_add_observations_returns_what_each_entity_gained(memory):
    memory.create_entities([entity("Alice", "person", ["likes tea"]), entity("Bob")])
    results = memory.add_observations([
        {"entityName": "Alice", "contents": ["likes tea", "speaks French", "speaks French"]},
        {"entityName": "Bob", "contents": ["plays chess"]},
    ])
    assert [r.model_dump(by_alias=True) for r in results] == [
        {"entityName": "Alice", "addedObservations": ["speaks French"]},
        {"entityName": "Bob", "addedObservations": ["plays chess"]},
    ]
    assert observations_of(memory, "Alice") == ["likes tea", "speaks French"]
    assert memory.add_observations([{"entityName": "Bob", "contents": ["plays chess"]}])[0].added_observations == []


def test_add_observations_to_a_missing_entity_raises_not_found_naming_it_and_adds_nothing(memory):
    memory.create_entities([entity("Alice")])
    with pytest.raises(NotFound, match="'Ghost'"):
        memory.add_observations([{"entityName": "Alice", "contents": ["likes tea"]},
                                 {"entityName": "Ghost", "contents": ["boo"]}])
    assert observations_of(memory, "Alice") == []


# -- delete_entities -------------------------------------------------------------------------------

def test_delete_entities_hides_the_entity_its_observations_and_its_relations(memory):
    memory.create_entities([entity("Alice", "person", ["likes tea"]), entity("Bob"), entity("Carol")])
    memory.create_relations([rel("Alice", "Bob", "knows"), rel("Carol", "Alice", "manages"),
                             rel("Bob", "Carol", "knows")])
    result = memory.delete_entities(["Alice"])
    assert result.model_dump(by_alias=True) == {"success": True, "message": "Entities deleted successfully"}
    graph = memory.read_graph()
    assert names(graph) == ["Bob", "Carol"]
    assert triples(graph) == {("Bob", "knows", "Carol")}
    assert names(memory.open_nodes(["Alice"])) == []
    assert names(memory.search_nodes("tea")) == []


def test_deleted_entities_stay_in_history(memory, space_graph):
    memory.create_entities([entity("Alice", "person", ["likes tea"]), entity("Bob")])
    memory.create_relations([rel("Alice", "Bob", "knows")])
    (alice,) = space_graph.find_by_name("Alice")
    memory.delete_entities(["Alice"])
    history = space_graph.history(alice.id)
    assert history.entity.retracted_at is not None
    assert [(o.text, o.retracted_at is not None) for o in history.observations] == [("likes tea", True)]
    assert [(r.label, r.target_name, r.retracted_at is not None) for r in history.relations] == [("knows", "Bob", True)]


def test_delete_entities_is_silent_about_unknown_names_but_reports_them(memory):
    memory.create_entities([entity("Alice")])
    result = memory.delete_entities(["Alice", "Ghost"])
    assert result.model_dump(by_alias=True) == {
        "success": True, "message": "Deleted 1 of 2 entities. Not found: Ghost"}
    assert memory.delete_entities(["Alice"]).message == "Deleted 0 of 1 entities. Not found: Alice"


def test_a_deleted_name_can_be_created_again_without_its_old_facts(memory):
    memory.create_entities([entity("Alice", "person", ["likes tea"])])
    memory.delete_entities(["Alice"])
    created = memory.create_entities([entity("Alice", "person", ["likes coffee"])])
    assert [e.name for e in created] == ["Alice"]
    assert observations_of(memory, "Alice") == ["likes coffee"]


# -- delete_observations ------------------------------------------------------------------------

def test_delete_observations_retracts_the_texts_and_keeps_the_rest_in_order(memory, space_graph):
    memory.create_entities([entity("Alice", "person", ["one", "two", "three"])])
    result = memory.delete_observations([{"entityName": "Alice", "observations": ["two"]}])
    assert result.message == "Observations deleted successfully"
    assert observations_of(memory, "Alice") == ["one", "three"]
    (alice,) = space_graph.find_by_name("Alice")
    retracted = [o.text for o in space_graph.history(alice.id).observations if o.retracted_at is not None]
    assert retracted == ["two"]


def test_delete_observations_is_silent_about_unknown_texts_and_entities(memory):
    memory.create_entities([entity("Alice", "person", ["one"])])
    result = memory.delete_observations([
        {"entityName": "Alice", "observations": ["one", "never said"]},
        {"entityName": "Ghost", "observations": ["boo"]},
    ])
    assert result.model_dump(by_alias=True) == {
        "success": True, "message": "Deleted 1 of 3 observations. Entities not found: Ghost"}
    assert observations_of(memory, "Alice") == []


# -- delete_relations ------------------------------------------------------------------------------

def test_delete_relations_retracts_the_matching_relation_only(memory, space_graph):
    memory.create_entities([entity("Alice"), entity("Acme", "company"), entity("Bob")])
    memory.create_relations([rel("Alice", "Acme", "works at"), rel("Alice", "Bob", "knows")])
    result = memory.delete_relations([rel("Alice", "Acme", "works at")])
    assert result.message == "Relations deleted successfully"
    assert triples(memory.read_graph()) == {("Alice", "knows", "Bob")}
    (alice,) = space_graph.find_by_name("Alice")
    retracted = [(r.label, r.target_name) for r in space_graph.history(alice.id).relations if r.retracted_at]
    assert retracted == [("works at", "Acme")]


def test_delete_relations_is_silent_about_relations_that_match_nothing(memory):
    memory.create_entities([entity("Alice"), entity("Bob")])
    memory.create_relations([rel("Alice", "Bob", "knows")])
    result = memory.delete_relations([rel("Bob", "Alice", "knows"), rel("Alice", "Ghost", "knows"),
                                      rel("Alice", "Bob", "42")])
    assert result.model_dump(by_alias=True) == {
        "success": True, "message": "Deleted 0 of 3 relations. The rest matched nothing."}
    assert triples(memory.read_graph()) == {("Alice", "knows", "Bob")}


# -- read_graph -----------------------------------------------------------------------------------

def test_read_graph_returns_the_reference_shape_with_a_cursor(memory):
    memory.create_entities([entity("Alice", "person", ["likes tea"]), entity("Bob")])
    memory.create_relations([rel("Alice", "Bob", "knows")])
    assert memory.read_graph().model_dump(by_alias=True) == {
        "entities": [{"name": "Alice", "entityType": "person", "observations": ["likes tea"]},
                     {"name": "Bob", "entityType": "person", "observations": []}],
        "relations": [{"from": "Alice", "to": "Bob", "relationType": "knows"}],
        "nextCursor": None,
    }


def test_read_graph_pages_walk_every_entity_and_relation_exactly_once(memory):
    count = 23
    all_names = [f"node {i:02d}" for i in range(count)]
    memory.create_entities([entity(name, "thing", [f"about {name}"]) for name in all_names])
    chain = [rel(all_names[i], all_names[(i + 5) % count], "points to") for i in range(count)]
    memory.create_relations(chain)

    seen_names, seen_relations, cursor, pages = [], [], None, 0
    while True:
        page = memory.read_graph(cursor=cursor, limit=5)
        pages += 1
        assert len(page.entities) <= 5
        assert all(e.observations == [f"about {e.name}"] for e in page.entities)
        seen_names += names(page)
        seen_relations += [(r.from_, r.to) for r in page.relations]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 5
    assert seen_names == all_names  # in name order, no repeats, none missing
    assert sorted(seen_relations) == sorted((r["from"], r["to"]) for r in chain)


def test_read_graph_limit_is_bounded(memory):
    for limit in (0, 1001):
        with pytest.raises(InvalidInput, match="limit"):
            memory.read_graph(limit=limit)
    with pytest.raises(InvalidInput, match="cursor"):
        memory.read_graph(cursor="not a cursor")


# -- search_nodes ---------------------------------------------------------------------------------

@pytest.fixture
def people(memory):
    memory.create_entities([
        entity("Alice", "person", ["Drinks green TEA every morning"]),
        entity("Bob", "person", ["plays chess"]),
        entity("Acme", "company", ["makes anvils"]),
        entity("Churn", "project", ["predicts churn"]),
    ])
    memory.create_relations([rel("Alice", "Acme", "works at"), rel("Bob", "Acme", "works at"),
                             rel("Alice", "Bob", "knows")])
    return memory


def test_search_nodes_matches_observation_text_case_insensitively(people):
    result = people.search_nodes("green tea")
    assert names(result) == ["Alice"]
    assert result.entities[0].observations == ["Drinks green TEA every morning"]


def test_search_nodes_matches_the_type_and_substrings_of_names(people):
    assert sorted(names(people.search_nodes("PERSON"))) == ["Alice", "Bob"]
    assert names(people.search_nodes("lic")) == ["Alice"]  # inside a word: the reference's substring match
    assert names(people.search_nodes("anvil")) == ["Acme"]


def test_search_nodes_returns_the_relations_touching_the_results(people):
    result = people.search_nodes("chess")
    assert names(result) == ["Bob"]
    assert triples(result) == {("Bob", "works at", "Acme"), ("Alice", "knows", "Bob")}
    assert triples(people.search_nodes("chess", relations="among")) == set()
    assert triples(people.search_nodes("person", relations="among")) == {("Alice", "knows", "Bob")}


def test_search_nodes_ignores_deleted_observations_and_caps_results(people):
    people.delete_observations([{"entityName": "Bob", "observations": ["plays chess"]}])
    assert names(people.search_nodes("chess")) == []
    assert len(people.search_nodes("", limit=2).entities) == 2
    assert len(people.search_nodes("").entities) == 4
    with pytest.raises(InvalidInput, match="at most 2048"):
        people.search_nodes("x" * 2049)


# -- open_nodes -------------------------------------------------------------------------------------

def test_open_nodes_returns_the_named_entities_and_ignores_unknown_names(people):
    result = people.open_nodes(["bob", "Ghost", "Churn"])
    assert [e.model_dump(by_alias=True) for e in result.entities] == [
        {"name": "Bob", "entityType": "person", "observations": ["plays chess"]},
        {"name": "Churn", "entityType": "project", "observations": ["predicts churn"]},
    ]
    assert triples(result) == {("Bob", "works at", "Acme"), ("Alice", "knows", "Bob")}


def test_open_nodes_can_restrict_relations_to_those_among_the_named(people):
    assert triples(people.open_nodes(["Alice", "Acme"], relations="among")) == {("Alice", "works at", "Acme")}
    assert people.open_nodes(["Ghost"]).model_dump(by_alias=True) == {"entities": [], "relations": []}


# -- tenancy ----------------------------------------------------------------------------------------

def test_everything_is_confined_to_its_space(store, space, other_space):
    ours, theirs = McpMemory(store.space(space)), McpMemory(store.space(other_space))
    for memory, fact in ((ours, "likes tea"), (theirs, "likes coffee")):
        created = memory.create_entities([entity("Alice", "person", [fact]), entity("Bob")])
        assert [e.name for e in created] == ["Alice", "Bob"]  # the other space's Alice does not count
    ours.create_relations([rel("Alice", "Bob", "knows")])

    assert observations_of(ours, "Alice") == ["likes tea"]
    assert observations_of(theirs, "Alice") == ["likes coffee"]
    assert triples(theirs.read_graph()) == set()
    assert names(theirs.search_nodes("tea")) == []
    assert names(ours.search_nodes("coffee")) == []

    ours.delete_entities(["Alice"])
    assert names(theirs.read_graph()) == ["Alice", "Bob"]
    assert names(ours.read_graph()) == ["Bob"]


def test_models_accept_python_names_and_dump_reference_names():
    relation = McpRelation(from_="Alice", to="Bob", relation_type="knows")
    assert relation.model_dump(by_alias=True) == {"from": "Alice", "to": "Bob", "relationType": "knows"}
    assert McpRelation.model_validate({"from": "Alice", "to": "Bob", "relationType": "knows"}) == relation

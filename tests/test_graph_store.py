"""The graph's typed API against a real Neo4j: upserts, observations, relations, time, history, deletes."""

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from graph.errors import InvalidInput, NotFound
from graph.model import EntityIn, EntityRef, ObservationIn, RelationIn
from graph.vocabulary import Kind

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def ref(name, kind=None):
    return EntityRef(name=name, kind=kind)


def count(gateway, space, cypher):
    return next(iter(gateway.rows(cypher, space=space)[0].values()))


# -- entities -----------------------------------------------------------------------------------

def test_upsert_is_idempotent_and_creates_no_duplicates(graph, gateway, space):
    batch = [EntityIn(kind=Kind.PROJECT, name="Churn"), EntityIn(kind=Kind.AGENT, name="ds-1")]
    first = graph.upsert_entities(batch)
    again = graph.upsert_entities(batch)
    assert [e.id for e in first] == [e.id for e in again]
    assert count(gateway, space, "MATCH (e:Entity {space: $space}) RETURN count(e)") == 2


def test_names_are_identified_case_and_space_insensitively_within_a_kind(graph):
    a, b, c = graph.upsert_entities([
        EntityIn(kind=Kind.MODEL, name="Churn  Model"), EntityIn(kind=Kind.MODEL, name="churn model"),
        EntityIn(kind=Kind.PROJECT, name="Churn Model"),
    ])
    assert a.id == b.id
    assert c.id != a.id  # same name, different kind: a different entity


def test_entities_carry_both_labels_and_typed_attributes(graph, gateway, space):
    agent = graph.upsert_entities([EntityIn(kind=Kind.AGENT, name="ml-eng", attributes={"role": "ml-engineer", "skills": ["pytorch"]})])[0]
    records = gateway.rows("MATCH (e {id: $id}) RETURN labels(e) AS labels", id=agent.id)
    assert set(records[0]["labels"]) == {"Entity", "Agent"}
    assert agent.attributes == {"role": "ml-engineer", "skills": ["pytorch"]}


def test_attributes_are_validated_per_kind():
    with pytest.raises(ValidationError, match="status"):
        EntityIn(kind=Kind.DELEGATION, name="d", attributes={"status": "exploded"})
    with pytest.raises(ValidationError, match="reserved"):
        EntityIn(kind=Kind.THING, name="x", attributes={"space": "elsewhere"})
    with pytest.raises(ValidationError, match="must be a string"):
        EntityIn(kind=Kind.THING, name="x", attributes={"nested": {"a": 1}})


def test_free_form_types_are_kept_on_thing_entities(graph):
    city = graph.upsert_entities([EntityIn(kind=Kind.THING, entity_type="city", name="Lisbon")])[0]
    assert (city.kind, city.entity_type) == (Kind.THING, "city")


def test_aliases_accumulate_without_repeats(graph):
    graph.upsert_entities([EntityIn(kind=Kind.DATASET, name="events", aliases=["clickstream", "Clickstream"])])
    events = graph.upsert_entities([EntityIn(kind=Kind.DATASET, name="events", aliases=["click log", "events"])])[0]
    assert events.aliases == ["clickstream", "click log"]
    assert [e.id for e in graph.find_by_name("Click Log")] == [events.id]


def test_every_attribute_change_is_kept_as_a_revision(graph):
    graph.upsert_entities([EntityIn(kind=Kind.DELEGATION, name="d1", attributes={"status": "planned"})])
    graph.upsert_entities([EntityIn(kind=Kind.DELEGATION, name="d1", attributes={"status": "planned"})])
    d1 = graph.upsert_entities([EntityIn(kind=Kind.DELEGATION, name="d1", attributes={"status": "failed"})])[0]
    history = graph.history(d1.id)
    assert [rev.changes.get("status") for rev in history.revisions] == [
        {"old": None, "new": "planned"}, {"old": "planned", "new": "failed"}]
    assert d1.attributes["status"] == "failed"


# -- observations -------------------------------------------------------------------------------

def test_the_same_observation_is_stored_once(graph, gateway, space):
    graph.upsert_entities([EntityIn(kind=Kind.PROJECT, name="Churn")])
    note = ObservationIn(entity=ref("churn"), text="Features older than 30 days hurt recall")
    first = graph.add_observations([note, note])
    second = graph.add_observations([note])
    assert first[0].id == first[1].id == second[0].id
    assert count(gateway, space, "MATCH (o:Observation {space: $space}) RETURN count(o)") == 1


def test_observations_on_a_missing_entity_name_it(graph):
    with pytest.raises(NotFound, match="ghost"):
        graph.add_observations([ObservationIn(entity=ref("ghost"), text="boo")])


def test_create_missing_makes_the_entity(graph):
    observation = graph.add_observations(
        [ObservationIn(entity=ref("Feature Store", Kind.TECHNOLOGY), text="Feast 0.40 in prod")], create_missing=True)[0]
    assert graph.get_entity(observation.entity_id).kind == Kind.TECHNOLOGY


def test_a_superseding_observation_closes_the_old_one(graph):
    graph.upsert_entities([EntityIn(kind=Kind.MODEL, name="churn")])
    old = graph.add_observations([ObservationIn(entity=ref("churn"), text="AUC is 0.81", valid_from=T0)])[0]
    new = graph.add_observations([ObservationIn(entity=ref("churn"), text="AUC is 0.86", valid_from=T0 + timedelta(days=7),
                                                supersedes=old.id)])[0]
    now_view = graph.neighbourhood(new.entity_id).observations
    assert [o.text for o in now_view] == ["AUC is 0.86"]
    then_view = graph.neighbourhood(new.entity_id, as_of=T0 + timedelta(days=1)).observations
    assert [o.text for o in then_view] == ["AUC is 0.81"]
    closed = {o.id: o for o in graph.history(new.entity_id).observations}[old.id]
    assert closed.valid_to == T0 + timedelta(days=7)


# -- relations and time --------------------------------------------------------------------------

@pytest.fixture
def model_version(graph):
    graph.upsert_entities([
        EntityIn(kind=Kind.MODEL_VERSION, name="churn v3"),
        *[EntityIn(kind=Kind.THING, entity_type="stage", name=s) for s in ("staging", "production", "archived")],
    ])
    return graph.find_by_name("churn v3")[0]


def stage_at(graph, version_id, when=None):
    view = graph.neighbourhood(version_id, as_of=when)
    return sorted(r.target_name for r in view.relations if r.type == "IN_STAGE")


def test_single_valued_relations_close_the_previous_fact(graph, model_version):
    for days, stage in ((0, "staging"), (10, "production"), (40, "archived")):
        graph.upsert_relations([RelationIn(source=ref("churn v3"), type="IN_STAGE", target=ref(stage),
                                           valid_from=T0 + timedelta(days=days))])
    assert stage_at(graph, model_version.id) == ["archived"]
    assert stage_at(graph, model_version.id, T0 + timedelta(days=5)) == ["staging"]
    assert stage_at(graph, model_version.id, T0 + timedelta(days=10)) == ["production"]
    assert stage_at(graph, model_version.id, T0 - timedelta(days=1)) == []
    versions = [r for r in graph.history(model_version.id).relations if r.type == "IN_STAGE"]
    assert [(r.target_name, r.valid_to) for r in versions] == [
        ("staging", T0 + timedelta(days=10)), ("production", T0 + timedelta(days=40)), ("archived", None)]


def test_stage_changes_in_one_batch_close_each_other_too(graph, model_version):
    graph.upsert_relations([
        RelationIn(source=ref("churn v3"), type="IN_STAGE", target=ref(stage), valid_from=T0 + timedelta(days=days))
        for days, stage in ((0, "staging"), (10, "production"), (40, "archived"))])
    assert stage_at(graph, model_version.id) == ["archived"]
    assert stage_at(graph, model_version.id, T0 + timedelta(days=5)) == ["staging"]
    versions = sorted((r for r in graph.history(model_version.id).relations if r.type == "IN_STAGE"),
                      key=lambda r: r.valid_from)  # one batch: one recorded_at, so order by valid time
    assert [(r.target_name, r.valid_to) for r in versions] == [
        ("staging", T0 + timedelta(days=10)), ("production", T0 + timedelta(days=40)), ("archived", None)]


def test_a_late_arriving_stage_fills_its_gap_in_history(graph, model_version):
    graph.upsert_relations([RelationIn(source=ref("churn v3"), type="IN_STAGE", target=ref("production"), valid_from=T0 + timedelta(days=10))])
    graph.upsert_relations([RelationIn(source=ref("churn v3"), type="IN_STAGE", target=ref("staging"), valid_from=T0)])
    assert stage_at(graph, model_version.id) == ["production"]
    assert stage_at(graph, model_version.id, T0 + timedelta(days=3)) == ["staging"]


def test_repeating_a_relation_creates_no_duplicate(graph, gateway, space):
    graph.upsert_entities([EntityIn(kind=Kind.FEATURE, name="tenure"), EntityIn(kind=Kind.MODEL_VERSION, name="v1")])
    relation = RelationIn(source=ref("v1"), type="USES_FEATURE", target=ref("tenure"))
    first = graph.upsert_relations([relation, relation])
    second = graph.upsert_relations([relation])
    assert first[0].id == first[1].id == second[0].id
    assert count(gateway, space, "MATCH ()-[r:USES_FEATURE {space: $space}]->() RETURN count(r)") == 1


def test_free_form_relation_types_are_validated_and_kept_as_written(graph, gateway, space):
    graph.upsert_entities([EntityIn(name="Ada"), EntityIn(name="Acme")])
    relation = graph.upsert_relations([RelationIn(source=ref("Ada"), type="works at", target=ref("Acme"))])[0]
    assert (relation.type, relation.label) == ("WORKS_AT", "works at")
    # Hostile text becomes an inert identifier: types reach Cypher as data, never as query text.
    hostile = graph.upsert_relations([RelationIn(source=ref("Ada"), type="x]->() DETACH DELETE n //", target=ref("Acme"))])[0]
    assert hostile.type == "X_DETACH_DELETE_N"
    assert count(gateway, space, "MATCH (e:Entity {space: $space}) RETURN count(e)") == 2
    for invalid in ("9lives", "__", "A" * 65):
        with pytest.raises(ValidationError, match="not allowed"):
            RelationIn(source=ref("Ada"), type=invalid, target=ref("Acme"))
    with pytest.raises(ValidationError, match="reserved"):
        RelationIn(source=ref("Ada"), type="HAS_OBSERVATION", target=ref("Acme"))


def test_ambiguous_names_ask_for_a_kind(graph):
    graph.upsert_entities([EntityIn(kind=Kind.PROJECT, name="churn"), EntityIn(kind=Kind.MODEL, name="churn"),
                           EntityIn(kind=Kind.AGENT, name="ds")])
    with pytest.raises(InvalidInput, match="several entities"):
        graph.upsert_relations([RelationIn(source=ref("ds"), type="LEADS_ANALYSIS_FOR", target=ref("churn"))])
    relation = graph.upsert_relations([RelationIn(source=ref("ds"), type="LEADS_ANALYSIS_FOR", target=ref("churn", Kind.PROJECT))])[0]
    assert relation.target_name == "churn"


# -- reads ----------------------------------------------------------------------------------------

def test_neighbourhood_walks_k_hops_nearest_first_and_pages(graph):
    graph.upsert_entities([EntityIn(kind=Kind.PROJECT, name="p")] + [EntityIn(kind=Kind.DELEGATION, name=f"d{i}") for i in range(5)])
    graph.upsert_entities([EntityIn(kind=Kind.AGENT, name="a")])
    graph.upsert_relations([RelationIn(source=ref(f"d{i}"), type="PART_OF", target=ref("p")) for i in range(5)]
                           + [RelationIn(source=ref("d0"), type="DELEGATED_TO", target=ref("a"))])
    project = graph.find_by_name("p")[0]
    one_hop = graph.neighbourhood(project.id, depth=1)
    assert sorted(n.entity.name for n in one_hop.neighbours) == [f"d{i}" for i in range(5)]
    two_hops = graph.neighbourhood(project.id, depth=2)
    assert [(n.entity.name, n.distance) for n in two_hops.neighbours][-1] == ("a", 2)
    pages, cursor = [], None
    while True:
        page = graph.neighbourhood(project.id, depth=2, limit=2, cursor=cursor)
        pages.append([n.entity.name for n in page.neighbours])
        cursor = page.next_cursor
        if not cursor:
            break
    assert pages == [["d0", "d1"], ["d2", "d3"], ["d4", "a"]]


def test_list_pages_with_a_cursor_and_filters_by_kind(graph):
    graph.upsert_entities([EntityIn(kind=Kind.FEATURE, name=f"f{i:02d}") for i in range(7)] + [EntityIn(kind=Kind.AGENT, name="x")])
    seen, cursor = [], None
    while True:
        page = graph.list_entities(kinds=[Kind.FEATURE], limit=3, cursor=cursor)
        seen += [e.name for e in page.items]
        if not (cursor := page.next_cursor):
            break
    assert seen == [f"f{i:02d}" for i in range(7)]
    assert len(graph.list_entities(limit=100).items) == 8
    with pytest.raises(InvalidInput, match="cursor"):
        graph.list_entities(cursor="not-a-cursor")


def test_search_finds_by_name_alias_summary_and_observation(graph):
    graph.upsert_entities([EntityIn(kind=Kind.MODEL, name="Churn classifier", aliases=["attrition model"], summary="gradient boosting")])
    graph.add_observations([ObservationIn(entity=ref("churn classifier"), text="retraining on stale features failed")])
    assert graph.search("attrition model")[0].matched == ["alias", "fulltext"]
    assert graph.search("boosting")[0].entity.name == "Churn classifier"
    assert "observation" in graph.search("stale features")[0].matched
    assert graph.search("((( AND OR NOT ~ * ?")  == []  # operators are never Lucene syntax


# -- deleting -------------------------------------------------------------------------------------

def test_retracting_hides_but_history_keeps_everything(graph):
    graph.upsert_entities([EntityIn(kind=Kind.INCIDENT, name="outage"), EntityIn(kind=Kind.PROJECT, name="p")])
    graph.add_observations([ObservationIn(entity=ref("outage"), text="feature store was down")])
    graph.upsert_relations([RelationIn(source=ref("outage"), type="CAUSED", target=ref("p"))])
    outage = graph.find_by_name("outage")[0]
    assert graph.retract_entity(outage.id) == {"relations": 1, "observations": 1}
    with pytest.raises(NotFound):
        graph.get_entity(outage.id)
    project = graph.find_by_name("p")[0]
    assert graph.neighbourhood(project.id).neighbours == []
    history = graph.history(outage.id)
    assert history.entity.retracted_at is not None
    assert [o.text for o in history.observations] == ["feature store was down"]
    assert history.relations[0].retracted_at is not None


def test_reviving_a_deleted_entity_is_on_record(graph):
    old = graph.upsert_entities([EntityIn(kind=Kind.DATASET, name="events")])[0]
    graph.retract_entity(old.id)
    revived = graph.upsert_entities([EntityIn(kind=Kind.DATASET, name="events")])[0]
    assert revived.id == old.id and revived.retracted_at is None
    assert graph.history(old.id).revisions[-1].changes["retracted_at"]["new"] is None


def test_hard_delete_removes_the_entity_and_what_hangs_off_it(graph, gateway, space):
    graph.upsert_entities([EntityIn(name="tmp", attributes={"a": 1})])
    graph.add_observations([ObservationIn(entity=ref("tmp"), text="one"), ObservationIn(entity=ref("tmp"), text="two")])
    report = graph.delete_entity(graph.find_by_name("tmp")[0].id)
    assert (report.entities, report.observations, report.revisions) == (1, 2, 1)
    # Only the audit trail of those writes is left (graph/audit.py).
    assert count(gateway, space, "MATCH (n {space: $space}) WHERE NOT n:AuditEvent RETURN count(n)") == 0


def test_purge_also_removes_mentions_elsewhere(graph, gateway, space):
    graph.upsert_entities([EntityIn(kind=Kind.PERSON, name="Jane Roe", aliases=["J. Roe"]), EntityIn(kind=Kind.PROJECT, name="p")])
    graph.add_observations([ObservationIn(entity=ref("p"), text="Jane Roe approved the budget"),
                            ObservationIn(entity=ref("p"), text="budget approved by finance")])
    report = graph.purge_entity(graph.find_by_name("Jane Roe")[0].id)
    assert report.observations == 1
    remaining = [o.text for o in graph.history(graph.find_by_name("p")[0].id).observations]
    assert remaining == ["budget approved by finance"]


def test_an_undated_observation_keeps_no_date_and_stays_out_of_reads_as_of_a_time(graph):
    (entity,) = graph.upsert_entities([EntityIn(kind=Kind.PERSON, name="Ada")])
    undated, dated = graph.add_observations([
        ObservationIn(entity=EntityRef(id=entity.id), text="joined the team", undated=True, seq=0),
        ObservationIn(entity=EntityRef(id=entity.id), text="moved to Lisbon", valid_from=datetime(2023, 5, 1, tzinfo=UTC)),
    ])
    assert undated.valid_from is None and dated.valid_from == datetime(2023, 5, 1, tzinfo=UTC)
    now = graph.neighbourhood(entity.id).observations
    assert {o.text for o in now} == {"joined the team", "moved to Lisbon"}
    then = graph.neighbourhood(entity.id, as_of=datetime(2024, 1, 1, tzinfo=UTC)).observations
    assert [o.text for o in then] == ["moved to Lisbon"]  # no date: it cannot be placed at a time
    with pytest.raises(ValueError, match="undated observation has no valid_from"):
        ObservationIn(entity=EntityRef(id=entity.id), text="x", undated=True, valid_from=datetime(2023, 1, 1, tzinfo=UTC))

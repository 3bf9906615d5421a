"""The delegation lifecycle against real Neo4j and Chroma: briefs before, outcomes after, feedback between."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from pydantic import ValidationError

from agents import (
    Brief,
    BriefRequest,
    Delegations,
    OutcomeArtifact,
    OutcomeLesson,
    OutcomeRequest,
    render_markdown,
)
from agents.briefing import higher_is_better
from agents.briefs import estimate_tokens
from agents.templates import instantiate
from fakes import FakeAnthropicTransport
from graph.errors import InvalidInput, NotFound
from graph.model import EntityIn, EntityRef, RelationIn
from graph.vocabulary import Kind
from memory.extraction import ClaudeExtractor, tool_input_schema
from memory.recall import RecallQuery
from memory.service import MemoryService
from memory.vectors import open_chroma

RETRAIN_MARCH = "Retrain the churn model on the March snapshot of customer events"
RETRAIN_FEATURES = "Retrain the churn model with the new engagement features"
RETRAIN_APRIL = "Retrain the churn model on the April snapshot of customer events"
DASHBOARD = "Build a pricing elasticity dashboard for the sales team"
STALE = "Refresh the feature snapshot before retraining the churn model; stale features sink AUC."


@pytest.fixture
def memory(settings, gateway, embedder):
    return MemoryService.open(settings, gateway, embedder=embedder, chroma=open_chroma(settings))


@pytest.fixture
def acme(memory, space):
    return memory.space(space)


@pytest.fixture
def delegations(acme):
    return Delegations(acme)


@pytest.fixture
def other_space(gateway):
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    gateway.write("MATCH (n {space: $space}) DETACH DELETE n", space=name)


def count(gateway, space: str, cypher: str) -> int:
    (row,) = gateway.rows(cypher, space=space)
    (value,) = row.values()
    return value


def delegate(delegations: Delegations, task: str, *, agent: str, status: str, project: str = "churn",
             role: str = "ml-engineer", **outcome) -> Brief:
    """One whole delegation: the brief, then its outcome."""
    brief = delegations.brief(BriefRequest(task=task, project=project, agent_role=role))
    delegations.record_outcome(OutcomeRequest(delegation_id=brief.delegation_id, status=status, agent=agent, **outcome))
    return brief


# -- brief ----------------------------------------------------------------------------------------
def test_a_brief_on_empty_memory_says_so_and_records_a_planned_delegation(delegations, gateway, space):
    brief = delegations.brief(BriefRequest(task=RETRAIN_MARCH, project="churn", agent_role="ml-engineer"))

    assert brief.created and brief.status == "planned"
    assert brief.recommended_agents == [] and brief.lessons == [] and brief.similar_delegations == []
    assert "Nothing in memory bears on this task yet" in brief.markdown
    assert brief.estimated_tokens <= brief.budget_tokens
    state = delegations.get(brief.delegation_id)
    assert (state.task, state.project, state.status, state.agent_role) == (RETRAIN_MARCH, "churn", "planned", "ml-engineer")
    assert count(gateway, space, "MATCH (:Delegation {space: $space})-[:PART_OF]->(:Project {space: $space}) "
                                      "RETURN count(*)") == 1


def test_after_outcomes_the_brief_recommends_the_agent_that_succeeded_on_similar_work(delegations):
    delegate(delegations, RETRAIN_MARCH, agent="ml-ana", status="succeeded", summary="AUC 0.91 on the holdout month.")
    delegate(delegations, RETRAIN_FEATURES, agent="ml-bob", status="failed", failure_cause="the feature table was stale")
    delegate(delegations, DASHBOARD, agent="viz-cat", status="succeeded", project="pricing", role="analyst")

    brief = delegations.brief(BriefRequest(task=RETRAIN_APRIL, project="churn", agent_role="ml-engineer"))

    first, second = brief.recommended_agents[:2]
    assert (first.agent, first.succeeded, first.similar_tasks, first.success_rate) == ("ml-ana", 1, 1, 1.0)
    assert first.last_success_at is not None and first.load == 0
    assert (second.agent, second.success_rate) == ("ml-bob", 0.0)
    assert "viz-cat" not in [a.agent for a in brief.recommended_agents]  # a dashboard is not similar work
    assert {d.task for d in brief.similar_delegations} == {RETRAIN_MARCH, RETRAIN_FEATURES}
    failed = next(d for d in brief.similar_delegations if d.agent == "ml-bob")
    assert (failed.status, failed.failure_cause) == ("failed", "the feature table was stale")
    assert any(r.kind == "failed_delegation" and "stale" in r.text for r in brief.risks)
    assert "**ml-ana**" in brief.markdown and "1 of 1 similar tasks succeeded (100%)" in brief.markdown


def test_the_agents_load_is_its_open_delegations(delegations):
    delegate(delegations, RETRAIN_MARCH, agent="ml-ana", status="succeeded")
    delegate(delegations, RETRAIN_FEATURES, agent="ml-ana", status="running")

    brief = delegations.brief(BriefRequest(task=RETRAIN_APRIL, project="churn"))

    ana = next(a for a in brief.recommended_agents if a.agent == "ml-ana")
    assert (ana.load, ana.similar_tasks, ana.succeeded) == (1, 2, 1)
    record = delegations.track_record("ml-ana")
    assert (record.delegations, record.succeeded, record.open, record.success_rate) == (2, 1, 1, 1.0)


def test_lessons_learned_after_a_failure_lead_the_third_brief_with_their_provenance(delegations):
    """The issue's scenario: three delegations on one project, some failing."""
    first = delegate(delegations, RETRAIN_MARCH, agent="ml-bob", status="failed",
                     summary="AUC dropped to 0.61 because the feature table was three weeks old.",
                     lessons=[OutcomeLesson(text=STALE, severity="high", category="data-quality")])
    delegate(delegations, DASHBOARD, agent="viz-cat", status="succeeded", role="analyst",
             lessons=[OutcomeLesson(text="Cache dashboard queries so pages load in under five seconds.", severity="low")])
    delegate(delegations, RETRAIN_FEATURES, agent="ml-ana", status="succeeded", summary="AUC 0.90 with fresh features.")

    third = delegations.brief(BriefRequest(task=RETRAIN_APRIL, project="churn", agent_role="ml-engineer"))

    lesson = third.lessons[0]
    assert lesson.text == STALE and lesson.severity == "high"
    source = lesson.learned_from[0]
    assert (source.delegation_id, source.status, source.agent) == (first.delegation_id, "failed", "ml-bob")
    assert "churn" in lesson.applies_to and "applies to the project" in lesson.reasons
    assert third.recommended_agents[0].agent == "ml-ana"
    assert STALE[:60] in third.markdown and f"(from {first.delegation_id}, failed)" in third.markdown
    assert lesson.id in third.shown_ids


def test_the_markdown_fits_the_budget_and_keeps_the_best_items(delegations):
    lessons = [OutcomeLesson(text=f"Lesson {i} about retraining the churn model: check the {topic} first.")
               for i, topic in enumerate(["feature snapshot", "label delay", "holdout month", "class balance",
                                          "calibration", "seasonality", "drift report", "data contract"] * 3)]
    delegate(delegations, RETRAIN_MARCH, agent="ml-ana", status="succeeded", lessons=lessons[:12])
    delegate(delegations, RETRAIN_FEATURES, agent="ml-bob", status="failed", lessons=lessons[12:],
             summary="The run failed twice on memory limits. " * 20)

    sizes = {}
    for budget in (100, 200, 400, 800, 4000):
        brief = delegations.brief(BriefRequest(task=RETRAIN_APRIL, project="churn", budget_tokens=budget))
        assert estimate_tokens(brief.markdown) <= budget
        assert brief.estimated_tokens == estimate_tokens(brief.markdown)
        assert brief.markdown.startswith("# Brief: ")
        sizes[budget] = brief.markdown.count("\n- ")
    assert sizes[100] < sizes[400] < sizes[4000]
    brief = delegations.brief(BriefRequest(task=RETRAIN_APRIL, project="churn", budget_tokens=200))
    assert brief.lessons[0].text[:40] in brief.markdown  # trimming drops from the tails


def test_rendering_drops_the_tails_first_and_never_exceeds_a_tiny_budget(delegations):
    brief = delegations.brief(BriefRequest(task="x " * 1500, budget_tokens=100))
    assert estimate_tokens(brief.markdown) <= 100
    assert estimate_tokens(render_markdown(brief, 100)) <= 100


# -- idempotency and concurrency --------------------------------------------------------------------
def test_briefing_the_same_key_or_id_again_returns_the_same_delegation(delegations, gateway, space):
    first = delegations.brief(BriefRequest(task=RETRAIN_MARCH, project="churn", idempotency_key="run-7"))
    again = delegations.brief(BriefRequest(task=RETRAIN_MARCH, project="churn", idempotency_key="run-7"))
    chosen = delegations.brief(BriefRequest(task=RETRAIN_APRIL, delegation_id="churn-april"))
    chosen_again = delegations.brief(BriefRequest(task=RETRAIN_APRIL, delegation_id="Churn-April"))

    assert (first.created, again.created) == (True, False)
    assert again.delegation_id == first.delegation_id and again.entity_id == first.entity_id
    assert (chosen.delegation_id, chosen_again.entity_id, chosen_again.created) == ("churn-april", chosen.entity_id, False)
    assert count(gateway, space, "MATCH (d:Delegation {space: $space}) RETURN count(d)") == 2
    assert count(gateway, space, "MATCH (:Delegation {space: $space})-[r:PART_OF]->() RETURN count(r)") == 1
    with pytest.raises(InvalidInput, match="another task"):
        delegations.brief(BriefRequest(task=DASHBOARD, idempotency_key="run-7"))


def graph_size(gateway, space: str) -> tuple[int, ...]:
    return tuple(count(gateway, space, cypher) for cypher in (
        "MATCH (n {space: $space}) RETURN count(n)",
        "MATCH ({space: $space})-[r]->() RETURN count(r)",
        "MATCH (:Entity {space: $space})-[:HAS_REVISION]->(r) RETURN count(r)",
    ))


def test_recording_the_same_outcome_twice_changes_nothing(delegations, gateway, space):
    brief = delegations.brief(BriefRequest(task=RETRAIN_MARCH, project="churn"))
    outcome = OutcomeRequest(
        delegation_id=brief.delegation_id, status="succeeded", agent="ml-ana", summary="AUC 0.91 on April.",
        metrics={"auc": 0.91}, duration_s=1200, cost_usd=3.5, lessons=[OutcomeLesson(text=STALE)],
        artifacts=[OutcomeArtifact(kind="model_version", name="churn-model v3", model="churn-model", metrics={"auc": 0.91})],
    )
    first = delegations.record_outcome(outcome)
    before = graph_size(gateway, space)
    again = delegations.record_outcome(outcome)

    assert (first.changed, again.changed) == (True, False)
    assert graph_size(gateway, space) == before
    assert again.delegation.model_dump(exclude={"created_at"}) == first.delegation.model_dump(exclude={"created_at"})
    state = again.delegation
    assert (state.status, state.agent, state.metrics, state.summary) == ("succeeded", "ml-ana", {"auc": 0.91}, "AUC 0.91 on April.")
    assert [(a.kind, a.name, a.relation) for a in state.artifacts] == [("ModelVersion", "churn-model v3", "PRODUCED")]
    assert [lesson.text for lesson in state.lessons] == [STALE]
    assert again.agent_record.succeeded == 1


def test_ten_concurrent_briefs_with_one_key_make_one_delegation(delegations, gateway, space):
    request = BriefRequest(task=RETRAIN_MARCH, project="churn", idempotency_key="retry-storm")
    with ThreadPoolExecutor(max_workers=10) as pool:
        briefs = list(pool.map(lambda _: delegations.brief(request), range(10)))

    assert len({b.delegation_id for b in briefs}) == 1 and len({b.entity_id for b in briefs}) == 1
    assert sum(b.created for b in briefs) == 1
    assert count(gateway, space, "MATCH (d:Delegation {space: $space}) RETURN count(d)") == 1
    assert count(gateway, space, "MATCH (p:Project {space: $space}) RETURN count(p)") == 1
    assert count(gateway, space, "MATCH (:Delegation {space: $space})-[r:PART_OF]->() RETURN count(r)") == 1
    assert delegations.get(briefs[0].delegation_id).status == "planned"


def test_ten_concurrent_outcomes_lose_nothing_and_duplicate_nothing(delegations, gateway, space):
    same = delegations.brief(BriefRequest(task=RETRAIN_MARCH, project="churn"))
    outcome = OutcomeRequest(delegation_id=same.delegation_id, status="succeeded", agent="ml-ana",
                             summary="AUC 0.91.", lessons=[OutcomeLesson(text=STALE)])
    with ThreadPoolExecutor(max_workers=10) as pool:
        records = list(pool.map(lambda _: delegations.record_outcome(outcome), range(10)))
    assert sum(r.changed for r in records) == 1
    assert count(gateway, space, "MATCH (l:Lesson {space: $space}) RETURN count(l)") == 1
    assert count(gateway, space, "MATCH (:Lesson {space: $space})-[r:LEARNED_FROM]->() RETURN count(r)") == 1
    assert count(gateway, space, "MATCH (:Delegation {space: $space})-[:HAS_OBSERVATION]->(o) RETURN count(o)") == 1
    assert count(gateway, space, "MATCH (:Delegation {space: $space})-[r:DELEGATED_TO]->() RETURN count(r)") == 1

    distinct = delegations.brief(BriefRequest(task=RETRAIN_APRIL, project="churn"))

    def report(i: int):
        return delegations.record_outcome(OutcomeRequest(
            delegation_id=distinct.delegation_id, status="running", agent="ml-bob",
            lessons=[OutcomeLesson(text=f"Lesson number {i}: keep the April holdout untouched.")]))

    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(report, range(10)))
    state = delegations.get(distinct.delegation_id)
    assert len(state.lessons) == 10 and state.status == "running" and state.started_at is not None


def test_a_delegation_planned_from_a_template_is_briefed_and_completed_by_name(delegations, acme):
    plan = instantiate(acme, "data-science", "Churn")
    planned = next(d for d in plan.delegations if d.name == "Churn: Frame the problem")

    brief = delegations.brief(BriefRequest(task="Frame churn prediction as a 90-day classification task",
                                           delegation_id=planned.name))
    assert (brief.created, brief.entity_id, brief.project, brief.status) == (False, planned.id, "Churn", "planned")
    record = delegations.record_outcome(OutcomeRequest(delegation_id=planned.name, status="succeeded", agent="ds-dora"))
    assert record.delegation.task == "Frame churn prediction as a 90-day classification task"
    assert record.agent_record.role == "data-scientist"  # the template's role for the task


# -- isolation --------------------------------------------------------------------------------------
def test_a_space_never_sees_another_spaces_delegations(memory, delegations, other_space):
    mine = delegate(delegations, RETRAIN_MARCH, agent="ml-ana", status="failed", lessons=[OutcomeLesson(text=STALE)])
    theirs = Delegations(memory.space(other_space))

    brief = theirs.brief(BriefRequest(task=RETRAIN_APRIL, project="churn", agent_role="ml-engineer"))

    assert brief.recommended_agents == [] and brief.lessons == [] and brief.similar_delegations == []
    assert brief.risks == [] and brief.model_versions == []
    with pytest.raises(NotFound):
        theirs.record_outcome(OutcomeRequest(delegation_id=mine.delegation_id, status="succeeded"))
    with pytest.raises(NotFound):
        theirs.get(mine.delegation_id)
    with pytest.raises(NotFound):
        theirs.track_record("ml-ana")
    assert theirs.feedback() == {}
    same_id = theirs.brief(BriefRequest(task=DASHBOARD, delegation_id=mine.delegation_id))
    assert same_id.created and same_id.entity_id != mine.entity_id  # ids are per space
    assert delegations.get(mine.delegation_id).task == RETRAIN_MARCH


# -- extraction -----------------------------------------------------------------------------------
EXTRACTED_LESSON = "Pin the feature snapshot date in the training config so retrains are reproducible."


def extraction_reply(name: str) -> dict:
    return {
        "entities": [{"name": "customer_events", "type": "Dataset"}, {"name": name, "type": "Delegation",
                                                                        "attributes": {"status": "failed"}}],
        "relations": [{"source": name, "type": "DEPENDS_ON", "target": "customer_events"}],
        "observations": [{"entity": "customer_events", "text": "customer_events had a three-week gap in March."}],
        "lessons": [{"text": EXTRACTED_LESSON, "applies_to": ["customer_events"], "severity": "high"}],
    }


def test_extraction_adds_the_lessons_claude_finds_once(acme, gateway, space):
    fake = FakeAnthropicTransport()
    delegations = Delegations(acme, extractor=ClaudeExtractor(fake.client()))
    brief = delegations.brief(BriefRequest(task=RETRAIN_MARCH, project="churn", delegation_id="d-extract"))
    fake.tool_use(extraction_reply("d-extract"))
    outcome = OutcomeRequest(delegation_id="d-extract", status="succeeded", agent="ml-ana", extract=True,
                             summary="Retrained on customer_events after fixing a three-week gap; the retrain "
                                     "only reproduced once the snapshot date was pinned.")

    record = delegations.record_outcome(outcome)

    assert record.extraction.status == "done" and record.extraction.lessons == [EXTRACTED_LESSON]
    assert any("Delegation" in s for s in record.extraction.skipped)
    lesson = next(x for x in record.delegation.lessons if x.text == EXTRACTED_LESSON)
    assert lesson.source == "extraction" and set(lesson.applies_to) == {"churn", "customer_events"}
    assert record.delegation.status == "succeeded"  # Claude's "failed" on the delegation is not kgmem's record
    assert [a.name for a in record.delegation.artifacts] == ["customer_events"]
    assert count(gateway, space, "MATCH (d:Delegation {space: $space}) RETURN count(d)") == 1

    again = delegations.record_outcome(outcome)
    assert again.extraction.status == "already_done" and len(fake.requests) == 1
    later = delegations.brief(BriefRequest(task=RETRAIN_APRIL, project="churn"))
    assert EXTRACTED_LESSON in [x.text for x in later.lessons]
    assert brief.delegation_id in [s.delegation_id for x in later.lessons for s in x.learned_from]


def test_extraction_is_skipped_without_an_extractor_and_a_failure_keeps_the_outcome(acme):
    plain = Delegations(acme)
    brief = plain.brief(BriefRequest(task=RETRAIN_MARCH))
    skipped = plain.record_outcome(OutcomeRequest(delegation_id=brief.delegation_id, status="running",
                                                  summary="Started the retrain.", extract=True))
    assert skipped.extraction.status == "skipped" and "ANTHROPIC_API_KEY" in skipped.extraction.detail

    fake = FakeAnthropicTransport().error(400, "invalid_request_error", "prompt is too long")
    claude = Delegations(acme, extractor=ClaudeExtractor(fake.client()))
    outcome = OutcomeRequest(delegation_id=brief.delegation_id, status="failed", summary="It ran out of memory.",
                             extract=True)
    failed = claude.record_outcome(outcome)
    assert failed.extraction.status == "failed" and "400" in failed.extraction.detail
    assert failed.delegation.status == "failed" and failed.delegation.summary == "It ran out of memory."

    fake.tool_use({"lessons": [{"text": "Request 16 GB for churn retrains on the full snapshot."}]})
    retried = claude.record_outcome(outcome)  # the claim was released, so a retry extracts
    assert (retried.changed, retried.extraction.status) == (False, "done")


# -- feedback -------------------------------------------------------------------------------------
def test_feedback_on_briefed_memories_changes_later_rankings(delegations, acme):
    delegate(delegations, RETRAIN_MARCH, agent="ml-ana", status="succeeded", lessons=[
        OutcomeLesson(text="Check the churn model's features for target leakage before retraining."),
        OutcomeLesson(text="Keep a holdout month when retraining a model on customer snapshots.")])
    before = delegations.brief(BriefRequest(task=RETRAIN_APRIL, project="churn"))
    ahead, behind = before.lessons[0].id, before.lessons[1].id
    query = RecallQuery(text=RETRAIN_APRIL, kinds=[Kind.LESSON], types=["entity"])
    plain = {i.id: i.score for i in acme.recall(query).items}

    delegations.record_outcome(OutcomeRequest(delegation_id=before.delegation_id, status="succeeded", agent="ml-ana",
                                              helpful=[behind], unhelpful=[ahead]))
    after = delegations.brief(BriefRequest(task=RETRAIN_APRIL + " again", project="churn"))

    assert [x.id for x in after.lessons[:2]] == [behind, ahead]
    assert [x.feedback for x in after.lessons[:2]] == [1, -1]
    boosts = delegations.feedback_boosts()
    assert boosts[behind] > 0 > boosts[ahead]
    boosted = {i.id: i.score for i in acme.recall(query, boosts=boosts).items}
    assert boosted[behind] > plain[behind] and boosted[ahead] < plain[ahead]  # recall itself takes the signal


def test_feedback_may_only_name_what_the_brief_showed(delegations):
    brief = delegations.brief(BriefRequest(task=RETRAIN_MARCH))
    with pytest.raises(InvalidInput, match="did not show"):
        delegations.record_outcome(OutcomeRequest(delegation_id=brief.delegation_id, status="succeeded",
                                                  helpful=["not-a-briefed-id"]))
    with pytest.raises(ValidationError, match="both helpful and unhelpful"):
        OutcomeRequest(delegation_id=brief.delegation_id, status="succeeded", helpful=["a"], unhelpful=["a"])


# -- artifacts, incidents, status rules ----------------------------------------------------------------
def test_model_versions_come_best_by_metric_first(delegations):
    for version, auc in (("1", 0.82), ("2", 0.91), ("3", 0.87)):
        delegate(delegations, f"{RETRAIN_MARCH} (round {version})", agent="ml-ana", status="succeeded",
                 artifacts=[OutcomeArtifact(kind="model_version", name=f"churn-model v{version}", model="churn-model",
                                            metrics={"auc": auc}),
                            OutcomeArtifact(kind="dataset", name="customer_events", role="used")])

    brief = delegations.brief(BriefRequest(task=RETRAIN_APRIL, project="churn"))

    assert brief.metric == "auc"
    assert [v.name for v in brief.model_versions] == ["churn-model v2", "churn-model v3", "churn-model v1"]
    assert brief.model_versions[0].model == "churn-model" and brief.model_versions[0].metrics == {"auc": 0.91}
    assert [d.name for d in brief.datasets] == ["customer_events"]
    assert "ModelVersion: churn-model v2" in brief.markdown
    assert higher_is_better("auc") and not higher_is_better("val_loss") and not higher_is_better("rmse")


def test_open_incidents_near_the_work_are_briefed_and_resolved_ones_are_not(delegations, acme):
    delegations.brief(BriefRequest(task=RETRAIN_MARCH, project="churn"))
    acme.graph.upsert_entities([
        EntityIn(kind=Kind.INCIDENT, name="churn scoring job OOM", summary="The nightly churn scoring job runs out of memory.",
                 attributes={"severity": "high", "status": "open"}),
        EntityIn(kind=Kind.INCIDENT, name="churn feature lag", summary="Churn features arrived a day late.",
                 attributes={"severity": "medium", "status": "resolved"}),
    ])
    acme.graph.upsert_relations([RelationIn(source=EntityRef(name="churn scoring job OOM"), type="RELATED_TO",
                                      target=EntityRef(kind=Kind.PROJECT, name="churn"))])

    brief = delegations.brief(BriefRequest(task=RETRAIN_APRIL, project="churn"))

    assert [i.name for i in brief.incidents] == ["churn scoring job OOM"]
    assert any(r.kind == "open_incident" for r in brief.risks)


def test_status_rules_and_unknown_delegations(delegations):
    brief = delegations.brief(BriefRequest(task=RETRAIN_MARCH))
    running = delegations.record_outcome(OutcomeRequest(delegation_id=brief.delegation_id, status="running", agent="ml-ana"))
    assert running.delegation.status == "running" and running.agent_record.open == 1
    done = delegations.record_outcome(OutcomeRequest(delegation_id=brief.delegation_id, status="succeeded"))
    assert done.delegation.ended_at is not None and done.delegation.duration_s is not None
    assert done.delegation.agent == "ml-ana"  # the assignee stays when an outcome names none
    with pytest.raises(InvalidInput, match="cannot reopen"):
        delegations.record_outcome(OutcomeRequest(delegation_id=brief.delegation_id, status="running", summary="again"))
    with pytest.raises(NotFound, match="brief it first"):
        delegations.record_outcome(OutcomeRequest(delegation_id="never-briefed", status="succeeded"))
    with pytest.raises(InvalidInput):
        delegations.get(" padded id")


def test_request_models_are_bounded_tool_schemas():
    def unbounded(node, path=""):
        found = []
        if isinstance(node, dict):
            if node.get("type") == "string" and "maxLength" not in node and "enum" not in node:
                found.append(path)
            if node.get("type") == "array" and "maxItems" not in node:
                found.append(path)
            if node.get("type") == "object" and node.get("additionalProperties", False) is not False and "maxProperties" not in node:
                found.append(path)
            for key, value in node.items():
                found += unbounded(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                found += unbounded(value, f"{path}[{i}]")
        return found

    for model in (BriefRequest, OutcomeRequest):
        schema = tool_input_schema(model)
        assert unbounded(schema) == [], model.__name__
        assert all(prop.get("description") for prop in schema["properties"].values()), model.__name__
    with pytest.raises(ValidationError):
        BriefRequest(task="x", budget_tokens=50)
    with pytest.raises(ValidationError):
        OutcomeRequest(delegation_id="d-1", status="succeeded", metrics={"auc": float("nan")})
    with pytest.raises(ValidationError, match="reserved"):
        OutcomeArtifact(kind="dataset", name="events", attributes={"name": "other"})

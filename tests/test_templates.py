"""Project templates: the Data Science and AI Application phases, instantiated as planned delegations."""

from datetime import UTC, date, datetime

import pytest
from pydantic import ValidationError

from agents.templates import TEMPLATES, InstantiateTemplate, get_template, instantiate, instantiate_request
from graph.errors import InvalidInput, NotFound
from graph.model import EntityIn
from graph.vocabulary import Kind
from memory.service import MemoryService
from memory.vectors import open_chroma

PLAN_EDGES = """
MATCH (d:Delegation {space: $space})-[r:PART_OF]->(p:Project {space: $space})
WITH p, collect(d) AS delegations
RETURN p.name AS project, size(delegations) AS delegations,
       COLLECT { MATCH (a:Delegation {space: $space})-[x:DEPENDS_ON]->(b:Delegation)
                 RETURN [a.phase, b.phase] } AS depends_on
"""


@pytest.fixture
def memory(settings, gateway, embedder, space):
    return MemoryService.open(settings, gateway, embedder=embedder, chroma=open_chroma(settings)).space(space)


def plan_edges(gateway, space):
    return gateway.rows(PLAN_EDGES, space=space)


def test_the_two_templates_and_their_phases():
    assert list(TEMPLATES) == ["data-science", "ai-application"]
    data_science, ai_application = TEMPLATES.values()
    assert [p.name for p in data_science.phases] == ["Discovery", "Engineering", "Deployment", "Analytics"]
    assert [p.name for p in ai_application.phases] == ["Design", "Development", "Testing", "Deployment"]
    assert data_science.phases[0].roles == ["data-scientist", "data-architect", "analytics-expert"]
    assert data_science.phases[1].roles == ["data-engineer", "data-scientist", "ml-engineer"]
    assert ai_application.phases[1].roles == ["ai-engineer", "data-engineer"]
    for template in TEMPLATES.values():
        titles = [task.title for phase in template.phases for task in phase.tasks]
        assert len(titles) == len(set(titles)), "a title names a delegation: it must be unique in its template"


def test_instantiating_plans_one_delegation_per_task_in_phase_order(memory, gateway, space):
    plan = instantiate(memory, "data-science", "Churn", due_dates={
        "Discovery": date(2025, 3, 14), "engineering": datetime(2025, 4, 4, 17, tzinfo=UTC)})
    assert plan.project == "Churn" and plan.template == "data-science"
    assert len(plan.delegations) == 12 and all(d.created and d.status == "planned" for d in plan.delegations)
    first = plan.delegations[0]
    assert (first.name, first.phase, first.role, first.task_type, first.due_at) == (
        "Churn: Frame the problem", "Discovery", "data-scientist", "discovery", datetime(2025, 3, 14, tzinfo=UTC))
    by_phase = {d.phase: d.due_at for d in plan.delegations}
    assert by_phase == {"Discovery": datetime(2025, 3, 14, tzinfo=UTC), "Engineering": datetime(2025, 4, 4, 17, tzinfo=UTC),
                        "Deployment": None, "Analytics": None}

    (project,) = memory.graph.find_by_name("Churn", kind=Kind.PROJECT)
    assert project.attributes["status"] == "planned"
    assert project.attributes["due_at"] == datetime(2025, 4, 4, 17, tzinfo=UTC)
    (edges,) = plan_edges(gateway, space)
    assert edges["delegations"] == 12
    # Every task of a phase depends on every task of the phase before: 4*3 + 3*4 + 2*3.
    pairs = sorted(tuple(pair) for pair in edges["depends_on"])
    assert pairs == sorted([("Engineering", "Discovery")] * 12 + [("Deployment", "Engineering")] * 12
                           + [("Analytics", "Deployment")] * 6)


def test_instantiating_twice_duplicates_nothing_and_keeps_progress(memory, gateway, space):
    first = instantiate(memory, "ai-application", "Support bot")
    started = first.delegations[0]
    memory.graph.upsert_entities([EntityIn(kind=Kind.DELEGATION, name=started.name, attributes={"status": "running"})])

    again = instantiate_request(memory, InstantiateTemplate(template="ai-application", project="support bot",
                                                            due_dates={"Testing": "2025-05-01"}))
    assert [d.id for d in again.delegations] == [d.id for d in first.delegations]
    assert not any(d.created for d in again.delegations)
    assert again.delegations[0].status == "running"
    assert all(d.due_at is None for d in again.delegations)  # existing delegations are left as they were
    (edges,) = plan_edges(gateway, space)
    assert (edges["project"], edges["delegations"], len(edges["depends_on"])) == ("Support bot", 9, 3 * 2 + 2 * 2 + 2 * 2)


def test_bad_requests_say_what_to_fix(memory):
    with pytest.raises(NotFound, match="the templates are data-science, ai-application"):
        get_template("kanban")
    with pytest.raises(ValidationError, match="data-science"):
        InstantiateTemplate(template="kanban", project="x")
    with pytest.raises(InvalidInput, match="no phase 'Testing'; its phases are Discovery, Engineering"):
        instantiate(memory, "data-science", "Churn", due_dates={"Testing": date(2025, 3, 1)})
    assert memory.graph.find_by_name("Churn") == []  # nothing was written


def test_each_space_plans_its_own_project(memory, settings, gateway, embedder, space):
    instantiate(memory, "data-science", "Churn")
    other = MemoryService.open(settings, gateway, embedder=embedder, chroma=open_chroma(settings)).space(f"{space}-b")
    try:
        plan = instantiate(other, "data-science", "Churn")
        assert all(d.created for d in plan.delegations)
        assert [e["delegations"] for e in plan_edges(gateway, f"{space}-b")] == [12]
        assert [e["delegations"] for e in plan_edges(gateway, space)] == [12]
    finally:
        gateway.write("MATCH (n {space: $s}) DETACH DELETE n", s=f"{space}-b")


def test_the_what_can_start_now_query_in_the_docs_works(memory, gateway, space):
    from pathlib import Path

    from graph.guard import run_read_only

    docs = (Path(__file__).resolve().parent.parent / "docs" / "templates.md").read_text()
    query = docs.split("```cypher\n", 1)[1].split("```", 1)[0]
    plan = instantiate(memory, "data-science", "Churn")
    first = lambda: [row["d.role"] for row in run_read_only(gateway, query, {"space": space}).rows]  # noqa: E731
    assert sorted(first()) == ["analytics-expert", "data-architect", "data-scientist"]
    memory.graph.upsert_entities([EntityIn(kind=Kind.DELEGATION, name=d.name, attributes={"status": "succeeded"})
                                  for d in plan.delegations if d.phase == "Discovery"])
    assert sorted(first()) == ["data-engineer", "data-scientist", "data-scientist", "ml-engineer"]

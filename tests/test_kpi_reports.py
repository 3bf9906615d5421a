"""The KPI reports: on-time delivery, success by agent and role, production against benchmark, lessons reused.

The history is written through kgmem's own write path (SpaceGraph and MlMemory); each expected
number is worked out by hand next to it.
"""

from datetime import UTC, datetime

import pytest

from agents.ml import MlMemory, ModelIn, ModelVersionIn, StageChange
from graph.model import EntityIn, EntityRef, RelationIn
from graph.reports import run_report
from graph.vocabulary import Kind
from memory.service import MemoryService
from memory.vectors import open_chroma


def at(day: int, hour: int = 9) -> datetime:
    return datetime(2025, 3, day, hour, tzinfo=UTC)


def rows(gateway, name: str, **params) -> list[dict]:
    result = run_report(gateway, name, params)
    assert not result.truncated
    return result.rows


def delegation(name: str, status: str, *, due: datetime | None = None, ended: datetime | None = None,
               **attributes) -> EntityIn:
    values = {"status": status, "due_at": due, "ended_at": ended, **attributes}
    return EntityIn(kind=Kind.DELEGATION, name=name, attributes={k: v for k, v in values.items() if v is not None})


def link(source: str, rel_type: str, target: str, target_kind: Kind, valid_from: datetime | None = None) -> RelationIn:
    return RelationIn(source=EntityRef(kind=Kind.DELEGATION, name=source), type=rel_type,
                      target=EntityRef(kind=target_kind, name=target), valid_from=valid_from)


@pytest.fixture
def work(graph):
    """Eight delegations on two projects, four agents; one handed over, some open, one cancelled."""
    graph.upsert_entities([
        EntityIn(kind=Kind.PROJECT, name="Churn"), EntityIn(kind=Kind.PROJECT, name="Forecast"),
        EntityIn(kind=Kind.AGENT, name="ds-1", attributes={"role": "data-scientist"}),
        EntityIn(kind=Kind.AGENT, name="ds-2", attributes={"role": "data-scientist"}),
        EntityIn(kind=Kind.AGENT, name="mle-1", attributes={"role": "ml-engineer"}),
        EntityIn(kind=Kind.AGENT, name="helper"),
        delegation("a", "succeeded", due=at(10), ended=at(9)),  # on time
        delegation("b", "failed", due=at(10), ended=at(10)),  # on time: ended exactly when due
        delegation("c", "succeeded", due=at(10), ended=at(12, 21)),  # 2.5 days late
        delegation("d", "succeeded", ended=at(11)),  # no due date
        delegation("e", "succeeded", due=at(20), ended=at(19)),  # on time
        delegation("f", "running", due=at(1)),  # not finished
        delegation("g", "cancelled", due=at(5), ended=at(6), role="analytics-expert"),  # not finished
        delegation("h", "succeeded", due=at(21), ended=at(25)),  # 4 days late, no project
    ])
    graph.upsert_relations([
        link("a", "PART_OF", "Churn", Kind.PROJECT), link("b", "PART_OF", "Churn", Kind.PROJECT),
        link("c", "PART_OF", "Churn", Kind.PROJECT), link("d", "PART_OF", "Forecast", Kind.PROJECT),
        link("e", "PART_OF", "Forecast", Kind.PROJECT), link("f", "PART_OF", "Forecast", Kind.PROJECT),
        link("g", "PART_OF", "Churn", Kind.PROJECT),
        link("a", "DELEGATED_TO", "ds-1", Kind.AGENT),
        link("b", "DELEGATED_TO", "mle-1", Kind.AGENT, at(1)),
        link("c", "DELEGATED_TO", "ds-2", Kind.AGENT), link("d", "DELEGATED_TO", "mle-1", Kind.AGENT),
        link("e", "DELEGATED_TO", "mle-1", Kind.AGENT), link("f", "DELEGATED_TO", "mle-1", Kind.AGENT),
        link("g", "DELEGATED_TO", "helper", Kind.AGENT), link("h", "DELEGATED_TO", "ds-1", Kind.AGENT),
    ])
    graph.upsert_relations([link("b", "DELEGATED_TO", "ds-1", Kind.AGENT, at(2))])  # handed over
    return graph


def test_on_time_delivery_rate(gateway, work):
    def row(project, finished, with_due, on_time, late, succeeded_on_time, rate, days_late):
        return {"project": project, "finished": finished, "with_due_date": with_due, "on_time": on_time,
                "late": late, "succeeded_on_time": succeeded_on_time, "on_time_rate": rate,
                "avg_days_late": days_late}

    assert rows(gateway, "on-time-delivery", space=work.space) == [
        row("(all)", 6, 5, 3, 2, 2, 0.6, 3.25),  # a b e on time, c h late; d has no due date
        row("(no project)", 1, 1, 0, 1, 0, 0.0, 4.0),  # h
        row("Churn", 3, 3, 2, 1, 1, 0.667, 2.5),  # a b c (g was cancelled)
        row("Forecast", 2, 1, 1, 0, 1, 1.0, None),  # d e (f is running)
    ]
    def counts(since):
        result = rows(gateway, "on-time-delivery", space=work.space, since=since)
        return [(r["project"], r["finished"], r["on_time"]) for r in result]

    # `since` reads ended_at: c ended on the 12th at 21:00, e on the 19th, h on the 25th.
    assert counts("2025-03-11T12:00") == [("(all)", 3, 1), ("(no project)", 1, 0), ("Churn", 1, 0), ("Forecast", 1, 1)]
    assert counts("2025-03-12T22:00") == [("(all)", 2, 1), ("(no project)", 1, 0), ("Forecast", 1, 1)]


def test_success_rate_by_agent_and_role(gateway, work):
    def row(role, agent, delegations, succeeded, failed, rate):
        return {"role": role, "agent": agent, "delegations": delegations, "succeeded": succeeded,
                "failed": failed, "success_rate": rate}

    assert rows(gateway, "success-by-agent", space=work.space) == [
        row("analytics-expert", "(all)", 1, 0, 0, None),  # helper has no role: g's planned role counts
        row("analytics-expert", "helper", 1, 0, 0, None),
        row("data-scientist", "(all)", 4, 3, 1, 0.75),  # a b c h
        row("data-scientist", "ds-2", 1, 1, 0, 1.0),
        row("data-scientist", "ds-1", 3, 2, 1, 0.667),  # b was handed over from mle-1 to ds-1
        row("ml-engineer", "(all)", 3, 2, 0, 1.0),  # d e f
        row("ml-engineer", "mle-1", 3, 2, 0, 1.0),
    ]


@pytest.fixture
def ml(settings, gateway, embedder, space):
    return MlMemory(MemoryService.open(settings, gateway, embedder=embedder, chroma=open_chroma(settings)).space(space))


def test_model_performance_in_production_against_its_benchmark(gateway, ml, space):
    ml.record_model(ModelIn(name="churn-model", benchmarks={"auc": 0.85}))
    for version, auc, stage in (("1", 0.80, "archived"), ("2", 0.86, "production"), ("3", 0.88, "staging")):
        ml.record_model_version(ModelVersionIn(model="churn-model", version=version, metrics={"auc": auc}, stage=stage))
    for version, mape, stage in (("1", 13.0, "archived"), ("2", 12.0, "staging"), ("3", 10.5, "staging")):
        ml.record_model_version(ModelVersionIn(model="demand-model", version=version, metrics={"mape": mape},
                                               stage=stage))
    ml.set_stage(StageChange(model="demand-model", version="2", stage="Production"))
    ml.record_model_version(ModelVersionIn(model="lonely-model", version="1", metrics={"auc": 0.7}, stage="production"))

    assert rows(gateway, "model-vs-benchmark", space=space) == [
        {"model": "churn-model", "production_version": "2", "value": 0.86, "benchmark": 0.85,
         "benchmark_source": "benchmark_auc", "delta": 0.01, "meets_benchmark": True},
        {"model": "lonely-model", "production_version": "1", "value": 0.7, "benchmark": None,
         "benchmark_source": None, "delta": None, "meets_benchmark": None},
    ]
    # No declared benchmark for mape: the best other version is the benchmark, and lower is better.
    assert rows(gateway, "model-vs-benchmark", space=space, metric="mape", higher_is_better=False) == [
        {"model": "demand-model", "production_version": "2", "value": 12.0, "benchmark": 10.5,
         "benchmark_source": "version 3", "delta": 1.5, "meets_benchmark": False},
    ]
    # Promoting version 3 of churn-model and archiving 2: the report follows the stage.
    ml.set_stage(StageChange(model="churn-model", version="3", stage="production"))
    ml.set_stage(StageChange(model="churn-model", version="2", stage="archived"))
    (churn, _) = rows(gateway, "model-vs-benchmark", space=space)
    assert (churn["production_version"], churn["value"], churn["delta"]) == ("3", 0.88, 0.03)


def test_lessons_reused_per_delegation(gateway, graph, space):
    # The shape agents/delegations.py writes: a brief's shown memory ids, and the outcome's feedback.
    leakage, refresh, withdrawn, agent = graph.upsert_entities([
        EntityIn(kind=Kind.LESSON, name="Check for leakage"), EntityIn(kind=Kind.LESSON, name="Refresh features"),
        EntityIn(kind=Kind.LESSON, name="Withdrawn lesson"), EntityIn(kind=Kind.AGENT, name="ds-1")])
    graph.retract_entity(withdrawn.id)
    graph.upsert_entities([delegation("retrain", "succeeded", task="Retrain the churn model",
                                      shown_ids=[leakage.id, agent.id, refresh.id, withdrawn.id],
                                      helpful_ids=[refresh.id])])
    graph.upsert_relations([link("retrain", "PART_OF", "Churn", Kind.PROJECT)], create_missing=True)
    graph.upsert_entities([delegation("deploy", "failed", task="Deploy the churn model", shown_ids=[agent.id])])
    graph.upsert_entities([delegation("never briefed", "planned")])

    result = rows(gateway, "lessons-reused", space=space)
    assert [{k: v for k, v in r.items() if k != "created_at"} for r in result] == [  # newest first
        {"delegation": "deploy", "task": "Deploy the churn model", "project": None, "status": "failed",
         "lessons_shown": 0, "lessons_helpful": 0, "lessons": []},
        {"delegation": "retrain", "task": "Retrain the churn model", "project": "Churn", "status": "succeeded",
         "lessons_shown": 2, "lessons_helpful": 1, "lessons": ["Check for leakage", "Refresh features"]},
    ]  # the agent is not a lesson, the withdrawn lesson no longer counts, "never briefed" had no brief
    assert result[0]["created_at"] > result[1]["created_at"]
    assert [r["delegation"] for r in rows(gateway, "lessons-reused", space=space, limit=1)] == ["deploy"]


def test_kpis_of_one_space_never_show_another(gateway, work, graph_store, space):
    other = graph_store.space(f"{space}-b")
    try:
        other.upsert_entities([delegation("a", "failed", due=at(1), ended=at(30), shown_ids=["x"]),
                               EntityIn(kind=Kind.AGENT, name="intruder", attributes={"role": "data-scientist"})])
        other.upsert_relations([link("a", "DELEGATED_TO", "intruder", Kind.AGENT)])
        (everything, *_) = rows(gateway, "on-time-delivery", space=space)
        assert (everything["finished"], everything["on_time"]) == (6, 3)
        assert "intruder" not in repr(rows(gateway, "success-by-agent", space=space))
        assert rows(gateway, "lessons-reused", space=space) == []
        assert [r["agent"] for r in rows(gateway, "success-by-agent", space=f"{space}-b")] == ["(all)", "intruder"]
    finally:
        gateway.write("MATCH (n {space: $s}) DETACH DELETE n", s=f"{space}-b")

"""The named analyst reports, over a small recorded history written with plain Cypher."""

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import delete_space

from graph.errors import InvalidInput, NotFound
from graph.reports import REPORTS, run_report

DOCS = Path(__file__).resolve().parent.parent / "docs" / "cypher.md"


def at(day: int, hour: int = 10) -> datetime:
    return datetime(2025, 3, day, hour, tzinfo=UTC)


def entity(kind: str, name: str, **attributes) -> dict:
    return {"kind": kind, "name": name, "attributes": attributes}


def relation(source: str, rel_type: str, target: str, **attributes) -> dict:
    return {"source": source, "type": rel_type, "target": target, "attributes": attributes}


def delegation(name: str, task_type: str, status: str, day: int, cause: str | None = None) -> dict:
    return entity("Delegation", name, task_type=task_type, status=status, failure_cause=cause, created_at=at(day))


# What the team recorded in March 2025. Retracted entities, closed and retracted
# relations are there on purpose: no report may count them.
ENTITIES = [
    entity("Project", "Churn", status="active"),
    entity("Project", "Forecast", status="active"),
    entity("Project", "Dashboard", status="planned"),
    entity("Project", "Retired", status="done", retracted_at=at(20)),
    entity("Agent", "ds-1", role="data-scientist"),
    entity("Agent", "ds-2", role="data-scientist"),
    entity("Agent", "mle-1", role="ml-engineer"),
    delegation("d1", "train", "succeeded", 3),
    delegation("d2", "train", "failed", 4, "data leak"),
    delegation("d3", "eda", "succeeded", 5),
    delegation("d4", "deploy", "failed", 11, "timeout"),
    delegation("d5", "deploy", "failed", 12, "timeout"),
    delegation("d6", "deploy", "succeeded", 12),
    delegation("d7", "train", "cancelled", 13),
    delegation("d8", "eda", "running", 13),
    delegation("d9", "train", "failed", 14, "oom"),
    delegation("d10", "eda", "failed", 18),
    entity("Delegation", "d-retracted", task_type="train", status="succeeded", created_at=at(12), retracted_at=at(15)),
    entity("Lesson", "Check for leakage", severity="high"),
    entity("Lesson", "Set deploy timeouts", severity="high"),
    entity("Lesson", "Profile memory", severity="medium"),
    entity("Lesson", "Withdrawn lesson", retracted_at=at(16)),
    entity("Lesson", "Superseded lesson"),
    entity("Lesson", "Keep runbooks current"),
    entity("Lesson", "Canary deploys"),
    entity("Model", "churn-model", task="classification"),
    entity("Model", "forecast-model", task="regression"),
    entity("ModelVersion", "churn-model v1", version="1", stage="archived", created_at=at(1)),
    entity("ModelVersion", "churn-model v2", version="2", stage="production", created_at=at(5)),
    entity("ModelVersion", "churn-model v3", version="3", stage="staging", created_at=at(9)),
    entity("ModelVersion", "churn-model v0", version="0", stage="archived", created_at=at(1), retracted_at=at(2)),
    entity("ModelVersion", "forecast-model f1", version="f1", stage="production", created_at=at(7)),
    entity("Experiment", "exp-1", metric_auc=0.81, metric_logloss=0.45),
    entity("Experiment", "exp-2", metric_auc=0.86, metric_logloss=0.40),
    entity("Experiment", "exp-3", metric_auc=0.84),
    entity("Experiment", "exp-4", metric_auc=0.90),
    entity("Experiment", "exp-withdrawn", metric_auc=0.99, retracted_at=at(10)),
    entity("Experiment", "exp-unscored", metric_auc="n/a"),
    entity("Experiment", "exp-forecast", metric_mape=12.5),
    entity("Incident", "Model API outage", severity="high", status="resolved", opened_at=at(12, 14),
           resolved_at=at(13)),
    entity("Incident", "Stale features", severity="low", status="open", opened_at=at(15)),
]

RELATIONS = [
    # d2 was first given to mle-1, then handed over to ds-2: only ds-2 is current.
    relation("d1", "DELEGATED_TO", "ds-1"),
    relation("d2", "DELEGATED_TO", "mle-1", valid_to=at(4, 12)),
    relation("d2", "DELEGATED_TO", "ds-2", valid_from=at(4, 12)),
    relation("d3", "DELEGATED_TO", "ds-1"),
    relation("d4", "DELEGATED_TO", "mle-1"),
    relation("d5", "DELEGATED_TO", "mle-1"),
    relation("d6", "DELEGATED_TO", "mle-1"),
    relation("d7", "DELEGATED_TO", "ds-2"),
    relation("d8", "DELEGATED_TO", "ds-1", retracted_at=at(13, 12)),  # recorded by mistake
    relation("d9", "DELEGATED_TO", "ds-1"),
    relation("d-retracted", "DELEGATED_TO", "ds-1"),
    relation("d1", "PART_OF", "Churn"),
    relation("d2", "PART_OF", "Churn"),
    relation("d3", "PART_OF", "Forecast"),
    relation("d4", "PART_OF", "Forecast"),
    relation("d5", "PART_OF", "Churn"),
    relation("d6", "PART_OF", "Forecast"),
    relation("d7", "PART_OF", "Churn"),
    relation("d8", "PART_OF", "Forecast"),
    relation("d9", "PART_OF", "Churn"),
    relation("Check for leakage", "APPLIES_TO", "Churn"),
    relation("Check for leakage", "LEARNED_FROM", "d2"),
    relation("Set deploy timeouts", "LEARNED_FROM", "d4"),
    relation("Set deploy timeouts", "LEARNED_FROM", "d5"),
    relation("Profile memory", "APPLIES_TO", "Forecast"),
    relation("Withdrawn lesson", "APPLIES_TO", "Churn"),
    relation("Superseded lesson", "APPLIES_TO", "Churn", valid_to=at(10)),
    relation("Keep runbooks current", "LEARNED_FROM", "Model API outage"),
    relation("Canary deploys", "LEARNED_FROM", "Model API outage"),
    relation("Withdrawn lesson", "LEARNED_FROM", "Model API outage"),
    relation("d5", "CAUSED", "Model API outage"),
    relation("Model API outage", "RESOLVED_BY", "d6"),
    relation("churn-model v1", "VERSION_OF", "churn-model"),
    relation("churn-model v2", "VERSION_OF", "churn-model"),
    relation("churn-model v3", "VERSION_OF", "churn-model"),
    relation("churn-model v0", "VERSION_OF", "churn-model"),
    relation("forecast-model f1", "VERSION_OF", "forecast-model"),
    relation("exp-1", "PRODUCED", "churn-model v1"),
    relation("exp-2", "PRODUCED", "churn-model v2"),
    relation("exp-3", "PRODUCED", "churn-model v3"),
    relation("exp-withdrawn", "PRODUCED", "churn-model v3"),
    relation("exp-forecast", "PRODUCED", "forecast-model f1"),
]

# Another tenant with the same names and more: none of it may show up in the first one's reports.
INTRUDER_ENTITIES = [
    entity("Project", "Churn", status="active"),
    entity("Project", "Intruder project", status="active"),
    entity("Agent", "ds-1", role="data-scientist"),
    delegation("d1", "train", "failed", 3, "intruder cause"),
    delegation("intruder d", "train", "failed", 4, "intruder cause"),
    entity("Lesson", "Intruder lesson"),
    entity("Model", "churn-model"),
    entity("ModelVersion", "churn-model v9", version="9", stage="production", created_at=at(2)),
    entity("Experiment", "intruder exp", metric_auc=0.999),
    entity("Incident", "Intruder incident", severity="high", status="open", opened_at=at(20)),
]
INTRUDER_RELATIONS = [
    relation("d1", "DELEGATED_TO", "ds-1"),
    relation("d1", "PART_OF", "Churn"),
    relation("Intruder lesson", "APPLIES_TO", "Churn"),
    relation("Intruder lesson", "LEARNED_FROM", "Intruder incident"),
    relation("churn-model v9", "VERSION_OF", "churn-model"),
    relation("intruder exp", "PRODUCED", "churn-model v9"),
]

CREATE_ENTITIES = """
UNWIND $rows AS row
CREATE (e:Entity {id: randomUUID(), space: $space, kind: row.kind, entity_type: row.kind, name: row.name,
                  name_key: toLower(row.name), aliases: [], alias_keys: [], created_at: $now, updated_at: $now})
SET e:$(row.kind)
SET e += row.attributes
"""

CREATE_RELATIONS = """
UNWIND $rows AS row
MATCH (a:Entity {space: $space, name: row.source}), (b:Entity {space: $space, name: row.target})
CREATE (a)-[r:$(row.type)]->(b)
SET r = {id: randomUUID(), space: $space, label: row.type, valid_from: $now, recorded_at: $now, source: 'test'}
SET r += row.attributes
RETURN count(r) AS created
"""


def record_history(gateway, space: str, entities: list[dict], relations: list[dict]) -> None:
    now = at(1, 9)
    gateway.write(CREATE_ENTITIES, rows=entities, space=space, now=now)
    records = gateway.write(CREATE_RELATIONS, rows=relations, space=space, now=now)
    assert records[0]["created"] == len(relations), "a relation names an entity that does not exist"


@pytest.fixture
def other_space(gateway):
    name = f"test-other-{uuid.uuid4().hex[:12]}"
    yield name
    delete_space(gateway, name)


@pytest.fixture
def history(gateway, space, other_space):
    record_history(gateway, space, ENTITIES, RELATIONS)
    record_history(gateway, other_space, INTRUDER_ENTITIES, INTRUDER_RELATIONS)
    return space


def rows(gateway, name: str, **params) -> list[dict]:
    result = run_report(gateway, name, params)
    assert not result.truncated
    return result.rows


def test_agent_success_by_role_and_task_type(gateway, history):
    def row(dimension, value, delegations, succeeded, failed, cancelled, open_, rate):
        return {"dimension": dimension, "value": value, "delegations": delegations, "succeeded": succeeded,
                "failed": failed, "cancelled": cancelled, "open": open_, "success_rate": rate}

    assert rows(gateway, "agent-success", space=history) == [
        row("role", "data-scientist", 5, 2, 2, 1, 0, 0.5),  # d1 d3 d9 (ds-1), d2 d7 (ds-2)
        row("role", "ml-engineer", 3, 1, 2, 0, 0, 0.333),  # d4 d5 d6; d2 was handed over
        row("role", "(unassigned)", 2, 0, 1, 0, 1, 0.0),  # d10; d8's assignment was retracted
        row("task_type", "eda", 3, 1, 1, 0, 1, 0.5),
        row("task_type", "deploy", 3, 1, 2, 0, 0, 0.333),
        row("task_type", "train", 4, 1, 2, 1, 0, 0.333),
    ]


def test_agent_success_since(gateway, history):
    result = rows(gateway, "agent-success", space=history, since="2025-03-13")
    by_role = {r["value"]: (r["delegations"], r["success_rate"]) for r in result if r["dimension"] == "role"}
    assert by_role == {"data-scientist": (2, 0.0), "(unassigned)": (2, 0.0)}  # d7 d9, d8 d10


def test_a_dimension_without_finished_work_has_no_rate(gateway, space):
    record_history(gateway, space, [delegation("only", "eda", "planned", 3)], [])
    assert [r["success_rate"] for r in rows(gateway, "agent-success", space=space)] == [None, None]


def test_lessons_per_project(gateway, history):
    assert rows(gateway, "lessons-per-project", space=history) == [
        {"project": "Churn", "status": "active", "lessons": 2, "applies_to": 1, "learned_from_work": 2},
        {"project": "Forecast", "status": "active", "lessons": 2, "applies_to": 1, "learned_from_work": 1},
        {"project": "Dashboard", "status": "planned", "lessons": 0, "applies_to": 0, "learned_from_work": 0},
    ]
    assert [r["project"] for r in rows(gateway, "lessons-per-project", space=history, limit=1)] == ["Churn"]


def test_model_lineage(gateway, history):
    def row(model, version, stage, experiments, day):
        return {"model": model, "version": version, "stage": stage, "experiments": experiments,
                "recorded_at": f"2025-03-{day:02d}T10:00:00.000000000+00:00"}

    churn = [
        row("churn-model", "1", "archived", ["exp-1"], 1),
        row("churn-model", "2", "production", ["exp-2"], 5),
        row("churn-model", "3", "staging", ["exp-3"], 9),
    ]
    assert rows(gateway, "model-lineage", space=history) == [
        *churn, row("forecast-model", "f1", "production", ["exp-forecast"], 7),
    ]
    assert rows(gateway, "model-lineage", space=history, model="Churn-Model") == churn


def test_experiment_leaderboard(gateway, history):
    def produced(version, stage):
        return [{"model": "churn-model", "version": version, "stage": stage}]

    assert rows(gateway, "experiment-leaderboard", space=history) == [
        {"rank": 1, "experiment": "exp-4", "score": 0.90, "produced": []},
        {"rank": 2, "experiment": "exp-2", "score": 0.86, "produced": produced("2", "production")},
        {"rank": 3, "experiment": "exp-3", "score": 0.84, "produced": produced("3", "staging")},
        {"rank": 4, "experiment": "exp-1", "score": 0.81, "produced": produced("1", "archived")},
    ]
    assert [r["experiment"] for r in rows(gateway, "experiment-leaderboard", space=history, limit=2)] == [
        "exp-4", "exp-2",
    ]
    by_loss = rows(gateway, "experiment-leaderboard", space=history, metric="logloss", higher_is_better=False)
    assert [(r["rank"], r["experiment"], r["score"]) for r in by_loss] == [(1, "exp-2", 0.40), (2, "exp-1", 0.45)]


def test_delegation_throughput_by_week(gateway, history):
    def week(start, total, planned, running, succeeded, failed, cancelled, causes):
        return {"period": start, "delegations": total, "planned": planned, "running": running,
                "succeeded": succeeded, "failed": failed, "cancelled": cancelled,
                "top_failure_causes": [{"cause": cause, "failures": n} for cause, n in causes]}

    assert rows(gateway, "delegation-throughput", space=history) == [
        week("2025-03-03", 3, 0, 0, 2, 1, 0, [("data leak", 1)]),
        week("2025-03-10", 6, 0, 1, 1, 3, 1, [("timeout", 2), ("oom", 1)]),
        week("2025-03-17", 1, 0, 0, 0, 1, 0, [("(unknown)", 1)]),
    ]


def test_delegation_throughput_by_day_since_with_fewer_causes(gateway, history):
    result = rows(gateway, "delegation-throughput", space=history, period="day", since="2025-03-11",
                  top_causes=1)
    assert [(r["period"], r["delegations"], r["failed"]) for r in result] == [
        ("2025-03-11", 1, 1), ("2025-03-12", 2, 1), ("2025-03-13", 2, 0), ("2025-03-14", 1, 1), ("2025-03-18", 1, 1),
    ]
    assert result[0]["top_failure_causes"] == [{"cause": "timeout", "failures": 1}]
    assert all(len(r["top_failure_causes"]) <= 1 for r in result)


def test_incident_lessons(gateway, history):
    assert rows(gateway, "incident-lessons", space=history) == [
        {"incident": "Stale features", "severity": "low", "status": "open",
         "opened_at": "2025-03-15T10:00:00.000000000+00:00", "resolved_at": None,
         "caused_by": [], "resolved_by": [], "lessons": []},
        {"incident": "Model API outage", "severity": "high", "status": "resolved",
         "opened_at": "2025-03-12T14:00:00.000000000+00:00", "resolved_at": "2025-03-13T10:00:00.000000000+00:00",
         "caused_by": ["d5"], "resolved_by": ["d6"], "lessons": ["Canary deploys", "Keep runbooks current"]},
    ]
    assert [r["incident"] for r in rows(gateway, "incident-lessons", space=history, since="2025-03-14")] == [
        "Stale features",
    ]


def test_another_space_never_shows_up(gateway, history, other_space):
    for name in REPORTS:
        text = repr(rows(gateway, name, space=history))
        assert "ntruder" not in text and "0.999" not in text, name
    # …and the other tenant sees only its own.
    assert rows(gateway, "lessons-per-project", space=other_space) == [
        {"project": "Churn", "status": "active", "lessons": 1, "applies_to": 1, "learned_from_work": 0},
        {"project": "Intruder project", "status": "active", "lessons": 0, "applies_to": 0, "learned_from_work": 0},
    ]


def test_an_empty_space_gives_empty_reports(gateway, space):
    for name in REPORTS:
        assert rows(gateway, name, space=space) == [], name


def test_the_reports_are_registered():
    assert list(REPORTS) == [
        "agent-success", "lessons-per-project", "model-lineage", "experiment-leaderboard",
        "delegation-throughput", "incident-lessons",
        # the KPIs, specified in test_kpi_reports.py
        "on-time-delivery", "success-by-agent", "model-vs-benchmark", "lessons-reused",
    ]
    for report in REPORTS.values():
        assert report.parameters[0].name == "space" and report.parameters[0].required
        assert report.title and report.description


def test_every_report_is_documented_with_its_cypher():
    docs = DOCS.read_text()
    for report in REPORTS.values():
        assert f"### `{report.name}`" in docs, report.name
        assert report.cypher in docs, f"docs/cypher.md shows an outdated query for {report.name}"
        for parameter in report.parameters:
            assert f"`{parameter.name}`" in docs


@pytest.mark.parametrize(("name", "params", "error", "message"), [
    ("no-such-report", {"space": "x"}, NotFound, "no report named 'no-such-report'"),
    ("agent-success", {}, InvalidInput, "needs the parameter space"),
    ("agent-success", {"space": "x", "colour": "red"}, InvalidInput, "has no parameter colour"),
    ("agent-success", {"space": "x", "since": "last tuesday"}, InvalidInput, "ISO 8601"),
    ("delegation-throughput", {"space": "x", "period": "year"}, InvalidInput, "day, week, month"),
    ("incident-lessons", {"space": "x", "limit": 0}, InvalidInput, "at least 1"),
    ("incident-lessons", {"space": "x", "limit": "many"}, InvalidInput, "must be an integer"),
    ("experiment-leaderboard", {"space": "x", "higher_is_better": "maybe"}, InvalidInput, "true or false"),
])
def test_bad_report_requests_are_clear(gateway, name, params, error, message):
    with pytest.raises(error, match=message):
        run_report(gateway, name, params)

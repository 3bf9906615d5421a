"""Named analyst reports: documented, parameterised Cypher run through the read-only guard.

Every report reads one tenant (`space`, required) and current facts only: an
entity counts while `retracted_at IS NULL`, a relation while
`valid_to IS NULL AND retracted_at IS NULL` (docs/schema.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from neo4j import Driver

from graph.cypher import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT_S, CypherResult, run_read_only
from graph.errors import InvalidInput, NotFound

ParameterKind = Literal["string", "integer", "boolean", "datetime"]


@dataclass(frozen=True)
class ReportParameter:
    name: str
    kind: ParameterKind
    description: str
    default: str | int | bool | None = None
    required: bool = False
    choices: tuple[str, ...] = ()
    minimum: int | None = None

    def coerce(self, value: Any) -> Any:
        """`value` as the type the report's Cypher expects; InvalidInput when it cannot be."""
        if value is None:
            return None
        if self.kind == "datetime":
            return _as_datetime(self.name, value)
        if self.kind == "boolean":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "false"):
                return str(value).lower() == "true"
            raise InvalidInput(f"parameter {self.name} must be true or false, not {value!r}")
        if self.kind == "integer":
            return self._as_integer(value)
        text = str(value)
        if self.choices and text not in self.choices:
            raise InvalidInput(f"parameter {self.name} must be one of {', '.join(self.choices)}, not {text!r}")
        return text

    def _as_integer(self, value: Any) -> int:
        try:
            if isinstance(value, bool):
                raise ValueError
            number = int(value)
        except (TypeError, ValueError):
            raise InvalidInput(f"parameter {self.name} must be an integer, not {value!r}") from None
        if self.minimum is not None and number < self.minimum:
            raise InvalidInput(f"parameter {self.name} must be at least {self.minimum}, not {number}")
        return number


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    description: str
    cypher: str
    parameters: tuple[ReportParameter, ...]

    def bind(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults filled in, values checked and typed; InvalidInput on unknown or missing ones."""
        known = {parameter.name: parameter for parameter in self.parameters}
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise InvalidInput(
                f"report {self.name} has no parameter {', '.join(unknown)}; it takes {', '.join(known)}"
            )
        bound: dict[str, Any] = {}
        for parameter in self.parameters:
            value = parameter.coerce(params.get(parameter.name, parameter.default))
            if value is None and parameter.required:
                raise InvalidInput(f"report {self.name} needs the parameter {parameter.name}")
            bound[parameter.name] = value
        return bound


def _as_datetime(name: str, value: Any) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            raise InvalidInput(f"parameter {name} must be an ISO 8601 date or date-time, not {value!r}") from None
    # A naive value would reach Neo4j as a LocalDateTime, which never compares with the stored datetimes.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


SPACE = ReportParameter("space", "string", "the tenant to report on", required=True)


def _since(what: str) -> ReportParameter:
    return ReportParameter("since", "datetime", f"only {what} on or after this ISO 8601 date or date-time")


def _limit(default: int, what: str) -> ReportParameter:
    return ReportParameter("limit", "integer", f"at most this many {what}", default=default, minimum=1)


AGENT_SUCCESS = Report(
    name="agent-success",
    title="Agent success rate by role and by task type",
    description=(
        "For each agent role (the current DELEGATED_TO assignee's `role`) and each delegation `task_type`: "
        "how many delegations there were, by status, and the success rate "
        "succeeded / (succeeded + failed); planned, running and cancelled work is counted but not rated."
    ),
    cypher="""\
MATCH (d:Delegation {space: $space})
WHERE d.retracted_at IS NULL AND ($since IS NULL OR d.created_at >= $since)
WITH d, COLLECT {
  MATCH (d)-[r:DELEGATED_TO]->(a:Agent)
  WHERE r.valid_to IS NULL AND r.retracted_at IS NULL AND a.retracted_at IS NULL
  RETURN coalesce(a.role, '(no role)')
} AS roles
UNWIND [['role', coalesce(head(roles), '(unassigned)')],
        ['task_type', coalesce(d.task_type, '(none)')]] AS grouping
WITH grouping[0] AS dimension, grouping[1] AS value, d.status AS status
WITH dimension, value, count(*) AS delegations,
     count(CASE WHEN status = 'succeeded' THEN 1 END) AS succeeded,
     count(CASE WHEN status = 'failed' THEN 1 END) AS failed,
     count(CASE WHEN status = 'cancelled' THEN 1 END) AS cancelled,
     count(CASE WHEN status IN ['planned', 'running'] THEN 1 END) AS open
RETURN dimension, value, delegations, succeeded, failed, cancelled, open,
       CASE WHEN succeeded + failed = 0 THEN null
            ELSE round(toFloat(succeeded) / (succeeded + failed), 3) END AS success_rate
ORDER BY dimension, coalesce(success_rate, -1.0) DESC, value""",
    parameters=(SPACE, _since("delegations created")),
)

LESSONS_PER_PROJECT = Report(
    name="lessons-per-project",
    title="Lessons per project",
    description=(
        "For each project: the lessons that apply to it (Lesson -APPLIES_TO-> Project) and the lessons "
        "learned from its delegations (Lesson -LEARNED_FROM-> Delegation -PART_OF-> Project); "
        "`lessons` counts each lesson once, however it is linked."
    ),
    cypher="""\
MATCH (p:Project {space: $space})
WHERE p.retracted_at IS NULL
WITH p,
     COLLECT {
       MATCH (l:Lesson)-[r:APPLIES_TO]->(p)
       WHERE l.retracted_at IS NULL AND r.valid_to IS NULL AND r.retracted_at IS NULL
       RETURN DISTINCT l.id
     } AS applying,
     COLLECT {
       MATCH (l:Lesson)-[r:LEARNED_FROM]->(d:Delegation)-[w:PART_OF]->(p)
       WHERE l.retracted_at IS NULL AND d.retracted_at IS NULL
         AND r.valid_to IS NULL AND r.retracted_at IS NULL
         AND w.valid_to IS NULL AND w.retracted_at IS NULL
       RETURN DISTINCT l.id
     } AS learned
RETURN p.name AS project, p.status AS status,
       size(applying + [id IN learned WHERE NOT id IN applying]) AS lessons,
       size(applying) AS applies_to, size(learned) AS learned_from_work
ORDER BY lessons DESC, project
LIMIT $limit""",
    parameters=(SPACE, _limit(100, "projects")),
)

MODEL_LINEAGE = Report(
    name="model-lineage",
    title="Model lineage: experiment, version, stage",
    description=(
        "Every model version of every model (ModelVersion -VERSION_OF-> Model), its `stage` and the "
        "experiments that produced it (Experiment -PRODUCED-> ModelVersion), oldest version first."
    ),
    cypher="""\
MATCH (v:ModelVersion {space: $space})-[r:VERSION_OF]->(m:Model)
WHERE v.retracted_at IS NULL AND m.retracted_at IS NULL AND r.valid_to IS NULL AND r.retracted_at IS NULL
  AND ($model IS NULL OR toLower(m.name) = toLower($model))
RETURN m.name AS model, v.version AS version, v.stage AS stage,
       COLLECT {
         MATCH (e:Experiment)-[p:PRODUCED]->(v)
         WHERE e.retracted_at IS NULL AND p.valid_to IS NULL AND p.retracted_at IS NULL
         RETURN e.name ORDER BY e.name
       } AS experiments,
       v.created_at AS recorded_at
ORDER BY model, recorded_at, version""",
    parameters=(SPACE, ReportParameter("model", "string", "only this model (its name, any case)")),
)

EXPERIMENT_LEADERBOARD = Report(
    name="experiment-leaderboard",
    title="Experiment leaderboard by metric",
    description=(
        "Experiments ranked by one metric (the numeric property `metric_<metric>`), with the model "
        "versions each produced and their stages; experiments without that metric are left out."
    ),
    cypher="""\
MATCH (e:Experiment {space: $space})
WHERE e.retracted_at IS NULL
WITH e, e['metric_' + $metric] AS score
WHERE score IS NOT NULL AND score IS :: INTEGER | FLOAT  // a null would pass the type test alone
ORDER BY CASE WHEN $higher_is_better THEN -score ELSE score END, e.name
LIMIT $limit
WITH collect({experiment: e, score: score}) AS ranked
UNWIND range(0, size(ranked) - 1) AS i
WITH i + 1 AS rank, ranked[i].experiment AS e, ranked[i].score AS score
RETURN rank, e.name AS experiment, score,
       COLLECT {
         MATCH (e)-[p:PRODUCED]->(v:ModelVersion)
         WHERE v.retracted_at IS NULL AND p.valid_to IS NULL AND p.retracted_at IS NULL
         OPTIONAL MATCH (v)-[r:VERSION_OF]->(m:Model)
         WHERE m.retracted_at IS NULL AND r.valid_to IS NULL AND r.retracted_at IS NULL
         RETURN {model: m.name, version: v.version, stage: v.stage} AS produced
         ORDER BY produced.model, produced.version
       } AS produced
ORDER BY rank""",
    parameters=(
        SPACE,
        ReportParameter("metric", "string", "the metric to rank by: `auc` ranks on `metric_auc`", default="auc"),
        ReportParameter("higher_is_better", "boolean", "false for losses and errors", default=True),
        _limit(20, "experiments"),
    ),
)

DELEGATION_THROUGHPUT = Report(
    name="delegation-throughput",
    title="Delegation throughput and failure causes over time",
    description=(
        "Delegations per day, week or month of `created_at`: how many, by status, and the most "
        "frequent `failure_cause` values among the failed ones."
    ),
    cypher="""\
MATCH (d:Delegation {space: $space})
WHERE d.retracted_at IS NULL AND d.created_at IS NOT NULL
  AND ($since IS NULL OR d.created_at >= $since)
WITH date.truncate($period, d.created_at) AS period, d.status AS status, d.failure_cause AS cause
WITH period, count(*) AS delegations,
     count(CASE WHEN status = 'planned' THEN 1 END) AS planned,
     count(CASE WHEN status = 'running' THEN 1 END) AS running,
     count(CASE WHEN status = 'succeeded' THEN 1 END) AS succeeded,
     count(CASE WHEN status = 'failed' THEN 1 END) AS failed,
     count(CASE WHEN status = 'cancelled' THEN 1 END) AS cancelled,
     collect(CASE WHEN status = 'failed' THEN coalesce(cause, '(unknown)') END) AS causes
RETURN period, delegations, planned, running, succeeded, failed, cancelled,
       COLLECT {
         UNWIND causes AS cause
         WITH cause, count(*) AS failures
         ORDER BY failures DESC, cause
         LIMIT $top_causes
         RETURN {cause: cause, failures: failures}
       } AS top_failure_causes
ORDER BY period""",
    parameters=(
        SPACE,
        ReportParameter("period", "string", "the bucket: day, week (starting Monday) or month",
                        default="week", choices=("day", "week", "month")),
        _since("delegations created"),
        ReportParameter("top_causes", "integer", "how many failure causes to list per period",
                        default=3, minimum=1),
    ),
)

INCIDENT_LESSONS = Report(
    name="incident-lessons",
    title="Incidents and the lessons learned from them",
    description=(
        "Incidents, newest first, with what caused them (X -CAUSED-> Incident), what resolved them "
        "(Incident -RESOLVED_BY-> X) and the lessons learned from them (Lesson -LEARNED_FROM-> Incident); "
        "an empty `lessons` list is an incident nobody has learned from yet."
    ),
    cypher="""\
MATCH (i:Incident {space: $space})
WHERE i.retracted_at IS NULL AND ($since IS NULL OR i.opened_at >= $since)
RETURN i.name AS incident, i.severity AS severity, i.status AS status,
       i.opened_at AS opened_at, i.resolved_at AS resolved_at,
       COLLECT {
         MATCH (c:Entity)-[r:CAUSED]->(i)
         WHERE c.retracted_at IS NULL AND r.valid_to IS NULL AND r.retracted_at IS NULL
         RETURN c.name ORDER BY c.name
       } AS caused_by,
       COLLECT {
         MATCH (i)-[r:RESOLVED_BY]->(x:Entity)
         WHERE x.retracted_at IS NULL AND r.valid_to IS NULL AND r.retracted_at IS NULL
         RETURN x.name ORDER BY x.name
       } AS resolved_by,
       COLLECT {
         MATCH (l:Lesson)-[r:LEARNED_FROM]->(i)
         WHERE l.retracted_at IS NULL AND r.valid_to IS NULL AND r.retracted_at IS NULL
         RETURN l.name ORDER BY l.name
       } AS lessons
ORDER BY opened_at DESC, incident
LIMIT $limit""",
    parameters=(SPACE, _since("incidents opened"), _limit(50, "incidents")),
)

REPORTS: dict[str, Report] = {
    report.name: report
    for report in (
        AGENT_SUCCESS, LESSONS_PER_PROJECT, MODEL_LINEAGE, EXPERIMENT_LEADERBOARD,
        DELEGATION_THROUGHPUT, INCIDENT_LESSONS,
    )
}


def get_report(name: str) -> Report:
    try:
        return REPORTS[name]
    except KeyError:
        raise NotFound(f"no report named {name!r}; the reports are {', '.join(REPORTS)}") from None


def run_report(
    driver: Driver,
    name: str,
    params: Mapping[str, Any],
    *,
    database: str = "neo4j",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> CypherResult:
    """Run report `name` with `params` through the same guard as any analyst query."""
    report = get_report(name)
    return run_read_only(
        driver, report.cypher, report.bind(params), database=database, timeout_s=timeout_s, max_rows=max_rows
    )

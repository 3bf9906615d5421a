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

from graph.gateway import Gateway
from graph.guard import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT_S, CypherResult, run_read_only
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

# -- KPIs -------------------------------------------------------------------------------------

ON_TIME_DELIVERY = Report(
    name="on-time-delivery",
    title="On-time delivery rate",
    description=(
        "Among finished delegations (status succeeded or failed, with an `ended_at`), per project "
        "(Delegation -PART_OF-> Project) and for all of them together (`(all)`): how many had a "
        "`due_at`, how many ended on or before it, how many after it, and the on-time rate "
        "on_time / with_due_date; `succeeded_on_time` counts those that also succeeded, "
        "`avg_days_late` is the mean lateness of the late ones."
    ),
    cypher="""\
MATCH (d:Delegation {space: $space})
WHERE d.retracted_at IS NULL AND d.status IN ['succeeded', 'failed'] AND d.ended_at IS NOT NULL
  AND ($since IS NULL OR d.ended_at >= $since)
WITH d, COLLECT {
  MATCH (d)-[r:PART_OF]->(p:Project)
  WHERE r.valid_to IS NULL AND r.retracted_at IS NULL AND p.retracted_at IS NULL
  RETURN p.name ORDER BY p.name
} AS projects
UNWIND [coalesce(head(projects), '(no project)'), '(all)'] AS project
WITH project, d, d.due_at IS NOT NULL AND d.ended_at > d.due_at AS is_late
WITH project, count(*) AS finished, count(d.due_at) AS with_due_date,
     count(CASE WHEN d.ended_at <= d.due_at THEN 1 END) AS on_time,
     count(CASE WHEN is_late THEN 1 END) AS late,
     count(CASE WHEN d.status = 'succeeded' AND d.ended_at <= d.due_at THEN 1 END) AS succeeded_on_time,
     avg(CASE WHEN is_late THEN duration.inSeconds(d.due_at, d.ended_at).seconds / 86400.0 END) AS days_late
RETURN project, finished, with_due_date, on_time, late, succeeded_on_time,
       CASE WHEN with_due_date = 0 THEN null ELSE round(toFloat(on_time) / with_due_date, 3) END AS on_time_rate,
       round(days_late, 2) AS avg_days_late
ORDER BY CASE WHEN project = '(all)' THEN 0 ELSE 1 END, project""",
    parameters=(SPACE, _since("delegations that ended")),
)

SUCCESS_BY_AGENT = Report(
    name="success-by-agent",
    title="Success rate by agent and by role",
    description=(
        "For each agent (the current DELEGATED_TO assignee) and, in the `(all)` row of each role, for "
        "the role as a whole (the agent's `role`, else the delegation's planned `role`): delegations, "
        "succeeded, failed and the success rate succeeded / (succeeded + failed). Unassigned "
        "delegations are left out; planned, running and cancelled work is counted but not rated."
    ),
    cypher="""\
MATCH (d:Delegation {space: $space})-[r:DELEGATED_TO]->(a:Agent)
WHERE d.retracted_at IS NULL AND a.retracted_at IS NULL AND r.valid_to IS NULL AND r.retracted_at IS NULL
  AND ($since IS NULL OR d.created_at >= $since)
WITH coalesce(a.role, d.role, '(no role)') AS role, a.name AS agent, d.status AS status
UNWIND [agent, '(all)'] AS who
WITH role, who AS agent, count(*) AS delegations,
     count(CASE WHEN status = 'succeeded' THEN 1 END) AS succeeded,
     count(CASE WHEN status = 'failed' THEN 1 END) AS failed
RETURN role, agent, delegations, succeeded, failed,
       CASE WHEN succeeded + failed = 0 THEN null
            ELSE round(toFloat(succeeded) / (succeeded + failed), 3) END AS success_rate
ORDER BY role, CASE WHEN agent = '(all)' THEN 0 ELSE 1 END, coalesce(success_rate, -1.0) DESC, agent""",
    parameters=(SPACE, _since("delegations created")),
)

MODEL_VS_BENCHMARK = Report(
    name="model-vs-benchmark",
    title="Model performance in production against its benchmark",
    description=(
        "For each model version in production (`stage = 'production'`, which mirrors its current "
        "IN_STAGE) that has the metric `metric_<metric>`: its value against the benchmark, which is "
        "the model's declared `benchmark_<metric>` when set, else the best value among the model's "
        "other current versions (the challengers). `delta` is value - benchmark; `meets_benchmark` "
        "is value >= benchmark, or <= for metrics where lower is better. No benchmark: both null."
    ),
    cypher="""\
MATCH (m:Model {space: $space})<-[r:VERSION_OF]-(v:ModelVersion)
WHERE m.retracted_at IS NULL AND v.retracted_at IS NULL AND r.valid_to IS NULL AND r.retracted_at IS NULL
  AND v.stage = 'production'
WITH m, v, v['metric_' + $metric] AS value, m['benchmark_' + $metric] AS declared
WHERE value IS NOT NULL AND value IS :: INTEGER | FLOAT
WITH m, v, value, CASE WHEN declared IS NOT NULL AND declared IS :: INTEGER | FLOAT THEN declared END AS declared,
     COLLECT {
       MATCH (m)<-[o:VERSION_OF]-(c:ModelVersion)
       WHERE c.retracted_at IS NULL AND o.valid_to IS NULL AND o.retracted_at IS NULL
         AND coalesce(c.stage, '') <> 'production'
       WITH c, c['metric_' + $metric] AS score
       WHERE score IS NOT NULL AND score IS :: INTEGER | FLOAT
       RETURN {version: c.version, value: score}
       ORDER BY CASE WHEN $higher_is_better THEN -score ELSE score END, c.name_key
       LIMIT 1
     } AS challengers
WITH m, v, value, declared, head(challengers) AS challenger
WITH m, v, value, coalesce(declared, challenger.value) AS benchmark,
     CASE WHEN declared IS NOT NULL THEN 'benchmark_' + $metric
          WHEN challenger IS NOT NULL THEN 'version ' + challenger.version END AS benchmark_source
RETURN m.name AS model, v.version AS production_version, value, benchmark, benchmark_source,
       CASE WHEN benchmark IS NULL THEN null ELSE round(value - benchmark, 6) END AS delta,
       CASE WHEN benchmark IS NULL THEN null
            WHEN $higher_is_better THEN value >= benchmark ELSE value <= benchmark END AS meets_benchmark
ORDER BY model, production_version""",
    parameters=(
        SPACE,
        ReportParameter("metric", "string", "the metric to compare: `auc` reads `metric_auc` and `benchmark_auc`",
                        default="auc"),
        ReportParameter("higher_is_better", "boolean", "false for losses and errors", default=True),
    ),
)

LESSONS_REUSED = Report(
    name="lessons-reused",
    title="Lessons reused per delegation",
    description=(
        "For each briefed delegation (one with `shown_ids`, the memories its briefs showed), newest "
        "first: the lessons among them (`lessons_shown`, current Lesson entities) and how many of those "
        "its outcome marked helpful (`helpful_ids`). A delegation briefed with no lessons shows 0."
    ),
    cypher="""\
MATCH (d:Delegation {space: $space})
WHERE d.retracted_at IS NULL AND d.shown_ids IS NOT NULL AND ($since IS NULL OR d.created_at >= $since)
WITH d,
     COLLECT {
       UNWIND d.shown_ids AS id
       MATCH (l:Entity {id: id})
       WHERE l.space = $space AND l.kind = 'Lesson' AND l.retracted_at IS NULL
       RETURN {id: l.id, name: l.name} AS lesson ORDER BY lesson.name
     } AS lessons,
     COLLECT {
       MATCH (d)-[r:PART_OF]->(p:Project)
       WHERE r.valid_to IS NULL AND r.retracted_at IS NULL AND p.retracted_at IS NULL
       RETURN p.name ORDER BY p.name
     } AS projects
RETURN d.name AS delegation, d.task AS task, head(projects) AS project, d.status AS status,
       size(lessons) AS lessons_shown,
       size([lesson IN lessons WHERE lesson.id IN coalesce(d.helpful_ids, [])]) AS lessons_helpful,
       [lesson IN lessons | lesson.name] AS lessons, d.created_at AS created_at
ORDER BY created_at DESC, delegation
LIMIT $limit""",
    parameters=(SPACE, _since("delegations created"), _limit(100, "delegations")),
)

REPORTS: dict[str, Report] = {
    report.name: report
    for report in (
        AGENT_SUCCESS, LESSONS_PER_PROJECT, MODEL_LINEAGE, EXPERIMENT_LEADERBOARD,
        DELEGATION_THROUGHPUT, INCIDENT_LESSONS,
        ON_TIME_DELIVERY, SUCCESS_BY_AGENT, MODEL_VS_BENCHMARK, LESSONS_REUSED,
    )
}


def get_report(name: str) -> Report:
    try:
        return REPORTS[name]
    except KeyError:
        raise NotFound(f"no report named {name!r}; the reports are {', '.join(REPORTS)}") from None


def run_report(
    gateway: Gateway,
    name: str,
    params: Mapping[str, Any],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> CypherResult:
    """Run report `name` with `params` through the same guard as any analyst query."""
    report = get_report(name)
    return run_read_only(gateway, report.cypher, report.bind(params), timeout_s=timeout_s, max_rows=max_rows)

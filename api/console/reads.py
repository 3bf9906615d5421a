"""What the console's pages read beyond what the /v1 services already answer: lists and counts over time.

Each query is named here, parameterised and run through the space's graph (`SpaceGraph.rows`, the
gateway), so it reads one tenant only; a single delegation, a track record, the KPI reports and the
space's stats come from the same services the /v1 routes call (agents.delegations, graph.reports,
memory.service). Every list is bounded: pages ask for one row more than they show to know whether
there is a next page, without counting the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from agents.briefing import current
from graph.gateway import Gateway
from graph.store import SpaceGraph
from graph.vocabulary import OPEN_STATUSES, normalise_name

PAGE_SIZE = 25
CHOICES_LIMIT = 200  # projects, agents and roles offered as filters
SPACES_LIMIT = 200
CHART_AGENTS = 8  # agents drawn on the success-rate chart, besides all of them together
ALL_AGENTS = "(all)"

# -- queries --------------------------------------------------------------------------------------
SPACES = """
MATCH (e:Entity) WHERE e.space IS NOT NULL
RETURN DISTINCT e.space AS space ORDER BY space LIMIT $limit
"""

# Current project and agent of each delegation, then the filters, newest first; $limit is one over the page.
DELEGATION_PAGE = f"""
MATCH (d:Entity {{space: $space, kind: 'Delegation'}})
WHERE d.retracted_at IS NULL
  AND ($status IS NULL OR d.status = $status)
  AND ($role IS NULL OR coalesce(d.agent_role, d.role) = $role)
  AND ($since IS NULL OR d.created_at >= $since)
  AND ($until IS NULL OR d.created_at < $until)
WITH d,
     head(COLLECT {{ MATCH (d)-[r:PART_OF]->(p:Project) WHERE {current('r')} AND p.retracted_at IS NULL
                    RETURN p {{.name, .name_key}} ORDER BY r.recorded_at }}) AS project,
     head(COLLECT {{ MATCH (d)-[r:DELEGATED_TO]->(a:Agent) WHERE {current('r')} AND a.retracted_at IS NULL
                    RETURN a {{.name, .name_key}} }}) AS agent
WHERE ($project IS NULL OR project.name_key = $project) AND ($agent IS NULL OR agent.name_key = $agent)
RETURN d.name AS delegation_id, d.task AS task, d.status AS status, coalesce(d.agent_role, d.role) AS role,
       project.name AS project, agent.name AS agent, d.created_at AS created_at, d.started_at AS started_at,
       d.ended_at AS ended_at,
       size(coalesce(d.shown_ids, [])) AS shown
ORDER BY d.created_at DESC, d.id
SKIP $offset LIMIT $limit
"""

NAMES_OF_KIND = """
MATCH (e:Entity {space: $space, kind: $kind}) WHERE e.retracted_at IS NULL
RETURN e.name AS name ORDER BY e.name_key LIMIT $limit
"""

ROLES = """
MATCH (d:Entity {space: $space, kind: 'Delegation'}) WHERE d.retracted_at IS NULL
WITH coalesce(d.agent_role, d.role) AS role WHERE role IS NOT NULL
RETURN DISTINCT role ORDER BY role LIMIT $limit
"""

# Entities and observations recorded per day: the overview's growth chart sums them up.
GROWTH = """
CALL () {
  MATCH (e:Entity {space: $space}) WHERE e.retracted_at IS NULL
  RETURN date(e.created_at) AS day, 'entities' AS what, count(*) AS n
  UNION ALL
  MATCH (o:Observation {space: $space}) WHERE o.retracted_at IS NULL
  RETURN date(o.recorded_at) AS day, 'observations' AS what, count(*) AS n
}
RETURN day, what, sum(n) AS n ORDER BY day
"""

OPEN_INCIDENTS = """
MATCH (i:Entity {space: $space, kind: 'Incident'})
WHERE i.retracted_at IS NULL AND i.resolved_at IS NULL AND coalesce(i.status, 'open') <> 'resolved'
RETURN i.id AS id, i.name AS name, i.severity AS severity, i.status AS status,
       coalesce(i.opened_at, i.created_at) AS opened_at
ORDER BY opened_at DESC, i.id LIMIT $limit
"""

# Risks as briefs see them (agents/briefing.py): delegations that failed, with their cause.
FAILED_DELEGATIONS = """
MATCH (d:Entity {space: $space, kind: 'Delegation'})
WHERE d.retracted_at IS NULL AND d.status = 'failed'
RETURN d.name AS delegation_id, d.task AS task, d.failure_cause AS cause,
       coalesce(d.ended_at, d.updated_at) AS ended_at
ORDER BY ended_at DESC, d.id LIMIT $limit
"""

RECENT_LESSONS = f"""
MATCH (l:Entity {{space: $space, kind: 'Lesson'}}) WHERE l.retracted_at IS NULL
WITH l ORDER BY l.created_at DESC, l.id LIMIT $limit
RETURN l.id AS id, coalesce(l.summary, l.name) AS text, l.severity AS severity,
       head(COLLECT {{ MATCH (l)-[r:LEARNED_FROM]->(d:Delegation) WHERE {current('r')} AND d.retracted_at IS NULL
                      RETURN d.name }}) AS delegation_id
"""

# The memories a delegation's briefs showed, in the order shown; ids of items since removed are left out.
SHOWN_ITEMS = """
UNWIND range(0, size($ids) - 1) AS position
MATCH (e:Entity {id: $ids[position]})
WHERE e.space = $space
RETURN e.id AS id, e.kind AS kind, e.name AS name, coalesce(e.summary, '') AS summary,
       e.retracted_at IS NOT NULL AS retracted, position
ORDER BY position
"""

# Each agent on the page with its record over the delegations assigned to it now (as Delegations.track_record
# counts one agent), in one query for the whole page.
AGENT_PAGE = f"""
MATCH (a:Entity {{space: $space, kind: 'Agent'}}) WHERE a.retracted_at IS NULL
WITH a ORDER BY a.name_key, a.id SKIP $offset LIMIT $limit
OPTIONAL MATCH (a)<-[r:DELEGATED_TO]-(d:Delegation)
WHERE {current('r')} AND d.retracted_at IS NULL
RETURN a.name AS name, a.name_key AS key, a.role AS role, count(d) AS delegations,
       count(CASE WHEN d.status = 'succeeded' THEN 1 END) AS succeeded,
       count(CASE WHEN d.status = 'failed' THEN 1 END) AS failed,
       count(CASE WHEN d.status IN $open THEN 1 END) AS open,
       max(CASE WHEN d.status = 'succeeded' THEN coalesce(d.ended_at, d.updated_at) END) AS last_success_at
ORDER BY key
"""

# Ended delegations per agent and week (weeks start on Monday), for the success-rate chart.
ENDED_BY_WEEK = f"""
MATCH (d:Entity {{space: $space, kind: 'Delegation'}})-[r:DELEGATED_TO]->(a:Agent)
WHERE d.retracted_at IS NULL AND a.retracted_at IS NULL AND {current('r')} AND d.status IN ['succeeded', 'failed']
WITH a.name AS agent, date.truncate('week', coalesce(d.ended_at, d.updated_at)) AS week, d.status AS status
RETURN agent, week, count(CASE WHEN status = 'succeeded' THEN 1 END) AS succeeded, count(*) AS ended
ORDER BY week, agent
"""

LAST_REINDEX = """
MATCH (j:ApiJob {job_space: $space, kind: 'reindex'})
RETURN j {.id, .state, .created_at, .finished_at, .error} AS job
ORDER BY j.created_at DESC LIMIT 1
"""


# -- answers --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DelegationFilters:
    """The delegations table's filters, as typed into its form (empty means any)."""

    project: str | None = None
    agent: str | None = None
    role: str | None = None
    status: str | None = None
    since: date | None = None
    until: date | None = None

    def params(self) -> dict[str, Any]:
        return {"project": normalise_name(self.project) if self.project else None,
                "agent": normalise_name(self.agent) if self.agent else None,
                "role": self.role or None, "status": self.status or None,
                "since": _start_of(self.since), "until": _start_of(self.until, next_day=True)}


@dataclass(frozen=True)
class PageOf:
    rows: list[dict[str, Any]]
    page: int
    has_next: bool


def list_spaces(gateway: Gateway) -> list[str]:
    """The spaces that hold anything, for keys bound to every space ('*')."""
    return [row["space"] for row in gateway.rows(SPACES, limit=SPACES_LIMIT)]


def delegation_page(graph: SpaceGraph, filters: DelegationFilters, page: int) -> PageOf:
    rows = graph.rows(DELEGATION_PAGE, **filters.params(), offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE + 1)
    return PageOf(rows=rows[:PAGE_SIZE], page=page, has_next=len(rows) > PAGE_SIZE)


def timeline(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A page of delegations as bars from start (else creation) to end; open ones have no end yet."""
    return [{"id": row["delegation_id"], "status": row["status"],
             "start": (row["started_at"] or row["created_at"]).isoformat(),
             "end": row["ended_at"].isoformat() if row["ended_at"] else None} for row in rows]


def filter_choices(graph: SpaceGraph) -> dict[str, list[str]]:
    return {"projects": [r["name"] for r in graph.rows(NAMES_OF_KIND, kind="Project", limit=CHOICES_LIMIT)],
            "agents": [r["name"] for r in graph.rows(NAMES_OF_KIND, kind="Agent", limit=CHOICES_LIMIT)],
            "roles": [r["role"] for r in graph.rows(ROLES, limit=CHOICES_LIMIT)]}


def growth(graph: SpaceGraph) -> dict[str, list]:
    """Cumulative entities and observations at the end of each day that recorded any."""
    per_day: dict[str, dict[str, int]] = {}
    for row in graph.rows(GROWTH):
        per_day.setdefault(row["day"].isoformat(), {"entities": 0, "observations": 0})[row["what"]] += row["n"]
    days, entities, observations = [], [], []
    totals = {"entities": 0, "observations": 0}
    for day in sorted(per_day):
        for what in totals:
            totals[what] += per_day[day][what]
        days.append(day)
        entities.append(totals["entities"])
        observations.append(totals["observations"])
    return {"days": days, "entities": entities, "observations": observations}


def open_incidents(graph: SpaceGraph, limit: int = 10) -> list[dict[str, Any]]:
    return graph.rows(OPEN_INCIDENTS, limit=limit)


def failed_delegations(graph: SpaceGraph, limit: int = 10) -> list[dict[str, Any]]:
    return graph.rows(FAILED_DELEGATIONS, limit=limit)


def recent_lessons(graph: SpaceGraph, limit: int = 10) -> list[dict[str, Any]]:
    return graph.rows(RECENT_LESSONS, limit=limit)


def shown_items(graph: SpaceGraph, ids: list[str]) -> list[dict[str, Any]]:
    return graph.rows(SHOWN_ITEMS, ids=ids) if ids else []


def agent_page(graph: SpaceGraph, page: int) -> PageOf:
    rows = graph.rows(AGENT_PAGE, open=list(OPEN_STATUSES), offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE + 1)
    for row in rows:
        ended = row["succeeded"] + row["failed"]
        row["success_rate"] = round(row["succeeded"] / ended, 4) if ended else None  # as track_record rates it
    return PageOf(rows=rows[:PAGE_SIZE], page=page, has_next=len(rows) > PAGE_SIZE)


def success_over_time(graph: SpaceGraph, agents: int = CHART_AGENTS) -> dict[str, Any]:
    """Weekly success rate (succeeded / ended) of the agents that ended the most work, and of all together."""
    rows = graph.rows(ENDED_BY_WEEK)
    weeks = sorted({row["week"].isoformat() for row in rows})
    ended: dict[str, int] = {}
    for row in rows:
        ended[row["agent"]] = ended.get(row["agent"], 0) + row["ended"]
    shown = sorted(ended, key=lambda name: (-ended[name], name))[:agents]
    cells: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        for who in (row["agent"], ALL_AGENTS):
            cell = cells.setdefault((who, row["week"].isoformat()), [0, 0])
            cell[0] += row["succeeded"]
            cell[1] += row["ended"]
    series = []
    for who in [ALL_AGENTS, *shown]:
        rates = [round(cells[(who, week)][0] / cells[(who, week)][1], 4) if (who, week) in cells else None
                 for week in weeks]
        series.append({"agent": who, "rates": rates})
    return {"weeks": weeks, "series": series}


def last_reindex(graph: SpaceGraph) -> dict[str, Any] | None:
    rows = graph.gateway.rows(LAST_REINDEX, space=graph.space)
    return rows[0]["job"] if rows else None


def _start_of(day: date | None, *, next_day: bool = False) -> datetime | None:
    if day is None:
        return None
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start + timedelta(days=1) if next_day else start

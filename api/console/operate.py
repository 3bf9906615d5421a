"""The console's pages for operators: ML memory, the analyst console (guarded Cypher, reports, CSV) and admin.

    /spaces/{space}/ml       models, versions and stage history, experiments, feature importance, drift
    /spaces/{space}/cypher   read-only Cypher through graph/guard.py and the named reports (scope `cypher`)
    /spaces/{space}/admin    API keys of the space, reindex with progress, stats and health (scope `admin`)

Each reads and writes through the services /v1 uses: agents.ml.MlMemory (api/routes/ml.py),
graph.guard.run_read_only and graph.reports.run_report (api/routes/analysts.py), api.auth.KeyStore,
api.jobs and /readyz (api/routes/admin.py, api/routes/health.py). The Cypher here only lists what
to show (models, experiments, drift incidents of one space), newest first and one page at a time.
A key without the scope a page needs gets a 403 message; the nav shows those pages only to keys that have it.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from agents.ml import LineageQuery, MlMemory
from api.auth import ALL_SPACES, Scope
from api.console.pages import (
    PageQuery,
    Viewer,
    _services,
    _sessions,
    cell,
    page,
    parse_query,
    render,
    templates,
    viewer_of,
    visible_space,
)
from api.jobs import JobProgress
from api.problems import ApiProblem, classify
from api.routes.health import readyz
from graph.errors import InvalidInput
from graph.guard import CypherResult, run_read_only
from graph.reports import REPORTS, run_report
from graph.store import SpaceGraph

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 25
RESULT_ROWS = 200  # rows of a Cypher result shown on the page; the CSV has all the guard returns
CHART_EXPERIMENTS = 50  # the most recent runs plotted on the experiments' chart

# -- queries --------------------------------------------------------------------------------------
MODEL_PAGE = """
MATCH (m:Entity {space: $space, kind: 'Model'}) WHERE m.retracted_at IS NULL
RETURN m.name AS name, m.task AS task,
       COUNT { MATCH (m)<-[r:VERSION_OF]-(v:ModelVersion) WHERE r.valid_to IS NULL AND r.retracted_at IS NULL
               AND v.retracted_at IS NULL } AS versions
ORDER BY m.name_key SKIP $offset LIMIT $limit
"""

# Newest first by start (else creation); ids only: MlMemory reads each experiment's details.
EXPERIMENT_IDS = """
MATCH (e:Entity {space: $space, kind: 'Experiment'}) WHERE e.retracted_at IS NULL
RETURN e.id AS id ORDER BY coalesce(e.started_at, e.created_at) DESC, e.id SKIP $offset LIMIT $limit
"""

DRIFT_INCIDENTS = """
MATCH (i:Entity {space: $space, kind: 'Incident'}) WHERE i.retracted_at IS NULL AND i.category = 'drift'
RETURN i.id AS id, i.name AS name, i.model_name AS model, i.version AS version, i.drift_feature AS feature,
       i.drift_metric AS metric, i.drift_value AS value, i.drift_threshold AS threshold, i.severity AS severity,
       coalesce(i.status, 'open') AS status, i.opened_at AS opened_at
ORDER BY i.opened_at DESC, i.id SKIP $offset LIMIT $limit
"""


def json_cell(value: Any) -> str:
    """A Cypher value as table text: nodes, relationships, maps and lists as compact JSON."""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return cell(value)


templates.env.filters["json_cell"] = json_cell


def _page(graph: SpaceGraph, cypher: str, number: int) -> tuple[list[dict[str, Any]], bool]:
    """One page of rows, and whether another follows (one row more is asked for, none counted)."""
    rows = graph.rows(cypher, offset=(number - 1) * PAGE_SIZE, limit=PAGE_SIZE + 1)
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


def _needs(viewer: Viewer, scope: Scope, what: str) -> None:
    if not viewer.can(scope):
        raise ApiProblem(403, "forbidden", "Forbidden", f"{what} needs an API key with the '{scope}' scope")


def _checked_form(request: Request, viewer: Viewer, csrf_token: str) -> None:
    _sessions(request).check_csrf(viewer.session, csrf_token)


# -- ML memory ------------------------------------------------------------------------------------
class MlQuery(BaseModel):
    """The ML page's query string: the model shown, and the page of each list."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = Field(None, max_length=512)
    models: int = Field(1, ge=1, le=10_000)
    runs: int = Field(1, ge=1, le=10_000)
    drift: int = Field(1, ge=1, le=10_000)

    def link(self, **changes: Any) -> str:
        values = {**self.model_dump(exclude_none=True), **changes}
        return "?" + urlencode({k: v for k, v in values.items() if v is not None})


def feature_chart(versions: list) -> dict[str, Any]:
    """Each feature's importance per version (None where a version has none), the strongest features first."""
    features: dict[str, float] = {}
    for version in versions:
        for name, weight in version.features.items():
            if weight is not None:
                features[name] = max(features.get(name, 0.0), abs(weight))
    names = sorted(features, key=lambda name: (-features[name], name))
    return {"versions": [v.version for v in versions],
            "features": [{"feature": name, "importance": [v.features.get(name) for v in versions]} for name in names]}


def metric_chart(experiments: list) -> dict[str, Any]:
    """Each metric across runs, oldest run first (the list comes newest first)."""
    runs = list(reversed(experiments[:CHART_EXPERIMENTS]))
    metrics = sorted({name for run in runs for name in run.metrics})
    return {"runs": [run.name for run in runs],
            "metrics": [{"metric": m, "values": [run.metrics.get(m) for run in runs]} for m in metrics]}


@router.get("/spaces/{space}/ml", response_class=HTMLResponse)
@page
def ml(request: Request, space: str) -> Response:
    viewer = viewer_of(request)
    visible_space(viewer, space)
    query: MlQuery = parse_query(MlQuery, {k: v for k, v in request.query_params.items() if v != ""})
    memory = _services(request).memory().space(space)
    service = MlMemory(memory)
    models, more_models = _page(memory.graph, MODEL_PAGE, query.models)
    chosen = query.model or (models[0]["name"] if models else None)
    lineage = service.lineage(LineageQuery(model=chosen)) if chosen else None
    ids, more_runs = _page(memory.graph, EXPERIMENT_IDS, query.runs)
    experiments = service.experiments([row["id"] for row in ids])
    drift, more_drift = _page(memory.graph, DRIFT_INCIDENTS, query.drift)
    return render(request, viewer, "ml.html", space=space, active="ml", query=query, models=models,
                  more_models=more_models, lineage=lineage,
                  features=feature_chart(lineage.versions) if lineage else None,
                  experiments=experiments, more_runs=more_runs, runs_chart=metric_chart(experiments),
                  drift=drift, more_drift=more_drift)


# -- the analyst console --------------------------------------------------------------------------
class CypherForm(BaseModel):
    """A query typed into the console, or a named report with its parameters (strings as typed)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    query: str | None = Field(None, max_length=100_000)
    report: str | None = Field(None, max_length=100)
    params: dict[str, str] = Field(default_factory=dict)

    @field_validator("report")
    @classmethod
    def _known_report(cls, value: str | None) -> str | None:
        if value and value not in REPORTS:
            raise ValueError(f"no report {value!r}; pick one of the listed reports")
        return value or None


def read_cypher_form(form: Any) -> tuple[CypherForm, str]:
    """The form's query or report (report parameters come as `param.<name>`), and its CSRF token."""
    params = {name.removeprefix("param."): str(value) for name, value in form.items()
              if name.startswith("param.") and str(value).strip() != ""}
    values = {"query": form.get("query") or None, "report": form.get("report") or None, "params": params}
    parsed: CypherForm = parse_query(CypherForm, values)
    if not parsed.query and not parsed.report:
        raise InvalidInput("query: type a Cypher query, or run one of the named reports")
    return parsed, str(form.get("csrf_token") or "")


def _analyst(request: Request, space: str) -> Viewer:
    viewer = viewer_of(request)
    visible_space(viewer, space)
    _needs(viewer, Scope.CYPHER, "The analyst console")
    if ALL_SPACES not in viewer.key.spaces:  # as /v1's require_all_spaces: Cypher can reach any tenant
        raise ApiProblem(403, "needs-all-spaces", "Forbidden",
                         "Cypher reaches every space, so it needs an API key bound to all spaces ('*')")
    return viewer


def run_form(request: Request, space: str, form: CypherForm) -> CypherResult:
    """The same calls as POST /v1/spaces/{space}/cypher and /reports/{name}; `$space` is the page's."""
    services = _services(request)
    timeout = services.settings.api_query_timeout_s
    if form.report:
        return run_report(services.gateway, form.report, {**form.params, "space": space}, timeout_s=timeout)
    return run_read_only(services.gateway, form.query or "", {"space": space}, timeout_s=timeout)


def result_graph(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The nodes and relationships anywhere in the rows (also inside paths and lists), for the graph view."""
    nodes: dict[str, dict[str, Any]] = {}
    edges: dict[str, dict[str, Any]] = {}

    def visit(value: Any) -> None:
        if isinstance(value, list):
            for item in value:
                visit(item)
        elif isinstance(value, dict):
            if "element_id" in value and "labels" in value:
                props = value.get("properties") or {}
                label = props.get("name") or props.get("id") or ":".join(value["labels"]) or value["element_id"]
                nodes[value["element_id"]] = {"id": value["element_id"], "label": str(label)[:60],
                                              "kind": props.get("kind") or (value["labels"] or [""])[0]}
            elif "element_id" in value and "type" in value and "start" in value:
                edges[value["element_id"]] = {"id": value["element_id"], "source": value["start"],
                                              "target": value["end"], "label": value["type"]}
            elif "nodes" in value and "relationships" in value:
                visit(value["nodes"])
                visit(value["relationships"])
            else:
                visit(list(value.values()))

    visit(rows)
    # An edge is drawn only between nodes that came back (a lone relationship names nodes it does not carry).
    shown = [edge for edge in edges.values() if edge["source"] in nodes and edge["target"] in nodes]
    return {"nodes": list(nodes.values()), "edges": shown}


def _analyst_page(request: Request, viewer: Viewer, space: str, status_code: int = 200, **context: Any) -> Response:
    reports = [{"name": r.name, "title": r.title, "description": r.description,
                "parameters": [p for p in r.parameters if p.name != "space"]} for r in REPORTS.values()]
    return render(request, viewer, "cypher.html", status_code=status_code, space=space, active="cypher",
                  reports=reports, result_rows=RESULT_ROWS, **context)


@router.get("/spaces/{space}/cypher", response_class=HTMLResponse)
@page
def analyst_console(request: Request, space: str) -> Response:
    viewer = _analyst(request, space)
    return _analyst_page(request, viewer, space, form=CypherForm(query=EXAMPLE_QUERY))


EXAMPLE_QUERY = ("MATCH (d:Delegation {space: $space})-[r:DELEGATED_TO]->(a:Agent)\n"
                 "RETURN d, r, a LIMIT 25")


# The analyst's forms name report parameters freely (`param.<name>`), so their handlers read the form
# themselves, then do the blocking work in the thread pool as FastAPI does for the other pages.
@router.post("/spaces/{space}/cypher", response_class=HTMLResponse)
async def run_cypher(request: Request, space: str) -> Response:
    return await run_in_threadpool(_run_cypher, request, space, await request.form())


def _submitted(request: Request, space: str, raw: Any) -> tuple[Viewer, CypherForm]:
    """The signed-in analyst and the form they sent, its CSRF token checked."""
    viewer = _analyst(request, space)
    form, csrf = read_cypher_form(raw)
    _checked_form(request, viewer, csrf)
    return viewer, form


@page
def _run_cypher(request: Request, space: str, raw: Any) -> Response:
    viewer, form = _submitted(request, space, raw)
    try:
        result = run_form(request, space, form)
    except Exception as exc:  # the guard's refusal (or a bad parameter) is shown beside the form
        problem, _ = classify(exc)
        if problem.status >= 500 and problem.status != 504:
            raise
        return _analyst_page(request, viewer, space, problem.status, form=form, refusal=problem.detail)
    return _analyst_page(request, viewer, space, form=form, result=result, graph=result_graph(result.rows))


@router.post("/spaces/{space}/cypher/csv")
async def cypher_csv(request: Request, space: str) -> Response:
    """The query's (or report's) rows as CSV: nodes, relationships and lists as JSON in their cells."""
    return await run_in_threadpool(_cypher_csv, request, space, await request.form())


@page
def _cypher_csv(request: Request, space: str, raw: Any) -> Response:
    _, form = _submitted(request, space, raw)
    result = run_form(request, space, form)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(result.columns)
    for row in result.rows:
        writer.writerow([csv_cell(row.get(column)) for column in result.columns])
    name = form.report or "cypher"
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{space}-{name}.csv"',
                             "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = str(value)
    # A cell that starts like a formula would run in a spreadsheet: quote it as text (OWASP CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(text) else text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# -- admin ----------------------------------------------------------------------------------------
class KeyForm(BaseModel):
    """A new key for this space, as /v1's KeyCreate: a name and at least one scope."""

    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1, max_length=4)


def _admin(request: Request, space: str) -> Viewer:
    viewer = viewer_of(request)
    visible_space(viewer, space)
    _needs(viewer, Scope.ADMIN, "The admin page")
    return viewer


def _admin_page(request: Request, viewer: Viewer, space: str, number: int = 1, status_code: int = 200,
                **context: Any) -> Response:
    services = _services(request)
    mine = [key for key in request.app.state.key_store.list() if key.spaces == [space]]  # as /v1's key list
    mine.sort(key=lambda key: (key.revoked, -key.created_at.timestamp()))
    offset = (number - 1) * PAGE_SIZE
    health = json.loads(readyz(request).body)
    return render(request, viewer, "admin.html", status_code=status_code, space=space, active="admin",
                  keys=mine[offset:offset + PAGE_SIZE], key_page=number, more_keys=len(mine) > offset + PAGE_SIZE,
                  scopes=list(Scope), stats=services.memory().space(space).stats(), health=health, **context)


@router.get("/spaces/{space}/admin", response_class=HTMLResponse)
@page
def admin(request: Request, space: str, job: str | None = None) -> Response:
    viewer = _admin(request, space)
    query: PageQuery = parse_query(PageQuery, {k: v for k, v in request.query_params.items()
                                               if k == "page" and v != ""})
    started = request.app.state.jobs.get(job, space) if job else None
    return _admin_page(request, viewer, space, query.page, job=started)


@router.post("/spaces/{space}/admin/keys", response_class=HTMLResponse)
@page
def create_key(request: Request, space: str, csrf_token: Annotated[str, Form(max_length=100)] = "",
               name: Annotated[str, Form(max_length=1000)] = "",
               scopes: Annotated[list[str] | None, Form()] = None) -> Response:
    """The same as POST /v1/spaces/{space}/admin/keys: the token is on this answer only, never in a URL."""
    viewer = _admin(request, space)
    _checked_form(request, viewer, csrf_token)
    fields: KeyForm = parse_query(KeyForm, {"name": name.strip(), "scopes": scopes or []})
    key, token = request.app.state.key_store.create(fields.name, fields.scopes, [space])
    return _admin_page(request, viewer, space, status_code=201, created=key, token=token)


@router.post("/spaces/{space}/admin/keys/{key_id}/revoke")
@page
def revoke_key(request: Request, space: str, key_id: str,
               csrf_token: Annotated[str, Form(max_length=100)] = "") -> Response:
    viewer = _admin(request, space)
    _checked_form(request, viewer, csrf_token)
    store = request.app.state.key_store
    key = store.get(key_id)
    if key is None or key.spaces != [space]:  # keys of several spaces are `kgmem keys`'s, as on /v1
        raise ApiProblem(404, "not-found", "Not found", f"no API key {key_id!r} in this space")
    store.revoke(key_id)
    return RedirectResponse(f"/spaces/{space}/admin?{urlencode({'revoked': key.name})}", status_code=303)


@router.post("/spaces/{space}/admin/reindex")
@page
def reindex(request: Request, space: str, csrf_token: Annotated[str, Form(max_length=100)] = "") -> Response:
    """The same job as POST /v1/spaces/{space}/admin/reindex; the admin page then polls its progress."""
    viewer = _admin(request, space)
    _checked_form(request, viewer, csrf_token)
    memory = _services(request).memory().space(space)

    def work(job: JobProgress) -> Any:
        indexed = 0

        def batch_done(items: int, _total: int | None) -> None:
            nonlocal indexed
            indexed += items
            job("pending items indexed", indexed, None)

        return memory.reindex(progress=batch_done)

    job = request.app.state.jobs.start_reporting("reindex", space, work)
    return RedirectResponse(f"/spaces/{space}/admin?{urlencode({'job': job.id})}", status_code=303)


@router.get("/spaces/{space}/admin/jobs/{job_id}", response_class=HTMLResponse)
@page
def job_progress(request: Request, space: str, job_id: str) -> Response:
    """The job's state and progress as a fragment; htmx polls it until the job ends."""
    viewer = _admin(request, space)
    job = request.app.state.jobs.get(job_id, space)
    return render(request, viewer, "_job.html", space=space, job=job)

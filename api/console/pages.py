"""The console's pages: sign-in, the spaces a key sees, a space's overview, its delegations, one delegation, its agents.

Every page reads through the services the /v1 routes use (api.services: the space's memory,
agents.delegations, graph.reports, api.jobs) plus the named list queries of api/console/reads.py.
A page needs a signed-in key with the `read` scope that is bound to the page's space; any other
space is "no such space" (404), as on /v1. Errors become a message page with the status /v1 would
give (api.problems.classify), never a stack trace.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from markdown_it import MarkdownIt
from markupsafe import Markup
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agents.delegations import Delegations
from api.auth import ALL_SPACES, ApiKey, KeyStore, Scope, dev_principal
from api.console import reads
from api.console.session import CSRF_FIELD, CsrfRejected, Session, Sessions
from api.limits import client_address
from api.problems import ApiProblem, classify, request_id_of
from api.services import Services
from graph.errors import InvalidInput, NotFound
from graph.reports import REPORTS, run_report
from graph.store import SPACE_PATTERN
from graph.vocabulary import DelegationStatus

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
KPI_REPORTS = ("on-time-delivery", "success-by-agent", "model-vs-benchmark", "lessons-reused")
# The column each KPI card charts, against the column that labels its bars.
KPI_CHARTS = {"on-time-delivery": ("project", "on_time_rate"), "success-by-agent": ("agent", "success_rate"),
              "model-vs-benchmark": ("model", "value"), "lessons-reused": ("delegation", "lessons_shown")}
KPI_ROWS = 8  # rows of each KPI report shown on its card
# No inline script or style anywhere: pages load /static files only, and charts read their data from JSON blocks.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY", "Cache-Control": "no-store"}
STATUSES: tuple[str, ...] = DelegationStatus.__args__  # type: ignore[attr-defined]

router = APIRouter(include_in_schema=False)
# Autoescape everything: every name, task and summary comes from agents or users.
templates = Jinja2Templates(env=Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True))
# html=False: markdown from agents is rendered, HTML inside it is shown as text.
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def render_markdown(text: str | None, demote: int = 0) -> Markup:
    """Markdown as HTML; `demote` lowers its headings (a brief's `# Brief` under the page's own h1 and h2)."""
    tokens = _markdown.parse(text or "")
    for token in tokens:
        if demote and token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(int(token.tag[1]) + demote, 6)}"
    return Markup(_markdown.renderer.render(tokens, _markdown.options, {}))  # markdown-it escaped it all (html=False)


def when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "—"


def cell(value: Any) -> str:
    """A report value as table text: dates to the minute, lists joined, floats to four significant digits."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if hasattr(value, "strftime"):
        return when(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(cell(item) for item in value)
    return str(value)


templates.env.filters.update(markdown=render_markdown, when=when, cell=cell)


# -- who is looking --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Viewer:
    """The session and the key it names (None when signed out or the key was revoked)."""

    session: Session
    key: ApiKey | None

    def can(self, scope: Scope) -> bool:
        return self.key is not None and self.key.has_scope(scope)


class NotSignedIn(Exception):
    """The page needs a signed-in key."""


def _sessions(request: Request) -> Sessions:
    return request.app.state.console_sessions


def _services(request: Request) -> Services:
    return request.app.state.services


def viewer_of(request: Request) -> Viewer:
    session = _sessions(request).read(request)
    if getattr(request.app.state, "auth_disabled", False) is True:
        return Viewer(session, dev_principal(None).key)
    key = None
    if session.key_id:
        store: KeyStore = request.app.state.key_store
        key = store.get(session.key_id)
        if key is not None and key.revoked:
            key = None
    return Viewer(session, key)


def visible_space(viewer: Viewer, space: str) -> str:
    """The space, when the viewer may read it; otherwise it does not exist for them (404, as on /v1)."""
    if viewer.key is None:
        raise NotSignedIn
    if not SPACE_PATTERN.fullmatch(space) or not viewer.key.can_access(space):
        raise NotFound(f"no such space: {space!r}")
    if not viewer.key.has_scope(Scope.READ):
        raise ApiProblem(403, "forbidden", "Forbidden", "this API key lacks the 'read' scope the console needs")
    return space


# -- rendering -------------------------------------------------------------------------------------
def render(request: Request, viewer: Viewer, template: str, status_code: int = 200, **context: Any) -> Response:
    response = templates.TemplateResponse(request, template, {
        "viewer": viewer, "csrf_field": CSRF_FIELD, "Scope": Scope, **context}, status_code=status_code)
    _sessions(request).write(request, response, viewer.session)
    response.headers.update(SECURITY_HEADERS)
    return response


def page(handler: Callable[..., Response]) -> Callable[..., Response]:
    """Turn what a page raises into a message page: sign-in for a missing session, else the status /v1 gives."""

    @functools.wraps(handler)
    def wrapper(request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            return handler(request, *args, **kwargs)
        except NotSignedIn:
            return RedirectResponse(f"/sign-in?{urlencode({'next': request.url.path})}", status_code=303)
        except CsrfRejected as exc:
            return error_page(request, 403, "Form expired", str(exc))
        except Exception as exc:  # every error is a message, never a trace
            problem, level = classify(exc)
            if level == "error":
                log.error("console page failed", exc_info=exc, extra={"request_id": request_id_of(request.scope)})
            return error_page(request, problem.status, problem.title, problem.detail)

    return wrapper


def error_page(request: Request, status_code: int, title: str, detail: str | None) -> Response:
    try:
        viewer = viewer_of(request)
    except Exception:  # noqa: BLE001 - Neo4j down, say: the message still shows, signed out
        viewer = Viewer(_sessions(request).read(request), None)
    return render(request, viewer, "error.html", status_code=status_code, title=title, detail=detail,
                  request_id=request_id_of(request.scope))


# -- sign-in ---------------------------------------------------------------------------------------
def _local(next_path: str | None) -> str:
    """Where to go after signing in: a path on this site only (no open redirect)."""
    if next_path and next_path.startswith("/") and not next_path.startswith("//") and "\\" not in next_path:
        return next_path
    return "/"


@router.get("/sign-in", response_class=HTMLResponse)
@page
def sign_in_form(request: Request, next: str | None = None) -> Response:
    return render(request, viewer_of(request), "sign_in.html", next=_local(next))


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request, token: Annotated[str, Form(max_length=300)] = "",
                  csrf_token: Annotated[str, Form(max_length=100)] = "",
                  next: Annotated[str, Form(max_length=2000)] = "/") -> Response:
    sessions = _sessions(request)
    session = sessions.read(request)
    viewer = Viewer(session, None)
    try:
        sessions.check_csrf(session, csrf_token)
        key = await request.app.state.key_store.admit(token.strip(), client_address(request.scope))
    except CsrfRejected as exc:
        return render(request, viewer, "sign_in.html", 403, next=_local(next), error=str(exc))
    except ApiProblem as exc:  # too many failed attempts, or checks are busy
        return render(request, viewer, "sign_in.html", exc.status, next=_local(next), error=exc.detail)
    if key is None:
        return render(request, viewer, "sign_in.html", 401, next=_local(next),
                      error="That API key is not valid, or it was revoked. Paste the whole token (kgm_…).")
    if not key.has_scope(Scope.READ):
        return render(request, viewer, "sign_in.html", 403, next=_local(next),
                      error="That API key lacks the 'read' scope the console needs; use a key that can read.")
    response = RedirectResponse(_local(next), status_code=303)
    sessions.write(request, response, session.signed_in(key.key_id))
    return response


@router.post("/sign-out")
@page
def sign_out(request: Request, csrf_token: Annotated[str, Form(max_length=100)] = "") -> Response:
    sessions = _sessions(request)
    session = sessions.read(request)
    sessions.check_csrf(session, csrf_token)
    response = RedirectResponse("/sign-in", status_code=303)
    sessions.write(request, response, session.signed_out())
    return response


# -- spaces ----------------------------------------------------------------------------------------
@router.get("/", response_class=HTMLResponse)
@page
def home(request: Request) -> Response:
    viewer = viewer_of(request)
    if viewer.key is None:
        raise NotSignedIn
    if ALL_SPACES in viewer.key.spaces:
        spaces = reads.list_spaces(_services(request).gateway)
    else:
        spaces = sorted(viewer.key.spaces)
    if len(spaces) == 1 and ALL_SPACES not in viewer.key.spaces:
        return RedirectResponse(f"/spaces/{spaces[0]}", status_code=303)
    return render(request, viewer, "spaces.html", spaces=spaces, all_spaces=ALL_SPACES in viewer.key.spaces)


@router.get("/spaces/{space}", response_class=HTMLResponse)
@page
def overview(request: Request, space: str, job: str | None = None) -> Response:
    viewer = viewer_of(request)
    visible_space(viewer, space)
    services = _services(request)
    memory = services.memory().space(space)
    graph = memory.graph
    timeout = services.settings.api_query_timeout_s
    kpis = [(REPORTS[name], run_report(services.gateway, name, {"space": space}, timeout_s=timeout))
            for name in KPI_REPORTS]
    return render(
        request, viewer, "overview.html", space=space, stats=memory.stats(), growth=reads.growth(graph),
        recent=reads.delegation_page(graph, reads.DelegationFilters(), 1).rows[:10],
        incidents=reads.open_incidents(graph), risks=reads.failed_delegations(graph),
        lessons=reads.recent_lessons(graph), kpis=kpis, kpi_rows=KPI_ROWS, kpi_charts=KPI_CHARTS,
        last_reindex=reads.last_reindex(graph), rebuilding=services.vectors_problem(), started_job=job)


@router.post("/spaces/{space}/reindex")
@page
def reindex(request: Request, space: str, csrf_token: Annotated[str, Form(max_length=100)] = "") -> Response:
    """The same job as POST /v1/spaces/{space}/reindex: repair this space's vectors in the background."""
    viewer = viewer_of(request)
    visible_space(viewer, space)
    _sessions(request).check_csrf(viewer.session, csrf_token)
    if not viewer.can(Scope.ADMIN):
        raise ApiProblem(403, "forbidden", "Forbidden", "reindexing needs an API key with the 'admin' scope")
    memory = _services(request).memory().space(space)
    job = request.app.state.jobs.start("reindex", space, memory.reindex)
    return RedirectResponse(f"/spaces/{space}?{urlencode({'job': job.id})}", status_code=303)


# -- delegations -----------------------------------------------------------------------------------
class DelegationQuery(BaseModel):
    """The delegations table's query string; empty fields mean "any"."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    project: str | None = None
    agent: str | None = None
    role: str | None = None
    status: DelegationStatus | None = None
    since: date | None = None
    until: date | None = None
    page: int = 1

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_any(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("project", "agent", "role")
    @classmethod
    def _bounded(cls, value: str | None) -> str | None:
        if value is not None and len(value) > 512:
            raise ValueError("at most 512 characters")
        return value

    @field_validator("page")
    @classmethod
    def _positive(cls, value: int | None) -> int:
        if value is None:
            return 1
        if not 1 <= value <= 10_000:
            raise ValueError("a page number from 1 to 10000")
        return value

    def filters(self) -> reads.DelegationFilters:
        return reads.DelegationFilters(project=self.project, agent=self.agent, role=self.role, status=self.status,
                                       since=self.since, until=self.until)

    def link(self, page: int) -> str:
        values = self.model_dump(exclude={"page"}, exclude_none=True)
        return "?" + urlencode({**{k: str(v) for k, v in values.items()}, "page": page})


def parse_query(model: type[BaseModel], values: dict[str, Any]) -> Any:
    """A query string through its Pydantic model; a bad field is InvalidInput naming it and the fix."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "query"
        raise InvalidInput(f"{field}: {first['msg']}; fix or clear that filter") from None


@router.get("/spaces/{space}/delegations", response_class=HTMLResponse)
@page
def delegation_list(request: Request, space: str) -> Response:
    viewer = viewer_of(request)
    visible_space(viewer, space)
    query: DelegationQuery = parse_query(DelegationQuery, dict(request.query_params))
    graph = _services(request).memory().space(space).graph
    result = reads.delegation_page(graph, query.filters(), query.page)
    return render(request, viewer, "delegations.html", space=space, query=query, statuses=STATUSES,
                  result=result, timeline=reads.timeline(result.rows), choices=reads.filter_choices(graph))


@router.get("/spaces/{space}/delegations/{delegation_id}", response_class=HTMLResponse)
@page
def delegation(request: Request, space: str, delegation_id: str) -> Response:
    viewer = viewer_of(request)
    visible_space(viewer, space)
    memory = _services(request).memory().space(space)
    state = Delegations(memory).get(delegation_id)
    helpful, unhelpful = set(state.helpful_ids), set(state.unhelpful_ids)
    shown = [{**item, "vote": "helpful" if item["id"] in helpful else "unhelpful" if item["id"] in unhelpful else None}
             for item in reads.shown_items(memory.graph, state.shown_ids)]
    return render(request, viewer, "delegation.html", space=space, d=state, shown=shown)


# -- agents ----------------------------------------------------------------------------------------
class PageQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    page: int = Field(default=1, ge=1, le=10_000, description="a page number from 1 to 10000")


@router.get("/spaces/{space}/agents", response_class=HTMLResponse)
@page
def agents(request: Request, space: str) -> Response:
    viewer = viewer_of(request)
    visible_space(viewer, space)
    query: PageQuery = parse_query(PageQuery, {k: v for k, v in request.query_params.items() if v != ""})
    services = _services(request)
    graph = services.memory().space(space).graph
    by_role = run_report(services.gateway, "success-by-agent", {"space": space},
                         timeout_s=services.settings.api_query_timeout_s)
    return render(request, viewer, "agents.html", space=space, result=reads.agent_page(graph, query.page),
                  by_role=by_role, over_time=reads.success_over_time(graph),
                  recent=reads.delegation_page(graph, reads.DelegationFilters(), 1).rows[:10],
                  page_link=lambda number: "?" + urlencode({"page": number}))

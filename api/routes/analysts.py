"""Read-only Cypher and the named reports, through the same guard as `kgmem cypher` (graph/guard.py).

Cypher cannot be confined to one tenant (a query may match any space), so the console needs
a key with the `cypher` scope that is bound to every space ('*'). The named reports read one
space only (their `$space` is the path's), so any key with `read` on the space may run them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Request
from fastapi.exceptions import RequestValidationError

from api.deps import Analyst, Config, Reader, SpacePath, require_all_spaces, services
from api.models import CypherRequest, ReportInfo, ReportList, ReportParameterInfo, ReportRequest
from api.routes import PROBLEMS
from graph.guard import CypherResult, run_read_only
from graph.reports import REPORTS, run_report

router = APIRouter(prefix="/v1/spaces/{space}", tags=["analysts"], responses=PROBLEMS)


@router.post("/cypher", response_model=CypherResult,
             summary="A read-only Cypher query (scope `cypher`, key bound to every space)")
def cypher(space: SpacePath, request: Request, caller: Analyst, config: Config, body: CypherRequest) -> CypherResult:
    require_all_spaces(caller, "Cypher")
    return run_read_only(services(request).gateway, body.query, {**body.params, "space": space},
                         timeout_s=config.api_query_timeout_s)


@router.get("/reports", response_model=ReportList, summary="The named analyst reports and their parameters")
def reports(space: SpacePath, caller: Reader) -> ReportList:
    return ReportList(reports=[
        ReportInfo(name=r.name, title=r.title, description=r.description, cypher=r.cypher, parameters=[
            ReportParameterInfo(name=p.name, kind=p.kind, description=p.description, default=p.default,
                                required=p.required, choices=list(p.choices))
            for p in r.parameters if p.name != "space"])
        for r in REPORTS.values()])


@router.post("/reports/{name}", response_model=CypherResult, summary="Run a named report on this space")
def run(space: SpacePath, name: Annotated[str, Path(max_length=100, examples=["agent-success"])],
        request: Request, caller: Reader, config: Config,
        body: Annotated[ReportRequest, Body(examples=[{"params": {"since": "2026-01-01"}}])] = ReportRequest(),
        ) -> CypherResult:
    if "space" in body.params:
        raise RequestValidationError([{"loc": ("body", "params", "space"), "type": "extra_forbidden",
                                       "msg": "the space is the path's; leave it out of params"}])
    return run_report(services(request).gateway, name, {**body.params, "space": space},
                      timeout_s=config.api_query_timeout_s)

"""The console's explore pages: search with explanations, an entity's page and its neighbourhood graph (issue #14).

    /spaces/{space}/search                          hybrid recall with `explain`, filtered by kinds, project, agent, as_of
    /spaces/{space}/entities/{entity_id}            attributes, observations on a timeline (?as_of=), revisions, provenance
    /spaces/{space}/entities/{entity_id}/graph      JSON nodes and edges around the entity for the graph library

Search is the same recall as POST /v1/spaces/{space}/recall (memory.service), asked to explain. The entity
page reads the entity's history (graph.reads: four queries, whatever its size); the graph is two queries:
the top-N neighbours by distance, degree and recency, then the relations among them. No page's query count
grows with the data (no N+1).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.console.pages import SECURITY_HEADERS, page, parse_query, render, viewer_of, visible_space
from graph.errors import NotFound
from graph.model import Observation, as_utc
from graph.reads import BOOKKEEPING, RELATIONS_AMONG, entity_visible, fact_visible
from graph.vocabulary import Kind
from memory.recall import RecallQuery
from memory.service import SpaceMemory

router = APIRouter(include_in_schema=False)

KINDS = [kind.value for kind in Kind]
SEARCH_LIMIT = 20
OBSERVATIONS_PER_PAGE = 50
GRAPH_LIMIT = 30  # neighbours drawn at first; "more" raises it
GRAPH_MAX = 300


def _neighbours_query(depth: int) -> str:
    # Variable-length bounds must be literals; depth comes from the fixed set {1, 2}.
    return f"""
MATCH (c:Entity {{id: $id}})
WHERE c.space = $space AND {entity_visible('c')}
MATCH p = (c)-[rels*1..{depth}]-(n:Entity)
WHERE n <> c AND {entity_visible('n')} AND ($kinds IS NULL OR n.kind IN $kinds)
  AND all(r IN rels WHERE r.space = $space AND NOT type(r) IN {BOOKKEEPING} AND {fact_visible('r')}
                      AND ($types IS NULL OR type(r) IN $types))
WITH n, min(length(p)) AS distance
WITH n, distance, COUNT {{ (n)-[r]-(:Entity) WHERE NOT type(r) IN {BOOKKEEPING} AND {fact_visible('r')} }} AS degree
RETURN n.id AS id, n.name AS name, n.kind AS kind, distance, degree
ORDER BY distance, degree DESC, n.updated_at DESC, n.id
LIMIT $limit
"""


NEIGHBOURS = {depth: _neighbours_query(depth) for depth in (1, 2)}

CENTER = f"""
MATCH (c:Entity {{id: $id}})
WHERE c.space = $space AND {entity_visible('c')}
RETURN c.id AS id, c.name AS name, c.kind AS kind,
       COUNT {{ (c)-[r]-(:Entity) WHERE NOT type(r) IN {BOOKKEEPING} AND {fact_visible('r')} }} AS degree
"""


def _memory(request: Request, space: str) -> SpaceMemory:
    return request.app.state.services.memory().space(space)


# -- search ----------------------------------------------------------------------------------------
class SearchQuery(BaseModel):
    """The search form's query string; empty fields mean "any"."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    q: str | None = Field(None, max_length=4000)
    kinds: list[Kind] = Field(default_factory=list)
    project: str | None = Field(None, max_length=512)
    agent: str | None = Field(None, max_length=512)
    as_of: datetime | None = None

    @field_validator("q", "project", "agent", "as_of", mode="before")
    @classmethod
    def _empty_is_any(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("as_of")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return as_utc(value.replace(tzinfo=value.tzinfo or UTC)) if value else None


@router.get("/spaces/{space}/search", response_class=HTMLResponse)
@page
def search(request: Request, space: str) -> Response:
    viewer = viewer_of(request)
    visible_space(viewer, space)
    values: dict[str, Any] = dict(request.query_params)
    values["kinds"] = [k for k in request.query_params.getlist("kinds") if k]
    query: SearchQuery = parse_query(SearchQuery, values)
    memory = _memory(request, space)
    result, project_missing = None, False
    if query.q:
        project_id = None
        if query.project:
            found = memory.graph.find_by_name(query.project, kind=Kind.PROJECT)
            project_missing = not found
            project_id = found[0].id if found else None
        if not project_missing:
            result = memory.recall(RecallQuery(
                text=query.q, limit=SEARCH_LIMIT, kinds=query.kinds or None, project_id=project_id,
                agent=query.agent, as_of=query.as_of, explain=True))
    return render(request, viewer, "search.html", space=space, query=query, kinds=KINDS, result=result,
                  project_missing=project_missing, limit=SEARCH_LIMIT)


# -- an entity -------------------------------------------------------------------------------------
class EntityQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    as_of: datetime | None = None
    page: int = Field(1, ge=1, le=10_000, description="a page number from 1 to 10000")

    @field_validator("as_of", mode="before")
    @classmethod
    def _empty_is_now(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("as_of")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return as_utc(value.replace(tzinfo=value.tzinfo or UTC)) if value else None


def fact_state(observation: Observation, at: datetime) -> str:
    """What an observation was at `at`: retracted, not yet valid, superseded (closed) or valid."""
    if observation.retracted_at is not None and observation.retracted_at <= at:
        return "retracted"
    if observation.valid_from is not None and observation.valid_from > at:
        return "later"
    if observation.valid_to is not None and observation.valid_to <= at:
        return "superseded"
    return "valid"


def timeline(observations: list[Observation], at: datetime) -> dict[str, Any]:
    """Each observation's validity interval as fractions of the span from the first date to now."""
    dates = [d for o in observations for d in (o.valid_from or o.recorded_at, o.valid_to, o.retracted_at) if d]
    now = datetime.now(UTC)
    start = min(dates, default=now)
    span = max((now - start).total_seconds(), 1.0)

    def place(moment: datetime) -> float:
        return round(100 * (moment - start).total_seconds() / span, 2)

    bars = []
    for o in observations:
        begins = o.valid_from or o.recorded_at
        ends = min(d for d in (o.valid_to, o.retracted_at, now) if d is not None)
        bars.append({"left": place(begins), "width": max(place(ends) - place(begins), 0.5)})
    return {"start": start, "end": now, "bars": bars, "at": place(at),
            "start_s": int(start.timestamp()), "end_s": int(now.timestamp()), "at_s": int(at.timestamp())}


@router.get("/spaces/{space}/entities/{entity_id}", response_class=HTMLResponse)
@page
def entity(request: Request, space: str, entity_id: str) -> Response:
    viewer = viewer_of(request)
    visible_space(viewer, space)
    query: EntityQuery = parse_query(EntityQuery, dict(request.query_params))
    graph = _memory(request, space).graph
    history = graph.history(entity_id)
    at = query.as_of or datetime.now(UTC)
    observations = sorted(history.observations, key=lambda o: (o.valid_from or o.recorded_at, o.id), reverse=True)
    first = (query.page - 1) * OBSERVATIONS_PER_PAGE
    shown = observations[first:first + OBSERVATIONS_PER_PAGE]
    states = [fact_state(o, at) for o in shown]

    def page_link(number: int) -> str:
        return "?" + urlencode({**({"as_of": query.as_of.isoformat()} if query.as_of else {}), "page": number})

    return render(request, viewer, "entity.html", space=space, history=history, e=history.entity, query=query,
                  observations=list(zip(shown, states, timeline(shown, at)["bars"], strict=True)),
                  timeline=timeline(shown, at), at=at, kinds=KINDS,
                  more=len(observations) > first + OBSERVATIONS_PER_PAGE, page_link=page_link,
                  relation_types=sorted({r.type for r in history.relations}))


class GraphQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    depth: int = Field(1, ge=1, le=2, description="1 or 2 hops")
    limit: int = Field(GRAPH_LIMIT, ge=1, le=GRAPH_MAX, description=f"from 1 to {GRAPH_MAX} neighbours")
    types: list[str] = Field(default_factory=list)
    kinds: list[Kind] = Field(default_factory=list)
    as_of: datetime | None = None

    @field_validator("as_of", mode="before")
    @classmethod
    def _empty_is_now(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("types")
    @classmethod
    def _bounded(cls, value: list[str]) -> list[str]:
        if len(value) > 50 or any(len(t) > 100 for t in value):
            raise ValueError("at most 50 relation types of at most 100 characters")
        return value


@router.get("/spaces/{space}/entities/{entity_id}/graph")
@page
def neighbourhood_graph(request: Request, space: str, entity_id: str) -> Response:
    """Nodes and edges around the entity, for Cytoscape: the top `limit` neighbours and the relations among them."""
    viewer = viewer_of(request)
    visible_space(viewer, space)
    params = request.query_params
    values: dict[str, Any] = {k: v for k, v in params.items() if v != "" and k not in ("types", "kinds")}
    values["types"] = [t for v in params.getlist("types") for t in v.split(",") if t]
    values["kinds"] = [k for v in params.getlist("kinds") for k in v.split(",") if k]
    query: GraphQuery = parse_query(GraphQuery, values)
    graph = _memory(request, space).graph
    as_of = as_utc(query.as_of.replace(tzinfo=query.as_of.tzinfo or UTC)) if query.as_of else None
    center = graph.rows(CENTER, id=entity_id, as_of=as_of)
    if not center:
        raise NotFound(f"no entity {entity_id!r} in this space")
    rows = graph.rows(NEIGHBOURS[query.depth], id=entity_id, limit=query.limit + 1, as_of=as_of,
                      kinds=[k.value for k in query.kinds] or None, types=query.types or None)
    nodes = [{**center[0], "distance": 0}] + rows[:query.limit]
    ids = [node["id"] for node in nodes]
    edges = [{"id": row["relation"].get("id") or f"{row['source_id']}-{row['type']}-{row['target_id']}",
              "source": row["source_id"], "target": row["target_id"], "type": row["type"]}
             for row in graph.rows(RELATIONS_AMONG, ids=ids, as_of=as_of)
             if not query.types or row["type"] in query.types]
    response = JSONResponse({"center": entity_id, "nodes": nodes, "edges": edges, "limit": query.limit,
                             "more": len(rows) > query.limit})
    response.headers.update(SECURITY_HEADERS)
    return response

"""Liveness, readiness and versions."""

from __future__ import annotations

import platform
from importlib import metadata

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.services import Services
from graph import KgmemError

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]
    not_ready: list[str]


class EmbeddingInfo(BaseModel):
    model: str
    source: str
    dimension: int | None
    window_tokens: int | None = Field(None, description=(
        "Word pieces the model reads of a text; longer texts are embedded in passages of this size"))


class VersionInfo(BaseModel):
    kgmem: str
    python: str
    neo4j_server: dict[str, str] | None
    packages: dict[str, str]
    embedding: EmbeddingInfo


def services(request: Request) -> Services:
    return request.app.state.services


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
async def healthz() -> Health:
    # On the event loop, not in the thread pool the synchronous routes share: it answers while they are busy.
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: Neo4j, Chroma and the embedder all answer",
    responses={503: {"model": Readiness, "description": "Names the components that are not ready"}},
)
def readyz(request: Request) -> JSONResponse:
    svc = services(request)
    checks: dict[str, str] = {}
    try:
        svc.gateway.ping()  # fails at once when Neo4j is unreachable; a query alone would retry for 30 s first
        svc.gateway.rows("RETURN 1")  # and the database answers queries
        checks["neo4j"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready; the message says which
        svc.gateway.reset()
        checks["neo4j"] = _one_line(exc)
    try:
        svc.chroma().heartbeat()
        checks["chroma"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["chroma"] = _one_line(exc)
    checks["embedder"] = svc.embedder_problem() or "ok"
    not_ready = [name for name, state in checks.items() if state != "ok"]
    body = Readiness(status="ready" if not not_ready else "not ready", checks=checks, not_ready=not_ready)
    return JSONResponse(body.model_dump(), status_code=200 if not not_ready else 503)


@router.get("/version", response_model=VersionInfo, summary="Versions of kgmem and everything it runs on")
def version(request: Request) -> VersionInfo:
    svc = services(request)
    try:
        neo4j_server = svc.gateway.server_info()
    except Exception:  # noqa: BLE001 - the version page must answer even while Neo4j is down
        neo4j_server = None
    packages = {}
    for name in ("neo4j", "chromadb", "sentence-transformers", "torch", "mem0ai", "anthropic", "fastapi", "mcp"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = "not installed"
    embedder = svc.embedder
    return VersionInfo(
        kgmem=_kgmem_version(),
        python=platform.python_version(),
        neo4j_server=neo4j_server,
        packages=packages,
        embedding=EmbeddingInfo(
            model=embedder.name,
            source=embedder.model_info.source,
            dimension=embedder.dimension if embedder.loaded else None,
            window_tokens=embedder.window_tokens if embedder.loaded else None,
        ),
    )


def _kgmem_version() -> str:
    try:
        return metadata.version("kgmem")
    except metadata.PackageNotFoundError:
        return "unknown"


def _one_line(exc: Exception) -> str:
    text = str(exc) if isinstance(exc, KgmemError) else f"{type(exc).__name__}: {exc}"
    return text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__

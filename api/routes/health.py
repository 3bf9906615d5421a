"""Liveness, readiness and versions.

/readyz has three states: `ready` (200), `degraded` (200: it serves, but `degraded` names what
answers only in part, such as recall while the vector index is rebuilt from Neo4j) and
`not ready` (503: `not_ready` names what is down or broken, such as a damaged Chroma store).
"""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.services import Services
from graph import KgmemError

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: Literal["ready", "degraded", "not ready"]
    checks: dict[str, str] = Field(description=(
        "`ok` or what is wrong, for neo4j, chroma and the embedder, then (once those are ok) vectors: "
        "whether recall's vector index is whole"))
    not_ready: list[str] = Field(description="The checks that keep the service from serving (503)")
    degraded: list[str] = Field(default_factory=list, description=(
        "The checks that serve in part, such as vectors while the index is rebuilt from Neo4j (still 200)"))


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
    summary="Readiness: Neo4j, Chroma and the embedder all answer (and whether the vector index is whole)",
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
    checks["chroma"] = "ok"
    checks["embedder"] = svc.embedder_problem() or "ok"
    try:
        svc.check_chroma(index=checks["neo4j"] == "ok")  # a damaged store says so, naming `kgmem reindex --full`
    except Exception as exc:  # noqa: BLE001
        checks["chroma"] = _one_line(exc)
    not_ready = [name for name, state in checks.items() if state != "ok"]
    degraded = []
    if not not_ready:
        try:
            checks["vectors"] = svc.vectors_problem() or "ok"
        except Exception as exc:  # noqa: BLE001 - a failure between the checks above and this one
            checks["vectors"] = _one_line(exc)
        degraded = [name for name in ("vectors",) if checks[name] != "ok"]
    status = "not ready" if not_ready else "degraded" if degraded else "ready"
    body = Readiness(status=status, checks=checks, not_ready=not_ready, degraded=degraded)
    return JSONResponse(body.model_dump(), status_code=503 if not_ready else 200)


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

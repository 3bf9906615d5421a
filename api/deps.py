"""What the /v1 routes depend on: the caller (key, scope, space, rate limit), services and limits.

    @router.get("/entities/{entity_id}")
    def get_entity(entity_id: str, caller: Reader, memory: Memory) -> Entity: ...

Every /v1 route takes one of `Reader`, `Writer`, `Analyst` or `Admin`: the API key must carry
that scope (403), be bound to the path's `{space}` (404 otherwise, like a missing space), and
have a token left in its rate-limit bucket (429).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Path, Request, Security
from fastapi.security import HTTPAuthorizationCredentials

from api.auth import ALL_SPACES, KeyStore, Principal, Scope, bearer_scheme, require
from api.idempotency import HEADER as IDEMPOTENCY_HEADER
from api.idempotency import KEY_PATTERN, IdempotencyStore
from api.jobs import JobStore
from api.limits import RateLimiter
from api.problems import ApiProblem
from api.services import Services
from graph.audit import bind_actor
from graph.settings import Settings
from graph.store import SPACE_PATTERN
from memory.service import SpaceMemory


def services(request: Request) -> Services:
    return request.app.state.services


def settings(request: Request) -> Settings:
    return request.app.state.services.settings


def caller(scope: Scope):
    """The dependency for routes that need `scope`: authenticates, checks space and rate limit, and names
    the caller (key id, route name) for the audit trail of what the request writes.
    Async, as `require` is: authentication never takes a thread from the pool the routes run in."""
    check = require(scope)

    async def dependency(request: Request,
                         credentials: HTTPAuthorizationCredentials | None = Security(bearer_scheme)) -> Principal:
        state = request.app.state
        principal = await check(request, credentials)
        limiter: RateLimiter = state.rate_limiter
        limiter.check(principal.key.key_id)
        route = request.scope.get("route")
        bind_actor(key_id=principal.key.key_id, operation=getattr(route, "name", None) or request.url.path)
        return principal

    dependency.__name__ = f"caller_{scope.value}"
    return dependency


Reader = Annotated[Principal, Depends(caller(Scope.READ))]
Writer = Annotated[Principal, Depends(caller(Scope.WRITE))]
Analyst = Annotated[Principal, Depends(caller(Scope.CYPHER))]
Admin = Annotated[Principal, Depends(caller(Scope.ADMIN))]

SpacePath = Annotated[str, Path(pattern=SPACE_PATTERN.pattern, description="The tenant", examples=["default"])]
IdPath = Annotated[str, Path(min_length=1, max_length=200)]
IdempotencyKey = Annotated[str | None, Header(
    alias=IDEMPOTENCY_HEADER, pattern=KEY_PATTERN,
    description="Makes the request safe to retry: a retry with the same key and body returns the first "
                "answer and writes nothing again (remembered for 24 h)")]


def require_all_spaces(principal: Principal, what: str) -> None:
    """Some operations reach every tenant: only keys bound to every space ('*') may run them."""
    if ALL_SPACES not in principal.key.spaces:
        raise ApiProblem(403, "needs-all-spaces", "Forbidden",
                         f"{what} reaches every space, so it needs an API key bound to all spaces ('*')")


def space_memory(request: Request, space: SpacePath) -> SpaceMemory:
    return services(request).memory().space(space)


Memory = Annotated[SpaceMemory, Depends(space_memory)]


def key_store(request: Request) -> KeyStore:
    return request.app.state.key_store


def idempotency(request: Request) -> IdempotencyStore:
    return request.app.state.idempotency


def jobs(request: Request) -> JobStore:
    return request.app.state.jobs


Keys = Annotated[KeyStore, Depends(key_store)]
Idempotency = Annotated[IdempotencyStore, Depends(idempotency)]
Jobs = Annotated[JobStore, Depends(jobs)]
Config = Annotated[Settings, Depends(settings)]

"""MCP over streamable HTTP at `/mcp`, behind the same API keys as the REST API.

Every HTTP request is authenticated on its own (the transport runs stateless, answering in
JSON), so a key that is revoked stops working at once and no session outlives its key:

- `Authorization: Bearer <API key>`: 401 without a valid, unrevoked key; 403 without `read`;
  tools that write answer an `is_error` result when the key lacks `write`.
- The space: the `X-Kgmem-Space` header, which must be one of the key's spaces (404 "no such
  space" otherwise, as in the REST API); without it, the key's only space (400 when the key is
  bound to several, or to all).
- `X-Kgmem-Agent` (optional) names the agent stamped on what the tools write.
- `?tools=core,delegation` on the URL (optional) lists only those toolsets (agents/toolsets.py); by
  default every tool is listed. An unknown toolset is a 400.
- `cypher_read` is listed and runs only for keys with the `cypher` scope bound to every space ('*'),
  as the REST API's Cypher console.
- The REST API's rate limit applies per key (429), and its limit on failed authentications per
  client address (429, `KeyStore.admit`).

    mcp = McpHttp(app)                  # in create_app
    app.add_route("/mcp", mcp, methods=["GET", "POST", "DELETE"], include_in_schema=False)
    async with mcp.running(): ...       # in the lifespan
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from agents.mcp_server import CallerRefused, KgmemMcp, McpCaller
from agents.toolsets import parse_toolsets
from api.auth import ALL_SPACES, Scope as KeyScope
from api.limits import client_address
from api.problems import ApiProblem, Problem
from graph.store import SPACE_PATTERN

PATH = "/mcp"
SPACE_HEADER = "x-kgmem-space"
AGENT_HEADER = "x-kgmem-agent"
DEFAULT_SPACE = "default"  # the space every request acts on while auth is disabled (dev) and none is named
CALLER = "kgmem.mcp.caller"  # where the authenticated caller travels in the ASGI scope to the tool handlers


class McpHttp:
    """The ASGI endpoint: authenticate, resolve the space, hand over to the MCP transport."""

    def __init__(self, app: FastAPI, *, version: str = "") -> None:
        self.app = app
        self.mcp = KgmemMcp(lambda: app.state.services.memory(), self._caller, version=version,
                            extras=lambda: {"extractor": app.state.services.extractor()})
        self.manager = StreamableHTTPSessionManager(app=self.mcp.server, stateless=True, json_response=True)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with self.manager.run():
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            caller = await self._authenticate(Request(scope))
        except ApiProblem as refused:
            problem = Problem(refused.status, slug=refused.slug, title=refused.title, detail=refused.detail,
                              headers=refused.headers)
            await problem.response(scope)(scope, receive, send)
            return
        scope[CALLER] = caller
        await self.manager.handle_request(scope, receive, send)

    async def _authenticate(self, request: Request) -> McpCaller:
        """On the event loop, as the REST API's: the key check waits for its turn without holding a thread."""
        state: Any = self.app.state
        requested = request.headers.get(SPACE_HEADER)
        if requested is not None and not SPACE_PATTERN.fullmatch(requested):
            raise ApiProblem(400, "invalid-space", "Bad request", f"{SPACE_HEADER} {requested!r} is not a valid space")
        agent = request.headers.get(AGENT_HEADER) or None
        toolsets = _toolsets(request)
        if getattr(state, "auth_disabled", False) is True:
            return McpCaller(space=requested or DEFAULT_SPACE, agent=agent, can_cypher=True, toolsets=toolsets)

        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise _unauthorized("missing API key: send `Authorization: Bearer <API key>`", invalid=False)
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("the Authorization header must be `Bearer <API key>`", invalid=True)
        store = state.key_store
        key = await store.admit(token.strip(), client_address(request.scope))
        if key is None:
            raise _unauthorized("invalid or revoked API key", invalid=True)
        if not key.has_scope(KeyScope.READ):
            raise ApiProblem(403, "forbidden", "Forbidden", "this API key lacks the 'read' scope")
        state.rate_limiter.check(key.key_id)

        if requested is not None:
            if not key.can_access(requested):
                raise ApiProblem(404, "not-found", "Not found", f"no such space: {requested!r}")
            space = requested
        elif len(key.spaces) == 1 and key.spaces[0] != ALL_SPACES:
            space = key.spaces[0]
        else:
            raise ApiProblem(400, "space-required", "Bad request",
                             f"this API key is bound to several spaces; name one with the {SPACE_HEADER} header")
        return McpCaller(space=space, agent=agent, key_id=key.key_id, can_write=key.has_scope(KeyScope.WRITE),
                         can_cypher=key.has_scope(KeyScope.CYPHER) and ALL_SPACES in key.spaces, toolsets=toolsets)

    @staticmethod
    def _caller(ctx: ServerRequestContext) -> McpCaller:
        request = ctx.request
        caller = request.scope.get(CALLER) if isinstance(request, Request) else None
        if caller is None:  # fail closed: never a default space for an unauthenticated call
            raise CallerRefused("this MCP request carries no authenticated caller")
        return caller


def _toolsets(request: Request) -> tuple[str, ...] | None:
    chosen = request.query_params.get("tools")
    if chosen is None:
        return None
    try:
        return tuple(parse_toolsets(chosen))
    except ValueError as exc:
        raise ApiProblem(400, "invalid-toolsets", "Bad request", f"tools: {exc}") from exc


def _unauthorized(message: str, *, invalid: bool) -> ApiProblem:
    challenge = 'Bearer error="invalid_token"' if invalid else "Bearer"
    return ApiProblem(401, "unauthorized", "Unauthorized", message, headers={"WWW-Authenticate": challenge})


def install(app: FastAPI, *, version: str = "") -> McpHttp:
    """Route `/mcp` to the MCP endpoint; the app's lifespan must enter `running()` of what this returns."""
    endpoint = McpHttp(app, version=version)
    app.add_route(PATH, endpoint, methods=["GET", "POST", "DELETE"], include_in_schema=False)
    return endpoint

"""The FastAPI application factory."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from api import console, mcp_http, observability, problems
from api.auth import KeyStore
from api.idempotency import IdempotencyStore
from api.jobs import JobStore
from api.limits import QueryTimeLimit, RateLimiter
from api.routes import admin, analysts, audit, delegations, entities, forget, health, memories, ml, observations, recall
from api.routes import portable
from api.services import open_services
from graph import Settings, get_settings
from memory import Embedder

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, embedder: Embedder | None = None,
               anthropic_client: Any = None) -> FastAPI:
    """The app; `embedder` and `anthropic_client` replace the ones it would make (tests share theirs)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = open_services(settings, embedder=embedder, anthropic_client=anthropic_client)
        try:
            services.migrate_schema()  # a database newer than this code stops the start here
        except BaseException:
            services.close()
            raise
        observability.instrument_services(services, app.state.metrics)  # before anything opens a client
        app.state.services = services
        app.state.auth_disabled = settings.auth_disabled
        app.state.key_store = KeyStore(services.gateway)
        app.state.rate_limiter = RateLimiter(settings.api_rate_limit_per_minute)
        app.state.idempotency = IdempotencyStore(services.gateway, settings.api_idempotency_ttl_s)
        app.state.jobs = JobStore(services.gateway)
        start_bootstrap(app)
        services.start_background_work()
        try:
            async with mcp.running():
                yield
        finally:
            services.close()

    app = FastAPI(
        title="kgmem",
        summary="Knowledge-graph memory for teams of AI agents",
        version=_version(),
        lifespan=lifespan,
    )
    problems.install(app, max_body_bytes=settings.api_max_body_bytes)
    app.add_middleware(QueryTimeLimit, seconds=settings.api_query_timeout_s)
    observability.install(app)
    app.include_router(health.router)
    for router in (entities.router, observations.router, recall.router, memories.router, delegations.router,
                   ml.router, analysts.router, admin.router, admin.global_router, audit.router, forget.router):
        app.include_router(router)
    app.include_router(portable.router)
    mcp = mcp_http.install(app, version=app.version)  # MCP over streamable HTTP at /mcp, same API keys
    console.install(app, settings)  # the web console at /, same API keys (docs/console.md)
    return app


def start_bootstrap(app: FastAPI) -> threading.Thread | None:
    """On a first run (no API key at all), create the admin key for the space `default` and print its
    token once on standard output. Retries in the background while Neo4j is not up yet."""
    if app.state.auth_disabled:
        log.warning("KGMEM_AUTH_DISABLED is set: the API accepts every request as an admin of every space "
                    "(development only)")
        return None
    store: KeyStore = app.state.key_store

    def work() -> None:
        delay = 1.0
        while True:
            try:
                token = store.ensure_bootstrap_key()
                break
            except Exception as exc:  # noqa: BLE001 - Neo4j not up yet: try again
                log.warning("could not check for the bootstrap API key yet (%s); retrying", exc)
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
        if token:
            log.warning("created the bootstrap admin key for space 'default'; its token is printed once on stdout")
            print(f"Bootstrap admin API key for space 'default' (shown once, keep it): {token}", flush=True)

    thread = threading.Thread(target=work, name="bootstrap-key", daemon=True)
    thread.start()
    return thread


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("kgmem")
    except metadata.PackageNotFoundError:
        return "0.0.0"

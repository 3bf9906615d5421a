"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import observability, problems
from api.routes import health
from api.services import Services
from graph import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = Services.create(settings)
        observability.instrument_services(services, app.state.metrics)  # before anything opens a client
        app.state.services = services
        services.start_background_work()
        try:
            yield
        finally:
            services.close()

    app = FastAPI(
        title="kgmem",
        summary="Knowledge-graph memory for teams of AI agents",
        version=_version(),
        lifespan=lifespan,
    )
    problems.install(app)
    observability.install(app)
    app.include_router(health.router)
    return app


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("kgmem")
    except metadata.PackageNotFoundError:
        return "0.0.0"

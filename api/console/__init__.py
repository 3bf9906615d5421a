"""The web console at `/`: server-rendered pages for the people who supervise agent teams (issue #14).

    from api import console
    console.install(app, settings)   # in create_app, after the /v1 routers

Jinja2 templates (autoescaped) with htmx for partial updates and Chart.js for charts, both vendored
under static/vendor/ with their licences, so nothing is built or fetched at run time. Sign-in takes
an API key (api.auth, unchanged) and keeps a signed session cookie (session.py); the pages read
through the same services as /v1 (pages.py, reads.py). docs/console.md describes each page.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.auth import server_secret
from api.console import explore, operate
from api.console.pages import router
from api.console.session import Sessions
from graph.settings import Settings

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI, settings: Settings) -> None:
    """Serve the console's pages at / and its files at /static on `app`."""
    app.state.console_sessions = Sessions(lambda: server_secret(settings))
    app.mount("/static", StaticFiles(directory=STATIC), name="console-static")
    app.include_router(router)
    app.include_router(explore.router)
    app.include_router(operate.router)

"""What CLI commands that use the graph share: the process's services, opened once per command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

from api.services import Services, open_services
from graph import Settings, get_settings
from graph.neo4j_server import LocalNeo4j

err = Console(stderr=True, soft_wrap=True)


@contextmanager
def cli_services(settings: Settings | None = None, *, anthropic_client: Any = None) -> Iterator[Services]:
    """The services for one command, Neo4j reachable. A stopped managed Neo4j is started and left running:
    stopping it afterwards would pull the database from under a `kgmem serve` that attached to it meanwhile."""
    settings = settings or get_settings()
    if settings.managed_neo4j:
        local = LocalNeo4j(settings)
        if local.running() is None:
            with err.status("Starting the local Neo4j…"):
                state, _ = local.start()
            err.print(f"Started the local Neo4j on {state.bolt_uri}; `kgmem neo4j stop` stops it.")
    services = open_services(settings, anthropic_client=anthropic_client)
    try:
        services.gateway.ping()
        yield services
    finally:
        services.close()

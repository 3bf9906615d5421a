"""What CLI commands that read or write the graph share: a driver to the configured Neo4j."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from neo4j import Driver
from rich.console import Console

from graph import Settings, get_settings, neo4j_target, open_driver
from graph.neo4j_server import LocalNeo4j

err = Console(stderr=True, soft_wrap=True)


@contextmanager
def graph_driver(settings: Settings | None = None) -> Iterator[tuple[Driver, Settings]]:
    """A driver for one command. A stopped managed Neo4j is started and left running: stopping it
    afterwards would pull the database from under a `kgmem serve` that attached to it meanwhile."""
    settings = settings or get_settings()
    if settings.managed_neo4j:
        local = LocalNeo4j(settings)
        if local.running() is None:
            with err.status("Starting the local Neo4j…"):
                state, _ = local.start()
            err.print(f"Started the local Neo4j on {state.bolt_uri}; `kgmem neo4j stop` stops it.")
    driver = open_driver(neo4j_target(settings))
    try:
        yield driver, settings
    finally:
        driver.close()

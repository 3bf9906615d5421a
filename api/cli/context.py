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
    """A driver for one command. With the managed Neo4j stopped, it runs for this command only."""
    settings = settings or get_settings()
    local: LocalNeo4j | None = None
    if settings.managed_neo4j:
        local = LocalNeo4j(settings)
        if local.running() is None:
            with err.status("Starting the local Neo4j for this command…"):
                local.start()
        else:
            local = None  # someone else's server: leave it alone
    try:
        driver = open_driver(neo4j_target(settings))
        try:
            yield driver, settings
        finally:
            driver.close()
    finally:
        if local is not None:
            local.stop()

"""The knowledge graph: settings, errors, the gateway to Neo4j, and the managed local server.

The bottom layer: it imports none of `memory`, `agents` or `api`.
"""

from graph.connection import Neo4jTarget, neo4j_target
from graph.errors import KgmemError
from graph.gateway import Gateway, open_driver, time_limit
from graph.settings import Settings, get_settings


def open_gateway(settings: Settings, *, verify: bool = True) -> Gateway:
    """The gateway to the Neo4j the settings point at. Without `verify` it connects at its first query
    (where the managed Neo4j must be running by then); with it, now, with a clear error if it cannot."""
    def connect():
        target = neo4j_target(settings)
        return open_driver(target.uri, target.username, target.password, retry_s=settings.neo4j_retry_s,
                           connect_timeout_s=settings.neo4j_connect_timeout_s)

    gateway = Gateway(connect, settings.neo4j_database, cooldown_s=settings.neo4j_down_cooldown_s)
    if verify:
        gateway.ping()
    return gateway


__all__ = ["Gateway", "KgmemError", "Neo4jTarget", "Settings", "get_settings", "neo4j_target", "open_gateway",
           "time_limit"]

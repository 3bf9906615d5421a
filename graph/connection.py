"""Where Neo4j is: yours (NEO4J_URI) or the managed local one."""

from __future__ import annotations

from dataclasses import dataclass

from graph.errors import ConfigurationError
from graph.neo4j_server.server import LocalNeo4j
from graph.settings import Settings


@dataclass(frozen=True)
class Neo4jTarget:
    uri: str
    username: str
    password: str
    database: str


def neo4j_target(settings: Settings) -> Neo4jTarget:
    if settings.managed_neo4j:
        uri, (username, password) = LocalNeo4j(settings, show_progress=False).connection()
        return Neo4jTarget(uri, username, password, settings.neo4j_database)
    if settings.neo4j_password is None:
        raise ConfigurationError("NEO4J_URI is set but NEO4J_PASSWORD is not")
    return Neo4jTarget(
        settings.neo4j_uri or "",
        settings.neo4j_username,
        settings.neo4j_password.get_secret_value(),
        settings.neo4j_database,
    )

"""Open a driver to the Neo4j the settings point at: yours (NEO4J_URI) or the managed one."""

from __future__ import annotations

from dataclasses import dataclass

from neo4j import Driver, GraphDatabase
from neo4j.exceptions import AuthError, Neo4jError, ServiceUnavailable

from graph.errors import ConfigurationError, Neo4jUnavailable
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


def open_driver(target: Neo4jTarget, *, verify: bool = True) -> Driver:
    """A pooled driver; with `verify`, a clear Neo4jUnavailable instead of a late failure."""
    driver = GraphDatabase.driver(
        target.uri,
        auth=(target.username, target.password),
        max_connection_pool_size=50,
        connection_acquisition_timeout=30.0,
        # Notifications such as "property key does not exist" fire on every query that tests a
        # property no node has yet (retracted_at on a fresh graph); they are noise here.
        notifications_min_severity="OFF",
    )
    if verify:
        try:
            driver.verify_connectivity()
        except AuthError as exc:
            driver.close()
            raise Neo4jUnavailable(f"Neo4j at {target.uri} rejected the credentials for {target.username!r}") from exc
        except (ServiceUnavailable, Neo4jError, OSError) as exc:
            driver.close()
            raise Neo4jUnavailable(f"Neo4j at {target.uri} is unreachable: {exc}") from exc
    return driver


def server_info(driver: Driver) -> dict[str, str]:
    """Name, version and edition of the server behind `driver`."""
    records, _, _ = driver.execute_query(
        "CALL dbms.components() YIELD name, versions, edition "
        "RETURN name, versions[0] AS version, edition",
        database_="system",
    )
    row = records[0]
    return {"name": row["name"], "version": row["version"], "edition": row["edition"]}

"""kgmem's managed local Neo4j (`kgmem neo4j install|start|stop|status|logs`)."""

from graph.neo4j_server.distribution import Distribution, DistributionResolver
from graph.neo4j_server.java import JavaRuntime, find_java
from graph.neo4j_server.server import LocalNeo4j, Neo4jStatus, RunState

__all__ = [
    "Distribution",
    "DistributionResolver",
    "JavaRuntime",
    "LocalNeo4j",
    "Neo4jStatus",
    "RunState",
    "find_java",
]

"""The knowledge graph: settings, the Neo4j connection and the managed local server.

The bottom layer: it imports none of `memory`, `agents` or `api`.
"""

from graph.connection import Neo4jTarget, neo4j_target, open_driver, server_info
from graph.errors import KgmemError
from graph.settings import Settings, get_settings

__all__ = ["KgmemError", "Neo4jTarget", "Settings", "get_settings", "neo4j_target", "open_driver", "server_info"]

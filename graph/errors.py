"""kgmem's one error hierarchy: every error raised on purpose, with a cause a user can act on.

Each surface reports them the same way: the REST API looks the class up in a table
(`api/problems.py`), the MCP server and the Claude tools return them as error results,
and the CLI prints `str(error)` and exits non-zero. Errors from the drivers (Neo4j,
Chroma, Anthropic) are translated into these where kgmem calls them, so no surface has
to know a driver's exception types.

    KgmemError
    ├── InvalidInput          the caller's input breaks a rule (422)
    │   └── TextTooLong       a text over a limit (extraction's token budget, the text cap)
    ├── NotFound              no such item in this space (404; also what another tenant's ids look like)
    ├── Conflict              the write collides with what is stored (409)
    │   └── ModelMismatch     the vector index holds another embedding model's vectors
    ├── CypherRefused         the read-only guard will not run an analyst's query (400)
    ├── CypherFailed          the guard ran it, Neo4j stopped it (422)
    ├── QueryTimeout          a query ran past its time limit (504)
    ├── ExtractionFailed      Claude's answer was unusable (502)
    ├── Unavailable           a dependency is down or busy: retry later (503 + Retry-After)
    │   ├── Neo4jUnavailable
    │   │   └── Neo4jStartError
    │   ├── ChromaUnavailable
    │   └── LLMUnavailable
    └── ConfigurationError    the operator must fix a setting; retrying will not help (503)
        ├── ChromaCorrupt     the vector index's store cannot be read: `kgmem reindex --full` rebuilds it
        ├── JavaNotFound
        ├── PortInUse
        └── DownloadError
            └── ChecksumMismatch
"""

from __future__ import annotations

from typing import Any


class KgmemError(Exception):
    """Base of every error kgmem raises on purpose."""


# -- the caller's mistakes ----------------------------------------------------------------------------------
class InvalidInput(KgmemError):
    """Input that passed type checks but breaks a rule of the graph."""


class TextTooLong(InvalidInput):
    """A text longer than a limit allows."""


class NotFound(KgmemError):
    """No such item in this space (also what another tenant's ids look like)."""


class Conflict(KgmemError):
    """The write collides with something already stored."""


class ModelMismatch(Conflict):
    """The vector index holds vectors from another embedding model."""


class CypherRefused(KgmemError):
    """An analyst query the read-only guard will not run."""


class CypherFailed(KgmemError):
    """The guard allowed the query, but Neo4j stopped it with an error."""


class QueryTimeout(KgmemError):
    """A query ran past its time limit and Neo4j stopped it."""


class ExtractionFailed(KgmemError):
    """Claude could not produce a usable extraction; `usage` says what the attempts cost."""

    def __init__(self, message: str, *, attempts: int = 0, usage: Any = None) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.usage = usage


# -- the service's state ------------------------------------------------------------------------------------
class Unavailable(KgmemError):
    """A dependency is down or overloaded right now; the same call may work in a few seconds."""

    dependency = "a dependency"


class Neo4jUnavailable(Unavailable):
    """Neo4j cannot be reached right now."""

    dependency = "Neo4j"


class Neo4jStartError(Neo4jUnavailable):
    """The managed Neo4j did not come up."""


class ChromaUnavailable(Unavailable):
    """The vector index cannot be reached or read right now."""

    dependency = "Chroma"


class LLMUnavailable(Unavailable):
    """Claude is unreachable or overloaded."""

    dependency = "Claude"


class ConfigurationError(KgmemError):
    """A setting is missing or wrong: the operator must act."""


class ChromaCorrupt(ConfigurationError):
    """Chroma's store cannot be read (a damaged database or index file). It holds nothing Neo4j does not:
    `kgmem reindex --full` moves it aside and rebuilds it."""


class JavaNotFound(ConfigurationError):
    """No Java 17+ runtime to run Neo4j with."""


class PortInUse(ConfigurationError):
    """A port Neo4j needs is taken."""


class DownloadError(ConfigurationError):
    """The Neo4j distribution could not be fetched or unpacked."""


class ChecksumMismatch(DownloadError):
    """A download does not match the checksum its publisher lists."""

"""Errors with a one-line cause a user can act on.

The CLI prints `str(error)` and exits non-zero; the API maps them to status codes.
"""


class KgmemError(Exception):
    """Base of every error kgmem raises on purpose."""


class ConfigurationError(KgmemError):
    """A setting is missing or wrong."""


class JavaNotFound(KgmemError):
    """No Java 17+ runtime to run Neo4j with."""


class PortInUse(KgmemError):
    """A port Neo4j needs is taken."""


class DownloadError(KgmemError):
    """The Neo4j distribution could not be fetched or unpacked."""


class ChecksumMismatch(DownloadError):
    """A download does not match the checksum its publisher lists."""


class Neo4jStartError(KgmemError):
    """The managed Neo4j did not come up."""


class Neo4jUnavailable(KgmemError):
    """Neo4j cannot be reached right now."""


class CypherRefused(KgmemError):
    """An analyst query the read-only guard will not run."""


class NotFound(KgmemError):
    """No such item in this space (also what another tenant's ids look like)."""


class InvalidInput(KgmemError):
    """Input that passed type checks but breaks a rule of the graph."""

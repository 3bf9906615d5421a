"""Schema migrations: the ordered steps that bring a Neo4j database made by any kgmem to today's schema.

    (:SchemaVersion {id: 'kgmem', version, migrated_at})    one node: the last step this database ran
    report = migrate(gateway)                                 at start-up (GraphStore.ensure_schema)

Each step is a named, idempotent function of the gateway; step n brings a database from version
n - 1 to n. A database without the node is version 0: made before migrations existed, or empty.
Version 1 is today's constraints and indexes (graph/schema.py); the later steps are the changes
kgmem's data went through, with their backfills, so a database written by older code reads and
recalls as one written today. A current database only has graph/schema.py's missing constraints
and indexes created (none, unless one was added there since): a new index needs no step, a changed
one or a data change does.

Replicas that start together must not run the steps side by side, so the runner takes a lease on
the version node first (`owner`, `until`: schema commands cannot share a transaction with data
writes in Neo4j, so a transaction's own lock cannot cover them). The holder renews the lease while
it works; the others wait for it and then find nothing left to do. A holder that dies stops
renewing and its lease lapses after `LEASE_S`; the steps being idempotent, the next holder runs
the unfinished one again. A database newer than this code is refused (`ConfigurationError`):
running on it could write data in a shape newer code no longer reads.

The schema modules of the upper layers (api/jobs.py, api/idempotency.py, agents/claude_memory.py,
memory/lease.py, api/auth.py) keep creating their own constraints on first use: `graph` is the bottom
layer and does not import them, and those constraints carry no data to migrate.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from graph import schema
from graph.errors import ConfigurationError, Neo4jUnavailable
from graph.gateway import Gateway
from graph.writes import date_text

log = logging.getLogger(__name__)

VERSION_ID = "kgmem"
LEASE_S = 60.0  # a term of the migration lease; renewed every third of it while the steps run
WAIT_S = 900.0  # how long a replica waits for another one's migration before giving up
POLL_S = 0.5
BATCH = 1000  # nodes per backfill transaction

VERSION_CONSTRAINT = ("CREATE CONSTRAINT schema_version_id IF NOT EXISTS "
                      "FOR (v:SchemaVersion) REQUIRE v.id IS UNIQUE")

READ_VERSION = """
MATCH (v:SchemaVersion {id: $id})
RETURN v.version AS version, toString(v.migrated_at) AS migrated_at, v.owner AS owner, toString(v.until) AS until
"""

# Writing the node first takes its write lock, so of two replicas racing here exactly one sees it free.
TAKE_LEASE = """
MERGE (v:SchemaVersion {id: $id})
ON CREATE SET v.version = 0
SET v.contended_at = datetime()
WITH v, (v.owner IS NULL OR v.until IS NULL OR v.until <= datetime()) AS free
SET v.owner = CASE WHEN free THEN $owner ELSE v.owner END,
    v.until = CASE WHEN free THEN datetime() + duration({milliseconds: $term_ms}) ELSE v.until END
RETURN free AS taken, v.version AS version, v.owner AS owner, toString(v.until) AS until
"""

RENEW_LEASE = """
MATCH (v:SchemaVersion {id: $id, owner: $owner})
SET v.until = datetime() + duration({milliseconds: $term_ms})
RETURN v.version AS version
"""

RECORD_STEP = """
MATCH (v:SchemaVersion {id: $id, owner: $owner})
SET v.version = $version, v.migrated_at = datetime()
RETURN v.version AS version
"""

AWAIT_INDEXES = "CALL db.awaitIndexes($seconds)"

RELEASE_LEASE = """
MATCH (v:SchemaVersion {id: $id, owner: $owner})
REMOVE v.owner, v.until, v.contended_at
"""


# -- the steps ------------------------------------------------------------------------------------------------
def baseline_schema(gateway: Gateway) -> None:
    """Today's constraints, indexes and fulltext indexes (graph/schema.py), each created if missing:
    what every kgmem database needs before anything reads it."""
    schema.ensure_schema(gateway)


def english_fulltext(gateway: Gateway) -> None:
    """The first fulltext indexes used Lucene's standard analyzer and indexed `o.text`; recall now needs
    the english analyzer (stemming) over `o.search_text`, and `observation_context`. Neo4j cannot alter
    an index, so an outdated one is dropped and created again."""
    for name in schema.outdated_fulltext(gateway):
        gateway.write(f"DROP INDEX {name} IF EXISTS")  # a name from schema.FULLTEXT, not input
        gateway.write(schema.fulltext_statement(name))


OBSERVATIONS_WITHOUT_SEARCH_TEXT = """
MATCH (o:Observation) WHERE o.search_text IS NULL
MATCH (e:Entity {id: o.entity_id})
RETURN o.id AS id, o.text AS text, o.valid_from AS valid_from, e.name AS entity_name
LIMIT $limit
"""

# Pending again: the vector sync then writes the context window, passages and vectors of today's form.
SET_SEARCH_TEXT = """
UNWIND $rows AS row
MATCH (o:Observation {id: row.id})
SET o.search_text = row.search_text, o.vector_status = 'pending', o.pending_since = datetime()
"""

# Observations whose entity is gone cannot be named: they are searched by their text alone.
ORPHANS_WITHOUT_SEARCH_TEXT = """
MATCH (o:Observation) WHERE o.search_text IS NULL
SET o.search_text = coalesce(o.text, ''), o.vector_status = 'pending', o.pending_since = datetime()
"""


def search_text(gateway: Gateway) -> None:
    """Observations written before `search_text` existed (keyword search's field: the date in words, the
    entity's name and the text, see graph/writes.py ADD_OBSERVATIONS) get it, and are re-indexed so the
    vector sync adds their context window (`o.context`, the `observation_context` index)."""
    while rows := gateway.rows(OBSERVATIONS_WITHOUT_SEARCH_TEXT, limit=BATCH):
        gateway.write(SET_SEARCH_TEXT, rows=[
            {"id": row["id"], "search_text": _search_text(row["text"] or "", row["entity_name"], row["valid_from"])}
            for row in rows])
    gateway.write(ORPHANS_WITHOUT_SEARCH_TEXT)


def _search_text(text: str, entity_name: str, valid_from) -> str:
    # As ADD_OBSERVATIONS builds it.
    prefix = f"{date_text(valid_from)}. " if valid_from is not None else ""
    return f"{prefix}{entity_name}: {text}"


REINDEX_WITHOUT_PASSAGES = """
CALL () {
  MATCH (o:Observation {vector_status: 'indexed'}) WHERE o.passages IS NULL RETURN o AS item
  UNION
  MATCH (e:Entity {vector_status: 'indexed'}) WHERE e.passages IS NULL RETURN e AS item
}
WITH item LIMIT $limit
SET item.vector_status = 'pending', item.pending_since = datetime()
RETURN count(item) AS marked
"""


def passage_vectors(gateway: Gateway) -> None:
    """Items indexed before long texts were embedded in passages (their vectors cover the first part
    only, and carry no `passages` count) are marked pending, so the vector sync embeds them again."""
    while gateway.write(REINDEX_WITHOUT_PASSAGES, limit=BATCH)[0]["marked"]:
        pass


DROP_RETIRED_INDEX = "DROP INDEX observation_space_vector IF EXISTS"


def retired_indexes(gateway: Gateway) -> None:
    """`observation_space_vector` (space, vector_status) was replaced by the cross-tenant
    `observation_vector_status`: the old one only costs writes."""
    gateway.write(DROP_RETIRED_INDEX)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Gateway], None]

    @property
    def why(self) -> str:
        return " ".join((self.apply.__doc__ or "").split())


MIGRATIONS = [
    Migration(1, "baseline schema", baseline_schema),
    Migration(2, "english fulltext over search_text", english_fulltext),
    Migration(3, "search_text backfill", search_text),
    Migration(4, "passage vectors", passage_vectors),
    Migration(5, "retired indexes", retired_indexes),
]
LATEST = MIGRATIONS[-1].version


# -- the runner -----------------------------------------------------------------------------------------------
@dataclass
class MigrationStatus:
    version: int
    latest: int
    migrated_at: str | None
    holder: str | None  # who is migrating right now, if anyone

    @property
    def pending(self) -> list[Migration]:
        return [m for m in MIGRATIONS if m.version > self.version]


@dataclass
class MigrationReport:
    from_version: int
    to_version: int
    ran: list[str] = field(default_factory=list)
    waited_for: str | None = None  # another replica's migration this one waited out


def status(gateway: Gateway) -> MigrationStatus:
    """The database's schema version and what is left to run; changes nothing."""
    row = next(iter(gateway.rows(READ_VERSION, id=VERSION_ID)), None)
    if row is None:
        return MigrationStatus(0, LATEST, None, None)
    return MigrationStatus(row["version"] or 0, LATEST, row["migrated_at"], row["owner"])


def check_not_newer(current: MigrationStatus) -> None:
    if current.version > LATEST:
        raise ConfigurationError(
            f"the Neo4j database is at schema version {current.version}, newer than this kgmem's {LATEST}: it "
            f"was migrated by a newer kgmem. Run that version (or newer), or restore a backup made before")


def migrate(gateway: Gateway, *, wait_s: float = WAIT_S, wait_for_indexes_s: float = 120,
            progress: Callable[[Migration], None] | None = None) -> MigrationReport:
    """Run the steps this database has not run, under the migration lease; a no-op when it is current."""
    current = status(gateway)
    check_not_newer(current)
    if current.version == LATEST:
        # A constraint or index added to graph/schema.py since: each statement is a no-op when it exists.
        schema.ensure_schema(gateway)
        return MigrationReport(current.version, current.version)
    gateway.write(VERSION_CONSTRAINT)
    owner = _new_owner()
    waited_for = _take(gateway, owner, wait_s)
    try:
        current = status(gateway)  # another replica may have finished while this one waited
        check_not_newer(current)
        report = MigrationReport(current.version, current.version, waited_for=waited_for)
        if current.pending:
            with _renewing(gateway, owner):
                for migration in current.pending:
                    if progress:
                        progress(migration)
                    log.info("schema migration %s (%s): %s", migration.version, migration.name, migration.why)
                    migration.apply(gateway)
                    if not gateway.write(RECORD_STEP, id=VERSION_ID, owner=owner, version=migration.version):
                        raise Neo4jUnavailable(f"the schema migration lease lapsed during step {migration.version}; "
                                               "another replica took it over and finishes the migration")
                    report.ran.append(f"{migration.version} {migration.name}")
                    report.to_version = migration.version
                gateway.write(AWAIT_INDEXES, seconds=int(wait_for_indexes_s))
        return report
    finally:
        gateway.write(RELEASE_LEASE, id=VERSION_ID, owner=owner)


def _new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _take(gateway: Gateway, owner: str, wait_s: float) -> str | None:
    """Take the lease, waiting while another replica holds it; returns that replica's name if there was one."""
    deadline = time.monotonic() + wait_s
    other = None
    while True:
        row = gateway.write(TAKE_LEASE, id=VERSION_ID, owner=owner, term_ms=int(LEASE_S * 1000))[0]
        if row["taken"]:
            return other
        other = row["owner"]
        if time.monotonic() >= deadline:
            raise Neo4jUnavailable(f"{other} has been migrating the schema for over {wait_s:.0f} s (lease until "
                                   f"{row['until']}); start again once it is done")
        log.info("waiting for %s to finish migrating the schema", other)
        time.sleep(POLL_S)


class _renewing:
    """Keep the lease renewed from a thread while the steps run (a backfill can outlast a term)."""

    def __init__(self, gateway: Gateway, owner: str) -> None:
        self.gateway, self.owner = gateway, owner
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._keep, name="schema-migration-lease", daemon=True)

    def __enter__(self) -> None:
        self.thread.start()

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=30)

    def _keep(self) -> None:
        while not self.stop.wait(LEASE_S / 3):
            try:
                self.gateway.write(RENEW_LEASE, id=VERSION_ID, owner=self.owner, term_ms=int(LEASE_S * 1000))
            except Exception:  # tried again at the next third of the term
                log.warning("could not renew the schema migration lease", exc_info=True)

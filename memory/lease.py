"""One reconciler at a time per vector store: a lease in Neo4j that replicas take in turn.

    (:ReconcileLease {name, owner, until, taken_at})

Replicas that share a Neo4j and a Chroma server would otherwise all reconcile the same
store at start-up (and on `kgmem reindex`), embedding the same pending items side by side
and racing a full rebuild's drop of the collection. Before reconciling, a process takes the
store's lease:

- `TAKE` claims it in one statement, only when it is free or its term (`until`) has passed.
  It first writes the node (`contended_at`), which takes the node's write lock, and only then
  reads the holder, so of two replicas racing for it exactly one gets it; the name is unique
  (`SCHEMA`), so two racing MERGEs cannot make two nodes.
- The holder renews the term every third of it while it works (`RENEW`), and releases the lease
  when done (`RELEASE`). A holder that dies stops renewing: its lease lapses after `LEASE_S`
  and the next contender takes it over.
- A process that finds the lease held does not wait: it skips its reconcile and logs who holds it
  (the holder is doing the same work). Times are Neo4j's own clock, so replicas' clocks need not agree.

The lease is named after the vector store and collection (a Chroma server by its address, an
embedded store by host and directory), so processes on different stores never hold each other up.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from graph.gateway import Gateway

log = logging.getLogger(__name__)

LEASE_S = 60.0  # a term; renewed every third of it while the reconcile runs
RETRY_S = 1.0  # how often one that waits for the lease tries again

SCHEMA = ["CREATE CONSTRAINT reconcile_lease_name IF NOT EXISTS FOR (l:ReconcileLease) REQUIRE l.name IS UNIQUE"]

TAKE = """
MERGE (l:ReconcileLease {name: $name})
SET l.contended_at = datetime()
WITH l, (l.owner IS NULL OR l.until IS NULL OR l.until <= datetime()) AS free
SET l.owner = CASE WHEN free THEN $owner ELSE l.owner END,
    l.until = CASE WHEN free THEN datetime() + duration({milliseconds: $term_ms}) ELSE l.until END,
    l.taken_at = CASE WHEN free THEN datetime() ELSE l.taken_at END
RETURN free AS taken, l.owner AS owner, toString(l.until) AS until
"""

RENEW = """
MATCH (l:ReconcileLease {name: $name, owner: $owner})
SET l.until = datetime() + duration({milliseconds: $term_ms})
RETURN toString(l.until) AS until
"""

RELEASE = """
MATCH (l:ReconcileLease {name: $name, owner: $owner})
REMOVE l.owner, l.until, l.taken_at
"""


def new_owner() -> str:
    """Names the holder in logs and in Neo4j: host, pid and a nonce, so two reconciles of one process differ."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lease_name(store: str, collection: str) -> str:
    """The lease of one vector collection: a Chroma server by its address, an embedded store by host and path."""
    where = store if store.startswith("http") else f"{socket.gethostname()}:{store}"
    return f"vectors {where} {collection}"


@dataclass(frozen=True)
class Holder:
    owner: str
    until: str


class ReconcileLease:
    """The lease of one name for one owner: `take`, `renew`, `release`, or all three with `held()`."""

    def __init__(self, gateway: Gateway, name: str, *, owner: str | None = None, term_s: float = LEASE_S) -> None:
        self.gateway = gateway
        self.name = name
        self.owner = owner or new_owner()
        self.term_s = term_s

    def _term_ms(self) -> int:
        return max(1, int(self.term_s * 1000))

    def take(self) -> Holder | None:
        """Take the lease if it is free or lapsed: None when taken, else who holds it and until when."""
        for statement in SCHEMA:
            self.gateway.write(statement)
        row = self.gateway.write(TAKE, name=self.name, owner=self.owner, term_ms=self._term_ms())[0]
        return None if row["taken"] else Holder(row["owner"], row["until"])

    def renew(self) -> bool:
        """Extend the term; False when the lease is no longer this owner's (it lapsed and was taken over)."""
        return bool(self.gateway.write(RENEW, name=self.name, owner=self.owner, term_ms=self._term_ms()))

    def release(self) -> None:
        self.gateway.write(RELEASE, name=self.name, owner=self.owner)

    def take_within(self, wait_s: float) -> Holder | None:
        """`take`, trying again every `RETRY_S` for up to `wait_s` seconds while another process holds it."""
        deadline = time.monotonic() + wait_s
        while (holder := self.take()) is not None and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(RETRY_S, left))
        return holder

    @contextmanager
    def held(self, *, wait_s: float = 0.0) -> Iterator[Holder | None]:
        """Take the lease (waiting up to `wait_s` for it) and keep it renewed until the block ends, then release
        it. Yields None when this owner holds it, else the other holder (the block should then skip its work)."""
        holder = self.take_within(wait_s)
        if holder is not None:
            yield holder
            return
        stop = threading.Event()
        renewer = threading.Thread(target=self._keep, args=(stop,), name="reconcile-lease", daemon=True)
        renewer.start()
        try:
            yield None
        finally:
            stop.set()
            renewer.join(timeout=30)
            try:
                self.release()
            except Exception:  # an unreleased lease lapses after its term
                log.warning("could not release the reconcile lease %s; it lapses within %.0f s", self.name,
                            self.term_s, exc_info=True)

    def _keep(self, stop: threading.Event) -> None:
        while not stop.wait(self.term_s / 3):
            try:
                if not self.renew():
                    log.warning("the reconcile lease %s lapsed and another process took it over", self.name)
                    return
            except Exception:  # tried again at the next third of the term
                log.warning("could not renew the reconcile lease %s", self.name, exc_info=True)

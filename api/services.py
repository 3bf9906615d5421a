"""What one kgmem process holds: the Neo4j gateway, Chroma, the embedder and the memory service.

`open_services(settings)` is how the API, every CLI command and the MCP server get them.
Chroma and the memory service open lazily and reopen after a failure, so the API starts
(and `/healthz` answers) while a dependency is still down, and `/readyz` says which; the
gateway reconnects to Neo4j by itself. An embedded Chroma store replaced under the process
(`kgmem reindex --full` set a damaged one aside) is opened again, and one removed under it
is opened afresh and rebuilt from Neo4j in the background.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chromadb.api import ClientAPI

from graph import Gateway, Settings, open_gateway
from graph.errors import Neo4jUnavailable
from graph.migrations import migrate
from graph.neo4j_server import LocalNeo4j
from memory import Embedder, open_chroma
from memory.extraction import ClaudeExtractor, claude_client
from memory.index import translate as translate_chroma
from memory.service import MemoryService
from memory.vectors import close_chroma, store_identity

log = logging.getLogger(__name__)

DependencyObserver = Callable[[str, str, float], None]  # (dependency, operation, seconds)


@dataclass
class Services:
    settings: Settings
    embedder: Embedder
    gateway: Gateway
    anthropic_client: Any = None  # an `anthropic.Anthropic` for extraction and mem0; None without a key
    _chroma: ClientAPI | None = None
    _store: tuple[int, int] | None = None  # the embedded store's identity when it was opened (`store_identity`)
    _memory: MemoryService | None = None
    _extractor: ClaudeExtractor | None = None
    _embedder_error: str | None = None
    _observers: list[DependencyObserver] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _background: threading.Thread | None = None
    _repair: threading.Thread | None = None

    def observe(self, observer: DependencyObserver) -> None:
        """Call `observer(dependency, operation, seconds)` after each call to Neo4j, Chroma or the embedder."""
        self._observers.append(observer)
        self.gateway.observe(lambda operation, seconds: observer("neo4j", operation, seconds))
        self.embedder.observe(lambda operation, seconds: observer("embedder", operation, seconds))
        if self._memory is not None:
            self._observe_index(self._memory, observer)

    @staticmethod
    def _observe_index(memory: MemoryService, observer: DependencyObserver) -> None:
        memory.index.observe(lambda operation, seconds: observer("chroma", operation, seconds))

    def chroma(self) -> ClientAPI:
        with self._lock:
            self._follow_store()
            return self._chroma_unlocked()

    def _chroma_unlocked(self) -> ClientAPI:
        if self._chroma is None:
            self._chroma = open_chroma(self.settings)
            self._store = store_identity(self.settings)
        return self._chroma

    def _follow_store(self) -> None:
        """An embedded store replaced or removed under this process is opened again: the open client would
        go on with the old files (a damaged store set aside by `kgmem reindex --full`) or with deleted ones,
        where writes fail and reads find what is gone. A removed store is rebuilt from Neo4j here."""
        if self._chroma is None or self.settings.chroma_host:
            return
        now = store_identity(self.settings)
        if now == self._store:
            return
        log.warning("Chroma's store at %s was %s under this process; opening it again", self.settings.chroma_dir,
                    "removed" if now is None else "replaced")
        close_chroma(self._chroma)
        self._chroma = self._memory = None
        if now is None:
            self._start_repair()

    def _start_repair(self) -> None:
        """Rebuild a removed store from Neo4j in the background; /readyz and recall say so meanwhile."""
        if not self.embedder.loaded or (self._repair is not None and self._repair.is_alive()):
            return  # before the model is loaded, the start-up work's reconcile does it
        self._repair = threading.Thread(target=self._reconcile, args=("rebuilding the removed Chroma store",),
                                        kwargs={"rebuilding": True}, name="chroma-repair", daemon=True)
        self._repair.start()

    def check_chroma(self, *, index: bool = True) -> None:
        """Raise what keeps Chroma from serving: unreachable, or a store that cannot be read (for /readyz).
        With `index` (Neo4j answers) and the embedder loaded, the collection's vector index is read too."""
        client = self.chroma()  # opening an embedded store reads its database
        try:
            client.heartbeat()
            client.list_collections()  # a store damaged after it was opened: the heartbeat alone still answers
        except Exception as exc:
            mapped = translate_chroma(exc, str(self.settings.chroma_dir) if not self.settings.chroma_host else "")
            if mapped is None:
                raise
            raise mapped from exc
        if index and self.embedder.loaded:
            self.memory().index.probe()

    def vectors_problem(self) -> str | None:
        """Why recall's vector channels see less than the whole index right now (a rebuild), or None."""
        memory = self.memory()
        since = memory.index.rebuilding_since()
        if since is None:
            return None
        return (f"being rebuilt from Neo4j since {since:%Y-%m-%d %H:%M:%S} UTC, "
                f"{memory.sync.pending_count()} items still without vectors: recall's vector channels see part "
                "of the index")

    def memory(self) -> MemoryService:
        with self._lock:
            self._follow_store()
            if self._memory is None:
                memory = MemoryService.open(self.settings, self.gateway, embedder=self.embedder,
                                            chroma=self._chroma_unlocked(), anthropic_client=self.anthropic_client)
                for observer in self._observers:
                    self._observe_index(memory, observer)
                self._memory = memory
            return self._memory

    def extractor(self) -> ClaudeExtractor | None:
        """Claude extraction for outcomes, when there is a client (ANTHROPIC_API_KEY); None otherwise."""
        with self._lock:
            if self._extractor is None and self.anthropic_client is not None:
                self._extractor = ClaudeExtractor(client=self.anthropic_client)
            return self._extractor

    def migrate_schema(self) -> None:
        """The schema migrations (graph/migrations.py), at start-up before anything reads the graph. A
        database newer than this code raises ConfigurationError, which stops the start; while Neo4j does
        not answer they wait for the first use of the memory (`MemoryService.open` runs them too)."""
        try:
            report = migrate(self.gateway)
        except Neo4jUnavailable as exc:
            log.warning("schema migrations deferred until Neo4j answers: %s", exc)
            return
        if report.ran:
            log.info("schema migrated from version %s to %s: %s", report.from_version, report.to_version,
                     ", ".join(report.ran))

    def start_background_work(self) -> threading.Thread:
        """Load the embedding model, then reconcile the vector index with Neo4j (finishing writes
        a crash left pending). The API answers meanwhile; /readyz says what is still loading."""
        def work() -> None:
            try:
                self.embedder.load()
                log.info("embedding model %s loaded (%s)", self.embedder.name, self.embedder.model_info.source)
            except Exception as exc:  # noqa: BLE001 - reported by /readyz
                self._embedder_error = str(exc)
                log.error("embedding model failed to load: %s", exc)
                return
            self._reconcile("start-up reconcile", quick=True)

        self._background = threading.Thread(target=work, name="startup", daemon=True)
        self._background.start()
        return self._background

    def _reconcile(self, what: str, *, rebuilding: bool = False, quick: bool = False) -> None:
        """Bring the vector index in line with Neo4j and log how it went, cost included (`quick`: scan the
        index only if a cheap check finds it out of line). A shutdown ends it between batches, and any
        failure is left to the next start or `kgmem reindex`, which finish the work."""
        try:
            memory = self.memory()
            if rebuilding:
                memory.index.mark_rebuilding()
            log.info("%s: %s", what, memory.reconcile(quick=quick, progress=self._unless_stopping))
        except _Stopping:
            log.info("%s stopped for shutdown; the next start finishes it", what)
        except Exception:  # the next start or `kgmem reindex` finishes it (see the docstring)
            if not self._stopping.is_set():
                log.exception("%s failed; the next start or `kgmem reindex` finishes it", what)

    def wait_for_background_work(self, timeout_s: float | None = None) -> bool:
        """Block until the start-up work is done (or `timeout_s` passes); True when it is done."""
        if self._background is None:
            return True
        self._background.join(timeout_s)
        return not self._background.is_alive()

    def _unless_stopping(self, done: int, total: int | None) -> None:
        """Called between reconcile batches: a shutdown ends the work there, not mid-batch."""
        if self._stopping.is_set():
            raise _Stopping

    def embedder_problem(self) -> str | None:
        if self._embedder_error:
            return self._embedder_error
        if not self.embedder.loaded:
            return "the embedding model is still loading"
        return None

    def close(self, *, wait_s: float = 60.0) -> None:
        # Let the start-up work finish its batch first: a process that exits while a thread is inside
        # PyTorch or Chroma's native code aborts (SIGABRT) instead of exiting cleanly.
        self._stopping.set()
        for thread in (self._background, self._repair):
            if thread is not None and thread.is_alive():
                thread.join(timeout=wait_s)
        self.gateway.close()


class _Stopping(Exception):
    """The service is shutting down."""


def open_services(settings: Settings, *, embedder: Embedder | None = None, anthropic_client: Any = None,
                  start_neo4j: bool = False) -> Services:
    """The services for `settings`. With `start_neo4j`, a stopped managed Neo4j is started (and left
    running: stopping it is `kgmem neo4j stop`'s job); else it must be running or Neo4j is unavailable
    until it is. Nothing is opened until it is used."""
    if start_neo4j and settings.managed_neo4j:
        LocalNeo4j(settings).start()
    return Services(settings=settings, embedder=embedder or Embedder(settings),
                    gateway=open_gateway(settings, verify=False),
                    anthropic_client=anthropic_client if anthropic_client is not None else claude_client(settings))

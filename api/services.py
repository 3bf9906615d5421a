"""The long-lived clients one API process holds: Neo4j driver, Chroma and the embedder.

Each is opened lazily and re-opened after a failure, so the API starts (and
`/healthz` answers) while a dependency is still down, and `/readyz` says which.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from chromadb.api import ClientAPI
from neo4j import Driver

from api.limits import with_query_timeout
from graph import Settings, neo4j_target, open_driver
from memory import Embedder, open_chroma
from memory.extraction import ClaudeExtractor
from memory.service import MemoryService

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    embedder: Embedder
    _driver: Driver | None = None
    _chroma: ClientAPI | None = None
    _memory: MemoryService | None = None
    anthropic_client: Any = None  # an `anthropic.Anthropic` for extraction and mem0; None: from ANTHROPIC_API_KEY
    _extractor: ClaudeExtractor | None = None
    _embedder_error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _background: threading.Thread | None = None

    @classmethod
    def create(cls, settings: Settings, *, embedder: Embedder | None = None, anthropic_client: Any = None) -> Services:
        return cls(settings=settings, embedder=embedder or Embedder(settings), anthropic_client=anthropic_client)

    def neo4j(self) -> Driver:
        with self._lock:
            return self.neo4j_unlocked()

    def chroma(self) -> ClientAPI:
        with self._lock:
            return self.chroma_unlocked()

    def memory(self) -> MemoryService:
        with self._lock:
            if self._memory is None:
                self._memory = MemoryService.open(self.settings, self.neo4j_unlocked(), embedder=self.embedder,
                                                  chroma=self.chroma_unlocked(), anthropic_client=self.anthropic_client)
            return self._memory

    def extractor(self) -> ClaudeExtractor | None:
        """Claude extraction for outcomes, when there is a client or ANTHROPIC_API_KEY; None otherwise."""
        with self._lock:
            if self._extractor is None and (self.anthropic_client is not None or os.environ.get("ANTHROPIC_API_KEY")):
                self._extractor = ClaudeExtractor(client=self.anthropic_client)
            return self._extractor

    def neo4j_unlocked(self) -> Driver:
        if self._driver is None:
            # Requests' transactions get the query timeout; background work runs without one.
            self._driver = with_query_timeout(open_driver(neo4j_target(self.settings)), self.settings.api_query_timeout_s)
        return self._driver

    def chroma_unlocked(self) -> ClientAPI:
        if self._chroma is None:
            self._chroma = open_chroma(self.settings)
        return self._chroma

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
            try:
                report = self.memory().reconcile(progress=self._unless_stopping)
                log.info("start-up reconcile: %s", report)
            except _Stopping:
                log.info("start-up reconcile stopped for shutdown; the next start finishes it")
            except Exception:  # noqa: BLE001 - the next start or `kgmem reindex` tries again
                if not self._stopping.is_set():
                    log.exception("start-up reconcile failed")

        self._background = threading.Thread(target=work, name="startup", daemon=True)
        self._background.start()
        return self._background

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

    def reset_neo4j(self) -> None:
        with self._lock:
            if self._driver is not None:
                self._driver.close()
                self._driver = None
                self._memory = None

    def close(self, *, wait_s: float = 60.0) -> None:
        # Let the start-up work finish its batch first: a process that exits while a thread is inside
        # PyTorch or Chroma's native code aborts (SIGABRT) instead of exiting cleanly.
        self._stopping.set()
        if self._background is not None and self._background.is_alive():
            self._background.join(timeout=wait_s)
        self.reset_neo4j()


class _Stopping(Exception):
    """The service is shutting down."""

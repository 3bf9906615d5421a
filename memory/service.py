"""The memory layer's front: the graph with its vectors following every write, and hybrid recall.

    memory = MemoryService.open(settings, gateway)
    acme = memory.space("acme")
    acme.graph.add_observations([...])    # Neo4j commit, then vectors
    acme.recall(RecallQuery(text="why did the churn retrain fail?"))

The vectors follow by a hook on the graph's one write path (`SpaceGraph.write`):
whoever writes through this service's graph, the items the write marked pending are
embedded after the commit. If that fails, they stay pending and the reconciler
(start-up, `kgmem reindex`) finishes them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chromadb.api import ClientAPI

from graph.errors import Conflict
from graph.gateway import Gateway
from graph.model import PurgeReport
from graph.settings import Settings
from graph.store import GraphStore, SpaceGraph
from memory.embedder import Embedder
from memory.free_text import FreeTextMemory
from memory.index import VectorIndex
from memory.lease import ReconcileLease, lease_name
from memory.recall import Recall, RecallConfig, RecallQuery, RecallResult
from memory.rerank import Reranker
from memory.sync import ReconcileReport, VectorSync
from memory.vectors import open_chroma

log = logging.getLogger(__name__)

FULL_WAITS_S = 120.0  # how long a full rebuild waits for another process's reconcile of the store to end


@dataclass
class MemoryService:
    settings: Settings
    graph: GraphStore
    chroma: ClientAPI
    index: VectorIndex
    embedder: Embedder
    sync: VectorSync
    recaller: Recall
    anthropic_client: Any = None
    _free_text: FreeTextMemory | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def open(cls, settings: Settings, gateway: Gateway, *, embedder: Embedder | None = None,
             chroma: ClientAPI | None = None, config: RecallConfig | None = None,
             anthropic_client: Any = None) -> MemoryService:
        embedder = embedder or Embedder(settings)
        chroma = chroma or open_chroma(settings)
        index = VectorIndex(chroma, embedder.name, embedder.dimension)
        sync = VectorSync(gateway, index, embedder)
        graph = GraphStore(gateway, after_write=[lambda space: _follow(sync, space)])
        graph.ensure_schema()
        reranker = Reranker(settings.reranker_model, device=settings.embedding_device) if settings.reranker_model else None
        recaller = Recall(gateway, index, embedder, config, reranker)
        return cls(settings, graph, chroma, index, embedder, sync, recaller, anthropic_client)

    @property
    def gateway(self) -> Gateway:
        return self.graph.gateway

    def free_text(self) -> FreeTextMemory:
        """mem0 on the same Chroma and embedder; its memories become graph entities that recall finds."""
        with self._lock:
            if self._free_text is None:
                self._free_text = FreeTextMemory(
                    self.settings, self.chroma, self.embedder, self.graph, anthropic_client=self.anthropic_client)
            return self._free_text

    def space(self, space: str) -> SpaceMemory:
        return SpaceMemory(self, self.graph.space(space))

    def reconcile(self, *, full: bool = False, quick: bool = False, progress=None) -> ReconcileReport:
        """Reconcile the vector index with Neo4j (`full`: rebuild it; `quick`, at start-up: scan it only when
        a cheap check finds it out of line, memory/sync.py), under the store's reconcile lease, so that of
        the replicas sharing a store one reconciles at a time (memory/lease.py).

        A reconcile that finds the lease held skips, and its report says why (`skipped`): the holder is
        doing the same work. A full rebuild is not the same work: it waits up to `FULL_WAITS_S` for the
        lease (a start-up reconcile is short), then refuses with `Conflict`."""
        lease = ReconcileLease(self.gateway, lease_name(self.index.store, self.index.collection.name))
        with lease.held(wait_s=FULL_WAITS_S if full else 0.0) as holder:
            if holder is None:
                return self.sync.reconcile(full=full, quick=quick, progress=progress)
        why = f"{holder.owner} holds the reconcile lease of {lease.name} until {holder.until}"
        if full:
            raise Conflict(f"the full reindex did not run: {why} (another process is reconciling this vector "
                           f"store); run it again once that one is done")
        log.info("skipping the reconcile: %s", why)
        return ReconcileReport(skipped=why)


def _follow(sync: VectorSync, space: str) -> None:
    # Neo4j has committed; if this fails the items stay pending and the reconciler finishes them.
    try:
        sync.process_pending(space=space)
    except Exception:  # noqa: BLE001 - never fail a committed write on the derived index
        log.exception("vector sync failed for space %s; the reconciler will retry", space)


class SpaceMemory:
    """One tenant's memory: its graph (every write of which the vectors follow) and recall."""

    def __init__(self, service: MemoryService, graph: SpaceGraph) -> None:
        self.service = service
        self.graph = graph
        self.space = graph.space

    def delete_entity(self, entity_id: str) -> PurgeReport:
        return self._drop_vectors(self.graph.delete_entity(entity_id))

    def purge_entity(self, entity_id: str) -> PurgeReport:
        return self._drop_vectors(self.graph.purge_entity(entity_id))

    def _drop_vectors(self, report: PurgeReport) -> PurgeReport:
        """A hard delete leaves nothing in Neo4j for the sync to see, so its vectors go here: every passage
        of the entity and of each of its observations, and each observation's window."""
        items = [f"ent:{report.entity_id}", *(f"obs:{i}" for i in report.observation_ids)]
        self.service.index.delete_items(items)
        self.service.index.delete([*items, *(f"win:{i}" for i in report.observation_ids)])  # vectors of kgmem < 0.2
        return report

    def reindex(self, progress: Callable[[int, int | None], None] | None = None) -> ReconcileReport:
        """Repair this space's vectors: finish pending items, re-embed missing ones, drop orphans.
        `progress(items, None)` is called after each batch of pending items brought into Chroma."""
        return self.service.sync.reconcile(space=self.space, progress=progress)

    def stats(self) -> dict[str, Any]:
        """What the space holds: entities by kind, observations, relations by type, vectors, pending items."""
        return {**self.graph.counts(), "vectors": self.service.index.count(self.space),
                "pending": self.service.sync.pending_count(self.space)}

    def recall(self, query: RecallQuery, *, config: RecallConfig | None = None,
               boosts: dict[str, float] | None = None) -> RecallResult:
        return self.service.recaller.recall(self.space, query, config=config, boosts=boosts)

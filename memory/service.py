"""The memory layer's front: graph writes whose vectors follow, and hybrid recall.

    memory = MemoryService.open(settings, driver)
    acme = memory.space("acme")
    acme.add_observations([...])          # Neo4j commit, then vectors
    acme.recall(RecallQuery(text="why did the churn retrain fail?"))
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from chromadb.api import ClientAPI
from neo4j import Driver

from graph.model import Entity, EntityIn, Observation, ObservationIn, PurgeReport, Relation, RelationIn
from graph.settings import Settings
from graph.store import GraphStore, SpaceGraph
from memory.embedder import Embedder
from memory.free_text import FreeTextMemory
from memory.index import VectorIndex
from memory.recall import Recall, RecallConfig, RecallQuery, RecallResult
from memory.rerank import Reranker
from memory.sync import ReconcileReport, VectorSync
from memory.vectors import open_chroma

log = logging.getLogger(__name__)


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
    def open(cls, settings: Settings, driver: Driver, *, embedder: Embedder | None = None,
             chroma: ClientAPI | None = None, config: RecallConfig | None = None,
             anthropic_client: Any = None) -> MemoryService:
        embedder = embedder or Embedder(settings)
        graph = GraphStore(driver, settings.neo4j_database)
        graph.ensure_schema()
        chroma = chroma or open_chroma(settings)
        index = VectorIndex(chroma, embedder.name, embedder.dimension)
        sync = VectorSync(driver, settings.neo4j_database, index, embedder)
        reranker = Reranker(settings.reranker_model, device=settings.embedding_device) if settings.reranker_model else None
        recaller = Recall(driver, settings.neo4j_database, index, embedder, config, reranker)
        return cls(settings, graph, chroma, index, embedder, sync, recaller, anthropic_client)

    def free_text(self) -> FreeTextMemory:
        """mem0 on the same Chroma and embedder; its memories become graph entities that recall finds."""
        with self._lock:
            if self._free_text is None:
                self._free_text = FreeTextMemory(
                    self.settings, self.chroma, self.embedder, self.graph, anthropic_client=self.anthropic_client,
                    on_graph_change=lambda space: self.sync.process_pending(space=space))
            return self._free_text

    def space(self, space: str) -> SpaceMemory:
        return SpaceMemory(self, self.graph.space(space))

    def reconcile(self, *, full: bool = False, progress=None) -> ReconcileReport:
        return self.sync.reconcile(full=full, progress=progress)


class SpaceMemory:
    """One tenant's memory. Reads pass through to the graph (`.graph`); writes also index."""

    def __init__(self, service: MemoryService, graph: SpaceGraph) -> None:
        self.service = service
        self.graph = graph
        self.space = graph.space

    def _follow(self) -> None:
        # Neo4j has committed; if this fails the items stay pending and the reconciler finishes them.
        try:
            self.service.sync.process_pending(space=self.space)
        except Exception:  # noqa: BLE001 - never fail a committed write on the derived index
            log.exception("vector sync failed for space %s; the reconciler will retry", self.space)

    def upsert_entities(self, entities: Sequence[EntityIn]) -> list[Entity]:
        result = self.graph.upsert_entities(entities)
        self._follow()
        return result

    def add_observations(self, observations: Sequence[ObservationIn], *, create_missing: bool = False) -> list[Observation]:
        result = self.graph.add_observations(observations, create_missing=create_missing)
        self._follow()
        return result

    def upsert_relations(self, relations: Sequence[RelationIn], *, create_missing: bool = False) -> list[Relation]:
        result = self.graph.upsert_relations(relations, create_missing=create_missing)
        self._follow()
        return result

    def retract_entity(self, entity_id: str) -> dict[str, int]:
        result = self.graph.retract_entity(entity_id)
        self._follow()
        return result

    def retract_observations(self, observation_ids: Sequence[str]) -> int:
        result = self.graph.retract_observations(observation_ids)
        self._follow()
        return result

    def delete_entity(self, entity_id: str) -> PurgeReport:
        return self._drop_vectors(self.graph.delete_entity(entity_id))

    def purge_entity(self, entity_id: str) -> PurgeReport:
        return self._drop_vectors(self.graph.purge_entity(entity_id))

    def _drop_vectors(self, report: PurgeReport) -> PurgeReport:
        self.service.index.delete([f"ent:{report.entity_id}", *(f"obs:{i}" for i in report.observation_ids)])
        return report

    def recall(self, query: RecallQuery, *, config: RecallConfig | None = None,
               boosts: dict[str, float] | None = None) -> RecallResult:
        return self.service.recaller.recall(self.space, query, config=config, boosts=boosts)

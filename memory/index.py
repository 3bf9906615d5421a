"""The vector index: one Chroma collection per embedding model, items of every type in it.

Why one collection rather than one per type or per tenant: recall ranks
observations, lessons, entities and free-text memories against each other in
a single kNN call, and a collection is tied to exactly one model, which is what
makes `kgmem reindex` a clean swap. Tenancy and type are metadata filters
(`space` is always one of them), and so are kind, project, agent and validity.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection

from graph.errors import ChromaUnavailable, ConfigurationError, KgmemError, ModelMismatch

OPEN_END = 253402300799.0  # 9999-12-31T23:59:59Z: `valid_to` of a fact that is still true
COLLECTION_PREFIX = "kgmem"


Observer = Callable[[str, float], None]  # (operation, seconds)


def translate(exc: BaseException) -> KgmemError | None:
    """kgmem's error for a Chroma failure, or None when it is a bug to report as it is."""
    from chromadb import errors as chroma_errors

    if isinstance(exc, chroma_errors.ChromaAuthError | chroma_errors.AuthorizationError | chroma_errors.QuotaError):
        return ConfigurationError(f"Chroma refused kgmem's request ({type(exc).__name__}); the operator must act")
    if isinstance(exc, chroma_errors.RateLimitError):
        return ChromaUnavailable("Chroma is rate-limiting kgmem; retry later")
    if connection_failure(exc):
        return ChromaUnavailable("Chroma cannot be reached right now; retry later")
    return None


def connection_failure(exc: BaseException) -> bool:
    """Whether a connection failure is in `exc`'s chain: the Chroma client reports an unreachable
    server as a bare ValueError raised while handling httpx's ConnectError."""
    import httpx

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, httpx.TransportError | ConnectionError):
            return True
        seen.add(id(current))
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return False


def passage_id(item: str, passage: int) -> str:
    """The vector id of an item's passage: the item's own key ("obs:<id>") for the first, then "#<n>"."""
    return item if passage == 0 else f"{item}#{passage}"


def item_of(vector_id: str) -> tuple[str, int]:
    """("obs:<id>", passage) of a vector id such as "obs:<id>#3"."""
    item, _, passage = vector_id.partition("#")
    return item, int(passage) if passage.isdigit() else 0


@dataclass(frozen=True)
class VectorItem:
    id: str  # "obs:<id>", "ent:<id>", "win:<id>", a passage after the first: "obs:<id>#<n>"
    space: str
    type: str  # observation, entity, window
    text: str
    entity_id: str
    kind: str
    valid_from: float
    valid_to: float = OPEN_END
    agent: str = ""
    delegation_id: str = ""
    project_id: str = ""
    item: str = ""  # the item every passage (and window) of it points back to: "obs:<id>", "ent:<id>"
    start: int = 0  # the passage's character offsets in the item's text
    end: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        return {
            "space": self.space, "type": self.type, "entity_id": self.entity_id, "kind": self.kind,
            "valid_from": self.valid_from, "valid_to": self.valid_to, "agent": self.agent,
            "delegation_id": self.delegation_id, "project_id": self.project_id,
            "item": self.item or item_of(self.id)[0], "start": self.start, "end": self.end, **self.extra,
        }


@dataclass(frozen=True)
class VectorHit:
    id: str
    distance: float
    metadata: dict[str, Any]

    @property
    def similarity(self) -> float:
        return 1.0 - self.distance  # cosine distance -> cosine similarity


def collection_name(model: str, dimension: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")[:40]
    return f"{COLLECTION_PREFIX}-{slug}-{dimension}"


def timestamp(value: datetime | None) -> float:
    return value.timestamp() if value else OPEN_END


class VectorIndex:
    """Vectors for one embedding model, with the model recorded in the collection's metadata."""

    def __init__(self, client: ClientAPI, model: str, dimension: int) -> None:
        self.client = client
        self.model = model
        self.dimension = dimension
        self._observers: list[Observer] = []
        self.collection = self._open()

    def observe(self, observer: Observer) -> Callable[[], None]:
        """Call `observer(operation, seconds)` after every call to Chroma (metrics). Returns what stops it."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer)

    @contextmanager
    def _call(self, operation: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        except KgmemError:
            raise
        except Exception as exc:
            mapped = translate(exc)
            if mapped is None:
                raise
            raise mapped from exc
        finally:
            for observer in self._observers:
                observer(operation, time.perf_counter() - started)

    def _open(self) -> Collection:
        name = collection_name(self.model, self.dimension)
        with self._call("get_or_create_collection"):
            collection = self.client.get_or_create_collection(
                name, metadata={"hnsw:space": "cosine", "embedding_model": self.model, "dimension": self.dimension},
                embedding_function=None,
            )
        recorded = collection.metadata or {}
        if recorded.get("embedding_model") != self.model or int(recorded.get("dimension", -1)) != self.dimension:
            raise ModelMismatch(
                f"Chroma collection {name} holds vectors from {recorded.get('embedding_model')!r} "
                f"({recorded.get('dimension')} dimensions), not {self.model!r} ({self.dimension}); "
                "run `kgmem reindex --full` to rebuild it"
            )
        return collection

    def upsert(self, items: Sequence[VectorItem], vectors: Sequence[Sequence[float]]) -> None:
        # No documents: the texts live in Neo4j, and Chroma's full-text index of them made a
        # one-item write take 57 ms instead of 16 at 18k items.
        if not items:
            return
        with self._call("upsert"):
            self.collection.upsert(
                ids=[item.id for item in items], embeddings=[list(v) for v in vectors],
                metadatas=[item.metadata() for item in items],
            )

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            with self._call("delete"):
                self.collection.delete(ids=list(ids))

    def delete_items(self, items: Sequence[str]) -> None:
        """Every vector of these items ("obs:<id>", "ent:<id>"): all their passages and windows."""
        if items:
            with self._call("delete"):
                self.collection.delete(where={"item": {"$in": list(items)}})

    def best_passages(self, vector: Sequence[float], items: Sequence[str], k: int) -> dict[str, tuple[str, float, int, int]]:
        """For items of several passages: item -> (vector id, cosine, start, end) of its passage nearest to
        `vector`, among the `k` nearest passages of all of them (an item none of those belong to is absent)."""
        if not items:
            return {}
        with self._call("query"):
            found = self.collection.query(query_embeddings=[list(vector)], n_results=k,
                                          where={"$and": [{"item": {"$in": list(items)}}, {"type": {"$ne": "window"}}]},
                                          include=["distances", "metadatas"])
        best: dict[str, tuple[str, float, int, int]] = {}
        for vector_id, distance, meta in zip(found["ids"][0], found["distances"][0], found["metadatas"][0]):
            item = (meta or {}).get("item") or item_of(vector_id)[0]
            if item not in best:  # nearest first
                best[item] = (vector_id, 1.0 - distance, int(meta.get("start") or 0), int(meta.get("end") or 0))
        return best

    def delete_space(self, space: str) -> None:
        """Every vector of one tenant."""
        with self._call("delete"):
            self.collection.delete(where={"space": space})

    def query(
        self, vector: Sequence[float], *, space: str, k: int = 50, types: Sequence[str] | None = None,
        kinds: Sequence[str] | None = None, project_id: str | None = None, agent: str | None = None,
        at: float | None = None,
    ) -> list[VectorHit]:
        """Nearest items in one space, valid at `at` (default: currently valid)."""
        conditions: list[dict[str, Any]] = [{"space": space}]
        if types:
            conditions.append({"type": {"$in": list(types)}})
        if kinds:
            conditions.append({"kind": {"$in": list(kinds)}})
        if project_id:
            conditions.append({"project_id": project_id})
        if agent:
            conditions.append({"agent": agent})
        if at is None:
            conditions.append({"valid_to": OPEN_END})
        else:
            conditions += [{"valid_from": {"$lte": at}}, {"valid_to": {"$gt": at}}]
        where = conditions[0] if len(conditions) == 1 else {"$and": conditions}
        with self._call("query"):
            result = self.collection.query(
                query_embeddings=[list(vector)], n_results=k, where=where, include=["distances", "metadatas"])
        return [
            VectorHit(id=i, distance=d, metadata=m or {})
            for i, d, m in zip(result["ids"][0], result["distances"][0], result["metadatas"][0])
        ]

    def nearest(self, vector: Sequence[float], k: int) -> list[str]:
        """Ids of the `k` nearest items in the whole collection, nearest first, with no filter.

        Chroma's filtered query scans the metadata of every matching row (85 ms at 12k items on
        this machine, growing with the collection); the bare kNN takes 2-3 ms. Callers filter the
        ids themselves and fall back to `query` when too few pass.
        """
        with self._call("query"):
            return self.collection.query(query_embeddings=[list(vector)], n_results=k, include=[])["ids"][0]

    def vectors(self, ids: Sequence[str]) -> dict[str, Any]:
        """Stored vectors by id (numpy arrays); ids without a vector are absent."""
        if not ids:
            return {}
        with self._call("get"):
            got = self.collection.get(ids=list(ids), include=["embeddings"])
        return dict(zip(got["ids"], got["embeddings"]))

    def ids_in(self, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        with self._call("get"):
            return set(self.collection.get(ids=list(ids), include=[])["ids"])

    def all_ids(self, space: str | None = None, batch: int = 5000) -> list[str]:
        """Every vector id, or one space's."""
        found: list[str] = []
        offset = 0
        where = {"space": space} if space is not None else None
        while True:
            with self._call("get"):
                page = self.collection.get(where=where, include=[], limit=batch, offset=offset)["ids"]
            found += page
            if len(page) < batch:
                return found
            offset += batch

    def count(self, space: str | None = None) -> int:
        """Vectors in the index, or of one space (Chroma cannot count by metadata: that lists its ids)."""
        with self._call("count" if space is None else "get"):
            if space is None:
                return self.collection.count()
            return len(self.collection.get(where={"space": space}, include=[])["ids"])

    def drop(self) -> None:
        """Delete this model's collection (for `reindex --full`)."""
        with self._call("delete_collection"):
            self.client.delete_collection(self.collection.name)
        self.collection = self._open()

"""The vector index: one Chroma collection per embedding model, items of every type in it.

Why one collection rather than one per type or per tenant: recall ranks
observations, lessons, entities and free-text memories against each other in
a single kNN call, and a collection is tied to exactly one model, which is what
makes `kgmem reindex` a clean swap. Tenancy and type are metadata filters
(`space` is always one of them), and so are kind, project, agent and validity.

Another process may rebuild the collection under this one (`kgmem reindex --full` beside a
running server, on one embedded store): a call that finds its collection dropped opens the
new one by name and runs again, and while the collection's metadata says it is being
rebuilt, each process makes Chroma catch up with the others' writes (see `_follow`).
A damaged store is reported as `ChromaCorrupt`, which names the way out.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection

from graph.errors import ChromaCorrupt, ChromaUnavailable, ConfigurationError, KgmemError, ModelMismatch

# Chroma's HNSW index grows by resize-and-persist cycles. With its defaults (persist every 1,000 writes,
# grow by 1.2x) tens of thousands of writes inflated link_lists.bin to tens of gigabytes (seen here at
# ~40k vectors: 68 GB; chromadb 1.5.x, upstream reports of the same); growing by 2x avoids it (90k
# vectors in 45,000 small writes: the store grew linearly, 2 KB a vector, link_lists.bin 0.8 MB). Persisting rarely
# (`sync_threshold` 50,000) made every small write cost about 170 ms at 13k vectors instead of 6
# (scripts/chroma_upsert_cost.py), so the index persists every 1,000 writes.
HNSW_SETTINGS = {"hnsw:space": "cosine", "hnsw:batch_size": 1_000, "hnsw:sync_threshold": 1_000,
                 "hnsw:resize_factor": 2.0}
OPEN_END = 253402300799.0  # 9999-12-31T23:59:59Z: `valid_to` of a fact that is still true
COLLECTION_PREFIX = "kgmem"
REBUILDING = "rebuilding_since"  # collection metadata: when a rebuild from Neo4j began (epoch s); gone once done
FOLLOW_EVERY_S = 1.0  # how often a process looks whether another one replaced or is rebuilding the collection
CATCH_UP_ID = "kgmem:catch-up"  # what the no-op delete of `_follow` deletes: never a vector's id

# What SQLite and Chroma say of a damaged store (SQLite's codes 26 and 11, an HNSW file that does not load).
DAMAGE = ("file is not a database", "database disk image is malformed", "error loading hnsw index")
# The store's files were moved or deleted while open: the next open finds them again (see api.services).
MOVED = ("attempt to write a readonly database",)
BUSY = ("database is locked",)  # another process holds the embedded store's write lock

Observer = Callable[[str, float], None]  # (operation, seconds)
T = TypeVar("T")


def translate(exc: BaseException, store: str = "") -> KgmemError | None:
    """kgmem's error for a Chroma failure, or None when it is a bug to report as it is.
    `store` says where the store is, for the message."""
    from chromadb import errors as chroma_errors

    at = f" at {store}" if store else ""
    if damage := said(exc, DAMAGE):
        return ChromaCorrupt(
            f"Chroma's store{at} is damaged ({damage}); it holds nothing Neo4j does not: "
            "run `kgmem reindex --full` to move it aside and rebuild it")
    if said(exc, MOVED):
        return ChromaUnavailable(f"Chroma's store{at} was moved or removed while kgmem had it open; retry")
    if said(exc, BUSY):
        return ChromaUnavailable(f"Chroma's store{at} is busy with another process's write; retry")
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

    return any(isinstance(current, httpx.TransportError | ConnectionError) for current in chain(exc))


def said(exc: BaseException, phrases: Sequence[str]) -> str | None:
    """The first of `phrases` an error in `exc`'s chain says (Chroma passes SQLite's errors on as text)."""
    for current in chain(exc):
        text = str(current).lower()
        for phrase in phrases:
            if phrase in text:
                return phrase
    return None


def chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then its causes and the exceptions it was raised while handling."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        yield current
        seen.add(id(current))
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)


def describe_store(client: ClientAPI) -> str:
    """Where a client's store is: the embedded directory, or the server's address."""
    try:
        settings = client.get_settings()
    except Exception:  # noqa: BLE001 - only for messages
        return ""
    if settings.is_persistent and settings.persist_directory:
        return str(settings.persist_directory)
    host = settings.chroma_server_host
    return f"http://{host}:{settings.chroma_server_http_port}" if host else ""


def upgrade_hnsw(collection: Collection) -> Collection:
    """A collection an older kgmem created keeps Chroma's default HNSW settings: give it kgmem's."""
    hnsw = (collection.configuration or {}).get("hnsw") or {}
    wanted = {key.removeprefix("hnsw:"): value for key, value in HNSW_SETTINGS.items() if key != "hnsw:space"}
    stale = {key: value for key, value in wanted.items() if key in hnsw and hnsw[key] != value}
    if stale:
        collection.modify(configuration={"hnsw": stale})
    return collection


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
        self.store = describe_store(client)
        self._embedded = self.store != "" and not self.store.startswith("http")
        self._observers: list[Observer] = []
        self._rebuilding: float | None = None  # REBUILDING of the collection when last looked at
        self._followed_at = 0.0
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
            mapped = translate(exc, self.store)
            if mapped is None:
                raise
            raise mapped from exc
        finally:
            for observer in self._observers:
                observer(operation, time.perf_counter() - started)

    def _on_collection(self, operation: str, work: Callable[[Collection], T]) -> T:
        """`work(collection)`, after looking whether another process replaced or is rebuilding it; a
        collection dropped meanwhile (`kgmem reindex --full` in another process) is opened again by name
        and the work runs once more."""
        from chromadb.errors import NotFoundError

        with self._call(operation):
            try:
                self._follow()
                return work(self.collection)
            except NotFoundError:
                self.collection = self._open()
                return work(self.collection)

    def _follow(self) -> None:
        """Once a second, follow what other processes did to the collection. A new collection of the same
        name replaces this process's. While one is rebuilt (and once after), a no-op delete makes Chroma
        catch up: its embedded client keeps each collection's HNSW index in memory and applies other
        processes' writes from the shared log only when this process writes, so without it a server that
        read the index during a rebuild would not see the rest of it until its next write."""
        now = time.monotonic()
        if now - self._followed_at < FOLLOW_EVERY_S:
            return
        self._followed_at = now
        current = self.client.get_collection(self.collection.name)
        if current.id != self.collection.id:
            self.collection = self._open()
        rebuilding = (current.metadata or {}).get(REBUILDING)
        if self._embedded and (rebuilding is not None or self._rebuilding is not None):
            self.collection.delete(ids=[CATCH_UP_ID])
        self._rebuilding = rebuilding

    def _open(self) -> Collection:
        name = collection_name(self.model, self.dimension)
        with self._call("get_or_create_collection"):
            collection = self.client.get_or_create_collection(
                name, metadata={**HNSW_SETTINGS, "embedding_model": self.model, "dimension": self.dimension},
                embedding_function=None,
            )
        recorded = collection.metadata or {}
        self._rebuilding = recorded.get(REBUILDING)
        self._followed_at = time.monotonic()
        if recorded.get("embedding_model") != self.model or int(recorded.get("dimension", -1)) != self.dimension:
            raise ModelMismatch(
                f"Chroma collection {name} holds vectors from {recorded.get('embedding_model')!r} "
                f"({recorded.get('dimension')} dimensions), not {self.model!r} ({self.dimension}); "
                "run `kgmem reindex --full` to rebuild it"
            )
        return upgrade_hnsw(collection)

    # -- rebuilds ----------------------------------------------------------------------------------
    def rebuilding_since(self) -> datetime | None:
        """When a rebuild of the index from Neo4j began, in this process or another, if it has not
        finished: until then recall's vector channels see only part of the items."""
        since = self._on_collection("get_collection", lambda _: self._rebuilding)
        return datetime.fromtimestamp(since, UTC) if since is not None else None

    def mark_rebuilding(self) -> None:
        """Say in the collection's metadata that it is being rebuilt, for every process that reads it."""
        self._mark(time.time())

    def finish_rebuild(self) -> None:
        """Clear the mark of `mark_rebuilding` (whoever set it), if it is there."""
        self._mark(None)

    def _mark(self, since: float | None) -> None:
        def mark(collection: Collection) -> None:
            recorded = self.client.get_collection(collection.name).metadata or {}
            if recorded.get(REBUILDING) == since:
                return
            # Chroma refuses `hnsw:` keys in a change; they live on in the collection's configuration.
            kept = {key: value for key, value in recorded.items() if not key.startswith("hnsw:") and key != REBUILDING}
            collection.modify(metadata={**kept, **({REBUILDING: since} if since is not None else {})})

        self._on_collection("modify", mark)
        self._rebuilding = since

    def probe(self) -> None:
        """One cheap read through the store's database and the collection's vector index: raises what a
        damaged or unreachable store raises (for /readyz)."""
        self.nearest([1.0] + [0.0] * (self.dimension - 1), 1)

    def upsert(self, items: Sequence[VectorItem], vectors: Sequence[Sequence[float]]) -> None:
        # No documents: the texts live in Neo4j, and Chroma's full-text index of them made a
        # one-item write take 57 ms instead of 16 at 18k items.
        if not items:
            return
        self._on_collection("upsert", lambda collection: collection.upsert(
            ids=[item.id for item in items], embeddings=[list(v) for v in vectors],
            metadatas=[item.metadata() for item in items],
        ))

    def restore(self, ids: Sequence[str], vectors: Sequence[Sequence[float]], metadatas: Sequence[dict[str, Any]]) -> None:
        """Vectors as an export recorded them, metadata included (memory/portable.py's import)."""
        if ids:
            self._on_collection("upsert", lambda collection: collection.upsert(
                ids=list(ids), embeddings=[list(v) for v in vectors], metadatas=list(metadatas)))

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self._on_collection("delete", lambda collection: collection.delete(ids=list(ids)))

    def delete_items(self, items: Sequence[str]) -> None:
        """Every vector of these items ("obs:<id>", "ent:<id>"): all their passages and windows."""
        if items:
            self._on_collection("delete", lambda collection: collection.delete(where={"item": {"$in": list(items)}}))

    def best_passages(self, vector: Sequence[float], items: Sequence[str], k: int) -> dict[str, tuple[str, float, int, int]]:
        """For items of several passages: item -> (vector id, cosine, start, end) of its passage nearest to
        `vector`, among the `k` nearest passages of all of them (an item none of those belong to is absent)."""
        if not items:
            return {}
        found = self._on_collection("query", lambda collection: collection.query(
            query_embeddings=[list(vector)], n_results=k,
            where={"$and": [{"item": {"$in": list(items)}}, {"type": {"$ne": "window"}}]},
            include=["distances", "metadatas"]))
        best: dict[str, tuple[str, float, int, int]] = {}
        for vector_id, distance, meta in zip(found["ids"][0], found["distances"][0], found["metadatas"][0]):
            item = (meta or {}).get("item") or item_of(vector_id)[0]
            if item not in best:  # nearest first
                best[item] = (vector_id, 1.0 - distance, int(meta.get("start") or 0), int(meta.get("end") or 0))
        return best

    def delete_space(self, space: str) -> None:
        """Every vector of one tenant."""
        self._on_collection("delete", lambda collection: collection.delete(where={"space": space}))

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
        result = self._on_collection("query", lambda collection: collection.query(
            query_embeddings=[list(vector)], n_results=k, where=where, include=["distances", "metadatas"]))
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
        return self._on_collection("query", lambda collection: collection.query(
            query_embeddings=[list(vector)], n_results=k, include=[])["ids"][0])

    def vectors(self, ids: Sequence[str]) -> dict[str, Any]:
        """Stored vectors by id (numpy arrays); ids without a vector are absent."""
        if not ids:
            return {}
        got = self._on_collection("get", lambda collection: collection.get(ids=list(ids), include=["embeddings"]))
        return dict(zip(got["ids"], got["embeddings"]))

    def ids_in(self, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        return set(self._on_collection("get", lambda collection: collection.get(ids=list(ids), include=[])["ids"]))

    def all_ids(self, space: str | None = None, batch: int = 5000) -> list[str]:
        """Every vector id, or one space's."""
        found: list[str] = []
        offset = 0
        where = {"space": space} if space is not None else None
        while True:
            page = self._on_collection("get", lambda collection: collection.get(
                where=where, include=[], limit=batch, offset=offset)["ids"])
            found += page
            if len(page) < batch:
                return found
            offset += batch

    def metadata_of_space(self, space: str, batch: int = 5000) -> dict[str, dict[str, Any]]:
        """Every vector of one space: id -> metadata (a forget checks them all)."""
        found: dict[str, dict[str, Any]] = {}
        offset = 0
        while True:
            page = self._on_collection("get", lambda collection: collection.get(
                where={"space": space}, include=["metadatas"], limit=batch, offset=offset))
            found.update(zip(page["ids"], page["metadatas"]))
            if len(page["ids"]) < batch:
                return found
            offset += batch

    def count(self, space: str | None = None) -> int:
        """Vectors in the index, or of one space (Chroma cannot count by metadata: that lists its ids)."""
        if space is None:
            return self._on_collection("count", lambda collection: collection.count())
        return len(self._on_collection("get", lambda collection: collection.get(where={"space": space}, include=[])["ids"]))

    def drop(self) -> None:
        """Delete this model's collection and start an empty one, marked as being rebuilt (for `reindex --full`;
        `finish_rebuild` clears the mark)."""
        from chromadb.errors import NotFoundError

        with self._call("delete_collection"):
            try:
                self.client.delete_collection(self.collection.name)
            except NotFoundError:
                pass  # another process dropped it first
        self.collection = self._open()
        self.mark_rebuilding()

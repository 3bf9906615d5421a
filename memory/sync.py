"""Keeping Chroma consistent with Neo4j, which is the truth.

Writes commit to Neo4j first, marking what changed `vector_status = 'pending'`.
Vectors follow: `process_pending` embeds the pending items and upserts (or, for
retracted ones, deletes) their vectors, then marks them `indexed`, but only if
they did not change again meanwhile (`pending_since` is compared, as the string Neo4j
renders, because a datetime that round-trips through the driver gains a zone name and
no longer compares equal). A crash
between the two steps leaves items pending; the reconciler, which runs at
start-up and as `kgmem reindex`, finishes them and repairs vectors that are
missing or that no longer have an item behind them.

Start-up does not scan the index (`reconcile(quick=True)`). The scans that find missing vectors
(every indexed item's ids asked of Chroma) and orphans (every Chroma id looked up in Neo4j) cost
about 29 s of CPU at 100k items, so at start-up they run only when a cheap check says the index is
out of line with Neo4j. The outbox (pending items) is always finished first; then the check asks:

- the same store? Neo4j keeps a mark, `(:VectorStoreMark {identity})`, for each store a whole
  reconcile left complete, the identity being the collection's id (new for every created collection:
  a lost, replaced or rebuilt store, another Chroma server) and, for an embedded store, the inode of
  its database (new for a directory restored from a copy, unless the file system hands the copy the
  number a deleted store's database had). No mark for this identity: scan.
- the same number of vectors? Chroma's count of the collection (O(1)) against what Neo4j says should
  exist: the passages of every live indexed item plus a window per ordered message (one aggregate
  query, `EXPECTED_VECTORS`). Any difference: scan.

So a lost, emptied or replaced store, a deleted vector and an orphan vector are each caught at start-up.
What the count cannot see is a change that leaves it equal: as many vectors missing as there are orphans
(or a store restored from a copy under a reused inode number whose count happens to match). Only
`kgmem reindex` (which always scans) catches those; it is what to run after touching Chroma or Neo4j by
hand or restoring either from a backup.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


from graph.gateway import Gateway
from graph.writes import CONTEXT_WINDOW
from memory.embedder import Embedder, mean_direction
from memory.index import OPEN_END, VectorIndex, VectorItem, item_of, passage_id, timestamp
from memory.vectors import DATABASE

log = logging.getLogger(__name__)

Progress = Callable[[int, int | None], None]  # (done, total or None)
BATCH = 256
VECTOR_WINDOW = 1  # neighbours on each side in a message's window vector; keyword context uses CONTEXT_WINDOW
# A message's neighbours enter its context (keyword index and window vector) by their first this many
# characters: the context is a search aid around the message; each message's whole text is indexed itself.
LINE_CHARS = 2000

_PROJECT_OF = """
CALL (e) {
  OPTIONAL MATCH (e)-[:PART_OF|APPLIES_TO|LEADS_ANALYSIS_FOR]->{1,2}(p:Project)
  WITH min(p.id) AS reached
  RETURN CASE WHEN e:Project THEN e.id ELSE reached END AS project_id
}
"""

PENDING_OBSERVATIONS = f"""
MATCH (o:Observation {{vector_status: 'pending'}})
WHERE $space IS NULL OR o.space = $space
WITH o ORDER BY o.pending_since LIMIT $limit
MATCH (e:Entity)-[:HAS_OBSERVATION]->(o)
{_PROJECT_OF}
CALL (o) {{
  OPTIONAL MATCH (n:Observation {{space: o.space, source: o.source}})
  WHERE o.seq IS NOT NULL AND n.seq >= o.seq - $window AND n.seq <= o.seq + $window AND n.retracted_at IS NULL
  OPTIONAL MATCH (speaker:Entity)-[:HAS_OBSERVATION]->(n)
  WITH n, speaker ORDER BY n.seq
  RETURN collect({{seq: n.seq, line: speaker.name + ': ' + left(n.text, $line_chars)}}) AS neighbours
}}
RETURN o.id AS id, o.space AS space, o.text AS text, o.seq AS seq, o.valid_from AS valid_from, o.valid_to AS valid_to,
       o.retracted_at AS retracted_at, toString(o.pending_since) AS pending_since, o.agent AS agent,
       o.delegation_id AS delegation_id, e.id AS entity_id, e.name AS entity_name, e.kind AS kind, project_id,
       neighbours, coalesce(o.passages, 1) AS passages
"""

PENDING_ENTITIES = f"""
MATCH (e:Entity {{vector_status: 'pending'}})
WHERE $space IS NULL OR e.space = $space
WITH e ORDER BY e.pending_since LIMIT $limit
{_PROJECT_OF}
RETURN e.id AS id, e.space AS space, e.name AS name, e.entity_type AS entity_type, e.aliases AS aliases,
       e.summary AS summary, e.created_at AS valid_from, e.retracted_at AS retracted_at,
       toString(e.pending_since) AS pending_since, e.agent AS agent, e.delegation_id AS delegation_id,
       e.id AS entity_id, e.kind AS kind, project_id, coalesce(e.passages, 1) AS passages
"""

MARK_OBSERVATIONS_INDEXED = """
UNWIND $done AS d
MATCH (o:Observation {id: d.id})
WHERE toString(o.pending_since) = d.since
SET o.vector_status = 'indexed', o.context = d.context, o.passages = d.passages
REMOVE o.pending_since
"""

MARK_ENTITIES_INDEXED = """
UNWIND $done AS d
MATCH (e:Entity {id: d.id})
WHERE toString(e.pending_since) = d.since
SET e.vector_status = 'indexed', e.passages = d.passages
REMOVE e.pending_since
"""

INDEXED_OBSERVATION_IDS = """
MATCH (o:Observation {vector_status: 'indexed'})
WHERE o.retracted_at IS NULL AND o.id > $after AND ($space IS NULL OR o.space = $space)
RETURN o.id AS id, coalesce(o.passages, 1) AS passages, o.seq IS NOT NULL AS windowed ORDER BY o.id LIMIT $limit
"""

INDEXED_ENTITY_IDS = """
MATCH (e:Entity {vector_status: 'indexed'})
WHERE e.retracted_at IS NULL AND e.id > $after AND ($space IS NULL OR e.space = $space)
RETURN e.id AS id, coalesce(e.passages, 1) AS passages, false AS windowed ORDER BY e.id LIMIT $limit
"""

MARK_OBSERVATIONS_PENDING = """
UNWIND $ids AS id
MATCH (o:Observation {id: id})
SET o.vector_status = 'pending', o.pending_since = datetime()
"""

MARK_ENTITIES_PENDING = """
UNWIND $ids AS id
MATCH (e:Entity {id: id})
SET e.vector_status = 'pending', e.pending_since = datetime()
"""

EXISTING_OBSERVATIONS = """
UNWIND $ids AS id MATCH (o:Observation {id: id}) WHERE o.retracted_at IS NULL
RETURN o.id AS id, coalesce(o.passages, 1) AS passages
"""
EXISTING_ENTITIES = """
UNWIND $ids AS id MATCH (e:Entity {id: id}) WHERE e.retracted_at IS NULL
RETURN e.id AS id, coalesce(e.passages, 1) AS passages
"""

COUNT_PENDING = """
CALL () { MATCH (o:Observation {vector_status: 'pending'}) WHERE $space IS NULL OR o.space = $space
          RETURN count(o) AS observations }
CALL () { MATCH (e:Entity {vector_status: 'pending'}) WHERE $space IS NULL OR e.space = $space
          RETURN count(e) AS entities }
RETURN observations + entities AS pending
"""

# The vectors a consistent index holds: a vector per passage of each live indexed item, and a window
# vector per message of an ordered source (what `_repair_missing` asks Chroma for, counted).
EXPECTED_VECTORS = """
CALL () { MATCH (o:Observation {vector_status: 'indexed'}) WHERE o.retracted_at IS NULL
          RETURN sum(coalesce(o.passages, 1) + CASE WHEN o.seq IS NULL THEN 0 ELSE 1 END) AS observations }
CALL () { MATCH (e:Entity {vector_status: 'indexed'}) WHERE e.retracted_at IS NULL
          RETURN sum(coalesce(e.passages, 1)) AS entities }
RETURN observations + entities AS vectors
"""

STORE_MARK_SCHEMA = ("CREATE CONSTRAINT vector_store_mark_identity IF NOT EXISTS "
                     "FOR (m:VectorStoreMark) REQUIRE m.identity IS UNIQUE")

STORE_MARKED = "MATCH (m:VectorStoreMark {identity: $identity}) RETURN m.vectors AS vectors"

MARK_STORE = """
MERGE (m:VectorStoreMark {identity: $identity})
SET m.collection = $collection, m.vectors = $vectors, m.reconciled_at = datetime()
"""


def entity_text(row: dict[str, Any]) -> tuple[str, str]:
    """What recall matches an entity by, as (head, body): its type, name and aliases, and its summary.
    Long summaries are read in passages, each with the head in front."""
    if row["kind"] == "Memory":  # a mem0 memory: its name is an id, only the text means anything
        return "", row.get("summary") or ""
    head = f"{row.get('entity_type') or row['kind']}: {row['name']}"
    if row.get("aliases"):
        head += f" (also: {', '.join(row['aliases'])})"
    return head, row.get("summary") or ""


def window_lines(row: dict[str, Any], window: int) -> list[str]:
    """A message and its neighbours within `window` places, in order; empty outside ordered sources."""
    if row.get("seq") is None:
        return []
    return [n["line"] for n in row.get("neighbours") or []
            if n.get("seq") is not None and n.get("line") and abs(n["seq"] - row["seq"]) <= window]


def context_text(row: dict[str, Any], window: int) -> str | None:
    return " ".join(window_lines(row, window)) or None


@dataclass
class ReconcileReport:
    embedded: int = 0
    deleted: int = 0
    missing_repaired: int = 0
    orphans_removed: int = 0
    skipped: str | None = None  # why nothing was done: another process holds the reconcile lease (memory/lease.py)
    scanned: bool = True  # whether the missing-vector and orphan scans ran (a quick reconcile skips them)
    check: str | None = None  # what decided the scans: a quick reconcile's check, or a full rebuild
    seconds: float = 0.0

    def __str__(self) -> str:
        if self.skipped:
            return f"skipped: {self.skipped}"
        scans = (f"scans ran: {self.missing_repaired} missing repaired, {self.orphans_removed} orphans removed"
                 if self.scanned else "scans skipped")
        check = f" ({self.check})" if self.check else ""
        return (f"{self.embedded} vectors embedded, {self.deleted} deleted; {scans}{check}; "
                f"{self.seconds:.2f} s")


class VectorSync:
    def __init__(self, gateway: Gateway, index: VectorIndex, embedder: Embedder) -> None:
        self.gateway = gateway
        self.index = index
        self.embedder = embedder

    def _rows(self, cypher: str, **params: Any) -> list[dict[str, Any]]:
        return self.gateway.rows(cypher, **params)

    # -- following writes ----------------------------------------------------------------------
    def process_pending(self, *, space: str | None = None, progress: Progress | None = None) -> ReconcileReport:
        """Bring every pending item (of one space, or all) into Chroma."""
        report = ReconcileReport()
        for kind, query, mark in (
            ("observation", PENDING_OBSERVATIONS, MARK_OBSERVATIONS_INDEXED),
            ("entity", PENDING_ENTITIES, MARK_ENTITIES_INDEXED),
        ):
            while rows := self._rows(query, space=space, limit=BATCH, window=CONTEXT_WINDOW, line_chars=LINE_CHARS):
                passages = self._apply(kind, rows, report)
                done = [{"id": row["id"], "since": row["pending_since"], "context": context_text(row, CONTEXT_WINDOW),
                         "passages": passages.get(row["id"], row["passages"])} for row in rows]
                self.gateway.write(mark, done=done)
                if progress:
                    progress(len(rows), None)
                if len(rows) < BATCH:  # that was the last of them; items written since are their writers' to follow
                    break
        return report

    def _apply(self, kind: str, rows: list[dict[str, Any]], report: ReconcileReport) -> dict[str, int]:
        """Upsert the vectors of live items, each in the passages its text takes, and delete those of retracted
        ones (and the passages an item no longer has). Returns the passage count of each live item."""
        prefix = "obs" if kind == "observation" else "ent"
        live = [row for row in rows if row["retracted_at"] is None]
        gone = [passage_id(f"{prefix}:{row['id']}", n) for row in rows if row["retracted_at"] is not None
                for n in range(row["passages"])]
        if kind == "observation":
            gone += [f"win:{row['id']}" for row in rows if row["retracted_at"] is not None]
        items = [item for row in live for item in self._items(kind, prefix, row)]
        counts = {}
        for row in live:
            counts[row["id"]] = sum(1 for item in items if item.item == f"{prefix}:{row['id']}")
            gone += [passage_id(f"{prefix}:{row['id']}", n) for n in range(counts[row["id"]], row["passages"])]
        vectors = self.embedder.embed([item.text for item in items]) if items else []
        if kind == "observation":
            windows = self._windows(live)
            items += [item for item, _ in windows]
            vectors += [vector for _, vector in windows]
        if items:
            self.index.upsert(items, vectors)
        self.index.delete(gone)
        report.embedded += len(items)
        report.deleted += len(gone)
        return counts

    def _windows(self, rows: list[dict[str, Any]]) -> list[tuple[VectorItem, list[float]]]:
        """Messages of an ordered source also get a vector of their window: the mean direction of its
        lines' vectors. The lines are the neighbours' own texts, so they come from the embedder's cache;
        on LoCoMo this scores as well as encoding the joined window (R@10 0.782 vs 0.786) at a quarter of
        the cost, because encoding time grows with text length."""
        ordered = [(row, window_lines(row, VECTOR_WINDOW)) for row in rows]
        ordered = [(row, lines) for row, lines in ordered if lines]
        if not ordered:
            return []
        unique = list(dict.fromkeys(line for _, lines in ordered for line in lines))
        by_line = dict(zip(unique, self.embedder.embed(unique)))
        return [(self._vector_item("window", f"win:{row['id']}", row, context_text(row, VECTOR_WINDOW) or "",
                                   item=f"obs:{row['id']}"),
                 mean_direction([by_line[line] for line in lines]))
                for row, lines in ordered]

    def _items(self, kind: str, prefix: str, row: dict[str, Any]) -> list[VectorItem]:
        """An item's vectors: one per passage of its text, each with what names the item in front."""
        if kind == "observation":
            head, body, join = row["entity_name"], row["text"], ": "
        else:
            (head, body), join = entity_text(row), ". "
        if not body:
            return [self._vector_item(kind, f"{prefix}:{row['id']}", row, head)]
        lead = f"{head}{join}" if head else ""
        return [self._vector_item(kind, passage_id(f"{prefix}:{row['id']}", n), row, lead + passage.text,
                                  start=passage.start, end=passage.end)
                for n, passage in enumerate(self.embedder.splitter().split(body))]

    @staticmethod
    def _vector_item(kind: str, vector_id: str, row: dict[str, Any], text: str, *, item: str = "", start: int = 0,
                     end: int = 0) -> VectorItem:
        return VectorItem(
            id=vector_id, space=row["space"], type=kind, text=text, entity_id=row["entity_id"],
            kind=row["kind"], valid_from=timestamp(row["valid_from"]),
            valid_to=timestamp(row.get("valid_to")) if row.get("valid_to") else OPEN_END,
            agent=row.get("agent") or "", delegation_id=row.get("delegation_id") or "",
            project_id=row.get("project_id") or "", item=item or item_of(vector_id)[0], start=start, end=end,
        )

    # -- repair ------------------------------------------------------------------------------------
    def pending_count(self, space: str | None = None) -> int:
        """Items whose vectors have not followed their last write yet (of one space, or all)."""
        return self._rows(COUNT_PENDING, space=space)[0]["pending"]

    def reconcile(self, *, full: bool = False, quick: bool = False, space: str | None = None,
                  progress: Progress | None = None) -> ReconcileReport:
        """Finish pending items, re-embed missing vectors, drop orphans (of one space, or all); `full`
        rebuilds everything. `quick` (start-up) scans for missing vectors and orphans only when the store or
        the vector count is not what Neo4j expects (the module docstring); the report says which it did."""
        if full and space is not None:
            raise ValueError("a full rebuild drops the whole index: it cannot be limited to one space")
        if quick and (full or space is not None):
            raise ValueError("a quick reconcile checks the whole index: it is neither full nor of one space")
        started = time.perf_counter()
        if full:
            self.index.drop()  # and marks the new collection as being rebuilt, for every process reading it
            for query, mark in ((INDEXED_OBSERVATION_IDS, MARK_OBSERVATIONS_PENDING), (INDEXED_ENTITY_IDS, MARK_ENTITIES_PENDING)):
                for rows in self._id_batches(query):
                    self.gateway.write(mark, ids=[row["id"] for row in rows])
        report = ReconcileReport()
        if full:
            report.scanned, report.check = False, "a full rebuild: every item embedded again"
        if quick:
            processed = self.process_pending(progress=progress)
            report.embedded, report.deleted = processed.embedded, processed.deleted
            report.check = self.out_of_line()
            report.scanned = report.check.startswith("out of line")
        began = full
        if report.scanned:
            report.missing_repaired = self._repair_missing(space)
            # A lost or replaced store is rebuilt from Neo4j, which readers should be told (unless a rebuild is on).
            if report.missing_repaired and self.index.rebuilding_since() is None:
                self.index.mark_rebuilding()
                began = True
            report.orphans_removed = self._remove_orphans(space)
        if not quick or report.scanned:
            processed = self.process_pending(space=space, progress=progress)
            report.embedded += processed.embedded
            report.deleted += processed.deleted
        # Everything pending when it began is in: the rebuild is over (items written since are their writers'
        # to follow). A reconcile of one space ends only a rebuild it began; a whole one ends any, so the next
        # start-up or `kgmem reindex` clears the mark of a rebuild whose process died.
        if began or space is None:
            self.index.finish_rebuild()
        if space is None:  # the whole index is in line with Neo4j: the next start-up need not scan this store
            self._mark_store()
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    # -- the start-up check --------------------------------------------------------------------------
    def store_identity(self) -> str:
        """The collection's id, and for an embedded store the inode of its database (the module docstring)."""
        identity = str(self.index.collection.id)
        if self.index.store and not self.index.store.startswith("http"):
            try:
                identity += f":{os.stat(os.path.join(self.index.store, DATABASE)).st_ino}"
            except FileNotFoundError:
                pass
        return identity

    def expected_vectors(self) -> int:
        """How many vectors the index holds when it is in line with Neo4j (and nothing is pending)."""
        return self._rows(EXPECTED_VECTORS)[0]["vectors"] or 0

    def out_of_line(self) -> str:
        """The quick check: "out of line: <why>", or "in line: <what was compared>"."""
        vectors = self.index.count()  # first: it also follows a collection another process replaced
        if not self._rows(STORE_MARKED, identity=self.store_identity()):
            return f"out of line: no complete reconcile of this store ({self.store_identity()}) is recorded"
        expected = self.expected_vectors()
        if vectors != expected:
            return f"out of line: Chroma holds {vectors} vectors, Neo4j expects {expected}"
        return f"in line: {vectors} vectors, as Neo4j expects, in the store last reconciled"

    def _mark_store(self) -> None:
        self.gateway.write(STORE_MARK_SCHEMA)
        self.gateway.write(MARK_STORE, identity=self.store_identity(), collection=self.index.collection.name,
                           vectors=self.index.count())

    def _id_batches(self, query: str, space: str | None = None) -> list[list[dict[str, Any]]]:
        """The indexed items' rows (id, passages, windowed), 2,000 at a time."""
        batches, after = [], ""
        while rows := self._rows(query, after=after, limit=2000, space=space):
            batches.append(rows)
            after = rows[-1]["id"]
        return batches

    def _repair_missing(self, space: str | None) -> int:
        """Items Neo4j says are indexed of which Chroma lacks a vector (a passage, a window): a lost or
        replaced vector store. They go back to pending, and are embedded whole again."""
        repaired = 0
        for query, mark, prefix in ((INDEXED_OBSERVATION_IDS, MARK_OBSERVATIONS_PENDING, "obs"),
                                    (INDEXED_ENTITY_IDS, MARK_ENTITIES_PENDING, "ent")):
            for rows in self._id_batches(query, space):
                wanted = {row["id"]: [passage_id(f"{prefix}:{row['id']}", n) for n in range(row["passages"])]
                          + ([f"win:{row['id']}"] if row["windowed"] else []) for row in rows}
                present = self.index.ids_in([vector_id for ids in wanted.values() for vector_id in ids])
                missing = [item for item, ids in wanted.items() if not all(i in present for i in ids)]
                if missing:
                    self.gateway.write(mark, ids=missing)
                    repaired += len(missing)
        return repaired

    def _remove_orphans(self, space: str | None) -> int:
        """Vectors whose item was hard-deleted or retracted in Neo4j, or passages past an item's last."""
        by_prefix: dict[str, list[tuple[str, str, int]]] = {"obs": [], "win": [], "ent": []}
        for vector_id in self.index.all_ids(space):
            item, passage = item_of(vector_id)
            prefix, _, item_id = item.partition(":")
            if prefix in by_prefix:
                by_prefix[prefix].append((vector_id, item_id, passage))
        orphans: list[str] = []
        for prefix, query in (("obs", EXISTING_OBSERVATIONS), ("win", EXISTING_OBSERVATIONS), ("ent", EXISTING_ENTITIES)):
            found = by_prefix[prefix]
            for start in range(0, len(found), 2000):
                chunk = found[start : start + 2000]
                alive = {row["id"]: row["passages"] for row in self._rows(query, ids=sorted({i for _, i, _ in chunk}))}
                orphans += [vector_id for vector_id, item_id, passage in chunk
                            if item_id not in alive or passage >= alive[item_id]]
        self.index.delete(orphans)
        return len(orphans)

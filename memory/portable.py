"""Portable export and import of one space: a versioned archive that another kgmem can load.

    report = export_space(memory, "acme", Path("acme-export"), vectors=True)       # a directory
    report = export_space(memory, "acme", Path("acme.tar.gz"), gzip=True)          # or one .tar.gz
    report = import_archive(memory, Path("acme.tar.gz"), "acme-copy")              # into an empty space

The archive (format `kgmem-export`, version 1; docs/export-format.md) is `manifest.json` (format,
format_version, kgmem version, embedding model and dimension, space, created_at, counts per record
kind, SHA-256 per file) and one JSON Lines file per record kind:

- nodes, one file per label in `DATA_LABELS` (graph/export_queries.py): `entities` (every kind:
  delegations with their briefs' state, lessons, ML memory, free-text `Memory` entities, ...),
  `observations`, `revisions`, the Claude memory tool's `memory_stores`, `memory_dirs`,
  `memory_files`, `memory_file_versions`, and `audit_events`. A record is the node's labels and
  all its properties, validity and transaction times, provenance and vector state included;
- `relations`: every relationship between two nodes of the space (type, properties, both ends by id);
- `free_text`: mem0's own records in its Chroma collection (payload, with the vector when exported),
  so mem0 search works after an import;
- `vectors` (only with `vectors=True`): kgmem's Chroma items of the space, passages (`obs:<id>#n`)
  and windows (`win:<id>`) included, with their metadata.

Not exported, because they are operations rather than memory: `IdempotencyRecord` (stored responses,
valid for one client's retries against this deployment), `ApiJob` (this deployment's background work),
`ReconcileLease` (a process's lock), `VectorStoreMark` (what a vector store held at its last reconcile),
`ApiKey` (credentials of this deployment; never leave it) and `SchemaVersion` (the database's, not the
space's). mem0's history database is not exported either:
it is mem0's local log of changes, and the graph's revisions are kgmem's history.

Typed values survive exactly (graph/tagged.py): temporal values are tagged (`{"$datetime": "2026-05-08T10:00:00.123456789+00:00"}`,
`$date`, `$localdatetime`, `$time`, `$localtime`, `$duration`), bytes are `{"$bytes": base64}`; floats
(-0.0 included), integers, booleans, strings and lists are plain JSON.

Ids. An import into the space the archive came from keeps every id. An import into another space
gives every id a new one, `uuid5(ID_NAMESPACE, "<target space>\\n<old id>")`, because ids are unique
across the database (a copy next to its source must not collide) and because the same archive
imported twice into one space must give the same ids (what makes `merge` idempotent). The new ids
replace the old wherever they appear: `id` properties, any string holding a UUID of the archive
(current keys, `shown_ids`, revisions' changes, audit `ids`, mem0 ids, vector ids); an id that is not
a UUID is replaced where it is a whole value or the part before the first ':'.

Import into an empty space reproduces the export: exporting the imported space gives the same
records, up to the space name, the manifest's `created_at`, the ids mapped as above, and the one audit
event the import adds for itself (operation `import_archive`, with its counts). Without
the exported vectors (or with another embedding model) every item with a vector state is marked
pending and embedded again by the vector sync (memory/sync.py), so it comes back `indexed`:
an export taken while items were still pending differs from its re-export in those items' vector
state only. Import into a space that holds data is refused (`Conflict`) unless `merge` is given:
a merge adds the records whose id is not there yet and skips the others, an entity the space already
has by kind and name (and an observation it has by its current key) is taken as the same one, and
every item it added is embedded again; the report counts created and skipped records per kind.

Imports write in batches of `CHUNK_SIZE` through the gateway, one query per batch (each its own
transaction), as nodes with their stored properties: the write path's upserts stamp new times and ids,
which an exact copy must not; the vectors then follow through the vector sync as after any write. A failed
import leaves the batches it wrote: import again with `merge`, which skips them. Exports read in
batches and write JSON Lines one record at a time. An export is not one transaction: stop writers
to the space for a point-in-time copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graph import export_queries as q
from graph.errors import Conflict, InvalidInput
from graph.gateway import Gateway
from graph.store import check_space
from graph.tagged import decode, encode
from graph.vocabulary import RELATION_TYPE_PATTERN
from graph.writes import CHUNK_SIZE
from memory.free_text import collection_name as mem0_collection_name
from memory.free_text import mem0_collection

if TYPE_CHECKING:
    from memory.service import MemoryService

FORMAT = "kgmem-export"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
RELATIONS = "relations"
FREE_TEXT = "free_text"
VECTORS = "vectors"
RECORD_KINDS = (*q.DATA_LABELS, RELATIONS, FREE_TEXT, VECTORS)  # in the order an import writes them
ID_NAMESPACE = uuid.UUID("0b7f3c9e-5d1a-4f43-9a0e-6c2d8e4b1f57")
UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
SCOPE_KEYS = ("user_id", "agent_id", "run_id")  # mem0 scope ids, qualified by the space ("acme/alice")
LABEL_PATTERN = re.compile(r"^[A-Z][A-Za-z0-9]{0,63}$")
CHROMA_PAGE = 1000

Progress = Callable[[str, int, "int | None"], None]  # (phase, done, total or None)


def _no_progress(phase: str, done: int, total: int | None) -> None:
    pass


def file_name(kind: str) -> str:
    return f"{kind}.jsonl"


def kgmem_version() -> str:
    try:
        return version("kgmem")
    except PackageNotFoundError:
        return "unknown"


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), sort_keys=True) + "\n"


# -- ids ------------------------------------------------------------------------------------------
class IdMap:
    """The archive's ids and what they become in the target space (see the module docstring)."""

    def __init__(self, source_space: str, target_space: str) -> None:
        self.source = source_space
        self.target = target_space
        self.keep = source_space == target_space
        self.ids: dict[str, str] = {}
        self.merged: set[str] = set()  # archive ids a merge found in the space already (under another id)

    def add(self, old: str) -> None:
        self.ids[old] = old if self.keep else new_id(old, self.target)

    def use(self, old: str, existing: str) -> None:
        """On a merge: the archive's item is one the space has already, under `existing`."""
        self.ids[old] = existing
        self.merged.add(old)

    def id(self, old: str) -> str:
        return self.ids.get(old, old)

    def text(self, value: str) -> str:
        if value in self.ids:
            return self.ids[value]
        replaced = UUID_TEXT.sub(lambda match: self.ids.get(match.group(0), match.group(0)), value)
        if replaced != value:
            return replaced
        head, colon, rest = value.partition(":")  # "<entity id>:<hash>" keys, "obs:<id>#2" vector ids
        if colon and head in self.ids:
            return f"{self.ids[head]}:{rest}"
        item, hash_, passage = rest.partition("#")
        if colon and item in self.ids:
            return f"{head}:{self.ids[item]}{hash_}{passage}"
        return value

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(item) for item in value]
        return value

    def scope(self, value: Any) -> Any:
        """A mem0 scope id ("acme/alice") of the source space as the target's."""
        prefix = f"{self.source}/"
        if isinstance(value, str) and value.startswith(prefix):
            return f"{self.target}/{value.removeprefix(prefix)}"
        return value


def new_id(old: str, target_space: str) -> str:
    """What an archive's id becomes when it is imported into another space than its own."""
    return str(uuid.uuid5(ID_NAMESPACE, f"{target_space}\n{old}"))


# -- export ---------------------------------------------------------------------------------------
@dataclass
class ExportReport:
    space: str
    path: str
    counts: dict[str, int]
    vectors: bool
    seconds: float = 0.0


def export_space(memory: MemoryService, space: str, out: Path, *, vectors: bool = False, gzip: bool = False,
                 progress: Progress | None = None) -> ExportReport:
    """Write the space to `out`: a new (or empty) directory, or with `gzip` a .tar.gz file."""
    check_space(space)
    started = time.perf_counter()
    progress = progress or _no_progress
    out = Path(out)
    if gzip:
        if out.exists():
            raise InvalidInput(f"{out} already exists: name a new file for the archive")
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".kgmem-export-", dir=out.parent) as staging:
            folder = Path(staging) / "export"
            manifest = _export_to(memory, space, folder, vectors, progress)
            _pack(folder, out)
    else:
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise InvalidInput(f"{out} exists and is not an empty directory: name a new one")
        manifest = _export_to(memory, space, out, vectors, progress)
    return ExportReport(space=space, path=str(out), counts=manifest["counts"], vectors=vectors,
                        seconds=round(time.perf_counter() - started, 2))


def _export_to(memory: MemoryService, space: str, folder: Path, vectors: bool, progress: Progress) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    gateway = memory.gateway
    counts: dict[str, int] = {}
    digests: dict[str, str] = {}

    def write(kind: str, records: Iterator[dict[str, Any]], total: int | None) -> None:
        digest = hashlib.sha256()
        done = 0
        progress(kind, 0, total)
        with open(folder / file_name(kind), "w", encoding="utf-8") as sink:
            for record in records:
                line = _line(record)
                sink.write(line)
                digest.update(line.encode())
                done += 1
                if done % CHUNK_SIZE == 0:
                    progress(kind, done, total)
        progress(kind, done, total)
        counts[kind] = done
        digests[file_name(kind)] = digest.hexdigest()

    for kind, label in q.DATA_LABELS.items():
        total = gateway.rows(q.count_nodes(label), space=space)[0]["count"]
        write(kind, _nodes(memory, space, label), total)
    write(RELATIONS, _relationships(memory, space),
          gateway.rows(q.COUNT_RELATIONSHIPS, space=space)[0]["count"])
    mem0 = _mem0_collection_if_any(memory)
    write(FREE_TEXT, _chroma_records(mem0, space, embeddings=vectors) if mem0 is not None else iter(()), None)
    if vectors:
        write(VECTORS, _chroma_records(memory.index.collection, space, embeddings=True), None)

    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "kgmem_version": kgmem_version(),
        "embedding_model": {"name": memory.embedder.name, "dimension": memory.embedder.dimension},
        "space": space, "created_at": datetime.now(UTC).isoformat(), "vectors": vectors,
        "counts": counts, "sha256": digests,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def _raw_rows(memory: MemoryService, query: str, **params: Any) -> list[dict[str, Any]]:
    """Rows with Neo4j's own values (nanoseconds, zones), which `Gateway.rows` would make Python's."""
    def work(tx) -> list[dict[str, Any]]:
        _, records = tx.records(query, params)
        return [dict(record.items()) for record in records]

    return memory.gateway.read_transaction(work)


def _nodes(memory: MemoryService, space: str, label: str) -> Iterator[dict[str, Any]]:
    after: Any = 0 if label in q.ID_LESS else ""
    while True:
        rows = _raw_rows(memory, q.read_nodes(label), space=space, after=after, limit=CHUNK_SIZE)
        for row in rows:
            yield {"labels": sorted(row["labels"]),
                   "properties": {key: encode(value) for key, value in row["props"].items()}}
        if len(rows) < CHUNK_SIZE:
            return
        after = after + len(rows) if label in q.ID_LESS else rows[-1]["props"]["id"]


def _relationships(memory: MemoryService, space: str) -> Iterator[dict[str, Any]]:
    for label in q.DATA_LABELS.values():
        if label in q.ID_LESS:
            continue
        after = ""
        while True:
            rows = _raw_rows(memory, q.read_relationships(label), space=space, after=after, limit=CHUNK_SIZE)
            for row in rows:
                for rel in row["rels"]:
                    yield {"type": rel["type"], "source": row["id"], "source_label": label,
                           "target": rel["target"], "target_label": _data_label(rel["target_labels"]),
                           "properties": {key: encode(value) for key, value in rel["props"].items()}}
            if len(rows) < CHUNK_SIZE:
                break
            after = rows[-1]["id"]


def _data_label(labels: list[str]) -> str:
    return next(label for label in q.DATA_LABELS.values() if label in labels)


def _mem0_collection_if_any(memory: MemoryService):
    from chromadb.errors import NotFoundError

    try:
        return memory.chroma.get_collection(mem0_collection_name(memory.embedder.name, memory.embedder.dimension))
    except (NotFoundError, ValueError):
        return None


def _chroma_records(collection, space: str, *, embeddings: bool) -> Iterator[dict[str, Any]]:
    include = ["metadatas", "documents", *(["embeddings"] if embeddings else [])]
    offset = 0
    while True:
        page = collection.get(where={"space": space}, include=include, limit=CHROMA_PAGE, offset=offset)
        for n, item_id in enumerate(page["ids"]):
            record = {"id": item_id, "metadata": page["metadatas"][n] or {}}
            if page.get("documents") is not None and page["documents"][n] is not None:
                record["document"] = page["documents"][n]
            if embeddings:
                record["embedding"] = [float(x) for x in page["embeddings"][n]]
            yield record
        if len(page["ids"]) < CHROMA_PAGE:
            return
        offset += CHROMA_PAGE


def _pack(folder: Path, archive: Path) -> None:
    partial = archive.with_name(f".{archive.name}.partial")
    with tarfile.open(partial, "w:gz") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    os.replace(partial, archive)


# -- reading an archive ---------------------------------------------------------------------------
@contextmanager
def opened_archive(path: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """The archive's directory (a .tar.gz unpacked to a temporary one) and its checked manifest."""
    path = Path(path)
    if path.is_dir():
        yield path, check_manifest(path)
        return
    if not path.is_file():
        raise InvalidInput(f"{path} is neither an export directory nor a .tar.gz archive")
    with tempfile.TemporaryDirectory(prefix="kgmem-import-") as staging:
        _unpack(path, Path(staging))
        yield Path(staging), check_manifest(Path(staging))


def _unpack(archive: Path, into: Path) -> None:
    """Only the files an export has, plain files at the top level: nothing else leaves the archive."""
    allowed = {MANIFEST, *(file_name(kind) for kind in RECORD_KINDS)}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                if member.name not in allowed or not member.isfile():
                    raise InvalidInput(f"{archive.name} is not a kgmem export: it holds {member.name!r}, "
                                       f"which an export never has")
                source = tar.extractfile(member)
                with open(into / member.name, "wb") as sink:
                    shutil.copyfileobj(source, sink)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidInput(f"{archive.name} is not a readable .tar.gz archive ({exc})") from exc


def check_manifest(folder: Path) -> dict[str, Any]:
    """The manifest, once the format, its version and every file's checksum are right; InvalidInput if not."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InvalidInput(f"no {MANIFEST} in the archive: it is not a kgmem export") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{MANIFEST} is not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidInput(f"{MANIFEST} says format {manifest.get('format') if isinstance(manifest, dict) else None!r}; "
                           f"kgmem imports only {FORMAT!r} archives")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise InvalidInput(f"the archive is format_version {manifest.get('format_version')!r}; this kgmem "
                           f"({kgmem_version()}) reads format_version {FORMAT_VERSION}: use a kgmem that matches")
    try:
        check_space(str(manifest["space"]))
        digests = dict(manifest["sha256"])
        counts = {kind: int(n) for kind, n in dict(manifest["counts"]).items()}
        model = manifest["embedding_model"]
        str(model["name"]), int(model["dimension"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"{MANIFEST} lacks or garbles a field ({exc}); the archive is damaged") from exc
    for kind in counts:
        if kind not in RECORD_KINDS:
            raise InvalidInput(f"{MANIFEST} counts an unknown record kind {kind!r}")
        if file_name(kind) not in digests:
            raise InvalidInput(f"{MANIFEST} has no sha256 for {file_name(kind)}")
    for name, expected in digests.items():
        if name not in {file_name(kind) for kind in counts}:
            raise InvalidInput(f"{MANIFEST} lists {name!r}, which is no record kind it counts")
        try:
            actual, lines = _sha256_and_lines(folder / name)
        except FileNotFoundError as exc:
            raise InvalidInput(f"{name} is missing from the archive") from exc
        if actual != expected:
            raise InvalidInput(f"checksum mismatch: {name} has sha256 {actual}, the manifest says {expected}; "
                               "the archive is damaged or was changed")
        kind = name.removesuffix(".jsonl")
        if lines != counts[kind]:
            raise InvalidInput(f"{name} holds {lines} records; the manifest counts {counts[kind]}")
    return manifest


def _sha256_and_lines(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    lines = 0
    with open(path, "rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
            lines += block.count(b"\n")
    return digest.hexdigest(), lines


def read_records(folder: Path, kind: str) -> Iterator[dict[str, Any]]:
    path = folder / file_name(kind)
    if not path.exists():
        return
    with open(path, encoding="utf-8") as source:
        for number, line in enumerate(source, 1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"{file_name(kind)} line {number} is not JSON ({exc})") from exc
            if not isinstance(record, dict):
                raise InvalidInput(f"{file_name(kind)} line {number} is not a JSON object")
            yield record


def _batches(records: Iterator[dict[str, Any]], size: int = CHUNK_SIZE) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for record in records:
        batch.append(record)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# -- import ---------------------------------------------------------------------------------------
@dataclass
class ImportReport:
    space: str
    source_space: str
    merge: bool
    vectors: str  # "copied": the archive's vectors were written back; "re-embedded": the sync embedded them
    created: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    embedded: int = 0
    seconds: float = 0.0


def import_archive(memory: MemoryService, path: Path, space: str, *, merge: bool = False,
                   progress: Progress | None = None) -> ImportReport:
    """Load an export (directory or .tar.gz) into `space`: refused (Conflict) when it holds data unless `merge`."""
    check_space(space)
    started = time.perf_counter()
    progress = progress or _no_progress
    with opened_archive(path) as (folder, manifest):
        if not merge and space_has_data(memory, space):
            raise not_empty(space)
        model = manifest["embedding_model"]
        same_model = model["name"] == memory.embedder.name and int(model["dimension"]) == memory.embedder.dimension
        copy_vectors = bool(manifest.get("vectors")) and same_model and not merge
        report = ImportReport(space=space, source_space=manifest["space"], merge=merge,
                              vectors="copied" if copy_vectors else "re-embedded")
        ids = IdMap(manifest["space"], space)
        _collect_ids(folder, manifest, ids)
        created_items: dict[str, list[str]] = {"Entity": [], "Observation": []}
        for kind, label in q.DATA_LABELS.items():
            _import_nodes(memory, folder, manifest, kind, label, ids, merge, report, created_items, progress)
        _import_relationships(memory, folder, manifest, ids, report, progress)
        _import_free_text(memory, folder, manifest, ids, same_model, merge, report, progress)
        if copy_vectors:
            _import_vectors(memory, folder, manifest, ids, report, progress)
        else:
            for label, item_ids in created_items.items():
                for batch in (item_ids[i:i + CHUNK_SIZE] for i in range(0, len(item_ids), CHUNK_SIZE)):
                    memory.gateway.write(q.mark_pending(label), ids=batch)
        # Items the archive had pending (or this import marked so) follow now, as after any write.
        total = memory.sync.pending_count(space)
        done = 0

        def embedded(batch: int, _total: int | None) -> None:
            nonlocal done
            done += batch
            progress("embedding", done, total)

        progress("embedding", 0, total)
        report.embedded = memory.sync.process_pending(space=space, progress=embedded).embedded
    report.seconds = round(time.perf_counter() - started, 2)
    _record_import(memory, report)
    return report


def _record_import(memory: MemoryService, report: ImportReport) -> None:
    """The import's own audit event, through the write path: who imported what, and how much. Its ids stay
    empty (an archive may hold millions); the records' own events came with the archive."""
    detail = {"source_space": report.source_space, "merge": report.merge, "vectors": report.vectors,
              "created": report.created, "skipped": report.skipped}
    memory.graph.space(report.space).write(
        lambda writer: writer.record_as("import_archive", ids=[], detail=detail, event_id=str(uuid.uuid4())))


def not_empty(space: str) -> Conflict:
    return Conflict(f"space {space!r} already holds data: import into an empty space, or pass --merge "
                    "(API: merge=true) to add the records it lacks")


def graph_has_data(gateway: Gateway, space: str) -> bool:
    """Whether the space holds data in Neo4j (what can be asked before the embedding model is loaded)."""
    return gateway.rows(q.SPACE_HAS_DATA, space=space, labels=list(q.DATA_LABELS.values()))[0]["has_data"]


def space_has_data(memory: MemoryService, space: str) -> bool:
    """Whether the space holds data: in Neo4j, or as mem0 records in Chroma."""
    if graph_has_data(memory.gateway, space):
        return True
    mem0 = _mem0_collection_if_any(memory)
    return mem0 is not None and bool(mem0.get(where={"space": space}, include=[], limit=1)["ids"])


def _collect_ids(folder: Path, manifest: dict[str, Any], ids: IdMap) -> None:
    for kind in (*q.DATA_LABELS, RELATIONS):
        if kind not in manifest["counts"]:
            continue
        for record in read_records(folder, kind):
            old = (record.get("properties") or {}).get("id")
            if isinstance(old, str):
                ids.add(old)


def _node_row(record: dict[str, Any], kind: str, label: str, space: str, ids: IdMap) -> dict[str, Any]:
    labels = record.get("labels")
    props = record.get("properties")
    if not isinstance(labels, list) or label not in labels or not isinstance(props, dict):
        raise InvalidInput(f"a record of {file_name(kind)} is not a {label} node: {json.dumps(record)[:200]}")
    for extra in labels:
        if not isinstance(extra, str) or not LABEL_PATTERN.fullmatch(extra):
            raise InvalidInput(f"a record of {file_name(kind)} has the label {extra!r}, which kgmem never writes")
    decoded = {key: ids.value(decode(value)) for key, value in props.items()}
    decoded["space"] = space
    return {"labels": labels, "props": decoded}


def _import_nodes(memory: MemoryService, folder: Path, manifest: dict[str, Any], kind: str, label: str,
                  ids: IdMap, merge: bool, report: ImportReport, created_items: dict[str, list[str]],
                  progress: Progress) -> None:
    total = manifest["counts"].get(kind, 0)
    done = created = 0
    progress(kind, 0, total)
    for batch in _batches(read_records(folder, kind)):
        if merge:
            _map_onto_existing(memory, space=report.space, label=label, batch=batch, ids=ids)
        rows = [_node_row(record, kind, label, report.space, ids) for record in batch
                if (record.get("properties") or {}).get("id") not in ids.merged]
        written = memory.gateway.write(q.create_nodes(label), rows=rows)
        new_ids = written[0]["created"] if written else []
        created += len(new_ids)
        if label in created_items:
            created_items[label] += new_ids
        done += len(batch)
        progress(kind, done, total)
    _check_count(kind, done, total)
    report.created[kind] = created
    report.skipped[kind] = done - created


def _map_onto_existing(memory: MemoryService, *, space: str, label: str, batch: list[dict[str, Any]],
                       ids: IdMap) -> None:
    """On a merge: an archive entity the space has by kind and name, or an observation it has by its current
    key, is the same item; its id maps onto the space's."""
    if label == "Entity":
        wanted = [{"id": props.get("id"), "kind": props.get("kind"), "name_key": props.get("name_key")}
                  for props in (record.get("properties") or {} for record in batch)]
        query = q.EXISTING_ENTITIES
    elif label == "Observation":
        wanted = [{"id": props.get("id"), "current_key": ids.value(props.get("current_key"))}
                  for props in (record.get("properties") or {} for record in batch) if props.get("current_key")]
        query = q.EXISTING_OBSERVATIONS
    else:
        return
    for row in memory.gateway.rows(query, rows=wanted, space=space):
        if row["existing"] != ids.id(row["id"]):
            ids.use(row["id"], row["existing"])


def _import_relationships(memory: MemoryService, folder: Path, manifest: dict[str, Any], ids: IdMap,
                          report: ImportReport, progress: Progress) -> None:
    total = manifest["counts"].get(RELATIONS, 0)
    done = created = 0
    labels = set(q.DATA_LABELS.values()) - set(q.ID_LESS)
    progress(RELATIONS, 0, total)
    for batch in _batches(read_records(folder, RELATIONS)):
        groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for record in batch:
            rel_type, ends = record.get("type"), (record.get("source_label"), record.get("target_label"))
            if not isinstance(rel_type, str) or not RELATION_TYPE_PATTERN.fullmatch(rel_type) or \
                    not set(ends) <= labels or not isinstance(record.get("properties"), dict):
                raise InvalidInput(f"a record of {file_name(RELATIONS)} is not a relationship kgmem writes: "
                                   f"{json.dumps(record)[:200]}")
            props = {key: ids.value(decode(value)) for key, value in record["properties"].items()}
            if "space" in props:
                props["space"] = report.space
            groups[ends].append({"type": rel_type, "source": ids.id(str(record.get("source"))),
                                 "target": ids.id(str(record.get("target"))), "props": props})
        for (start, end), rows in sorted(groups.items()):
            written = memory.gateway.write(q.create_relationships(start, end), rows=rows)
            created += written[0]["created"] if written else 0
        done += len(batch)
        progress(RELATIONS, done, total)
    _check_count(RELATIONS, done, total)
    report.created[RELATIONS] = created
    report.skipped[RELATIONS] = done - created


def _check_count(kind: str, done: int, total: int) -> None:
    if done != total:
        raise InvalidInput(f"{file_name(kind)} holds {done} records; the manifest counts {total}")


def _chroma_item(record: dict[str, Any], kind: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(record.get("id"), str) or not isinstance(record.get("metadata"), dict):
        raise InvalidInput(f"a record of {file_name(kind)} lacks its id or metadata: {json.dumps(record)[:200]}")
    return record["id"], record["metadata"]


def _import_free_text(memory: MemoryService, folder: Path, manifest: dict[str, Any], ids: IdMap, same_model: bool,
                      merge: bool, report: ImportReport, progress: Progress) -> None:
    """mem0's records, in mem0's collection: its payload with the space and scope ids of the target, and the
    exported vector (same model) or one embedded now from the memory's text, as mem0 embeds it."""
    total = manifest["counts"].get(FREE_TEXT, 0)
    done = created = 0
    progress(FREE_TEXT, 0, total)
    collection = None
    for batch in _batches(read_records(folder, FREE_TEXT)):
        collection = collection or mem0_collection(memory.chroma, memory.embedder)
        items = []
        for record in batch:
            item_id, metadata = _chroma_item(record, FREE_TEXT)
            metadata = {key: ids.scope(value) if key in SCOPE_KEYS else ids.value(value)
                        for key, value in metadata.items()}
            metadata["space"] = report.space
            items.append((ids.id(item_id), metadata, record.get("document"), record.get("embedding")))
        if merge:
            present = set(collection.get(ids=[item[0] for item in items], include=[])["ids"])
            items = [item for item in items if item[0] not in present]
        if items:
            if same_model and all(item[3] is not None for item in items):
                vectors = [item[3] for item in items]
            else:
                vectors = memory.embedder.embed_whole([str(item[1].get("data") or item[2] or "") for item in items])
            documents = [item[2] for item in items]
            collection.upsert(ids=[item[0] for item in items], metadatas=[item[1] for item in items],
                              embeddings=[list(v) for v in vectors],
                              **({"documents": documents} if all(d is not None for d in documents) else {}))
        created += len(items)
        done += len(batch)
        progress(FREE_TEXT, done, total)
    _check_count(FREE_TEXT, done, total)
    report.created[FREE_TEXT] = created
    report.skipped[FREE_TEXT] = done - created


def _import_vectors(memory: MemoryService, folder: Path, manifest: dict[str, Any], ids: IdMap,
                    report: ImportReport, progress: Progress) -> None:
    total = manifest["counts"].get(VECTORS, 0)
    done = 0
    progress(VECTORS, 0, total)
    for batch in _batches(read_records(folder, VECTORS)):
        vector_ids, metadatas, embeddings = [], [], []
        for record in batch:
            item_id, metadata = _chroma_item(record, VECTORS)
            if not isinstance(record.get("embedding"), list):
                raise InvalidInput(f"a record of {file_name(VECTORS)} has no embedding: {item_id}")
            vector_ids.append(ids.text(item_id))
            metadatas.append({**{key: ids.value(value) for key, value in metadata.items()}, "space": report.space})
            embeddings.append(record["embedding"])
        memory.index.restore(vector_ids, embeddings, metadatas)
        done += len(batch)
        progress(VECTORS, done, total)
    _check_count(VECTORS, done, total)
    report.created[VECTORS] = done
    report.skipped[VECTORS] = 0

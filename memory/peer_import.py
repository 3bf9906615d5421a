"""Importers for the peers' users: the MCP reference memory server's JSONL file, and a mem0 OSS store.

    report = import_mcp_memory(memory.space("acme").graph, Path("memory.jsonl"))
    records = read_mem0_export(Path("get_all.json"))                  # or read_mem0_store(chroma_dir, ...)
    report = import_mem0(memory.free_text(), "acme", records)

MCP memory (`@modelcontextprotocol/server-memory`): one JSON object a line, `{"type": "entity",
"name", "entityType", "observations"}` or `{"type": "relation", "from", "to", "relationType"}`;
blank lines are skipped and other types ignored, as the server itself does. The records go through
`McpMemory`, the write path of kgmem's own MCP tools, so they look exactly as if an agent had
written them there: same kinds, `entity_type`, observations, upper-cased relation types with the
original kept as `label`. kgmem's names are case- and space-insensitive, so names the server kept
apart but kgmem treats as one are merged (and reported). A relation whose end was never created
(the server allows it) cannot be held by kgmem and is reported, with its line, and skipped.

mem0: either `Memory.get_all()` output (`{"results": [...]}` or a bare list), or the store on disk
(mem0's Chroma directory and, optionally, its history sqlite database, which tells which memories
were deleted). Memories go into kgmem's free-text memory verbatim through
`FreeTextMemory.import_memories`, batched, with owner, metadata, times and the original id.

Both are idempotent (running one twice adds nothing) and never stop at a bad record: each one is
reported with its line (or position) and why, and the rest still arrive.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from graph.errors import InvalidInput, KgmemError, NotFound
from graph.mcp_memory import McpEntity, McpMemory, McpRelation
from graph.model import MAX_TEXT_CHARS, Provenance
from graph.store import SpaceGraph
from graph.vocabulary import normalise_name, relation_type
from memory.free_text import (
    METADATA_KEY,
    RESERVED_METADATA,
    SCOPE_KEYS,
    FreeTextMemory,
    ImportedMemory,
)

Progress = Callable[[int, int], None]  # (done, total)

MCP_BATCH = 200
MEM0_BATCH = 64
MEM0_COLLECTION = "mem0"  # mem0's default Chroma collection name
MEM0_PAGE = 1000
MAX_SCOPE_ID = 200
FIRST_PROBLEMS = 5  # how many problems a refused file's error names


@dataclass(frozen=True)
class Skipped:
    """A record that was not imported: where it was (a line, or a position in a list) and why."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


def _file_text(path: Path) -> str:
    """The file's text; a missing, unreadable or non-UTF-8 file is InvalidInput naming it."""
    if not path.exists():
        raise InvalidInput(f"{path}: no such file")
    if not path.is_file():
        raise InvalidInput(f"{path}: not a file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise InvalidInput(f"{path}: line {line} is not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot be read ({exc.strerror})") from exc


def _problems(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg'].removeprefix('Value error, ')}"
                     for e in error.errors())


def _refuse_if_nothing(path: Path, what: str, kept: int, skipped: list[Skipped]) -> None:
    """A file in which no record could be read is the wrong file, not one with a few bad lines."""
    if kept == 0 and skipped:
        first = "; ".join(str(s) for s in skipped[:FIRST_PROBLEMS])
        raise InvalidInput(f"{path}: no {what} could be read (is this the right file?): {first}")


T = TypeVar("T")


def _batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _bisect(items: Sequence[T], write: Callable[[Sequence[T]], None], refused: Callable[[T, KgmemError], None]) -> None:
    """Write `items` in one call; if kgmem refuses the batch, halve it until each refused item is alone.
    One bad record among many costs a few calls (log n), never one call per record. Only a refusal of the
    input is a record's fault: an outage (Unavailable) or a bug ends the import instead of skipping all."""
    try:
        write(items)
    except (InvalidInput, NotFound) as exc:
        if len(items) == 1:
            refused(items[0], exc)
            return
        middle = len(items) // 2
        _bisect(items[:middle], write, refused)
        _bisect(items[middle:], write, refused)


# -- the MCP reference memory server ---------------------------------------------------------------

@dataclass(frozen=True)
class McpLine:
    line: int
    record: McpEntity | McpRelation


@dataclass
class McpMemoryFile:
    """What a memory.jsonl holds that kgmem can take, and what it cannot (with line numbers)."""

    path: Path
    lines: int
    entities: list[McpLine] = field(default_factory=list)
    relations: list[McpLine] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


@dataclass
class McpImportReport:
    lines: int = 0
    entities_created: int = 0
    entities_present: int = 0  # already in the space (an earlier import, or written there before)
    observations_added: int = 0
    relations_created: int = 0
    relations_present: int = 0
    merged: list[str] = field(default_factory=list)  # names kgmem holds as one with an earlier line's
    skipped: list[Skipped] = field(default_factory=list)


def read_mcp_memory(path: Path) -> McpMemoryFile:
    """Parse the JSONL file line by line; a line that is not a valid record is kept in `skipped`."""
    text = _file_text(path)
    lines = text.split("\n")
    parsed = McpMemoryFile(path=path, lines=len([line for line in lines if line.strip()]))
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            parsed.skipped.append(Skipped(where, f"not JSON ({exc.msg} at column {exc.colno})"))
            continue
        if not isinstance(item, dict):
            parsed.skipped.append(Skipped(where, f"a JSON {type(item).__name__}, not an object"))
            continue
        kind = item.get("type")
        try:
            if kind == "entity":
                parsed.entities.append(McpLine(number, McpEntity.model_validate(item)))
            elif kind == "relation":
                relation = McpRelation.model_validate(item)
                relation_type(relation.relation_type)  # refused types are reported here, with their line
                parsed.relations.append(McpLine(number, relation))
            else:
                parsed.skipped.append(Skipped(where, f"type {kind!r} is neither 'entity' nor 'relation'"))
        except ValidationError as exc:
            parsed.skipped.append(Skipped(where, f"not a valid {kind}: {_problems(exc)}"))
        except InvalidInput as exc:
            parsed.skipped.append(Skipped(where, str(exc)))
    _refuse_if_nothing(path, "entity or relation", len(parsed.entities) + len(parsed.relations), parsed.skipped)
    return parsed


def import_mcp_memory(graph: SpaceGraph, source: Path | McpMemoryFile, *, progress: Progress | None = None,
                      batch_size: int = MCP_BATCH) -> McpImportReport:
    """Import an MCP memory JSONL file into the space through kgmem's MCP write path; safe to repeat."""
    parsed = source if isinstance(source, McpMemoryFile) else read_mcp_memory(source)
    mcp = McpMemory(graph, provenance=Provenance(source="mcp-memory-import"))
    report = McpImportReport(lines=parsed.lines, skipped=list(parsed.skipped))
    total = len(parsed.entities) + len(parsed.relations)
    done = 0

    first_line: dict[str, int] = {}
    for item in parsed.entities:
        key = normalise_name(item.record.name)
        if key in first_line:
            report.merged.append(f"line {item.line}: {item.record.name!r} is the entity of line {first_line[key]} "
                                 "to kgmem (names ignore case and spacing); its observations were added there")
        first_line.setdefault(key, item.line)

    def refused(item: McpLine, exc: KgmemError) -> None:
        report.skipped.append(Skipped(f"line {item.line}", str(exc)))

    def write_entities(batch: Sequence[McpLine]) -> None:
        keys = [normalise_name(item.record.name) for item in batch]
        created = {normalise_name(e.name): e for e in mcp.create_entities([item.record for item in batch])}
        # Entities that were there already, and later lines of a merged name: add what they do not hold yet.
        rest = [item for item, key in zip(batch, keys) if key not in created or first_line[key] != item.line]
        additions = [{"entityName": item.record.name, "contents": item.record.observations}
                     for item in rest if item.record.observations]
        added = mcp.add_observations(additions) if additions else []
        report.entities_created += len(created)
        report.entities_present += sum(1 for item, key in zip(batch, keys)
                                       if key not in created and first_line[key] == item.line)
        report.observations_added += (sum(len(e.observations) for e in created.values())
                                      + sum(len(a.added_observations) for a in added))

    def write_relations(batch: Sequence[McpLine]) -> None:
        created = mcp.create_relations([item.record for item in batch])
        report.relations_created += len(created)
        report.relations_present += len(batch) - len(created)

    for items, write in ((parsed.entities, write_entities), (parsed.relations, write_relations)):
        for batch in _batches(items, batch_size):
            _bisect(batch, write, refused)
            done += len(batch)
            if progress:
                progress(done, total)
    report.skipped.sort(key=lambda s: int(s.where.split()[-1]))
    return report


# -- mem0 ------------------------------------------------------------------------------------------

@dataclass
class Mem0Source:
    """The live memories read from a mem0 export or store, and what could not be taken."""

    description: str
    memories: list[ImportedMemory] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    deleted: int = 0  # memories the history database marks deleted (left out, should mem0 have left a vector)
    dropped_metadata: set[str] = field(default_factory=set)  # metadata keys kgmem cannot keep


@dataclass
class Mem0ImportReport:
    read: int = 0
    imported: int = 0
    present: int = 0  # imported before (same space, same original id)
    deleted: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    dropped_metadata: list[str] = field(default_factory=list)


# What mem0 keeps in a memory's payload besides its metadata (mem0/memory/main.py, `_create_memory`).
MEM0_PAYLOAD_KEYS = frozenset({"data", "hash", "created_at", "updated_at", "text_lemmatized", "user_id", "agent_id",
                               "run_id", "actor_id", "role", "attributed_to", "expiration_date", "memory_type"})


def _scalar(value: Any) -> str | int | float | bool:
    return value if isinstance(value, str | int | float | bool) else json.dumps(value, ensure_ascii=False)


def _memory(where: str, memory_id: Any, text: Any, fields: dict[str, Any], metadata: dict[str, Any],
            source: Mem0Source) -> None:
    """One mem0 memory, checked the way kgmem's free-text memory checks its input; else a Skipped."""
    if not isinstance(memory_id, str) or not memory_id.strip():
        source.skipped.append(Skipped(where, "no memory id"))
        return
    if not isinstance(text, str) or not text.strip():
        source.skipped.append(Skipped(where, f"memory {memory_id}: no text"))
        return
    if len(text) > MAX_TEXT_CHARS:
        source.skipped.append(Skipped(where, f"memory {memory_id}: text longer than {MAX_TEXT_CHARS} characters"))
        return
    scope = {key: value for key in SCOPE_KEYS if isinstance(value := fields.get(key), str) and value.strip()}
    bad = [key for key, value in scope.items() if len(value) > MAX_SCOPE_ID or any(c.isspace() for c in value)]
    if bad:
        source.skipped.append(Skipped(where, f"memory {memory_id}: {', '.join(bad)} has spaces or is over "
                                             f"{MAX_SCOPE_ID} characters"))
        return
    if not scope:
        source.skipped.append(Skipped(where, f"memory {memory_id}: none of user_id, agent_id, run_id is set"))
        return
    kept: dict[str, Any] = {}
    for key, value in (metadata or {}).items():
        if key in RESERVED_METADATA or not METADATA_KEY.fullmatch(str(key)) or value is None:
            source.dropped_metadata.add(str(key))
        else:
            kept[key] = _scalar(value)
    source.memories.append(ImportedMemory(
        original_id=memory_id, text=text, scope=scope, metadata=kept,
        created_at=_text(fields.get("created_at")), updated_at=_text(fields.get("updated_at")),
        actor_id=_text(fields.get("actor_id")), role=_text(fields.get("role"))))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def read_mem0_export(path: Path) -> Mem0Source:
    """`Memory.get_all()` output saved as JSON: `{"results": [...]}` or a bare list of memories."""
    text = _file_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path}: line {exc.lineno} is not JSON ({exc.msg}); expected mem0 get_all output, "
                           '{"results": [...]} or a list') from exc
    items = data.get("results") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise InvalidInput(f'{path}: expected mem0 get_all output, {{"results": [...]}} or a list of memories')
    source = Mem0Source(description=str(path))
    for position, item in enumerate(items):
        where = f"results[{position}]"
        if not isinstance(item, dict):
            source.skipped.append(Skipped(where, f"a JSON {type(item).__name__}, not a memory object"))
            continue
        metadata = item.get("metadata") if isinstance(item.get("metadata"), dict) else {}
        _memory(where, item.get("id"), item.get("memory"), item, metadata, source)
    _refuse_if_nothing(path, "memory", len(source.memories), source.skipped)
    return source


# mem0's history table (mem0/memory/storage.py): the last event of a memory says whether it is deleted.
DELETED_MEMORIES = """
SELECT memory_id FROM history AS h
WHERE (h.event = 'DELETE' OR h.is_deleted = 1)
  AND h.rowid = (SELECT max(rowid) FROM history WHERE memory_id = h.memory_id)
"""


def _deleted_ids(history_db: Path) -> set[str]:
    if not history_db.is_file():
        raise InvalidInput(f"{history_db}: no such file (mem0's history database, history.db)")
    try:
        with sqlite3.connect(f"file:{history_db}?mode=ro", uri=True) as connection:
            return {row[0] for row in connection.execute(DELETED_MEMORIES)}
    except sqlite3.DatabaseError as exc:
        raise InvalidInput(f"{history_db}: not a mem0 history database ({exc})") from exc


def read_mem0_store(chroma_dir: Path, *, collection: str = MEM0_COLLECTION, history_db: Path | None = None,
                    progress: Progress | None = None) -> Mem0Source:
    """The live memories of a mem0 store on disk: its Chroma directory (the `path` of mem0's chroma vector
    store) and collection, less those its history database (if given) marks deleted."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    if not (chroma_dir / "chroma.sqlite3").is_file():
        raise InvalidInput(f"{chroma_dir}: not a Chroma directory (no chroma.sqlite3); give the `path` of mem0's "
                           "chroma vector store, or a get_all JSON file")
    deleted = _deleted_ids(history_db) if history_db else set()
    client = chromadb.PersistentClient(path=str(chroma_dir), settings=ChromaSettings(anonymized_telemetry=False))
    names = [c if isinstance(c, str) else c.name for c in client.list_collections()]
    if collection not in names:
        raise NotFound(f"{chroma_dir}: no collection {collection!r} (found: {', '.join(names) or 'none'}); "
                       "pass --collection with mem0's collection_name")
    store = client.get_collection(collection)
    source = Mem0Source(description=f"{chroma_dir} ({collection})", deleted=len(deleted))
    total = store.count()
    for offset in range(0, total, MEM0_PAGE):
        page = store.get(include=["metadatas"], limit=MEM0_PAGE, offset=offset)
        for memory_id, payload in zip(page["ids"], page["metadatas"]):
            if memory_id in deleted:
                continue
            payload = payload or {}
            metadata = {key: value for key, value in payload.items() if key not in MEM0_PAYLOAD_KEYS}
            _memory(f"memory {memory_id}", memory_id, payload.get("data"), payload, metadata, source)
        if progress:
            progress(min(offset + MEM0_PAGE, total), total)
    return source


def import_mem0(free: FreeTextMemory, space: str, source: Mem0Source, *, progress: Progress | None = None,
                batch_size: int = MEM0_BATCH) -> Mem0ImportReport:
    """Import the memories into the space's free-text memory, a batch per embedding call; safe to repeat."""
    report = Mem0ImportReport(read=len(source.memories), deleted=source.deleted, skipped=list(source.skipped),
                              dropped_metadata=sorted(source.dropped_metadata))

    def write(batch: Sequence[ImportedMemory]) -> None:
        written = free.import_memories(space, list(batch))
        report.imported += len(written)
        report.present += len(batch) - len(written)

    def refused(memory: ImportedMemory, exc: KgmemError) -> None:
        report.skipped.append(Skipped(f"memory {memory.original_id}", str(exc)))

    done = 0
    for batch in _batches(_unique(source.memories), batch_size):
        _bisect(batch, write, refused)
        done += len(batch)
        if progress:
            progress(done, len(source.memories))
    return report


def _unique(memories: Iterable[ImportedMemory]) -> list[ImportedMemory]:
    seen: dict[str, ImportedMemory] = {}
    for memory in memories:
        seen.setdefault(memory.original_id, memory)
    return list(seen.values())

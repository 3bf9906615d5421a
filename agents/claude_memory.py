"""Claude's memory tool (`memory_20250818`) with its `/memories` files kept in the graph.

`GraphMemoryTool` is a `BetaAbstractMemoryTool`: hand it to `client.beta.messages.tool_runner`
(or call `execute`) and Claude's view, create, str_replace, insert, delete and rename commands
act on versioned documents in one space instead of a local directory. The texts Claude reads
back, success and error alike, are the SDK's filesystem reference implementation's
(`BetaLocalFilesystemMemoryTool`), and so are its safety checks: paths must start with
/memories, may not escape it, and the directory itself can be neither deleted nor renamed.

In the graph (not entities: no tenant, recall or MCP read ever sees them):

    (:MemoryStore {space, store})                      one per space and store; writers lock it
    (:MemoryFile {id, space, store, path, current_path, content, size, version,
                  created_at, updated_at, deleted_at})
      -[:HAS_VERSION]->(:MemoryFileVersion {id, space, version, path, content, command, at})
    (:MemoryDir {space, store, path, created_at})      directories, so empty ones exist as on disk

Every change writes a new `MemoryFileVersion` with the whole text, so `history(path)` and
`read(path, version=n)` give every earlier state. Deleting marks the file deleted (its
versions stay); `current_path` is set only on live files, which is what keeps one live file
per path. Writes take the store's lock first, so concurrent commands apply one after another
and none is lost. `store` separates several agents' /memories inside one space.

Beyond the reference: a file may hold at most `max_file_bytes` (default 1 MiB) and a path at
most 1024 characters, each refused with a message that says so.
"""

from __future__ import annotations

import posixpath
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from anthropic.lib.tools import BetaAbstractMemoryTool, ToolError
from anthropic.types.beta import (
    BetaCacheControlEphemeralParam,
    BetaMemoryTool20250818CreateCommand,
    BetaMemoryTool20250818DeleteCommand,
    BetaMemoryTool20250818InsertCommand,
    BetaMemoryTool20250818RenameCommand,
    BetaMemoryTool20250818StrReplaceCommand,
    BetaMemoryTool20250818ViewCommand,
)
from graph.errors import InvalidInput, NotFound
from graph.records import native
from graph.gateway import Gateway
from graph.store import SpaceGraph
from graph.writes import SpaceWriter

ROOT = "/memories"
MAX_LINES = 999_999
LINE_NUMBER_WIDTH = len(str(MAX_LINES))
DIRECTORY_SIZE = 4096  # what a directory reports on the usual Linux filesystems
DEFAULT_MAX_FILE_BYTES = 1024 * 1024
MAX_PATH_LENGTH = 1024
STORE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


# -- schema and queries ----------------------------------------------------------------------------

SCHEMA = [
    "CREATE CONSTRAINT memory_store_identity IF NOT EXISTS FOR (s:MemoryStore) REQUIRE (s.space, s.store) IS UNIQUE",
    "CREATE CONSTRAINT memory_file_id IF NOT EXISTS FOR (f:MemoryFile) REQUIRE f.id IS UNIQUE",
    # Only live files carry current_path: one live file per path, any number of deleted ones.
    "CREATE CONSTRAINT memory_file_current IF NOT EXISTS "
    "FOR (f:MemoryFile) REQUIRE (f.space, f.store, f.current_path) IS UNIQUE",
    "CREATE CONSTRAINT memory_dir_identity IF NOT EXISTS FOR (d:MemoryDir) REQUIRE (d.space, d.store, d.path) IS UNIQUE",
    "CREATE INDEX memory_file_path IF NOT EXISTS FOR (f:MemoryFile) ON (f.space, f.store, f.path)",
]

# Serialises the store's writers: every write transaction starts here and holds the lock to its end.
LOCK_STORE = """
MERGE (s:MemoryStore {space: $space, store: $store})
ON CREATE SET s.created_at = datetime()
SET s.touched_at = datetime()
"""

LIVE_FILE = """
MATCH (f:MemoryFile {space: $space, store: $store, current_path: $path})
RETURN f {.id, .path, .content, .version} AS file
"""

DIR_EXISTS = """
OPTIONAL MATCH (d:MemoryDir {space: $space, store: $store, path: $path})
RETURN d IS NOT NULL AS found
"""

# Files and directories strictly under a directory ($prefix ends with '/').
LIVE_FILES_UNDER = """
MATCH (f:MemoryFile)
WHERE f.space = $space AND f.store = $store AND f.current_path STARTS WITH $prefix
RETURN f.path AS path, f.size AS size
"""

DIRS_UNDER = """
MATCH (d:MemoryDir)
WHERE d.space = $space AND d.store = $store AND d.path STARTS WITH $prefix
RETURN d.path AS path
"""

MAKE_DIRS = """
UNWIND $paths AS path
MERGE (d:MemoryDir {space: $space, store: $store, path: path})
ON CREATE SET d.created_at = $now
"""

CREATE_FILE = """
CREATE (f:MemoryFile {id: $id, space: $space, store: $store, path: $path, current_path: $path,
                      content: $content, size: $size, version: 1, created_at: $now, updated_at: $now})
CREATE (f)-[:HAS_VERSION]->(:MemoryFileVersion {id: $version_id, space: $space, version: 1, path: $path,
                                                content: $content, command: 'create', at: $now})
"""

UPDATE_FILE = """
MATCH (f:MemoryFile {id: $id})
WHERE f.space = $space
SET f.content = $content, f.size = $size, f.version = f.version + 1, f.updated_at = $now
CREATE (f)-[:HAS_VERSION]->(:MemoryFileVersion {id: $version_id, space: $space, version: f.version, path: f.path,
                                                content: $content, command: $command, at: $now})
"""

# Moves or deletes the live files at $path or under it; each gets a version saying so.
MOVE_FILES = """
MATCH (f:MemoryFile)
WHERE f.space = $space AND f.store = $store AND (f.current_path = $old OR f.current_path STARTS WITH $old + '/')
WITH f, $new + substring(f.path, size($old)) AS moved
SET f.path = moved, f.current_path = moved, f.version = f.version + 1, f.updated_at = $now
CREATE (f)-[:HAS_VERSION]->(:MemoryFileVersion {id: randomUUID(), space: $space, version: f.version, path: moved,
                                                content: f.content, command: 'rename', at: $now})
RETURN count(f) AS moved
"""

MOVE_DIRS = """
MATCH (d:MemoryDir)
WHERE d.space = $space AND d.store = $store AND (d.path = $old OR d.path STARTS WITH $old + '/')
SET d.path = $new + substring(d.path, size($old))
RETURN count(d) AS moved
"""

DELETE_FILES = """
MATCH (f:MemoryFile)
WHERE f.space = $space AND f.store = $store AND (f.current_path = $path OR f.current_path STARTS WITH $prefix)
SET f.deleted_at = $now, f.updated_at = $now, f.version = f.version + 1
REMOVE f.current_path
CREATE (f)-[:HAS_VERSION]->(:MemoryFileVersion {id: randomUUID(), space: $space, version: f.version, path: f.path,
                                                content: f.content, command: 'delete', at: $now})
RETURN count(f) AS deleted
"""

DELETE_DIRS = """
MATCH (d:MemoryDir)
WHERE d.space = $space AND d.store = $store AND (d.path = $path OR d.path STARTS WITH $prefix)
DETACH DELETE d
RETURN count(*) AS deleted
"""

FILE_HISTORY = """
MATCH (f:MemoryFile)-[:HAS_VERSION]->(v:MemoryFileVersion)
WHERE f.space = $space AND f.store = $store AND f.id IN $ids
RETURN f.id AS file_id, v {.version, .path, .content, .command, .at} AS version
ORDER BY f.created_at, f.id, v.version
"""

FILES_EVER_AT = """
MATCH (f:MemoryFile)-[:HAS_VERSION]->(v:MemoryFileVersion)
WHERE f.space = $space AND f.store = $store AND v.path = $path
RETURN DISTINCT f.id AS id
"""


@dataclass(frozen=True)
class FileVersion:
    file_id: str
    version: int
    path: str
    content: str
    command: str  # create, str_replace, insert, rename, delete
    at: datetime


# -- path rules (the reference's, on POSIX paths instead of a directory) ----------------------------

def canonical_path(path: str) -> str:
    """The /memories path `path` names, as the reference resolves it; ToolError when it may not be used."""
    if not path.startswith(ROOT):
        raise ToolError(f"Path must start with /memories, got: {path}")
    if "\x00" in path:
        raise ToolError(f"Path {path!r} contains a NUL character")
    relative = path[len(ROOT):].lstrip("/")
    resolved = posixpath.normpath(f"{ROOT}/{relative}") if relative else ROOT
    if resolved.startswith("//"):  # normpath keeps a leading double slash; the reference's resolve does not
        resolved = "/" + resolved.lstrip("/")
    if resolved != ROOT and not resolved.startswith(ROOT + "/"):
        raise ToolError(f"Path {path} would escape /memories directory")
    if len(resolved) > MAX_PATH_LENGTH:
        raise ToolError(f"Path {path} is longer than {MAX_PATH_LENGTH} characters")
    return resolved


def ancestors(path: str) -> list[str]:
    """The directories above `path` inside /memories, outermost first (never /memories itself)."""
    parts = path[len(ROOT) + 1:].split("/")[:-1]
    return [f"{ROOT}/{'/'.join(parts[: i + 1])}" for i in range(len(parts))]


def format_file_size(size: int) -> str:
    if size == 0:
        return "0B"
    units = ["B", "K", "M", "G"]
    i = min((size.bit_length() - 1) // 10, len(units) - 1)
    scaled = size / (1024**i)
    return f"{int(scaled)}{units[i]}" if scaled == int(scaled) else f"{scaled:.1f}{units[i]}"


def split_lines_keeping_cr(content: str) -> list[str]:
    lines = content.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def numbered(lines: list[str], start: int) -> str:
    return "\n".join(f"{str(i + start).rjust(LINE_NUMBER_WIDTH)}\t{line}" for i, line in enumerate(lines))


def _now() -> datetime:
    return datetime.now(UTC)


# -- the tool -------------------------------------------------------------------------------------

class GraphMemoryTool(BetaAbstractMemoryTool):
    """Claude's /memories, as versioned documents of one space (and store) in Neo4j."""

    def __init__(self, graph: SpaceGraph, *, store: str = "default", max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
                 cache_control: BetaCacheControlEphemeralParam | None = None) -> None:
        super().__init__(cache_control=cache_control)
        if not STORE_NAME.fullmatch(store):
            raise InvalidInput(f"memory store name {store!r} must match {STORE_NAME.pattern}")
        if max_file_bytes < 1:
            raise InvalidInput("max_file_bytes must be at least 1")
        self.graph = graph
        self.space = graph.space
        self.store = store
        self.max_file_bytes = max_file_bytes
        ensure_memory_schema(graph.gateway)

    # -- plumbing ----------------------------------------------------------------------------------
    def _read(self, cypher: str, /, **params: Any) -> list[dict[str, Any]]:
        return self.graph.rows(cypher, **params, store=self.store)

    def _write(self, work: Callable[[SpaceWriter, datetime], str]) -> str:
        """Run `work` in one write transaction holding the store's lock."""
        def unit(w: SpaceWriter) -> str:
            w.run(LOCK_STORE, store=self.store)
            w.touch("memory_files", [], count=1)  # every command is one change to the store, for the audit trail
            return work(w, _now())  # read after the lock: versions of a store are stamped in the order they apply

        return self.graph.write(unit)

    def _run(self, w: SpaceWriter, cypher: str, /, **params: Any) -> list[dict[str, Any]]:
        return w.rows(cypher, **params, store=self.store)

    def _live_file(self, run: Callable[..., list[dict[str, Any]]], path: str) -> dict[str, Any] | None:
        rows = run(LIVE_FILE, path=path)
        return rows[0]["file"] if rows else None

    def _is_dir(self, run: Callable[..., list[dict[str, Any]]], path: str) -> bool:
        return path == ROOT or run(DIR_EXISTS, path=path)[0]["found"]

    def _check_size(self, path: str, content: str) -> int:
        size = len(content.encode("utf-8"))
        if size > self.max_file_bytes:
            raise ToolError(f"File {path} would be {size} bytes, over the limit of {self.max_file_bytes} bytes "
                            "for one memory file; keep it shorter or split it into several files")
        return size

    def _edit(self, tx: SpaceWriter, now: datetime, file: dict[str, Any], path: str, content: str,
              command: str) -> None:
        size = self._check_size(path, content)
        self._run(tx, UPDATE_FILE, id=file["id"], content=content, size=size, now=now, command=command,
                  version_id=str(uuid.uuid4()))

    def _file_for_edit(self, tx: SpaceWriter, raw_path: str, path: str) -> dict[str, Any]:
        run = lambda cypher, **p: self._run(tx, cypher, **p)  # noqa: E731
        file = self._live_file(run, path)
        if file is None:
            if self._is_dir(run, path):
                raise ToolError(f"The path {raw_path} is not a file.")
            raise ToolError(f"The path {raw_path} does not exist. Please provide a valid path.")
        return file

    # -- commands ------------------------------------------------------------------------------------
    def view(self, command: BetaMemoryTool20250818ViewCommand) -> str:
        path = canonical_path(command.path)
        file = self._live_file(self._read, path)
        if file is not None:
            return self._view_file(command, file["content"])
        if self._is_dir(self._read, path):
            return self._view_dir(command.path, path)
        raise ToolError(f"The path {command.path} does not exist. Please provide a valid path.")

    def _view_file(self, command: BetaMemoryTool20250818ViewCommand, content: str) -> str:
        lines = content.split("\n")
        if len(lines) > MAX_LINES:
            raise ToolError(f"File {command.path} exceeds maximum line limit of 999,999 lines.")
        start = 1
        if command.view_range and len(command.view_range) == 2:
            first = max(1, command.view_range[0]) - 1
            last = len(lines) if command.view_range[1] == -1 else command.view_range[1]
            lines, start = lines[first:last], first + 1
        return f"Here's the content of {command.path} with line numbers:\n" + numbered(lines, start)

    def _view_dir(self, shown_as: str, path: str) -> str:
        """Two levels deep, hidden names left out (and not entered), each directory followed by its contents."""
        prefix = path.rstrip("/") + "/"
        entries: dict[str, tuple[bool, int]] = {}  # relative path -> (is_dir, size)
        for row in self._read(DIRS_UNDER, prefix=prefix):
            entries[row["path"][len(prefix):]] = (True, DIRECTORY_SIZE)
        for row in self._read(LIVE_FILES_UNDER, prefix=prefix):
            entries[row["path"][len(prefix):]] = (False, row["size"])

        children: dict[str, list[str]] = {}
        for relative in entries:
            parts = relative.split("/")
            if len(parts) <= 2 and not any(part.startswith(".") for part in parts):
                children.setdefault("/".join(parts[:-1]), []).append(relative)

        lines = [f"{format_file_size(DIRECTORY_SIZE)}\t{shown_as}"]

        def walk(parent: str) -> None:
            for relative in sorted(children.get(parent, []), key=lambda r: r.rsplit("/", 1)[-1]):
                is_dir, size = entries[relative]
                lines.append(f"{format_file_size(size)}\t{shown_as}/{relative}{'/' if is_dir else ''}")
                if is_dir and "/" not in relative:
                    walk(relative)

        walk("")
        header = f"Here're the files and directories up to 2 levels deep in {shown_as}, excluding hidden items:"
        return f"{header}\n" + "\n".join(lines)

    def create(self, command: BetaMemoryTool20250818CreateCommand) -> str:
        path = canonical_path(command.path)
        size = self._check_size(command.path, command.file_text)

        def work(tx: SpaceWriter, now: datetime) -> str:
            run = lambda cypher, **p: self._run(tx, cypher, **p)  # noqa: E731
            self._make_parents(tx, now, path)
            if self._live_file(run, path) is not None or self._is_dir(run, path):
                raise ToolError(f"File {command.path} already exists")
            run(CREATE_FILE, id=str(uuid.uuid4()), version_id=str(uuid.uuid4()), path=path,
                content=command.file_text, size=size, now=now)
            return f"File created successfully at: {command.path}"

        return self._write(work)

    def _make_parents(self, tx: SpaceWriter, now: datetime, path: str) -> None:
        """Create the directories above `path`, as mkdir -p would; a file in the way is an error."""
        run = lambda cypher, **p: self._run(tx, cypher, **p)  # noqa: E731
        parents = ancestors(path)
        for parent in parents:
            if self._live_file(run, parent) is not None:
                raise ToolError(f"The path {parent} is a file, not a directory")
        if parents:
            run(MAKE_DIRS, paths=parents, now=now)

    def str_replace(self, command: BetaMemoryTool20250818StrReplaceCommand) -> str:
        path = canonical_path(command.path)

        def work(tx: SpaceWriter, now: datetime) -> str:
            file = self._file_for_edit(tx, command.path, path)
            content: str = file["content"]
            count = content.count(command.old_str)
            if count == 0:
                raise ToolError(f"No replacement was performed, old_str `{command.old_str}` did not appear "
                                f"verbatim in {command.path}.")
            if count > 1:
                matching, start = [], 0
                while (position := content.find(command.old_str, start)) != -1:
                    matching.append(content[:position].count("\n") + 1)
                    start = position + 1
                raise ToolError(f"No replacement was performed. Multiple occurrences of old_str `{command.old_str}` "
                                f"in lines: {', '.join(map(str, matching))}. Please ensure it is unique")
            changed = content[:content.find(command.old_str)].count("\n")
            new_content = content.replace(command.old_str, command.new_str)
            self._edit(tx, now, file, command.path, new_content, "str_replace")
            new_lines = new_content.split("\n")
            first, last = max(0, changed - 2), min(len(new_lines), changed + 3)
            return ("The memory file has been edited. Here is the snippet showing the change (with line numbers):\n"
                    + numbered(new_lines[first:last], first + 1))

        return self._write(work)

    def insert(self, command: BetaMemoryTool20250818InsertCommand) -> str:
        path = canonical_path(command.path)

        def work(tx: SpaceWriter, now: datetime) -> str:
            file = self._file_for_edit(tx, command.path, path)
            lines = split_lines_keeping_cr(file["content"])
            if command.insert_line < 0 or command.insert_line > len(lines):
                raise ToolError(f"Invalid `insert_line` parameter: {command.insert_line}. "
                                f"It should be within the range [0, {len(lines)}].")
            lines.insert(command.insert_line, command.insert_text.rstrip("\n"))
            new_content = "\n".join(lines)
            if not new_content.endswith("\n"):
                new_content += "\n"
            self._edit(tx, now, file, command.path, new_content, "insert")
            return f"The file {command.path} has been edited."

        return self._write(work)

    def delete(self, command: BetaMemoryTool20250818DeleteCommand) -> str:
        path = canonical_path(command.path)
        if path == ROOT:
            raise ToolError("Cannot delete the /memories directory itself")

        def work(tx: SpaceWriter, now: datetime) -> str:
            files = self._run(tx, DELETE_FILES, path=path, prefix=path + "/", now=now)[0]["deleted"]
            dirs = self._run(tx, DELETE_DIRS, path=path, prefix=path + "/")[0]["deleted"]
            if not files and not dirs:
                raise ToolError(f"The path {command.path} does not exist")
            return f"Successfully deleted {command.path}"

        return self._write(work)

    def rename(self, command: BetaMemoryTool20250818RenameCommand) -> str:
        old, new = canonical_path(command.old_path), canonical_path(command.new_path)
        if old == ROOT:
            raise ToolError("Cannot rename the /memories directory itself")

        def work(tx: SpaceWriter, now: datetime) -> str:
            run = lambda cypher, **p: self._run(tx, cypher, **p)  # noqa: E731
            if self._live_file(run, new) is not None or self._is_dir(run, new):
                raise ToolError(f"The destination {command.new_path} already exists")
            old_is_dir = self._is_dir(run, old)
            if old_is_dir and new.startswith(old + "/"):
                raise ToolError(f"Cannot move {command.old_path} into itself ({command.new_path})")
            # As the reference does, the destination's directories are made before the source is checked.
            self._make_parents(tx, now, new)
            moved = run(MOVE_FILES, old=old, new=new, now=now)[0]["moved"]
            moved += run(MOVE_DIRS, old=old, new=new)[0]["moved"]
            if not moved:
                raise _NothingMoved(f"The path {command.old_path} does not exist")
            return f"Successfully renamed {command.old_path} to {command.new_path}"

        try:
            return self._write(work)
        except _NothingMoved as missing:
            # The reference leaves the destination's new parent directories behind; so do we.
            self._write(lambda tx, now: self._make_parents(tx, now, new) or "")
            raise ToolError(str(missing)) from None

    def clear_all_memory(self) -> str:
        def work(tx: SpaceWriter, now: datetime) -> str:
            self._run(tx, DELETE_FILES, path=ROOT, prefix=ROOT + "/", now=now)
            self._run(tx, DELETE_DIRS, path=ROOT, prefix=ROOT + "/")
            return "All memory cleared"

        return self._write(work)

    # -- versions -------------------------------------------------------------------------------------
    def read(self, path: str, *, version: int | None = None) -> str:
        """The live file's text, or the text it had at `version`. NotFound when there is none."""
        canonical = canonical_path(path)
        file = self._live_file(self._read, canonical)
        if file is None:
            raise NotFound(f"no memory file {path} in this space")
        if version is None:
            return file["content"]
        for item in self._history_of([file["id"]]):
            if item.version == version:
                return item.content
        raise NotFound(f"memory file {path} has no version {version}; it is at version {file['version']}")

    def history(self, path: str) -> list[FileVersion]:
        """Every version of every file that was ever at `path` (deleted and renamed ones too), oldest first."""
        canonical = canonical_path(path)
        ids = [row["id"] for row in self._read(FILES_EVER_AT, path=canonical)]
        return self._history_of(ids)

    def _history_of(self, ids: list[str]) -> list[FileVersion]:
        if not ids:
            return []
        return [FileVersion(file_id=row["file_id"], **native(row["version"]))
                for row in self._read(FILE_HISTORY, ids=ids)]


class _NothingMoved(ToolError):
    """Rename found no source: rolled back, then reported after the destination's parents are made."""


_schema_ready: set[tuple[int, str]] = set()


def ensure_memory_schema(gateway: Gateway) -> None:
    """Create the memory tool's constraints and index once per gateway."""
    key = (id(gateway), gateway.database)
    if key in _schema_ready:
        return
    for statement in SCHEMA:
        gateway.write(statement)
    _schema_ready.add(key)

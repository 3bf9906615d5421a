"""`kgmem import mcp-memory` and `kgmem import mem0`: bring memory over from the MCP reference server and mem0.

The commands register on `kgmem import` (api/cli/import_commands.py); the import logic is memory/peer_import.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from api.cli.context import cli_services
from api.cli.import_commands import app
from graph.errors import InvalidInput
from graph.store import check_space
from memory.peer_import import (
    MEM0_COLLECTION,
    Skipped,
    import_mcp_memory,
    import_mem0,
    read_mcp_memory,
    read_mem0_export,
    read_mem0_store,
)

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

SpaceOption = Annotated[str, typer.Option(help="The tenant to import into.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")]


@contextmanager
def _bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar in the style of the other imports; yields the (done, total) callback that moves it."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as bars:
        task = bars.add_task(description, total=None)
        yield lambda done, total: bars.update(task, completed=done, total=total)


def _summary(title: str, rows: list[tuple[str, int]], skipped: list[Skipped], notes: list[str]) -> None:
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    for label, count in [*rows, ("skipped", len(skipped))]:
        table.add_row(label, str(count))
    out.print(table)
    for note in notes:
        err.print(f"note: {escape(note)}", highlight=False)
    for item in skipped:
        err.print(f"skipped {escape(str(item))}", highlight=False)


@app.command("mcp-memory")
def mcp_memory(
    file: Annotated[Path, typer.Argument(
        help="The MCP memory server's JSONL file (its MEMORY_FILE_PATH; by default memory.jsonl beside the "
             "server's dist/index.js).", show_default=False)],
    space: SpaceOption = "default",
    as_json: JsonOption = False,
) -> None:
    """Import the knowledge graph of the MCP reference memory server (`@modelcontextprotocol/server-memory`):
    entities, their observations and relations, written as kgmem's own MCP tools write them. Safe to repeat:
    what is already there is not written again. Bad lines are reported with their number and skipped."""
    started = time.perf_counter()
    check_space(space)
    parsed = read_mcp_memory(file)
    with cli_services() as services:
        with err.status("Loading the embedding model…"):
            memory = services.memory()
        with _bar(f"Importing {file.name}") as progress:
            report = import_mcp_memory(memory.space(space).graph, parsed, progress=progress)
    seconds = time.perf_counter() - started
    if as_json:
        typer.echo(json.dumps({**asdict(report), "skipped": [str(s) for s in report.skipped],
                               "file": str(file), "space": space, "seconds": round(seconds, 2)}, ensure_ascii=False))
        return
    _summary(f"Imported {file} into space {space} in {seconds:.1f} s", [
        ("lines", report.lines), ("entities created", report.entities_created),
        ("entities already there", report.entities_present), ("observations added", report.observations_added),
        ("relations created", report.relations_created), ("relations already there", report.relations_present),
        ("names merged", len(report.merged)),
    ], report.skipped, report.merged)


@app.command("mem0")
def mem0(
    source: Annotated[Path, typer.Argument(
        help="mem0 get_all output saved as JSON ({\"results\": [...]} or a list), or the directory of a mem0 "
             "store's Chroma vector store (its `path`).", show_default=False)],
    space: SpaceOption = "default",
    history: Annotated[Path | None, typer.Option(
        help="The store's history database (mem0's history_db_path, by default ~/.mem0/history.db): memories "
             "it marks deleted are left out. Only with a Chroma directory.")] = None,
    collection: Annotated[str, typer.Option(
        help="The Chroma collection mem0 used (its collection_name).")] = MEM0_COLLECTION,
    as_json: JsonOption = False,
) -> None:
    """Import a mem0 OSS store's memories into kgmem's free-text memory, verbatim (no LLM): text, user_id,
    agent_id, run_id, metadata, created_at/updated_at and the original mem0 id (as `imported_id`). Safe to
    repeat: memories imported before are not written again."""
    started = time.perf_counter()
    check_space(space)
    if source.is_dir():
        with _bar(f"Reading {source.name}") as progress:
            memories = read_mem0_store(source, collection=collection, history_db=history, progress=progress)
    elif history is not None:
        raise InvalidInput("--history goes with a mem0 store's Chroma directory; a get_all file has no deleted "
                           "memories to leave out")
    else:
        memories = read_mem0_export(source)
    with cli_services() as services:
        with err.status("Loading the embedding model…"):
            memory = services.memory()
            free = memory.free_text()
        with _bar(f"Importing {len(memories.memories)} memories") as progress:
            report = import_mem0(free, space, memories, progress=progress)
    seconds = time.perf_counter() - started
    if as_json:
        typer.echo(json.dumps({**asdict(report), "skipped": [str(s) for s in report.skipped],
                               "source": memories.description, "space": space, "seconds": round(seconds, 2)},
                              ensure_ascii=False))
        return
    notes = [f"metadata keys kgmem reserves or cannot store were left out: {', '.join(report.dropped_metadata)}"
             ] if report.dropped_metadata else []
    _summary(f"Imported {memories.description} into space {space} in {seconds:.1f} s", [
        ("memories read", report.read), ("imported", report.imported), ("already there", report.present),
        ("deleted in mem0 (left out)", report.deleted),
    ], report.skipped, notes)

"""`kgmem reindex`: bring Chroma back in line with Neo4j, which is the truth."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.cli.context import cli_services
from graph import Settings, get_settings
from graph.errors import ChromaCorrupt
from memory.index import DAMAGE, said
from memory.vectors import close_chroma, open_chroma, set_aside

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(reindex)


def reindex(
    full: Annotated[bool, typer.Option(
        "--full", help="Drop this model's Chroma collection and embed everything again from Neo4j. Use it after "
                       "changing the embedding model, or when the Chroma data was lost, restored from an old "
                       "backup or cannot be trusted. A damaged embedded store is moved aside (kept, dated) and "
                       "a new one built.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
) -> None:
    """Reconcile the vector index (Chroma) with the graph (Neo4j, the truth).

    Without --full it is cheap and safe to run at any time: it embeds the items left pending by a crash between the Neo4j commit and the Chroma write, re-embeds items whose vector is missing, and removes vectors whose item is gone from Neo4j.

    With --full it rebuilds the whole index: use it after changing the embedding model (kgmem refuses to open the old collection with a model mismatch) or when the Chroma data was lost or cannot be trusted. A damaged embedded store is moved aside first (kept beside it, dated). A `kgmem serve` running on the same store goes on serving: it opens the rebuilt index by itself, and its /readyz says `degraded` until the rebuild is done."""
    started = time.perf_counter()
    settings = get_settings()
    moved = set_aside_if_damaged(settings) if full else None
    with cli_services(settings) as services:
        with err.status("Loading the embedding model…"):
            memory = services.memory()
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed} items"),
                      TimeElapsedColumn(), console=err, transient=True) as bars:
            task = bars.add_task("Rebuilding the vector index" if full else "Reconciling the vector index", total=None)

            def progress(done: int, total: int | None) -> None:
                # VectorSync reports each batch it finished: `done` is the batch's size.
                bars.update(task, advance=done, total=total)

            report = memory.reconcile(full=full, progress=progress)
        pending = memory.sync.pending_count()
    seconds = time.perf_counter() - started
    numbers = {"embedded": report.embedded, "deleted": report.deleted, "missing_repaired": report.missing_repaired,
               "orphans_removed": report.orphans_removed, "pending_after": pending}
    if as_json:
        typer.echo(json.dumps({"full": full, **numbers, "seconds": round(seconds, 2),
                               "damaged_store_moved_to": str(moved) if moved else None, "skipped": report.skipped}))
        return
    if report.skipped:  # another process is reconciling this store right now: the same work
        err.print(escape(f"skipped: {report.skipped}"), highlight=False)
    table = Table(title=f"{'Full reindex' if full else 'Reconcile'} of the vector index in {seconds:.1f} s",
                  title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    for label, key in (("embedded", "embedded"), ("deleted (retracted items)", "deleted"),
                       ("missing repaired", "missing_repaired"), ("orphans removed", "orphans_removed"),
                       ("pending after", "pending_after")):
        table.add_row(label, str(numbers[key]))
    out.print(table)


def set_aside_if_damaged(settings: Settings) -> Path | None:
    """Move a damaged embedded store out of the way, so that the rebuild starts from an empty one; where it went."""
    if settings.chroma_host or not settings.chroma_dir.exists():
        return None
    try:
        close_chroma(open_chroma(settings))  # opening reads the database
    except ChromaCorrupt as exc:
        moved = set_aside(settings)
        err.print(escape(f"Chroma's store at {settings.chroma_dir} is damaged ({said(exc, DAMAGE)}): moved it aside "
                         f"to {moved} (delete it once you no longer need it); building a new one from Neo4j."),
                  highlight=False)
        return moved
    return None

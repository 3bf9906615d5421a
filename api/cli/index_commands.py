"""`kgmem reindex`: bring Chroma back in line with Neo4j, which is the truth."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.cli.context import cli_services

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(reindex)


def reindex(
    full: Annotated[bool, typer.Option(
        "--full", help="Drop this model's Chroma collection and embed everything again from Neo4j. Use it after "
                       "changing the embedding model, or when the Chroma data was lost, restored from an old "
                       "backup or cannot be trusted.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
) -> None:
    """Reconcile the vector index (Chroma) with the graph (Neo4j, the truth).

    Without --full it is cheap and safe to run at any time: it embeds the items left pending by a crash between the Neo4j commit and the Chroma write, re-embeds items whose vector is missing, and removes vectors whose item is gone from Neo4j.

    With --full it rebuilds the whole index: use it after changing the embedding model (kgmem refuses to open the old collection with a model mismatch) or when the Chroma data was lost or cannot be trusted."""
    started = time.perf_counter()
    with cli_services() as services:
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
        typer.echo(json.dumps({"full": full, **numbers, "seconds": round(seconds, 2)}))
        return
    table = Table(title=f"{'Full reindex' if full else 'Reconcile'} of the vector index in {seconds:.1f} s",
                  title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    for label, key in (("embedded", "embedded"), ("deleted (retracted items)", "deleted"),
                       ("missing repaired", "missing_repaired"), ("orphans removed", "orphans_removed"),
                       ("pending after", "pending_after")):
        table.add_row(label, str(numbers[key]))
    out.print(table)

"""`kgmem export`: write a space to a portable archive (memory/portable.py); `kgmem import PATH` loads one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from api.cli.context import cli_services
from graph.store import check_space
from memory.portable import Progress as PhaseProgress
from memory.portable import export_space

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("export")(export)


def export(
    space: Annotated[str, typer.Option(help="The tenant to export.")],
    out_path: Annotated[Path, typer.Option(
        "--out", help="Where to write: a new (or empty) directory, or with --gzip a new .tar.gz file.")],
    vectors: Annotated[bool, typer.Option(
        "--vectors/--no-vectors", help="Include the Chroma vectors: an import with the same embedding model then "
                                       "writes them back instead of embedding everything again.")] = False,
    gzip: Annotated[bool, typer.Option("--gzip", help="Write one .tar.gz file instead of a directory.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
) -> None:
    """Export a space to a portable, versioned archive: a manifest (format version, kgmem version, embedding
    model, counts, checksums) and one JSON Lines file per record kind. It holds everything in the space:
    entities of every kind, observations, relations, revisions, the memory tool's files, free-text memories
    and audit events, with their times and provenance. `kgmem import PATH` loads it into any kgmem.

    The export reads the space in batches, not in one transaction: stop writers to it for a point-in-time copy."""
    check_space(space)
    with cli_services() as services:
        with err.status("Loading the embedding model…"):
            memory = services.memory()
        with phase_bars("Exporting") as progress:
            report = export_space(memory, space, out_path, vectors=vectors, gzip=gzip, progress=progress)
    if as_json:
        typer.echo(json.dumps(asdict(report)))
        return
    table = Table(title=f"Exported space {space} to {report.path} in {report.seconds:.1f} s"
                        f"{' with vectors' if vectors else ''}", title_justify="left", show_header=False)
    table.add_column("record kind")
    table.add_column("records", justify="right")
    for kind, count in report.counts.items():
        table.add_row(kind, str(count))
    out.print(table)


@contextmanager
def phase_bars(verb: str) -> Iterator[PhaseProgress]:
    """One progress bar per phase (record kind), as memory/portable.py reports them."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as bars:
        tasks: dict[str, int] = {}

        def progress(phase: str, done: int, total: int | None) -> None:
            if phase not in tasks:
                tasks[phase] = bars.add_task(f"{verb} {phase.replace('_', ' ')}", total=total)
            bars.update(tasks[phase], completed=done, total=total)

        yield progress

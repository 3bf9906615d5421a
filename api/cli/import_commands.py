"""`kgmem import PATH`: load a kgmem export (memory/portable.py); `kgmem import mlflow`: bring records from
other systems into the graph.

`import` is a group whose first argument is either a subcommand's name (`mlflow`, and those other modules
register on `app`) or the path of an archive, which runs `archive` (`ArchiveOrCommand`)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import click
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
from typer.core import TyperGroup

from agents.mlflow_import import import_mlflow, open_mlflow
from api.cli.context import cli_services
from api.cli.export_commands import phase_bars
from graph.store import check_space
from memory.portable import graph_has_data, import_archive, not_empty, opened_archive

ARCHIVE_COMMAND = "archive"


class ArchiveOrCommand(TyperGroup):
    """`kgmem import PATH …` is `kgmem import archive PATH …`: a first argument that names no subcommand
    (and is no option) is the archive's path."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return ARCHIVE_COMMAND, self.commands[ARCHIVE_COMMAND], args
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=ArchiveOrCommand, no_args_is_help=True,
    help="Load a kgmem export: `kgmem import PATH --space S [--merge]` (PATH: an export directory or .tar.gz). "
         "Or bring records from other systems into the graph with the commands below.")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@app.command("mlflow")
def mlflow(
    tracking_uri: Annotated[str, typer.Option(
        "--tracking-uri", help="The MLflow tracking URI: a server (http://…), a database (sqlite:///…) or a "
                               "file store (file:///…/mlruns or a path).")],
    space: Annotated[str, typer.Option(help="The tenant to import into.")] = "default",
    experiment: Annotated[str | None, typer.Option(
        help="Only this MLflow experiment, and the registered model versions trained in it.")] = None,
    project: Annotated[str | None, typer.Option(
        help="The kgmem project to put the runs in; default: one project per MLflow experiment, named after it.")] = None,
    registry_uri: Annotated[str | None, typer.Option(
        "--registry-uri", help="The model registry URI, when it is not the tracking URI.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
) -> None:
    r"""Import MLflow experiments, runs (params, metrics, datasets, code) and registered models (versions,
    stages, aliases) into the graph. Safe to repeat: what has not changed is not written again, and a
    stage changed in MLflow supersedes the old one with its history kept. Needs `pip install 'kgmem\[mlflow]'`."""
    started = time.perf_counter()
    check_space(space)
    with err.status("Opening the MLflow store…"):
        source = open_mlflow(tracking_uri, registry_uri=registry_uri, experiment=experiment)
    with cli_services() as services:
        with err.status("Loading the embedding model…"):
            memory = services.memory()
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=True) as bars:
            tasks: dict[str, int] = {}

            def progress(phase: str, done: int, total: int) -> None:
                if phase not in tasks:
                    tasks[phase] = bars.add_task(f"Importing {phase}", total=total)
                bars.update(tasks[phase], completed=done, total=total)

            report = import_mlflow(memory.space(space), source, project=project, progress=progress)
    seconds = time.perf_counter() - started
    if as_json:
        typer.echo(json.dumps({**asdict(report), "space": space, "seconds": round(seconds, 2)}))
        return
    table = Table(title=f"Imported from MLflow into space {space} in {seconds:.1f} s", title_justify="left",
                  show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    for label, count in (("experiments (projects)", report.experiments), ("runs (experiments)", report.runs),
                         ("registered models", report.models), ("model versions", report.versions),
                         ("skipped names", len(report.skipped))):
        table.add_row(label, str(count))
    out.print(table)
    for skipped in report.skipped:
        err.print(f"skipped: {skipped}", highlight=False)


@app.command(ARCHIVE_COMMAND, hidden=True)
def archive(
    path: Annotated[Path, typer.Argument(help="An export directory or .tar.gz, as `kgmem export` writes it.",
                                         exists=True, readable=True)],
    space: Annotated[str, typer.Option(help="The tenant to import into; it need not be the exported one.")],
    merge: Annotated[bool, typer.Option(
        "--merge", help="Import into a space that holds data: add the records it lacks, skip those it has "
                        "(same id; an entity of the same kind and name; an observation of the same text).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
) -> None:
    """Load a kgmem export into a space. It must be empty unless --merge is given. The archive's format,
    version and checksums are checked first; with the exported vectors and the same embedding model they are
    written back, else everything is embedded again. Into another space than the exported one, every id is
    replaced by one derived from the new space and the old id (docs/export-format.md)."""
    check_space(space)
    with opened_archive(path):  # a damaged archive is refused before anything else starts
        pass
    with cli_services() as services:
        if not merge and graph_has_data(services.gateway, space):
            raise not_empty(space)
        with err.status("Loading the embedding model…"):
            memory = services.memory()
        with phase_bars("Importing") as progress:
            report = import_archive(memory, path, space, merge=merge, progress=progress)
    if as_json:
        typer.echo(json.dumps(asdict(report)))
        return
    table = Table(title=f"Imported {path} (space {report.source_space}) into space {space} in {report.seconds:.1f} s"
                        f"{' (merge)' if merge else ''}; vectors {report.vectors}", title_justify="left")
    table.add_column("record kind")
    table.add_column("created", justify="right")
    table.add_column("skipped", justify="right")
    for kind, created in report.created.items():
        table.add_row(kind, str(created), str(report.skipped.get(kind, 0)))
    out.print(table)
    out.print(f"embedded: {report.embedded}", highlight=False)

"""`kgmem import mlflow`: bring records from other systems into the graph."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agents.mlflow_import import import_mlflow, open_mlflow
from api.cli.context import cli_services
from graph.store import check_space

app = typer.Typer(help="Bring records from other systems into the graph.", no_args_is_help=True)
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

"""`kgmem neo4j …`: the managed local Neo4j."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from graph import get_settings
from graph.neo4j_server import LocalNeo4j, find_java

app = typer.Typer(help="Install, start, stop and inspect kgmem's local Neo4j.", no_args_is_help=True)
out = Console(soft_wrap=True)

PickFreePort = Annotated[
    bool, typer.Option("--pick-free-port", help="Use free ports if the configured ones are taken.")
]


def local_server(pick_free_port: bool = False) -> LocalNeo4j:
    settings = get_settings()
    if pick_free_port:
        settings = settings.model_copy(update={"neo4j_pick_free_port": True})
    return LocalNeo4j(settings)


@app.command()
def install() -> None:
    """Download or assemble Neo4j Community and prepare the data directory."""
    server = local_server()
    distribution = server.install()
    java = find_java()
    out.print(f"Neo4j {distribution.version} ready at {distribution.home} ({distribution.source})")
    out.print(f"Java {java.major} from {java.source}: {java.executable}")
    out.print(f"Data: {server.data_dir}")


@app.command()
def start(
    pick_free_port: PickFreePort = False,
    timeout: Annotated[float | None, typer.Option(help="Seconds to wait for Bolt to answer.")] = None,
) -> None:
    """Start the local Neo4j; returns once Bolt answers."""
    server = local_server(pick_free_port)
    with out.status("Starting Neo4j…"):
        state, started = server.start(timeout=timeout)
    verb = "started" if started else "already running"
    out.print(f"Neo4j {state.version} {verb}: {state.bolt_uri}, browser {state.browser_url}, pid {state.pid}")


@app.command()
def stop(timeout: Annotated[float, typer.Option(help="Seconds to wait after SIGTERM before SIGKILL.")] = 60.0) -> None:
    """Stop the local Neo4j (SIGTERM, then wait for it to exit)."""
    if local_server().stop(timeout=timeout):
        out.print("Neo4j stopped.")
    else:
        out.print("Neo4j was not running.")


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Version, ports, pid and data path of the local Neo4j. Exit code 3 when it is not running."""
    server = local_server()
    info = server.status()
    state = server.running()
    if as_json:
        payload = {
            "running": info.running, "version": info.version, "edition": info.edition, "pid": info.pid,
            "bolt_uri": info.bolt_uri, "browser_url": info.browser_url, "data_path": str(info.data_path),
            "bolt_port": state.bolt_port if state else None, "http_port": state.http_port if state else None,
            "distribution": info.distribution, "username": server.settings.neo4j_username,
            "password_file": str(server.password_file),
        }
        typer.echo(json.dumps(payload))
    else:
        out.print(f"running:  {'yes' if info.running else 'no'}")
        out.print(f"version:  {info.version or 'not installed'}" + (f" {info.edition}" if info.edition else ""))
        if state:
            out.print(f"pid:      {state.pid}")
            out.print(f"bolt:     {state.bolt_uri} (port {state.bolt_port})")
            out.print(f"http:     {state.browser_url} (port {state.http_port})")
            out.print(f"user:     {server.settings.neo4j_username}, password in {server.password_file}")
        out.print(f"data:     {info.data_path}")
    if not info.running:
        raise typer.Exit(3)


LOG_FILES = {"neo4j": "neo4j.log", "debug": "debug.log", "console": "console.log", "query": "query.log"}


@app.command()
def logs(
    lines: Annotated[int, typer.Option("-n", "--lines", min=1, help="How many trailing lines.")] = 50,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new lines.")] = False,
    file: Annotated[str, typer.Option(help=f"Which log: {', '.join(LOG_FILES)}.")] = "neo4j",
) -> None:
    """Print the local Neo4j's log."""
    if file not in LOG_FILES:
        raise typer.BadParameter(f"choose one of {', '.join(LOG_FILES)}", param_hint="--file")
    path = local_server().logs_dir / LOG_FILES[file]
    if not path.exists():
        out.print(f"No log yet at {path}.")
        raise typer.Exit(1)
    _print_tail(path, lines)
    if follow:
        _follow(path)


def _print_tail(path: Path, lines: int) -> None:
    for line in path.read_text(errors="replace").splitlines()[-lines:]:
        typer.echo(line)


def _follow(path: Path) -> None:
    with path.open(errors="replace") as handle:
        handle.seek(0, 2)
        try:
            while True:
                line = handle.readline()
                if line:
                    typer.echo(line.rstrip("\n"))
                else:
                    time.sleep(0.5)
        except KeyboardInterrupt:
            pass

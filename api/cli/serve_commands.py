"""`kgmem serve`, `kgmem config` and `kgmem version`."""

from __future__ import annotations

import json
import signal
import socket
from importlib import metadata
from typing import Annotated

import typer
from rich.console import Console

from graph import get_settings
from graph.errors import PortInUse
from graph.home import ensure_private_data
from graph.neo4j_server import LocalNeo4j

out = Console(stderr=True, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(config)
    app.command()(version)


def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on [default: KGMEM_API_HOST or 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: KGMEM_API_PORT or 8000].")] = None,
    pick_free_port: Annotated[bool, typer.Option("--pick-free-port", help="Let the local Neo4j use free ports if its own are taken.")] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Run the memory service. Without NEO4J_URI it starts kgmem's local Neo4j, and stops it on exit
    (Ctrl-C or SIGTERM)."""
    import uvicorn

    from api.app import create_app

    settings = get_settings()
    if pick_free_port:
        settings = settings.model_copy(update={"neo4j_pick_free_port": True})
    host = host or settings.api_host
    port = port or settings.api_port
    _require_free(host, port)
    ensure_private_data(settings)

    local: LocalNeo4j | None = None
    started = False
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        if settings.managed_neo4j:
            local = LocalNeo4j(settings)
            with out.status("Starting the local Neo4j…"):
                state, started = local.start()
            out.print(f"Neo4j {state.version} {'started' if started else 'already running'} on {state.bolt_uri}; "
                      f"Browser at {state.browser_url}")
        else:
            out.print(f"Using Neo4j at {settings.neo4j_uri}")
        # uvicorn answers SIGTERM as it does Ctrl-C (drains requests, runs the lifespan's shutdown), then
        # raises the signal again once it is done: that lands in _raise_terminated below.
        uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, access_log=False)
    except _Terminated:
        out.print("Received SIGTERM; shutting down.")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
        if local is not None and started:
            local.stop()
            out.print("Stopped the local Neo4j that this command started.")
        signal.signal(signal.SIGTERM, previous)


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so that `serve` shuts down as it does on Ctrl-C and exits 0.
    A BaseException, like KeyboardInterrupt: no `except Exception` on the way may swallow it."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated


def _require_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PortInUse(f"cannot listen on {host}:{port}: {exc.strerror}; pass --port or set KGMEM_API_PORT") from exc


def config(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Print the effective settings (secrets masked)."""
    data = get_settings().public_dict()
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    width = max(len(key) for key in data)
    for key, value in data.items():
        typer.echo(f"{key.ljust(width)}  {value}")


def version() -> None:
    """Print kgmem's version."""
    try:
        typer.echo(metadata.version("kgmem"))
    except metadata.PackageNotFoundError:
        typer.echo("unknown")

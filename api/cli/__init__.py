"""The `kgmem` command line."""

from __future__ import annotations

import logging
import re
import sys

import typer
from rich.console import Console
from rich.markup import escape

from api.cli import (
    agent_commands,
    audit_commands,
    backup_commands,
    bench_commands,
    cypher_commands,
    export_commands,
    forget_commands,
    import_commands,
    index_commands,
    keys_commands,
    mcp_commands,
    neo4j_commands,
    peer_import_commands,  # noqa: F401 - registers `kgmem import mcp-memory` and `kgmem import mem0`
    serve_commands,
)
from graph import KgmemError
from graph.audit import actor

app = typer.Typer(
    name="kgmem",
    help="Knowledge-graph memory for teams of AI agents.\n\nRun `kgmem serve` to start the service on the embedded defaults.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="rich",
)
app.add_typer(neo4j_commands.app, name="neo4j")
app.add_typer(bench_commands.app, name="bench")
app.add_typer(import_commands.app, name="import")
serve_commands.register(app)
cypher_commands.register(app)
index_commands.register(app)
export_commands.register(app)
keys_commands.register(app)
mcp_commands.register(app)
agent_commands.register(app)
backup_commands.register(app)
audit_commands.register(app)
forget_commands.register(app)

err = Console(stderr=True)


def main() -> None:
    """Console entry point: kgmem's own errors end in one line and exit code 1, never a traceback."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        with actor(key_id="cli", operation=_command(sys.argv[1:])):  # what the command writes is the CLI's
            app()
    except KgmemError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


def _command(args: list[str]) -> str:
    """`kgmem import mlflow --space x` -> "cli:import mlflow": the command's words, never its arguments
    (a group's subcommand is a word; `kgmem import ./archive` names a path, which is left out)."""
    words = [arg for arg in args[:2] if re.fullmatch(r"[a-z][a-z0-9-]*", arg)]
    groups = {group.name for group in app.registered_groups}
    if words[:1] and words[0] not in groups:
        words = words[:1]
    return " ".join(["cli:" + words[0], *words[1:]]) if words else "cli"

"""`kgmem keys …`: create, list and revoke the API's keys."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from api.auth import ApiKey, KeyStore, Scope, check_key_name, validate_grant
from api.cli.context import cli_services
from graph.errors import KgmemError, NotFound

app = typer.Typer(help="Create, list and revoke API keys (Bearer tokens for the REST API).", no_args_is_help=True)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def register(app_: typer.Typer) -> None:
    app_.add_typer(app, name="keys")


@contextmanager
def one_line_errors() -> Iterator[None]:
    """kgmem's errors as one plain `error:` line (no rich markup: names may hold brackets) and exit code 1."""
    try:
        yield
    except KgmemError as exc:
        err.print(Text.assemble(("error:", "bold red"), " ", str(exc)))
        raise typer.Exit(1) from exc


@contextmanager
def key_store() -> Iterator[KeyStore]:
    with cli_services() as services:
        yield KeyStore(services.gateway)


@app.command()
def create(
    name: Annotated[str, typer.Option("--name", "-n", help="What the key is for (a person, an agent, a job).")],
    scope: Annotated[list[str], typer.Option(
        "--scope", "-s", help=f"A scope, repeatable: {', '.join(s.value for s in Scope)}.")],
    space: Annotated[list[str], typer.Option(
        "--space", help="A space the key may act on, repeatable; '*' means all spaces (admin keys only).")],
    as_json: AsJson = False,
) -> None:
    """Create a key and print its token. The token is shown this once and cannot be shown again."""
    with one_line_errors():
        name = check_key_name(name)
        scopes, spaces = validate_grant(scope, space)  # wrong input fails before Neo4j is started
        with key_store() as store:
            key, token = store.create(name, scopes, spaces)
    warning = "This is the only time the token is shown; it cannot be shown again. Store it now."
    if as_json:
        typer.echo(json.dumps({**key.model_dump(mode="json"), "token": token}))
        err.print(f"warning: {warning}", style="bold yellow", highlight=False)
        return
    err.print(Text(f"Created API key {key.key_id} ({key.name}): scopes {', '.join(key.scopes)}; "
                   f"spaces {', '.join(key.spaces)}."))
    err.print(f"warning: {warning}", style="bold yellow", highlight=False)
    typer.echo(token)


@app.command("list")
def list_keys(as_json: AsJson = False) -> None:
    """Every key, revoked ones included; never a secret or hash."""
    with one_line_errors(), key_store() as store:
        keys = store.list()
    if as_json:
        typer.echo(json.dumps([key.model_dump(mode="json") for key in keys], indent=2))
        return
    if not keys:
        out.print("No API keys. Create one with: kgmem keys create --name N --scope read --space S")
        return
    table = _table(keys)
    if out.is_terminal:
        out.print(table)
    else:  # piped (grep, less): one line per key at the table's natural width, nothing cut
        natural = Measurement.get(out, out.options.update_width(10_000), table).maximum
        Console(width=natural).print(table)


@app.command()
def revoke(key_id: Annotated[str, typer.Argument(help="The key's id (the part after `kgm_` in its token).")]) -> None:
    """Revoke a key. Replicas of the API stop accepting it within the authentication cache's TTL (60 s)."""
    with one_line_errors(), key_store() as store:
        key = store.get(key_id)
        if key is None:
            raise NotFound(f"no API key {key_id!r}; `kgmem keys list` shows them")
        if key.revoked or not store.revoke(key_id):
            out.print(Text(f"API key {key_id} ({key.name}) was already revoked."))
            return
        out.print(Text(f"Revoked API key {key_id} ({key.name}). Running API replicas stop accepting it within "
                       f"{store.cache_ttl_s:g} s."))


def _table(keys: list[ApiKey]) -> Table:
    table = Table()
    table.add_column("key_id", no_wrap=True)
    for column in ("name", "scopes", "spaces"):
        table.add_column(column, overflow="fold")
    for column in ("created", "last used", "revoked"):
        table.add_column(column, no_wrap=True)
    for key in keys:
        table.add_row(
            Text(key.key_id), Text(key.name), Text(", ".join(key.scopes)), Text(", ".join(key.spaces)),
            _when(key.created_at), _when(key.last_used_at), _when(key.revoked_at),
        )
    return table


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else ""

"""`kgmem backup`, `kgmem restore` and `kgmem migrate`: the managed Neo4j's backups and the schema version."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from api.cli.context import cli_services
from api.cli.index_commands import set_aside_if_damaged
from graph import Gateway, Settings, get_settings
from graph.errors import ConfigurationError, Conflict
from graph.migrations import (
    LATEST,
    MIGRATIONS,
    Migration,
    MigrationReport,
    migrate,
    status,
)
from graph.neo4j_server import LocalNeo4j
from graph.neo4j_server.backup import (
    DUMP_FILE,
    backup_dir,
    default_backup_dir,
    dump,
    load,
    maintenance_gateway,
    other_clients,
    read_backup,
    server_stopped,
)

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

Force = Annotated[bool, typer.Option(
    "--force", help="Stop Neo4j even while other clients (a `kgmem serve`, a Browser) are connected to it.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")]


def register(app: typer.Typer) -> None:
    app.command()(backup)
    app.command()(restore)
    app.command("migrate")(migrate_command)


# -- backup ---------------------------------------------------------------------------------------------------
def backup(
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="The directory to write the backup into (created; must not hold one already) "
                      "[default: $KGMEM_HOME/backups/kgmem-<UTC time>].")] = None,
    force: Force = False,
    as_json: AsJson = False,
) -> None:
    """Back up kgmem's managed Neo4j: `neo4j-admin database dump` into a directory, with a manifest (kgmem version, schema version, time, SHA-256) that `kgmem restore` checks.

    Neo4j cannot dump a database it is serving, so the local Neo4j is stopped for the dump (seconds for a small graph) and started again. It refuses while other clients are connected (stop `kgmem serve` first, or pass --force). Chroma is not backed up: it is rebuilt from Neo4j on restore. With NEO4J_URI set (your own Neo4j), back it up with that server's own neo4j-admin."""
    started = time.perf_counter()
    settings = get_settings()
    local = _managed(settings, "back up")
    _start(local)
    schema_version = _refuse_other_clients(local, force)
    directory = (out_dir or default_backup_dir(local)).expanduser().resolve()
    with _percent_bar("Dumping the database") as progress, server_stopped(local):
        err.print("Stopped the local Neo4j for the dump.")
        manifest = dump(local, directory, schema_version=schema_version, progress=progress)
    err.print("Started the local Neo4j again.")
    seconds = time.perf_counter() - started
    report = {"directory": str(directory), **asdict(manifest), "seconds": round(seconds, 2)}
    if as_json:
        typer.echo(json.dumps(report))
        return
    dumped = manifest.files[DUMP_FILE]
    _print_table(f"Backup in {seconds:.1f} s", [
        ("directory", str(directory)), ("dump", f"{DUMP_FILE}, {dumped['bytes']:,} bytes"),
        ("sha256", dumped["sha256"]), ("schema version", str(manifest.schema_version)),
        ("kgmem", manifest.kgmem_version), ("neo4j", manifest.neo4j_version)])


# -- restore --------------------------------------------------------------------------------------------------
def restore(
    path: Annotated[Path, typer.Argument(help="The backup: the directory `kgmem backup` wrote, or its manifest.json.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before replacing the database.")] = False,
    force: Force = False,
    as_json: AsJson = False,
) -> None:
    """Replace kgmem's managed Neo4j database with a backup, then bring it and Chroma up to date.

    The backup is checked first (manifest, SHA-256 of the dump, versions): a damaged or foreign one is refused before anything changes. Then the local Neo4j is stopped, the dump loaded with `neo4j-admin database load --overwrite-destination`, and Neo4j started again; a backup with an older schema is migrated (`kgmem migrate`), and the vector index is rebuilt from the restored graph (`kgmem reindex --full`). Everything written since the backup is lost."""
    started = time.perf_counter()
    settings = get_settings()
    local = _managed(settings, "restore")
    with err.status("Checking the backup…"):
        manifest = read_backup(path, local)
    if local.running() is not None:
        _refuse_other_clients(local, force)
    if not yes and not typer.confirm(
            f"Replace the database in {local.data_dir} with the backup of {manifest.created_at}? "
            "Everything written since is lost", default=False, err=True):
        raise typer.Exit(1)
    with _percent_bar("Loading the dump") as progress, server_stopped(local):
        load(local, path, progress=progress)
    err.print("Loaded the backup; the local Neo4j is running again.")
    set_aside_if_damaged(settings)
    with cli_services(settings) as services:
        migrated = _run_migrations(services.gateway)
        with err.status("Loading the embedding model…"):
            memory = services.memory()
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed} items"),
                      TimeElapsedColumn(), console=err, transient=True) as bars:
            task = bars.add_task("Rebuilding the vector index from the restored graph", total=None)
            reindexed = memory.reconcile(full=True, progress=lambda done, total: bars.update(task, advance=done,
                                                                                              total=total))
    seconds = time.perf_counter() - started
    report = {"directory": str(backup_dir(path)), "created_at": manifest.created_at,
              "schema_version_restored": manifest.schema_version, "schema_version": migrated.to_version,
              "migrations_ran": migrated.ran, "embedded": reindexed.embedded, "seconds": round(seconds, 2)}
    if as_json:
        typer.echo(json.dumps(report))
        return
    _print_table(f"Restored in {seconds:.1f} s", [
        ("backup", f"{report['directory']} ({manifest.created_at})"),
        ("schema version", f"{manifest.schema_version} → {migrated.to_version}"
                           + (f" ({len(migrated.ran)} migrations)" if migrated.ran else "")),
        ("vectors embedded", str(reindexed.embedded))])


# -- migrate --------------------------------------------------------------------------------------------------
def migrate_command(
    show_status: Annotated[bool, typer.Option("--status", help="Only show the schema version and the steps left.")] = False,
    as_json: AsJson = False,
) -> None:
    """Bring the Neo4j database to this kgmem's schema version, or show where it is (--status).

    kgmem migrates at start-up (`kgmem serve`, and each command that opens the memory), so this is rarely needed by hand: use it to see the version, or to migrate before starting several replicas. The steps are ordered and idempotent, and run under a lease in Neo4j, so replicas starting together migrate once."""
    with cli_services() as services:
        if show_status:
            _print_status(services.gateway, as_json)
            return
        report = _run_migrations(services.gateway)
    if as_json:
        typer.echo(json.dumps(asdict(report)))
    elif report.ran:
        out.print(f"Migrated the schema from version {report.from_version} to {report.to_version}.")
    else:
        out.print(f"The schema is at version {report.to_version}, this kgmem's: nothing to do.")


def _run_migrations(gateway: Gateway) -> MigrationReport:
    with err.status("Migrating the schema…") as spinner:
        def progress(migration: Migration) -> None:
            spinner.update(f"Migrating the schema: step {migration.version} of {LATEST}, {migration.name}…")
        report = migrate(gateway, progress=progress)
    for step in report.ran:
        err.print(escape(f"ran migration {step}"), highlight=False)
    if report.waited_for:
        err.print(escape(f"waited for {report.waited_for}, which was migrating the schema"), highlight=False)
    return report


def _print_status(gateway: Gateway, as_json: bool) -> None:
    current = status(gateway)
    if as_json:
        typer.echo(json.dumps({"version": current.version, "latest": current.latest,
                               "migrated_at": current.migrated_at, "migrating": current.holder,
                               "pending": [f"{m.version} {m.name}" for m in current.pending]}))
        return
    out.print(f"schema version {current.version} of {current.latest}"
              + (f", migrated at {current.migrated_at}" if current.migrated_at else ""))
    if current.version > current.latest:
        out.print("[bold red]This database was migrated by a newer kgmem: this one refuses to start on it.[/]")
    if current.holder:
        out.print(escape(f"being migrated now by {current.holder}"))
    table = Table(show_header=True, title_justify="left")
    for column in ("step", "name", "state", "why"):
        table.add_column(column)
    for m in MIGRATIONS:
        table.add_row(str(m.version), m.name, "done" if m.version <= current.version else "pending", m.why)
    out.print(table)


# -- shared ---------------------------------------------------------------------------------------------------
def _managed(settings: Settings, verb: str) -> LocalNeo4j:
    if not settings.managed_neo4j:
        raise ConfigurationError(
            f"NEO4J_URI is set: kgmem can only {verb} the Neo4j it manages. Back up your own server with its "
            "`neo4j-admin database dump` (see docs/operations.md), and rebuild Chroma after a restore with "
            "`kgmem reindex --full`")
    return LocalNeo4j(settings)


def _start(local: LocalNeo4j) -> None:
    if local.running() is None:
        with err.status("Starting the local Neo4j…"):
            local.start()


def _refuse_other_clients(local: LocalNeo4j, force: bool) -> int:
    """The schema version, once no other client would lose Neo4j under it (or --force)."""
    with maintenance_gateway(local) as gateway:
        clients = other_clients(gateway)
        version = status(gateway).version
    if clients and not force:
        raise Conflict(
            f"{len(clients)} other client(s) are connected to the local Neo4j ({'; '.join(clients)}): stopping it "
            "would pull the database from under them. Stop them first (a `kgmem serve` on this data directory), "
            "or pass --force")
    if clients:
        err.print(escape(f"stopping Neo4j under {len(clients)} connected client(s) (--force)"), highlight=False)
    return version


class _percent_bar:
    """A progress bar fed neo4j-admin's percentages; yields the function to feed it."""

    def __init__(self, description: str) -> None:
        self.bars = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                             console=err, transient=True)
        self.task = self.bars.add_task(description, total=100)

    def __enter__(self):
        self.bars.__enter__()
        return lambda percent: self.bars.update(self.task, completed=percent)

    def __exit__(self, *exc) -> None:
        self.bars.__exit__(*exc)


def _print_table(title: str, rows: list[tuple[str, str]]) -> None:
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("value")
    for label, value in rows:
        table.add_row(label, escape(value))
    out.print(table)

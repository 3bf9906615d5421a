"""Backups of the managed Neo4j: `neo4j-admin database dump` and `load`, with the server stopped.

A backup is a directory:

    neo4j.dump      the database, as neo4j-admin dumps it
    manifest.json   {format: "kgmem-backup", format_version: 1, kgmem_version, neo4j_version,
                     schema_version, database, created_at, files: {"neo4j.dump": {sha256, bytes}}}

`read_backup` checks a backup before anything is stopped or overwritten: its manifest, the dump's
SHA-256, and that neither its schema (graph/migrations.py) nor its Neo4j is newer than this code
runs. A backup with an older schema is migrated when kgmem next opens the database.

Neo4j cannot dump or load a database it has mounted, so the server is stopped for the dump or
load and started again after (`server_stopped`). Clients still connected would lose Neo4j under
them: `other_clients` names them so the caller can refuse first. Chroma is not in the backup: it
is derived from Neo4j, and a restore rebuilds it (`kgmem restore` runs the full reindex).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from graph.errors import ChecksumMismatch, ConfigurationError, InvalidInput
from graph.gateway import Gateway, open_driver
from graph.migrations import LATEST
from graph.neo4j_server.server import LocalNeo4j

FORMAT = "kgmem-backup"
FORMAT_VERSION = 1
DUMP_FILE = "neo4j.dump"
MANIFEST_FILE = "manifest.json"

Progress = Callable[[float], None]  # percent done, as neo4j-admin reports it

MAINTENANCE_AGENT = f"kgmem-maintenance/{os.getpid()}"  # this process's connections, in the server's list

_PERCENT = re.compile(r"data:\s*([\d.]+)%")

LIST_CONNECTIONS = """
CALL dbms.listConnections() YIELD connectionId, connector, clientAddress, userAgent
WHERE connector = 'bolt'
RETURN connectionId, clientAddress, userAgent ORDER BY connectionId
"""


@dataclass(frozen=True)
class BackupManifest:
    kgmem_version: str
    neo4j_version: str
    schema_version: int
    database: str
    created_at: str
    files: dict[str, dict] = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION


def kgmem_version() -> str:
    try:
        return metadata.version("kgmem")
    except metadata.PackageNotFoundError:
        return "unknown"


def default_backup_dir(local: LocalNeo4j) -> Path:
    """`$KGMEM_HOME/backups/kgmem-<UTC time>`: beside the data, private like it."""
    return local.settings.home / "backups" / f"kgmem-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def maintenance_gateway(local: LocalNeo4j) -> Iterator[Gateway]:
    """A gateway to the running managed Neo4j whose connections carry `MAINTENANCE_AGENT`, so that
    `other_clients` tells them apart from everyone else's."""
    uri, (username, password) = local.connection()
    gateway = Gateway(lambda: open_driver(uri, username, password, user_agent=MAINTENANCE_AGENT),
                      local.settings.neo4j_database)
    try:
        yield gateway
    finally:
        gateway.close()


def other_clients(gateway: Gateway) -> list[str]:
    """The Bolt clients connected besides this process's `maintenance_gateway` (a `kgmem serve`, a Browser,
    a script), as 'address (user agent)'."""
    return [f"{row['clientAddress']} ({row['userAgent']})" for row in gateway.rows(LIST_CONNECTIONS)
            if row["userAgent"] != MAINTENANCE_AGENT]


@contextmanager
def server_stopped(local: LocalNeo4j) -> Iterator[bool]:
    """Stop the managed Neo4j for the block (yields whether it was running) and start it again after,
    also when the block fails: a failed load leaves the old database in place."""
    was_running = local.stop()
    try:
        yield was_running
    finally:
        local.start()


def dump(local: LocalNeo4j, directory: Path, *, schema_version: int, progress: Progress | None = None) -> BackupManifest:
    """Dump the (stopped) database into `directory`, which must not hold a backup, and write its manifest."""
    directory = directory.expanduser().resolve()
    if (directory / DUMP_FILE).exists() or (directory / MANIFEST_FILE).exists():
        raise InvalidInput(f"{directory} already holds a backup; choose a new directory with --out")
    if not directory.exists():
        directory.mkdir(parents=True)
        directory.chmod(0o700)  # the dump holds every tenant
    database = local.settings.neo4j_database
    local.admin("database", "dump", database, f"--to-path={directory}", on_line=_percent(progress))
    produced = directory / f"{database}.dump"
    if produced != directory / DUMP_FILE:
        produced.rename(directory / DUMP_FILE)
    dump_path = directory / DUMP_FILE
    installed = local.resolver.installed()
    manifest = BackupManifest(
        kgmem_version=kgmem_version(), neo4j_version=installed.version if installed else local.settings.neo4j_version,
        schema_version=schema_version, database=database, created_at=datetime.now(UTC).isoformat(),
        files={DUMP_FILE: {"sha256": sha256_of(dump_path), "bytes": dump_path.stat().st_size}})
    (directory / MANIFEST_FILE).write_text(json.dumps(asdict(manifest), indent=2) + "\n")
    return manifest


def backup_dir(path: Path) -> Path:
    """The backup a path names: its directory, or a file in it (the manifest or the dump)."""
    path = path.expanduser().resolve()
    return path.parent if path.is_file() else path


def read_backup(path: Path, local: LocalNeo4j) -> BackupManifest:
    """The backup's manifest once it is found whole and loadable here; else a clear refusal."""
    directory = backup_dir(path)
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        raise InvalidInput(f"{directory} is not a kgmem backup: it has no {MANIFEST_FILE} (make one with `kgmem backup`)")
    try:
        raw = json.loads(manifest_path.read_text())
        manifest = BackupManifest(**raw)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{manifest_path} is not a kgmem backup manifest: {exc}") from exc
    if manifest.format != FORMAT or manifest.format_version != FORMAT_VERSION:
        raise InvalidInput(f"{manifest_path} is {manifest.format} version {manifest.format_version}; this kgmem "
                           f"restores {FORMAT} version {FORMAT_VERSION}")
    expected = manifest.files.get(DUMP_FILE) or {}
    dump_path = directory / DUMP_FILE
    if not dump_path.is_file():
        raise InvalidInput(f"the backup in {directory} has no {DUMP_FILE}")
    actual = sha256_of(dump_path)
    if actual != expected.get("sha256"):
        raise ChecksumMismatch(f"{dump_path} is damaged or not the dump this backup made: its SHA-256 is {actual}, "
                               f"the manifest says {expected.get('sha256')}; nothing was changed")
    if manifest.schema_version > LATEST:
        raise ConfigurationError(f"the backup's schema version {manifest.schema_version} is newer than this kgmem's "
                                 f"{LATEST} (made by kgmem {manifest.kgmem_version}); restore it with that version")
    installed = local.resolver.resolve()
    if _version(manifest.neo4j_version) > _version(installed.version):
        raise ConfigurationError(f"the backup was dumped by Neo4j {manifest.neo4j_version}, newer than the "
                                 f"{installed.version} here, which cannot load it; set KGMEM_NEO4J_VERSION to it")
    return manifest


def load(local: LocalNeo4j, path: Path, *, progress: Progress | None = None) -> None:
    """Replace the (stopped) database with the backup's dump; check it with `read_backup` first."""
    directory = backup_dir(path)
    database = local.settings.neo4j_database
    # neo4j-admin looks for `<database>.dump` in the directory: give it one when the names differ.
    source = directory
    if database + ".dump" != DUMP_FILE:
        source = directory / ".load"
        source.mkdir(exist_ok=True)
        (source / f"{database}.dump").unlink(missing_ok=True)
        (source / f"{database}.dump").symlink_to(directory / DUMP_FILE)
    local.admin("database", "load", database, f"--from-path={source}", "--overwrite-destination=true",
                on_line=_percent(progress))


def _percent(progress: Progress | None) -> Callable[[str], None] | None:
    if progress is None:
        return None

    def on_line(line: str) -> None:
        if match := _PERCENT.search(line):
            progress(float(match.group(1)))
    return on_line


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])

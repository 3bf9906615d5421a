"""The Chroma client: embedded under the data directory, or a Chroma server.

An embedded store is a directory (`chroma.sqlite3` and one folder of HNSW files per index) that
holds nothing Neo4j does not. `open_chroma` reports a damaged one as `ChromaCorrupt`; `set_aside`
moves it out of the way for `kgmem reindex --full`; `store_identity` tells a process holding a
client that the directory under it was replaced or removed, and `close_chroma` lets it open the
new one (chromadb caches one client state per path and process, even a broken one).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import chromadb
from chromadb.api import ClientAPI
from chromadb.config import Settings as ChromaSettings

from graph.errors import ChromaUnavailable, ConfigurationError
from graph.settings import Settings
from memory.index import translate

DATABASE = "chroma.sqlite3"


def open_chroma(settings: Settings) -> ClientAPI:
    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.chroma_host:
        try:
            return chromadb.HttpClient(host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings)
        except Exception as exc:  # noqa: BLE001 - chromadb raises bare exceptions for connect errors
            raise ChromaUnavailable(
                f"Chroma server at {settings.chroma_host}:{settings.chroma_port} is unreachable: {exc}"
            ) from exc
    settings.chroma_dir.mkdir(parents=True, exist_ok=True)
    path = str(settings.chroma_dir)
    try:
        client = chromadb.PersistentClient(path=path, settings=chroma_settings)
    except Exception as exc:
        _forget(path)  # chromadb keeps the System that failed to start; every later open would get it
        _raise_translated(exc, path)
    try:
        client.list_collections()  # reads the database: a damaged one fails here, not in the first request
    except Exception as exc:
        close_chroma(client)
        _raise_translated(exc, path)
    return client


def _raise_translated(exc: Exception, path: str) -> NoReturn:
    mapped = translate(exc, path)
    if mapped is None:
        raise exc
    raise mapped from exc


def close_chroma(client: ClientAPI) -> None:
    """Release an embedded client so that the next `open_chroma` of its path starts afresh, on whatever
    files are there now. Other holders of the old client keep it (chromadb counts them)."""
    identifier = getattr(client, "_identifier", None)
    system = _cached_system(identifier)
    try:
        client.close()
    except Exception:  # noqa: BLE001 - closing a client of a broken store may fail; it is dropped all the same
        pass
    if identifier is not None and system is not None and _cached_system(identifier) is system:
        _forget(identifier)


def store_identity(settings: Settings) -> tuple[int, int] | None:
    """(device, inode) of an embedded store's database, None when there is none (or for a Chroma server):
    a change means the store was replaced or removed."""
    if settings.chroma_host:
        return None
    try:
        found = os.stat(settings.chroma_dir / DATABASE)
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


def set_aside(settings: Settings) -> Path:
    """Move the embedded store's directory out of the way (kept beside it, dated), for a rebuild from
    scratch; returns where it went."""
    if settings.chroma_host:
        raise ConfigurationError(
            f"the Chroma server at {settings.chroma_host}:{settings.chroma_port} manages its own files: "
            "repair or replace its store there, then run `kgmem reindex --full`")
    source = settings.chroma_dir
    target = source.with_name(f"{source.name}.damaged-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
    try:
        source.rename(target)
    except OSError as exc:
        raise ConfigurationError(f"cannot move the damaged Chroma store {source} aside to {target}: {exc}") from exc
    _forget(str(source))
    return target


def describe_chroma(settings: Settings) -> str:
    if settings.chroma_host:
        return f"http://{settings.chroma_host}:{settings.chroma_port}"
    return str(settings.chroma_dir)


def _cached_system(identifier: str | None):
    from chromadb.api.shared_system_client import SharedSystemClient

    return SharedSystemClient._identifier_to_system.get(identifier) if identifier else None


def _forget(identifier: str) -> None:
    # chromadb's per-process cache of client states, by path (a private attribute: chromadb has no public way
    # to drop a broken one). The reference counts stay, so that old holders closing later do not stop a new one.
    from chromadb.api.shared_system_client import SharedSystemClient

    SharedSystemClient._identifier_to_system.pop(identifier, None)

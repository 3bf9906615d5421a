"""The vector index speaks kgmem's errors: what Chroma (and SQLite under it) says of a damaged, moved or
busy store becomes the error a caller can act on. The messages are the ones chromadb 1.5 gives."""

from __future__ import annotations

import pytest
from chromadb import errors as chroma_errors

from graph import errors
from memory.index import translate

STORE = "/data/kgmem/chroma"


@pytest.mark.parametrize("message", [
    "Database error: error returned from database: (code: 26) file is not a database",
    "Error getting collection: Database error: error returned from database: (code: 11) database disk image is malformed",
    "Error executing plan: Error sending backfill request to compactor: Error constructing hnsw segment reader: "
    "Error creating hnsw segment reader: Error loading hnsw index",
])
def test_a_damaged_store_names_where_it_is_and_the_way_out(message):
    error = translate(chroma_errors.InternalError(message), STORE)
    assert isinstance(error, errors.ChromaCorrupt) and isinstance(error, errors.ConfigurationError)
    assert str(error).startswith(f"Chroma's store at {STORE} is damaged (")
    assert str(error).endswith("run `kgmem reindex --full` to move it aside and rebuild it")


@pytest.mark.parametrize("message", [
    "Query error: Database error: error returned from database: (code: 1032) attempt to write a readonly database",
    "Database error: error returned from database: (code: 5) database is locked",
])
def test_a_moved_or_busy_store_is_worth_a_retry(message):
    assert isinstance(translate(chroma_errors.InternalError(message), STORE), errors.ChromaUnavailable)


def test_a_damage_seen_while_handling_another_error_counts():
    try:
        try:
            raise chroma_errors.InternalError("(code: 26) file is not a database")
        except chroma_errors.InternalError:
            raise ValueError("Could not connect to tenant default_tenant. Are you sure it exists?")  # noqa: B904
    except ValueError as wrapped:
        assert isinstance(translate(wrapped), errors.ChromaCorrupt)


def test_other_internal_errors_stay_bugs():
    assert translate(chroma_errors.InternalError("Error executing plan: index out of range")) is None

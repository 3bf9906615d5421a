"""Forgetting across the memory layer: Neo4j (graph/forget.py), then Chroma and mem0.

    result = forget(memory.space("acme"), ForgetTarget(kind="entity", value=entity_id), event_id)

After the graph's transaction commits (and the vector sync has re-embedded what it redacted), the
vectors of everything it deleted go: every passage (`obs:<id>#n`), window (`win:<id>`) and entity
vector, then any vector of the space whose metadata still names a forgotten id or string. mem0
loses the forgotten free-text memories (their vectors in its own collection) and its SQLite
history database loses their rows, every row whose text mentions what was forgotten, and the
saved messages that do (for a space: every memory and message of the space).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from graph.forget import ForgetTarget, GraphForgetResult, Mentions, forget_in_graph
from memory.free_text import SCOPE_SEPARATOR, collection_name, history_db_path
from memory.index import translate as translate_chroma
from memory.service import SpaceMemory

SQLITE_TIMEOUT_S = 30.0


@dataclass
class ForgetResult:
    graph: GraphForgetResult
    chroma_vectors: int = 0  # kgmem's own index
    mem0_vectors: int = 0
    mem0_history_rows: int = 0  # rows of mem0's `history` and `messages` tables


def forget(memory: SpaceMemory, target: ForgetTarget, event_id: str) -> ForgetResult:
    graph = forget_in_graph(memory.graph, target, event_id)
    result = ForgetResult(graph)
    # A space goes whole, without looking for mentions of each of its ids.
    mentions = Mentions(graph.strings, graph.ids) if target.kind != "space" else Mentions([], [])
    result.chroma_vectors = _forget_vectors(memory, target, graph, mentions)
    result.mem0_vectors, memory_ids = _forget_mem0_vectors(memory, target, graph, mentions)
    result.mem0_history_rows = _forget_mem0_history(memory, target, memory_ids, mentions)
    return result


def _forget_vectors(memory: SpaceMemory, target: ForgetTarget, graph: GraphForgetResult, mentions: Mentions) -> int:
    index = memory.service.index
    if target.kind == "space":
        count = index.count(memory.space)
        index.delete_space(memory.space)
        return count
    items = [*(f"ent:{i}" for i in graph.entity_ids), *(f"obs:{i}" for i in graph.observation_ids)]
    windows = [f"win:{i}" for i in graph.observation_ids]
    vectors = index.metadata_of_space(memory.space)
    doomed = {vector_id for vector_id, meta in vectors.items()
              if (meta or {}).get("item") in set(items) or vector_id in set(windows)
              or any(mentions.found(value) for value in (meta or {}).values())}
    index.delete(sorted(doomed))
    index.delete_items(items)  # the same passages by their item, in case a write added one meanwhile
    return len(doomed)


def _mem0_collection(memory: SpaceMemory):
    from chromadb.errors import NotFoundError

    name = collection_name(memory.service.embedder.name, memory.service.embedder.dimension)
    try:
        return memory.service.chroma.get_collection(name, embedding_function=None)
    except NotFoundError:
        return None  # mem0 was never used with this model


def _forget_mem0_vectors(memory: SpaceMemory, target: ForgetTarget, graph: GraphForgetResult,
                         mentions: Mentions) -> tuple[int, list[str]]:
    """mem0's vectors of the forgotten memories (its payload holds the text): their count and mem0 ids."""
    memory_ids = list(graph.memory_ids)
    collection = _mem0_collection(memory)
    if collection is None:
        return 0, memory_ids
    try:
        found = collection.get(where={"space": memory.space}, include=["metadatas"])
    except Exception as exc:  # Chroma's outage is ours to report; anything else is a bug
        if (mapped := translate_chroma(exc)) is not None:
            raise mapped from exc
        raise
    doomed = [vector_id for vector_id, payload in zip(found["ids"], found["metadatas"])
              if target.kind == "space" or vector_id in set(memory_ids)
              or any(mentions.found(value) for value in (payload or {}).values())]
    if doomed:
        collection.delete(ids=doomed)
    return len(doomed), list(dict.fromkeys([*memory_ids, *doomed]))


def _forget_mem0_history(memory: SpaceMemory, target: ForgetTarget, memory_ids: list[str], mentions: Mentions) -> int:
    """Rows of mem0's history database: the forgotten memories' and any that mention what was forgotten."""
    path = history_db_path(memory.service.settings)
    if not path.exists():
        return 0
    ids = set(memory_ids)
    scope = f"{memory.space}{SCOPE_SEPARATOR}"
    deleted = 0
    with closing(sqlite3.connect(path, timeout=SQLITE_TIMEOUT_S)) as db, db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "history" in tables:
            doomed = [row[0] for row in db.execute(
                "SELECT id, memory_id, old_memory, new_memory, actor_id FROM history")
                if row[1] in ids or any(mentions.found(value) for value in row[2:])]
            deleted += _delete_rows(db, "DELETE FROM history WHERE id = ?", doomed)
        if "messages" in tables:
            doomed = [row[0] for row in db.execute("SELECT id, session_scope, content, name FROM messages")
                      if (target.kind == "space" and scope in (row[1] or ""))
                      or any(mentions.found(value) for value in row[2:])]
            deleted += _delete_rows(db, "DELETE FROM messages WHERE id = ?", doomed)
    return deleted


def _delete_rows(db: sqlite3.Connection, statement: str, ids: list[Any]) -> int:
    db.executemany(statement, [(i,) for i in ids])
    return len(ids)

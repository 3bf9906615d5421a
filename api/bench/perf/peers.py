"""The peers `kgmem bench perf` runs on the same data in the same run.

- mem0 OSS with `infer=False` on Chroma, using the same embedding model (the same loaded copy);
- the reference MCP memory server (`@modelcontextprotocol/server-memory`, a Node program that keeps
  its graph in one JSONL file), driven over stdio by the MCP Python client.

The BM25-only baseline is kgmem's own recall with every channel but keyword switched off, so it
runs in `api.bench.perf.runner`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio

from api.bench.perf.stats import Latencies
from graph.settings import Settings
from memory.embedder import Embedder

MCP_MEMORY_PACKAGE = "@modelcontextprotocol/server-memory"
MCP_MEMORY_ENTRY = Path("node_modules/@modelcontextprotocol/server-memory/dist/index.js")


# -- mem0 ------------------------------------------------------------------------------------------

def run_mem0(settings: Settings, embedder: Embedder, items: Sequence[tuple[str, str]], questions: Sequence[str],
             *, on_progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """mem0's own add (one memory per call, as its API takes them) and search, on a Chroma of its own."""
    import chromadb

    from memory.free_text import FreeTextMemory

    with tempfile.TemporaryDirectory(prefix="kgmem-bench-mem0-") as tmp:
        home = Path(tmp)
        client = chromadb.PersistentClient(path=str(home / "chroma"),
                                           settings=chromadb.config.Settings(anonymized_telemetry=False))
        # FreeTextMemory builds mem0's Memory on this Chroma and embedder; the bench then calls mem0
        # itself, without kgmem's graph linking, so the figures are mem0's.
        mem0 = FreeTextMemory(settings.model_copy(update={"home": home}), client, embedder, graph=lambda space: None).mem0
        adds = Latencies()
        started = time.perf_counter()
        for i, (agent, text) in enumerate(items):
            with adds.timed():
                mem0.add(text, agent_id=agent, infer=False)
            if on_progress and (i + 1) % 50 == 0:
                on_progress(50)
        add_seconds = time.perf_counter() - started
        searches = Latencies()
        agents = [agent for agent, _ in items]
        for i, question in enumerate(questions):
            with searches.timed():
                mem0.search(question, top_k=10, filters={"agent_id": agents[i % len(agents)]})
        return {"items": len(items), "add_per_s": len(items) / add_seconds, "add_ms": adds.summary(),
                "search_ms": searches.summary(),
                "items_per_agent": round(len(items) / max(1, len(set(agents))), 1)}


# -- the reference MCP memory server -------------------------------------------------------------

def mcp_memory_server(home: Path) -> Path | None:
    """The reference server's entry point: KGMEM_MCP_MEMORY_SERVER, else installed under
    `<home>/peers` with npm (once). None when there is no npm to install it with."""
    configured = os.environ.get("KGMEM_MCP_MEMORY_SERVER")
    if configured:
        return Path(configured)
    prefix = home / "peers"
    entry = prefix / MCP_MEMORY_ENTRY
    if entry.is_file():
        return entry
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        return None
    prefix.mkdir(parents=True, exist_ok=True)
    subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", MCP_MEMORY_PACKAGE],
                   check=True, capture_output=True, timeout=600)
    return entry if entry.is_file() else None


def run_mcp_reference(entry: Path, entities: Sequence[dict[str, Any]], questions: Sequence[str],
                      sizes: Sequence[int] = (1_000, 10_000), *, calls: int = 100) -> dict[str, Any]:
    """Grow the reference server's graph to each size, then time add_observations and search_nodes."""
    return anyio.run(_mcp_reference, entry, list(entities), list(questions), list(sizes), calls)


async def _mcp_reference(entry: Path, entities: list[dict[str, Any]], questions: list[str], sizes: list[int],
                         calls: int) -> dict[str, Any]:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="kgmem-bench-mcp-") as tmp:
        params = StdioServerParameters(command=shutil.which("node") or "node", args=[str(entry)],
                                       env={**os.environ, "MEMORY_FILE_PATH": str(Path(tmp) / "memory.jsonl")})
        async with Client(params) as client:
            created = 0
            for size in sizes:
                if size > len(entities):
                    break
                creates = Latencies()
                while created < size:
                    batch = entities[created: min(size, created + 100)]
                    with creates.timed():
                        await client.call_tool("create_entities", {"entities": batch})
                    created += len(batch)
                adds, searches = Latencies(), Latencies()
                for i in range(calls):
                    target = entities[(i * 7919) % size]["name"]
                    with adds.timed():
                        await client.call_tool("add_observations", {"observations": [
                            {"entityName": target, "contents": [f"bench note {size}-{i}"]}]})
                for i in range(calls):
                    with searches.timed():
                        await client.call_tool("search_nodes", {"query": questions[i % len(questions)].split()[-1]})
                results[str(size)] = {"entities": size, "create_entities_100_ms": creates.summary(),
                                      "add_observations_ms": adds.summary(), "search_nodes_ms": searches.summary()}
    return results

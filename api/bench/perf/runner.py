"""`kgmem bench perf`: ingest, graph writes, recall and brief on a synthetic history, beside peers.

Phases, in order (each reports through `progress(phase, done, total)`):

1. embed      the memories' texts with the embedder alone: the physical bound on ingest;
2. graph      structured writes without embedding (entities, then relations) through the batch API;
3. ingest     the same history through the normal path into a fresh space: graph commit, then vectors;
4. recall     the questions in process, BM25 only in process, and over HTTP against the real app;
5. brief      briefs for tasks in process (each also records a planned delegation, as in production);
6. mem0       mem0's add and search on a sample of the free-text shape;
7. mcp        the reference MCP memory server at 1k and 10k entities.

Targets are printed as pass or fail; they are never test assertions.
"""

from __future__ import annotations

import os
import platform
import resource
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from agents.briefs import BriefRequest
from agents.delegations import Delegations
from api.auth import KeyStore, Scope
from api.bench.locomo import channel_only, wipe_space
from api.bench.perf import peers
from api.bench.perf.stats import Latencies
from api.bench.perf.workload import Workload, generate
from graph.plans import hot_queries, plan_operators, scans
from graph.settings import Settings
from graph.store import GraphStore
from memory.recall import RecallQuery
from memory.service import MemoryService
from memory.sync import entity_text

Progress = Callable[[str, int, int], None]
BATCH = 500
MEM0_SAMPLE = 1_000
TARGETS = {
    "ingest_vs_embedding": 0.8,  # ingest rate / embedding-only rate, at least
    "free_text_vs_mem0_add": 5.0,  # free-text memory write rate / mem0 add rate, at least
    "recall_http_p50_ms": 25.0,  # at most, at every size
    "recall_http_p50_vs_mem0_search_p50": 1.5,  # at most: hybrid recall at the cost of a plain vector search
    "brief_p50_ms": 50.0,  # at most (BRIEF_P50_MS_AT_100K from 100k memories)
}
BRIEF_P50_MS_AT_100K = 60.0


@dataclass
class PerfOptions:
    memories: int
    seed: int = 7
    questions: int = 200
    briefs: int = 100
    http: bool = True
    peers: bool = True
    mcp_sizes: tuple[int, ...] = (1_000, 10_000)


def run(memory: MemoryService, settings: Settings, options: PerfOptions, *, progress: Progress | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    say = progress or (lambda phase, done, total: None)
    work = generate(options.memories, seed=options.seed, questions=options.questions)
    space = f"bench-perf-{options.memories}"
    report: dict[str, Any] = {
        "memories": options.memories, "seed": options.seed, "workload": work.counts(),
        "machine": machine(), "embedding_model": memory.embedder.name, "started_at": datetime.now(UTC).isoformat(),
    }

    report["embedding"] = embedding_only(memory, work, say)
    report["graph_writes"] = structured_writes(memory, work, f"{space}-graph", say)
    report["ingest"] = ingest(memory, work, space, say)
    report["recall"] = recall(memory, work, space, say)
    if options.http:
        report["recall"]["http_ms"] = recall_over_http(memory, settings, work, space, say)
    report["brief"] = brief(memory, work, space, options.briefs, say)
    report["peak_rss_mb"] = {"service_process": peak_rss_mb(), "neo4j": neo4j_peak_rss_mb(memory)}
    if options.peers:
        report["peers"] = run_peers(memory, settings, work, options, say)
    report["plans"] = plans(memory, space)
    report["ratios"] = ratios(report)
    report["targets"] = targets(report)
    report["wall_s"] = round(time.perf_counter() - started, 1)
    return report


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "host": socket.gethostname()}


# -- phases ----------------------------------------------------------------------------------------

def _fresh_cache(memory: MemoryService) -> None:
    """Identical texts are embedded once; each phase starts without the last one's vectors."""
    memory.embedder.clear_cache()


def embedding_only(memory: MemoryService, work: Workload, say: Progress) -> dict[str, Any]:
    lessons = [entity_text({"kind": e.kind.value, "entity_type": e.entity_type or e.kind.value, "name": e.name,
                            "aliases": e.aliases, "summary": e.summary}) for e in work.lessons]
    texts = ([f"{o.entity.name}: {o.text}" for o in work.observations] + [f"{head}. {body}" for head, body in lessons]
             + [t for _, t in work.free_text])
    memory.embedder.load()
    memory.embedder.embed(["warm up"])
    _fresh_cache(memory)
    begun = time.perf_counter()
    for start in range(0, len(texts), BATCH):
        memory.embedder.embed(texts[start:start + BATCH])
        say("embed", min(len(texts), start + BATCH), len(texts))
    seconds = time.perf_counter() - begun
    _fresh_cache(memory)
    return {"texts": len(texts), "seconds": round(seconds, 2), "texts_per_s": round(len(texts) / seconds, 1),
            "device": str(memory.embedder.load().device)}


def _scaffold(work: Workload) -> list:
    return [e for e in work.entities if e.kind.value != "Lesson"]


def structured_writes(memory: MemoryService, work: Workload, space: str, say: Progress) -> dict[str, Any]:
    """Entities and relations through the graph's batch API, no embedding (a space of its own, wiped after): a
    graph store of the gateway's own, without the memory layer's hook that makes the vectors follow."""
    wipe_space(memory, space)
    graph = GraphStore(memory.gateway).space(space)
    entities, relations = work.entities, work.relations
    begun = time.perf_counter()
    for start in range(0, len(entities), BATCH):
        graph.upsert_entities(entities[start:start + BATCH])
        say("graph", min(len(entities), start + BATCH), len(entities) + len(relations))
    entity_seconds = time.perf_counter() - begun
    begun = time.perf_counter()
    for start in range(0, len(relations), BATCH):
        graph.upsert_relations(relations[start:start + BATCH])
        say("graph", len(entities) + min(len(relations), start + BATCH), len(entities) + len(relations))
    relation_seconds = time.perf_counter() - begun
    wipe_space(memory, space)
    return {"entities": len(entities), "entities_per_s": round(len(entities) / entity_seconds, 1),
            "relations": len(relations), "relations_per_s": round(len(relations) / relation_seconds, 1),
            "batch": BATCH}


def ingest(memory: MemoryService, work: Workload, space: str, say: Progress) -> dict[str, Any]:
    """The history through the normal path; the memories' rate is what counts, the scaffold
    (projects, agents, delegations, ML artifacts) is written first and timed apart."""
    wipe_space(memory, space)
    _fresh_cache(memory)
    target = memory.space(space)
    scaffold = _scaffold(work)
    scaffold_names = {(e.name, e.kind) for e in scaffold}
    scaffold_relations, lesson_relations = [], []
    for relation in work.relations:
        ends = ((relation.source.name, relation.source.kind), (relation.target.name, relation.target.kind))
        (scaffold_relations if all(end in scaffold_names for end in ends) else lesson_relations).append(relation)
    begun = time.perf_counter()
    for start in range(0, len(scaffold), BATCH):
        target.graph.upsert_entities(scaffold[start:start + BATCH])
    for start in range(0, len(scaffold_relations), BATCH):
        target.graph.upsert_relations(scaffold_relations[start:start + BATCH])
    scaffold_seconds = time.perf_counter() - begun

    total = work.counts()["memories"]
    done = 0
    begun = time.perf_counter()
    for start in range(0, len(work.observations), BATCH):
        batch = work.observations[start:start + BATCH]
        target.graph.add_observations(batch)
        done += len(batch)
        say("ingest", done, total)
    lessons = work.lessons
    for start in range(0, len(lessons), BATCH):
        target.graph.upsert_entities(lessons[start:start + BATCH])
        done += len(lessons[start:start + BATCH])
        say("ingest", done, total)
    for start in range(0, len(lesson_relations), BATCH):
        target.graph.upsert_relations(lesson_relations[start:start + BATCH])
    # Free-text memories through the batch path (POST …/memories/batch), timed apart as well: mem0's add
    # takes one memory per call, kgmem's free-text write takes a batch.
    free_text = memory.free_text()
    free_begun = time.perf_counter()
    for start in range(0, len(work.free_text), BATCH):
        batch = work.free_text[start:start + BATCH]
        free_text.add_batch(space, [{"text": text, "agent_id": agent} for agent, text in batch])
        done += len(batch)
        say("ingest", done, total)
    free_seconds = time.perf_counter() - free_begun
    seconds = time.perf_counter() - begun
    return {"memories": total, "seconds": round(seconds, 2), "memories_per_s": round(total / seconds, 1),
            "scaffold_entities": len(scaffold), "scaffold_relations": len(scaffold_relations),
            "scaffold_seconds": round(scaffold_seconds, 2), "batch": BATCH,
            "free_text": {"memories": len(work.free_text), "seconds": round(free_seconds, 2),
                          "per_s": round(len(work.free_text) / free_seconds, 1) if free_seconds else None}}


def recall(memory: MemoryService, work: Workload, space: str, say: Progress) -> dict[str, Any]:
    target = memory.space(space)
    for question in work.questions[:10]:  # warm caches and the planner
        target.recall(RecallQuery(text=question))
    hybrid, bm25 = Latencies(), Latencies()
    keyword_only = channel_only("keyword")
    total = 2 * len(work.questions)
    for i, question in enumerate(work.questions):
        with hybrid.timed():
            target.recall(RecallQuery(text=question))
        say("recall", i + 1, total)
    for i, question in enumerate(work.questions):
        with bm25.timed():
            target.recall(RecallQuery(text=question), config=keyword_only)
        say("recall", len(work.questions) + i + 1, total)
    return {"in_process_ms": hybrid.summary(), "bm25_only_ms": bm25.summary(), "limit": 10}


def recall_over_http(memory: MemoryService, settings: Settings, work: Workload, space: str,
                     say: Progress) -> dict[str, float]:
    """POST /v1/spaces/{space}/recall against the real app, served by uvicorn in this process."""
    import logging
    import sys

    import structlog
    import uvicorn

    from api.app import create_app

    # One access-log line per request would bury the progress bars; other errors still show, on
    # stderr, so that `--json` keeps stdout to the one JSON object.
    previous_logging = structlog.get_config()  # restored afterwards: the bench may run inside a bigger process
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
                        logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    store = KeyStore(memory.gateway)
    _, token = store.create("bench perf", [Scope.READ], [space])
    port = _free_port()
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="bench-api", daemon=True)
    thread.start()
    latencies = Latencies()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"},
                          timeout=60) as client:
            _wait_ready(client)
            # A service that has been up a while has finished its start-up reconcile; at 100k it
            # would otherwise share the CPU with the timed requests.
            begun = time.perf_counter()
            app.state.services.wait_for_background_work(timeout_s=1800)
            reconcile_s = time.perf_counter() - begun
            url = f"/v1/spaces/{space}/recall"
            for question in work.questions[:10]:
                client.post(url, json={"text": question}).raise_for_status()
            for i, question in enumerate(work.questions):
                with latencies.timed():
                    client.post(url, json={"text": question}).raise_for_status()
                say("recall over HTTP", i + 1, len(work.questions))
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        structlog.configure(**previous_logging)
    return {**latencies.summary(), "waited_for_startup_reconcile_s": round(reconcile_s, 1)}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_ready(client: httpx.Client, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the API did not become ready within 3 minutes")


def brief(memory: MemoryService, work: Workload, space: str, count: int, say: Progress) -> dict[str, Any]:
    delegations = Delegations(memory.space(space))
    tasks = work.tasks[:count]
    for task in tasks[:5]:
        delegations.brief(BriefRequest(task=task))
    latencies = Latencies()
    for i, task in enumerate(tasks):
        with latencies.timed():
            delegations.brief(BriefRequest(task=task))
        say("brief", i + 1, len(tasks))
    return {"ms": latencies.summary(), "budget_tokens": BriefRequest.model_fields["budget_tokens"].default}


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # kB on Linux


def neo4j_peak_rss_mb(memory: MemoryService) -> float | None:
    """VmHWM of a local Neo4j process, when there is one on this machine."""
    from graph.neo4j_server import LocalNeo4j

    try:
        state = LocalNeo4j(memory.settings).running()
        if state is None or not state.pid:
            return None
        for line in open(f"/proc/{state.pid}/status", encoding="utf-8"):
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, AttributeError):
        return None
    return None


def run_peers(memory: MemoryService, settings: Settings, work: Workload, options: PerfOptions,
              say: Progress) -> dict[str, Any]:
    result: dict[str, Any] = {}
    sample = [(agent, text) for agent, text in _mem0_items(work)][:MEM0_SAMPLE]
    done = 0

    def mem0_progress(n: int) -> None:
        nonlocal done
        done += n
        say("mem0", done, len(sample))

    _fresh_cache(memory)
    result["mem0"] = peers.run_mem0(settings, memory.embedder, sample, work.questions, on_progress=mem0_progress)
    entry = peers.mcp_memory_server(settings.home)
    if entry is None:
        result["mcp_reference"] = {"skipped": "node and npm are needed for @modelcontextprotocol/server-memory"}
    else:
        entities = _mcp_entities(work, max(options.mcp_sizes))
        say("mcp", 0, 1)
        result["mcp_reference"] = peers.run_mcp_reference(entry, entities, work.questions, options.mcp_sizes)
        say("mcp", 1, 1)
    return result


def _mem0_items(work: Workload):
    """Observation texts under their acting agent: mem0's shape for a memory (agent-scoped free text)."""
    for observation in work.observations:
        yield observation.provenance.agent or "agent", observation.text


def _mcp_entities(work: Workload, count: int) -> list[dict[str, Any]]:
    """The workload's entities in the reference server's shape, each with one observation; cycled to `count`."""
    texts = [o.text for o in work.observations] or ["created"]
    out = []
    for i in range(count):
        entity = work.entities[i % len(work.entities)]
        suffix = "" if i < len(work.entities) else f" ({i // len(work.entities) + 1})"
        out.append({"name": entity.name + suffix, "entityType": entity.kind.value,
                    "observations": [texts[i % len(texts)]]})
    return out


def plans(memory: MemoryService, space: str) -> list[dict[str, Any]]:
    """The plans of the hot queries, as the benchmark relied on them."""
    out = []
    for query in hot_queries(space):
        operators = plan_operators(memory.gateway, query)
        out.append({"query": query.name, "operators": operators, "scans": scans(operators)})
    return out


# -- verdicts --------------------------------------------------------------------------------------

def ratios(report: dict[str, Any]) -> dict[str, float | None]:
    ingest_rate = report["ingest"]["memories_per_s"]
    out: dict[str, float | None] = {
        "ingest_vs_embedding": round(ingest_rate / report["embedding"]["texts_per_s"], 3),
    }
    peers_ = report.get("peers", {})
    mem0 = peers_.get("mem0")
    recall_p50 = report["recall"]["in_process_ms"]["p50"]
    free_text_rate = report["ingest"]["free_text"]["per_s"]
    http = report["recall"].get("http_ms")
    if mem0:
        out["ingest_vs_mem0"] = round(ingest_rate / mem0["add_per_s"], 2)
        out["free_text_vs_mem0_add"] = round(free_text_rate / mem0["add_per_s"], 2) if free_text_rate else None
        out["mem0_search_p50_vs_recall_p50"] = round(mem0["search_ms"]["p50"] / recall_p50, 2)
        if http:
            out["recall_http_p50_vs_mem0_search_p50"] = round(http["p50"] / mem0["search_ms"]["p50"], 2)
    mcp = peers_.get("mcp_reference", {})
    for size, figures in mcp.items() if isinstance(mcp, dict) else []:
        if isinstance(figures, dict) and "search_nodes_ms" in figures:
            out[f"mcp_search_nodes_p50_at_{size}_vs_recall_p50"] = round(figures["search_nodes_ms"]["p50"] / recall_p50, 2)
    out["bm25_p50_vs_recall_p50"] = round(report["recall"]["bm25_only_ms"]["p50"] / recall_p50, 2)
    return out


def targets(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    ratios_ = report["ratios"]
    verdicts: dict[str, dict[str, Any]] = {}

    def verdict(name: str, value: float | None, passed: bool | None, note: str = "") -> None:
        verdicts[name] = {"target": TARGETS[name], "value": value,
                          "result": "n/a" if passed is None else ("pass" if passed else "fail"), "note": note}

    def at_least(name: str, value: float | None, note: str = "") -> None:
        verdict(name, value, None if value is None else value >= TARGETS[name], note)

    def at_most(name: str, value: float | None, target: float | None = None, note: str = "") -> None:
        verdict(name, value, None if value is None else value <= (target or TARGETS[name]), note)

    at_least("ingest_vs_embedding", ratios_["ingest_vs_embedding"])
    no_peers = "" if report.get("peers") else "mem0 was not run (--no-peers)"
    at_least("free_text_vs_mem0_add", ratios_.get("free_text_vs_mem0_add"), no_peers)
    http = report["recall"].get("http_ms")
    at_most("recall_http_p50_ms", http["p50"] if http else None)
    at_most("recall_http_p50_vs_mem0_search_p50", ratios_.get("recall_http_p50_vs_mem0_search_p50"), note=no_peers)
    at_scale = report["memories"] >= 100_000
    brief_target = BRIEF_P50_MS_AT_100K if at_scale else TARGETS["brief_p50_ms"]
    at_most("brief_p50_ms", report["brief"]["ms"]["p50"], brief_target)
    verdicts["brief_p50_ms"]["target"] = brief_target
    return verdicts

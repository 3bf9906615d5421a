"""`kgmem bench console`: server time and Neo4j queries per console page, on a space of N memories.

Phases, in order (each reports through `progress(phase, done, total)`):

1. ingest   the perf bench's synthetic history (api/bench/perf) into a fresh space, through the normal path;
2. hub      one entity with 200 observations and a 2-hop neighbourhood of about 300 nodes
            (20 neighbours, each with 14 of their own);
3. pages    the real app in process (Starlette's TestClient, lifespan and all), signed in through the
            console's sign-in form; each page is requested `requests` times after one warm-up, timed
            around the request, with the Neo4j calls it made counted through the gateway's `observe` hook.

A page the app does not serve yet (404) is reported as missing, not as a failure of the bench.
Targets (p50 under 300 ms, at most BUDGETS[page] Neo4j calls) are printed as pass or fail; they are
never test assertions.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from api.auth import KeyStore, Scope
from api.bench.locomo import wipe_space
from api.bench.perf.runner import ingest, machine
from api.bench.perf.stats import Latencies
from api.bench.perf.workload import generate
from graph.model import EntityIn, EntityRef, ObservationIn, RelationIn
from graph.settings import Settings
from graph.vocabulary import Kind
from memory.service import MemoryService

Progress = Callable[[str, int, int], None]
P50_TARGET_MS = 300.0
HUB = "bench-console-hub"
HUB_OBSERVATIONS = 200
HUB_NEIGHBOURS = 20
SECOND_HOP = 14  # per neighbour: 20 + 20 * 14 = 300 nodes within two hops
# Neo4j calls a page may make (the session's key lookup included): fixed, whatever the space holds.
BUDGETS = {"overview": 20, "delegation": 6, "entity": 12, "graph": 6}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class ConsoleBenchOptions:
    memories: int = 10_000
    seed: int = 7
    requests: int = 20


def run(memory: MemoryService, settings: Settings, options: ConsoleBenchOptions, *,
        progress: Progress | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    say = progress or (lambda phase, done, total: None)
    space = f"bench-console-{options.memories}"
    work = generate(options.memories, seed=options.seed, questions=10)
    report: dict[str, Any] = {"memories": options.memories, "seed": options.seed, "requests": options.requests,
                              "machine": machine(), "space": space}
    report["ingest"] = ingest(memory, work, space, say)
    hub_id = seed_hub(memory, space, say)
    delegation = next(e.name for e in work.entities if e.kind == Kind.DELEGATION)
    paths = {"overview": f"/spaces/{space}", "delegation": f"/spaces/{space}/delegations/{delegation}",
             "entity": f"/spaces/{space}/entities/{hub_id}",
             "graph": f"/spaces/{space}/entities/{hub_id}/graph?depth=2&limit=300"}
    report["pages"] = time_pages(memory, settings, space, paths, options.requests, say)
    report["targets"] = {"p50_ms": P50_TARGET_MS, "queries": BUDGETS}
    report["wall_s"] = round(time.perf_counter() - started, 1)
    wipe_space(memory, space)
    return report


def seed_hub(memory: MemoryService, space: str, say: Progress) -> str:
    """The entity with 200 observations and its two hops of neighbours; its id."""
    graph = memory.space(space).graph
    (hub,) = graph.upsert_entities([EntityIn(kind=Kind.PROJECT, name=HUB, summary="The console bench's busy entity")])
    graph.add_observations([ObservationIn(entity=EntityRef(id=hub.id), text=f"Status note {n} on the hub: "
                                          f"the nightly run {n} finished with {n % 7} warnings")
                            for n in range(HUB_OBSERVATIONS)])
    say("hub", HUB_OBSERVATIONS, HUB_OBSERVATIONS + HUB_NEIGHBOURS)
    relations = []
    for n in range(HUB_NEIGHBOURS):
        neighbour = EntityRef(kind=Kind.THING, name=f"hub-part-{n:02d}")
        relations.append(RelationIn(source=EntityRef(id=hub.id), type="RELATED_TO", target=neighbour))
        relations += [RelationIn(source=neighbour, type="RELATED_TO",
                                 target=EntityRef(kind=Kind.THING, name=f"hub-part-{n:02d}-{m:02d}"))
                      for m in range(SECOND_HOP)]
    graph.upsert_relations(relations, create_missing=True)
    say("hub", HUB_OBSERVATIONS + HUB_NEIGHBOURS, HUB_OBSERVATIONS + HUB_NEIGHBOURS)
    return hub.id


def time_pages(memory: MemoryService, settings: Settings, space: str, paths: dict[str, str], requests: int,
               say: Progress) -> dict[str, dict[str, Any]]:
    """Each page's status, latency percentiles and Neo4j calls per request, served in process."""
    import structlog
    from fastapi.testclient import TestClient

    from api.app import create_app

    previous_logging = structlog.get_config()  # one access-log line per request would bury the progress bars
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
                        logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    store = KeyStore(memory.gateway)
    key, token = store.create("bench console", [Scope.READ], [space])
    results: dict[str, dict[str, Any]] = {}
    try:
        with TestClient(create_app(settings, embedder=memory.embedder)) as client:
            services = client.app.state.services
            services.wait_for_background_work(timeout_s=1800)  # the start-up reconcile would share the CPU
            sign_in(client, token)
            calls = [0]
            stop = services.gateway.observe(lambda operation, seconds: calls.__setitem__(0, calls[0] + 1))
            try:
                for done, (name, path) in enumerate(paths.items()):
                    results[name] = time_page(client, path, requests, calls, BUDGETS[name])
                    say("pages", done + 1, len(paths))
            finally:
                stop()
    finally:
        store.revoke(key.key_id)
        structlog.configure(**previous_logging)
    return results


def sign_in(client: Any, token: str) -> None:
    form = client.get("/sign-in")
    csrf = _CSRF.search(form.text)
    if csrf is None:
        raise RuntimeError("the sign-in page carried no CSRF token")
    answer = client.post("/sign-in", data={"token": token, "csrf_token": csrf.group(1), "next": "/"},
                         follow_redirects=False)
    if answer.status_code != 303:
        raise RuntimeError(f"signing in failed with HTTP {answer.status_code}")


def time_page(client: Any, path: str, requests: int, calls: list[int], budget: int) -> dict[str, Any]:
    warm = client.get(path)
    if warm.status_code == 404:
        return {"path": path, "status": 404, "missing": True}
    if warm.status_code != 200:
        raise RuntimeError(f"{path} answered HTTP {warm.status_code}")
    latencies = Latencies()
    counted = []
    for _ in range(requests):
        before = calls[0]
        with latencies.timed():
            client.get(path).raise_for_status()
        counted.append(calls[0] - before)
    summary = latencies.summary()
    queries = max(counted)
    return {"path": path, "status": 200, "missing": False, "ms": summary, "queries": queries, "budget": budget,
            "passed": summary["p50"] < P50_TARGET_MS and queries <= budget}

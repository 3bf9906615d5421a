"""Profile recall and brief in process on a seeded 10k space (kept in KGMEM_HOME between runs).

    KGMEM_HOME=/tmp/fastpath-prof KGMEM_NEO4J_PICK_FREE_PORT=true PYTHONPATH=$PWD python scripts/profile_recall.py

The first run seeds the space (minutes); later runs reuse it. Prints p50 per phase and the
cumulative time of our functions (Neo4j round trips, Chroma, embedding, fusion) per call.
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time

from agents.delegations import BriefRequest, Delegations
from api.bench.perf.runner import ingest
from api.bench.perf.workload import generate
from api.cli.context import cli_services
from memory.recall import RecallQuery

MEMORIES, SPACE = 10_000, "fastpath-10k"
work = generate(MEMORIES, seed=7, questions=50)

with cli_services() as services:
    memory = services.memory()
    target = memory.space(SPACE)
    seeded = services.gateway.rows("MATCH (o:Observation {space: $s}) RETURN count(o) AS n", s=SPACE)[0]["n"]
    if "--seed" in sys.argv or not seeded:
        print("seeding", ingest(memory, work, SPACE, lambda *a: None), flush=True)
    if "--dump" in sys.argv:  # the ranked results, to check that a change is pure speed
        import json
        dump = {q: [(i.id, i.score, i.channels, i.highlight) for i in target.recall(RecallQuery(text=q)).items]
                for q in work.questions[:50]}
        with open(sys.argv[sys.argv.index("--dump") + 1], "w") as out:
            json.dump(dump, out, indent=0)
        if "--dump-only" in sys.argv:
            sys.exit(0)
    delegations = Delegations(target)
    for q in work.questions[:10]:
        target.recall(RecallQuery(text=q))
    for t in work.tasks[:3]:
        delegations.brief(BriefRequest(task=t))

    def timed(fn, items):
        times = []
        for x in items:
            begun = time.perf_counter()
            fn(x)
            times.append((time.perf_counter() - begun) * 1000)
        return sorted(times)[len(times) // 2]

    def profile(name, fn, items):
        p50 = timed(fn, items)
        prof = cProfile.Profile()
        prof.enable()
        for x in items:
            fn(x)
        prof.disable()
        print(f"\n=== {name}: p50 {p50:.1f} ms over {len(items)} calls ===")
        stats = pstats.Stats(prof)
        stats.sort_stats("cumulative")
        rows = []
        for (file, line, func), (cc, nc, tt, ct, callers) in stats.stats.items():
            if any(part in file for part in ("/memory/", "/agents/", "/graph/gateway", "/graph/reads", "/graph/store",
                                            "/graph/writes", "chromadb/api/models/Collection", "neo4j/_sync/work/session")):
                rows.append((ct / len(items) * 1000, nc / len(items), f"{file.split('/')[-2]}/{file.split('/')[-1]}:{func}"))
        for ms, calls, where in sorted(rows, reverse=True)[:45]:
            print(f"{ms:8.2f} ms  {calls:6.1f} calls  {where}")

    profile("recall", lambda q: target.recall(RecallQuery(text=q)), work.questions[:50])
    profile("brief", lambda t: delegations.brief(BriefRequest(task=t)), work.tasks[:30])

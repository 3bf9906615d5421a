"""Start-up reconcile on a 10k space: the scanning reconcile (what start-up ran before) against the quick one.

    KGMEM_HOME=/tmp/startup-bench/home KGMEM_NEO4J_PICK_FREE_PORT=true python scripts/startup_reconcile_bench.py --seed
    KGMEM_HOME=/tmp/startup-bench/home KGMEM_NEO4J_PICK_FREE_PORT=true python scripts/startup_reconcile_bench.py --quick-first

`--seed` ingests the perf bench's 10k workload first; `--quick-first` times the quick one first (a cold
start). The managed Neo4j is stopped at the end, so each run starts it cold.
"""
import sys
import time

from api.bench.perf.runner import ingest
from api.bench.perf.workload import generate
from api.services import open_services
from graph import get_settings
from graph.neo4j_server import LocalNeo4j

settings = get_settings()
services = open_services(settings, start_neo4j=True)
try:
    memory = services.memory()
    if "--seed" in sys.argv:
        ingest(memory, generate(10000, seed=7, questions=10), "startup-bench", lambda *a: None)
        memory.reconcile()
    print("chroma vectors:", memory.index.count(), "expected:", memory.sync.expected_vectors())
    order = (("scanning (before)", False), ("quick (after)", True))
    for label, quick in (order[::-1] if "--quick-first" in sys.argv else order) * 3:
        wall, cpu = time.perf_counter(), time.process_time()
        report = memory.reconcile(quick=quick)
        print(f"{label}: wall {time.perf_counter() - wall:.2f} s, cpu {time.process_time() - cpu:.2f} s | {report}",
              flush=True)
finally:
    services.close()
    LocalNeo4j(settings).stop()

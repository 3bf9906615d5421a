"""`kgmem bench perf`: a seeded workload, and one small run of every phase on the real stack."""

from __future__ import annotations

import json

from api.bench.perf.runner import TARGETS, PerfOptions, run
from api.bench.perf.stats import Latencies, percentile
from api.bench.perf.workload import generate
from graph.vocabulary import Kind
from memory.service import MemoryService


def test_the_workload_is_the_same_for_the_same_seed_and_counts_n_memories():
    first, again, other = generate(2_000, seed=3), generate(2_000, seed=3), generate(2_000, seed=4)
    assert [o.text for o in first.observations] == [o.text for o in again.observations]
    assert [o.text for o in first.observations] != [o.text for o in other.observations]
    counts = first.counts()
    assert counts["memories"] == 2_000 == counts["observations"] + counts["lessons"] + counts["free_text"]
    assert len(first.texts) == 2_000
    kinds = {entity.kind for entity in first.entities}
    assert {Kind.PROJECT, Kind.AGENT, Kind.DELEGATION, Kind.LESSON, Kind.EXPERIMENT, Kind.MODEL_VERSION,
            Kind.FEATURE, Kind.INCIDENT} <= kinds
    names = {(entity.name, entity.kind) for entity in first.entities}
    for relation in first.relations:  # every relation joins entities of the workload
        assert (relation.source.name, relation.source.kind) in names
        assert (relation.target.name, relation.target.kind) in names


def test_the_workload_grows_with_n():
    small, large = generate(1_000).counts(), generate(10_000).counts()
    assert large["memories"] == 10 * small["memories"]
    assert large["kind_Delegation"] > 5 * small["kind_Delegation"]


def test_percentiles_are_nearest_rank():
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == 4.0
    latencies = Latencies()
    assert latencies.summary() == {"n": 0}


def test_a_small_run_measures_every_phase_and_judges_every_target(settings, gateway, embedder):
    memory = MemoryService.open(settings, gateway, embedder=embedder)
    phases: set[str] = set()
    report = run(memory, settings, PerfOptions(memories=120, questions=10, briefs=5, peers=False),
                 progress=lambda phase, done, total: phases.add(phase))
    assert phases == {"embed", "graph", "ingest", "recall", "recall over HTTP", "brief"}
    assert report["ingest"]["memories"] == 120
    assert report["embedding"]["texts"] == 120
    assert report["graph_writes"]["entities"] > 0 and report["graph_writes"]["relations"] > 0
    assert report["recall"]["in_process_ms"]["n"] == 10
    assert report["recall"]["http_ms"]["n"] == 10
    assert report["recall"]["http_ms"]["waited_for_startup_reconcile_s"] >= 0  # timed only once the service settled
    assert report["recall"]["bm25_only_ms"]["n"] == 10
    assert report["brief"]["ms"]["n"] == 5
    assert report["peak_rss_mb"]["service_process"] > 0
    assert set(report["targets"]) == set(TARGETS)
    assert all(v["result"] in {"pass", "fail", "n/a"} for v in report["targets"].values())
    assert report["ingest"]["free_text"]["memories"] == report["workload"]["free_text"] > 0  # the batch path, timed
    assert report["ingest"]["free_text"]["per_s"] > 0
    for name in ("free_text_vs_mem0_add", "recall_http_p50_vs_mem0_search_p50"):
        assert report["targets"][name]["result"] == "n/a", name  # peers were off
    assert report["targets"]["brief_p50_ms"]["target"] == 50.0  # 60 ms from 100k memories
    assert report["plans"] and all(plan["operators"] for plan in report["plans"])
    json.dumps(report, default=str)  # --json prints it whole

    # Everything the run wrote lives in the bench's own spaces: the ingest space holds the whole history.
    records = gateway.rows("MATCH (o:Observation {space: 'bench-perf-120'}) RETURN count(o) AS n")
    assert records[0]["n"] == report["workload"]["observations"]
    records = gateway.rows("MATCH (n {space: 'bench-perf-120-graph'}) RETURN count(n) AS n")
    assert records[0]["n"] == 0, "the structured-writes space is wiped after it is measured"


def test_the_http_phase_leaves_the_process_logging_as_it_found_it(settings, gateway, embedder):
    import structlog

    from api.bench.perf.runner import recall_over_http
    from api.bench.perf.workload import generate

    memory = MemoryService.open(settings, gateway, embedder=embedder)
    before = structlog.get_config()
    work = generate(100, questions=3)
    memory.space("bench-perf-logging").graph.upsert_entities(work.entities[:5])
    summary = recall_over_http(memory, settings, work, "bench-perf-logging", lambda *_: None)
    assert summary["n"] == 3
    assert structlog.get_config() == before

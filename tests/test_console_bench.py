"""`kgmem bench console`: one small run times every console page and counts its Neo4j queries, on the real stack."""

from __future__ import annotations

import json

from api.bench.console import (
    BUDGETS,
    HUB_NEIGHBOURS,
    HUB_OBSERVATIONS,
    SECOND_HOP,
    ConsoleBenchOptions,
    run,
)
from api.cli import bench_commands
from api.cli.bench_commands import print_console
from memory.service import MemoryService


def test_the_hub_is_200_observations_and_a_2_hop_neighbourhood_of_300_nodes():
    assert HUB_OBSERVATIONS == 200
    assert HUB_NEIGHBOURS + HUB_NEIGHBOURS * SECOND_HOP == 300


def test_a_small_run_times_every_page_and_counts_its_neo4j_queries(settings, gateway, embedder):
    memory = MemoryService.open(settings, gateway, embedder=embedder)
    phases: set[str] = set()
    report = run(memory, settings, ConsoleBenchOptions(memories=120, requests=3),
                 progress=lambda phase, done, total: phases.add(phase))
    assert phases == {"ingest", "hub", "pages"}
    assert set(report["pages"]) == set(BUDGETS) == {"overview", "delegation", "entity", "graph"}
    for name in ("overview", "delegation"):  # served on every branch
        page = report["pages"][name]
        assert page["status"] == 200 and page["ms"]["n"] == 3, name
        assert 0 < page["queries"] <= BUDGETS[name], (name, page["queries"])
    for name in ("entity", "graph"):  # the explore pages: measured once they exist, else reported as missing
        page = report["pages"][name]
        assert page["missing"] is (page["status"] == 404), name
        if not page["missing"]:
            assert page["ms"]["n"] == 3 and page["queries"] > 0, name
    assert "/entities/" in report["pages"]["graph"]["path"] and "depth=2&limit=300" in report["pages"]["graph"]["path"]
    assert gateway.rows("MATCH (n {space: $space}) RETURN count(n) AS n", space=report["space"])[0]["n"] == 0  # wiped

    with bench_commands.out.capture() as printed:  # the module's console at call time
        print_console(report)
    table = printed.get()
    assert all(name in table for name in BUDGETS) and ("PASS" in table or "FAIL" in table)
    json.dumps(report, default=str)  # --json prints it whole

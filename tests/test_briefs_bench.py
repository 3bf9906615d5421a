"""`kgmem bench briefs`: the seeded plan, and one small run on the real stack (Neo4j, Chroma, the embedder).

No assertion is about speed or about how good briefs are: the benchmark measures, it does not judge here.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from rich.console import Console

from api.bench.brief_families import FAMILIES
from api.bench.briefs import TARGETS, BriefsBenchOptions, generate, norm, run
from memory.service import MemoryService

KGMEM = str(Path(sys.executable).parent / "kgmem")
SMALL = {"seed": 4242, "families": 2, "history": 4, "tests": 2}

WRITTEN = """
MATCH (d:Entity {space: $space, kind: 'Delegation'})
RETURN d.name AS delegation_id, d.task AS task, d.status AS status,
       head(COLLECT { MATCH (d)-[:DELEGATED_TO]->(a:Agent) RETURN a.name }) AS agent,
       head(COLLECT { MATCH (d)-[:PART_OF]->(p:Project) RETURN p.name }) AS project,
       COLLECT { MATCH (l:Lesson)-[:LEARNED_FROM]->(d) RETURN l.summary } AS lessons
"""


# -- the plan, no I/O -------------------------------------------------------------------------------
def test_the_same_seed_gives_the_same_plan_and_another_seed_another():
    first, again = generate(11, families=5, history=7, tests=2), generate(11, families=5, history=7, tests=2)
    assert first == again and first.digest() == again.digest()
    other = generate(12, families=5, history=7, tests=2)
    assert other.digest() != first.digest()
    assert [s.task for s in other.history] != [s.task for s in first.history]


def test_the_default_plan_has_the_variety_the_benchmark_needs():
    plan = generate()
    assert len(plan.families) == len(FAMILIES) >= 12
    assert len(plan.history) == 9 * len(FAMILIES) and len(plan.tests) == 3 * len(FAMILIES)
    history_tasks = {norm(s.task) for s in plan.history}
    asked = [*plan.tests, *(s for c in plan.closed_loop for s in (c.failure, c.follow_up))]
    assert not {norm(s.task) for s in asked} & history_tasks  # tasks under test are never history tasks
    assert len({norm(s.task) for s in asked}) == len(asked)
    assert {s.status for s in plan.history} == {"succeeded", "failed"}
    assert 0.3 < sum(1 for s in plan.history if s.project) / len(plan.history) < 0.7  # projects given and not
    assert any(s.project is None for s in plan.tests) and any(s.project for s in plan.tests)
    noise = [lesson for s in plan.history for lesson in s.lessons if lesson.family is None]
    assert noise and all(lesson.severity in {"low", "medium"} for lesson in noise)
    failures = [s for s in plan.history if s.status == "failed"]
    assert sum(1 for s in failures if any(l.severity == "high" for l in s.lessons)) > len(failures) / 2
    # Fresh closed-loop lessons are new text: never recorded in the history.
    recorded = {norm(lesson.text) for s in plan.history for lesson in s.lessons}
    assert all(norm(c.fresh_lesson) not in recorded for c in plan.closed_loop)

    wins = Counter(s.agent for s in plan.history if s.status == "succeeded")
    experts = [a for a in plan.agents if a.kind == "expert"]
    for family in plan.families:  # the expert is the right answer on the record: most successes in its family
        expert = plan.expert(family).name
        family_wins = Counter(s.agent for s in plan.history if s.family == family and s.status == "succeeded")
        assert family_wins[expert] > max((n for a, n in family_wins.items() if a != expert), default=0)
    # ... while the naive answer, most successes overall, is some non-expert
    top = max(wins, key=wins.get)
    assert plan.agent(top).kind != "expert" and wins[top] > max(wins[a.name] for a in experts)
    # and decoys do a family's work at least as often as its expert somewhere
    tasks = Counter((s.family, s.agent) for s in plan.history)
    decoys = [a for a in plan.agents if a.kind == "decoy"]
    assert any(tasks[(f, d.name)] >= tasks[(f, plan.expert(f).name)] for d in decoys for f in d.families)
    roles = {a.role for a in plan.agents}
    assert len(roles) >= 4


# -- a small run on the real stack ------------------------------------------------------------------
@pytest.fixture
def memory(settings, gateway, embedder):
    return MemoryService.open(settings, gateway, embedder=embedder)


def test_a_small_run_writes_the_history_through_brief_and_outcome_and_scores_every_metric(
        memory, gateway, space, settings, neo4j_server, tmp_path):
    options = BriefsBenchOptions(**SMALL, space=space, keep_space=True)
    phases: Counter[str] = Counter()
    report = run(memory, options, progress=lambda phase, done, total: phases.update([phase]))
    plan = generate(SMALL["seed"], families=SMALL["families"], history=SMALL["history"], tests=SMALL["tests"])
    assert phases == {"history": len(plan.history), "tests": len(plan.tests), "closed loop": len(plan.closed_loop)}

    # Every metric, with its naive baseline from the same run, in [0, 1].
    assert set(report.metrics) == set(TARGETS)
    for key, metric in report.metrics.items():
        assert metric.kgmem is not None and 0.0 <= metric.kgmem <= 1.0, key
        assert metric.baseline is not None and 0.0 <= metric.baseline <= 1.0, key
        assert metric.baseline_label and metric.target == TARGETS[key] and metric.n > 0
    assert report.metrics["expert_first"].n == len(plan.tests)
    assert report.metrics["closed_loop_hit_at_5"].n == len(plan.closed_loop)
    assert report.latency["brief_ms"]["n"] == len(plan.tests) + len(plan.closed_loop)
    assert report.latency["brief_ms"]["p50"] > 0 and report.latency["bm25_ms"]["n"] > 0
    for family in report.per_family.values():
        scores = [v for k, v in family.items() if k not in {"expert", "family_lessons_recorded"}]
        assert all(v is None or 0.0 <= v <= 1.0 for v in scores)
    assert report.params["plan_digest"] == plan.digest() and report.params["seed"] == SMALL["seed"]
    assert report.history["naive_agent"] and report.history["delegations"] == len(plan.history)
    json.dumps(report.to_dict())  # --json prints it

    # The history went through brief -> outcome: delegations with their status, agent, project and lessons.
    written = {row["delegation_id"]: row for row in gateway.rows(WRITTEN, space=space)}
    for step in plan.history:
        row = written[step.delegation_id]
        assert (row["task"], row["status"], row["agent"]) == (step.task, step.status, step.agent)
        assert (row["project"] is None) == (step.project is None)
        assert {norm(t) for t in row["lessons"]} == {norm(lesson.text) for lesson in step.lessons}
    assert sum(1 for s in plan.history if s.lessons) > 0
    for loop in plan.closed_loop:  # the closed loop's failure carries its fresh lesson, the follow-up is planned
        assert written[loop.failure.delegation_id]["status"] == "failed"
        assert [norm(t) for t in written[loop.failure.delegation_id]["lessons"]] == [norm(loop.fresh_lesson)]
        assert written[loop.follow_up.delegation_id]["status"] == "planned"
    for step in plan.tests:
        assert written[step.delegation_id]["status"] == "planned"
    assert len(written) == len(plan.history) + len(plan.tests) + 2 * len(plan.closed_loop)

    # Misses: exactly the briefs that missed, each with what the brief showed and why.
    expected_expert_misses = round((1 - report.metrics["expert_first"].kgmem) * len(plan.tests))
    assert sum(1 for m in report.misses if "expert" in m["missed"]) == expected_expert_misses
    expected_loop_misses = round((1 - report.metrics["closed_loop_hit_at_5"].kgmem) * len(plan.closed_loop))
    assert sum(1 for m in report.misses if m["phase"] == "closed_loop") == expected_loop_misses
    if report.metrics["lesson_recall_at_5"].kgmem < 1:
        assert any("lessons" in m["missed"] for m in report.misses)
    for miss in report.misses:
        assert miss["task"] and miss["why"] and all(isinstance(w, str) and w for w in miss["why"])
        assert all(lesson["reasons"] for lesson in miss["lessons"])  # every lesson in a brief says why
        assert all({"agent", "is", "score", "succeeded", "failed", "similar_tasks"} <= set(a) for a in miss["agents"])
        if "expert" in miss["missed"]:
            assert miss["expected_expert"] == plan.expert(miss["family"]).name
            assert miss["expert_family_delegations"]  # the expert's own record, with its similarity to the task
        if "lessons" in miss["missed"]:
            assert miss["missing_lessons"] and all("rank" in item for item in miss["missing_lessons"])
        if miss["phase"] == "closed_loop":
            assert miss["fresh_lesson"] in {c.fresh_lesson for c in plan.closed_loop}
            assert -1.0 <= miss["failed_task_cosine"] <= 1.0 and -1.0 <= miss["fresh_lesson_cosine"] <= 1.0
    assert report.miss_summary["expert_misses"] == expected_expert_misses

    # The report prints (the CLI's table and misses).
    from api.cli import bench_commands

    buffer = io.StringIO()
    original = bench_commands.out
    bench_commands.out = Console(file=buffer, width=200)
    try:
        bench_commands.print_briefs(report.to_dict(), misses=3)
    finally:
        bench_commands.out = original  # later tests capture through the module's own console
    printed = buffer.getvalue()
    assert "lesson recall@5" in printed and "expert first" in printed and "closed-loop hit@5" in printed
    assert "BM25 over lessons" in printed and "most successes overall" in printed

    # A second run with the same seed, through the CLI: the same plan, and its space is wiped afterwards.
    env = {**os.environ, "KGMEM_HOME": str(tmp_path / "cli-home"), "NEO4J_URI": neo4j_server.uri,
           "NEO4J_USERNAME": neo4j_server.username, "NEO4J_PASSWORD": neo4j_server.password,
           "NEO4J_DATABASE": neo4j_server.database}
    result = subprocess.run(
        [KGMEM, "bench", "briefs", "--seed", str(SMALL["seed"]), "--families", str(SMALL["families"]),
         "--history", str(SMALL["history"]), "--tests", str(SMALL["tests"]), "--json"],
        capture_output=True, text=True, env=env, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    again = json.loads(result.stdout)
    assert again["params"]["plan_digest"] == plan.digest()
    assert again["params"]["space"] == f"bench-briefs-{SMALL['seed']}"
    same = ("delegations", "succeeded", "failed", "lessons", "family_lessons", "noise_lessons", "learned_from",
            "projects", "agents", "naive_agent", "naive_agent_succeeded")
    assert {k: again["history"][k] for k in same} == {k: report.history[k] for k in same}
    assert set(again["metrics"]) == set(TARGETS)
    assert gateway.rows("MATCH (n {space: $space}) RETURN count(n) AS n", space=again["params"]["space"])[0]["n"] == 0

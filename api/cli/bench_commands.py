"""`kgmem bench …`: retrieval benchmarks run through the product's own ingestion and recall."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from api.cli.context import cli_services
from api.bench.locomo import CATEGORIES, DEFAULT_BATCH_TURNS, DEFAULT_K, BenchReport, run_benchmark

app = typer.Typer(
    help="Benchmarks: recall quality on LoCoMo (locomo); speed beside mem0 and the MCP memory server (perf); "
         "the console's page times (console); "
         "brief quality on a seeded orchestration history (briefs).",
    no_args_is_help=True,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

PHASES = {"ingest": "Ingesting turns", "query": "Asking questions"}


@contextmanager
def phase_bars(labels: dict[str, str], *, transient: bool) -> Iterator[Callable[[str, int, int], None]]:
    """Progress bars on stderr, one per phase as it first reports: `progress(phase, done, total)`, where a
    phase is labelled by `labels` (else by its own name) and a total of 0 means not known yet."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=err, transient=transient) as bars:
        tasks: dict[str, TaskID] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bars.add_task(labels.get(phase, phase), total=total or None)
            bars.update(tasks[phase], completed=done, total=total or None)

        yield progress


@app.command()
def locomo(
    data: Annotated[Path, typer.Option(exists=True, dir_okay=False, readable=True,
                                       help="A file in LoCoMo's JSON format (e.g. locomo10.json).")],
    rankings: Annotated[Path, typer.Option(help="Where to write kgmem's rankings (JSONL); the baselines go next "
                                                "to it as <stem>.bm25.jsonl and <stem>.vector.jsonl.")],
    samples: Annotated[int | None, typer.Option(min=1, help="Only the first N samples of the file.")] = None,
    k: Annotated[int, typer.Option("--k", min=1, max=100, help="Unique dia_ids written per question.")] = DEFAULT_K,
    scorer: Annotated[Path | None, typer.Option(dir_okay=False, help=(
        "An independent scorer (locomo_eval.py) to check kgmem's own scoring against; by default the one "
        "beside the checkout, when there is one."), show_default="<repo>/../shared/bench/locomo_eval.py")] = None,
    batch_turns: Annotated[int, typer.Option(min=1, help="Turns per add_observations call, in whole sessions "
                                             "(1: one session per call).")] = DEFAULT_BATCH_TURNS,
    as_json: Annotated[bool, typer.Option("--json", help="Print the numbers as one JSON object.")] = False,
) -> None:
    """Run the LoCoMo retrieval benchmark: ingest each sample into its own space (wiped first), ask every question through recall, and score kgmem, BM25 only and vector only with the independent scorer.

    Prints recall@5 and recall@10 for categories 1 to 4 and overall, the ingest rate, recall latency (p50, p95) and the wall time."""
    with cli_services() as services:
        with err.status("Loading the embedding model…"):
            memory = services.memory()
        with phase_bars(PHASES, transient=as_json) as progress:

            report = run_benchmark(memory, data, rankings, samples=samples, k=k, scorer=scorer, progress=progress,
                                   batch_turns=batch_turns)
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
        return
    print_report(report)


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def print_report(report: BenchReport) -> None:
    runs = list(report.methods.values())
    table = Table(title=f"LoCoMo retrieval: {', '.join(report.samples)} ({report.questions} questions, "
                        f"top {report.k} dia_ids, {report.embedding_model})", title_justify="left")
    table.add_column("metric")
    for run in runs:
        table.add_column(run.label, justify="right")
    groups = [(f"cat{c}", f"{c} {CATEGORIES[c]}") for c in (1, 2, 3, 4)] + [("overall", "overall (1-4)")]
    for group, name in groups:
        n = next((run.scores[group]["n"] for run in runs if isinstance(run.scores.get(group), dict)), 0)
        for k in (5, 10):
            style = "bold" if group == "overall" else None
            table.add_row(f"{name} R@{k} (n={n})", *(_cell(run.recall_at(group, k)) for run in runs), style=style)
    if any(isinstance(run.scores.get("cat5"), dict) for run in runs):
        table.add_row("5 adversarial R@10 (apart)", *(_cell(run.recall_at("cat5", 10)) for run in runs))
    table.add_section()
    for k in (5, 10):
        table.add_row(f"session-level recall_any@{k} (1-4)",
                      *(_cell(run.recall_at("overall", k, "session_any")) for run in runs))
    table.add_section()
    table.add_row("recall p50 ms", *(f"{run.p50_ms:.1f}" for run in runs))
    table.add_row("recall p95 ms", *(f"{run.p95_ms:.1f}" for run in runs))
    table.add_row("missing answers", *(str(run.scores.get("missing_answers", "–")) for run in runs))
    out.print(table)
    ingest = report.ingest
    out.print(
        f"ingest: {ingest.turns} turns of {ingest.samples} samples in {ingest.calls} calls, {ingest.seconds:.1f} s = "
        f"{ingest.turns_per_s:.1f} turns/s (embedding {ingest.embed_share:.0%}, Chroma writes {ingest.chroma_share:.0%}, "
        f"Neo4j and the rest {max(0.0, 1 - ingest.embed_share - ingest.chroma_share):.0%})"
    )
    if ingest.undated_sessions:
        out.print(f"[yellow]{ingest.undated_sessions} sessions had no date-time kgmem could read; their turns are "
                  "stored undated, in their order[/]")
    if ingest.skipped:
        out.print(f"[yellow]{len(ingest.skipped)} turns could not be read and were skipped, the first: "
                  f"{ingest.skipped[0]}[/]")
    out.print(f"queries: {report.questions * len(runs)} recalls in {report.query_seconds:.1f} s; "
              f"total wall time {report.wall_seconds:.1f} s")
    for method, channels in report.impure_baselines().items():
        out.print(f"[yellow]warning: the {report.methods[method].label} baseline also got hits from "
                  f"{', '.join(channels)}; RecallConfig has changed[/]")
    agreement = {run.scorers_agree() for run in runs}
    if agreement == {True}:
        out.print("the independent scorer agrees with every number above")
    elif False in agreement:
        out.print("[red]the independent scorer disagrees with kgmem's scoring: see --json[/]")
    out.print("rankings: " + ", ".join(str(run.rankings) for run in runs))


@app.command("tune-recall")
def tune_recall(
    data: Annotated[list[Path], typer.Option(exists=True, dir_okay=False, readable=True, help=(
        "A dataset in LoCoMo's format, already ingested by `kgmem bench locomo --data FILE`; give two or more."))],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
) -> None:
    """Cross-validate recall's fusion weights and boosts across datasets: leave one dataset out, choose the best configuration on the others, and report its score on the one left out beside the default's.

    Each question's candidates are gathered once and ranked under every configuration of the grid (api/bench/tune.py), so it takes minutes. It proposes the configuration with the best mean recall@10 only when, question by question, it gains beyond two standard errors on some dataset and loses beyond them on none."""
    from api.bench.tune import cross_validate

    with cli_services() as services:
        with err.status("Loading the embedding model…"):
            memory = services.memory()
        with phase_bars({}, transient=True) as progress:

            report = cross_validate(memory, data, progress=progress)
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
        return
    table = Table(title=f"Recall@10 by dataset ({report.configurations} configurations)", title_justify="left")
    table.add_column("configuration")
    for name in report.datasets:
        table.add_column(name, justify="right")
    table.add_row("current default", *(f"{report.default_scores[n]:.3f}" for n in report.datasets))
    table.add_row("best mean", *(f"{report.best_overall_scores[n]:.3f}" for n in report.datasets))
    out.print(table)
    for fold in report.folds:
        out.print(f"left out {fold['held_out']}: chosen on {', '.join(fold['chosen_on'])} -> "
                  f"{fold['held_out_score']:.3f} there (default {fold['default_held_out_score']:.3f}); {fold['config']}")
    for name, d in report.differences.items():
        out.print(f"best mean against the default on {name}: {d['mean']:+.4f} (standard error {d['se']:.4f}, "
                  f"{d['n']} questions)")
    verdict = "proposed" if report.proposed else "not proposed (no gain beyond noise, or a loss beyond it)"
    out.print(f"best mean configuration, {verdict}: {report.best_overall}")


PERF_PHASES = {"embed": "Embedding only", "graph": "Graph writes (no embedding)", "ingest": "Ingesting memories",
               "recall": "Recall in process", "recall over HTTP": "Recall over HTTP", "brief": "Briefs",
               "mem0": "mem0 add (peer)", "mcp": "MCP reference server (peer)"}


@app.command()
def perf(
    memories: Annotated[int, typer.Option(min=100, max=1_000_000, help="Memories in the synthetic history "
                                          "(observations, lessons and free-text memories).")] = 10_000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic history.")] = 7,
    questions: Annotated[int, typer.Option(min=10, max=5_000, help="Recall queries (and tasks briefed).")] = 200,
    http: Annotated[bool, typer.Option(help="Also time recall over HTTP against the real app.")] = True,
    peers: Annotated[bool, typer.Option(help="Run mem0 and the reference MCP memory server on the same data.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as one JSON object.")] = False,
) -> None:
    """Measure ingest, graph writes, recall (in process and over HTTP) and brief on a seeded synthetic
    orchestration history of N memories, beside mem0 and the reference MCP memory server, and print
    pass or fail against the targets. See BENCHMARKS.md."""
    from api.bench.perf.runner import PerfOptions, run

    with cli_services() as services:
        with err.status("Loading the embedding model…"):
            memory = services.memory()
        with phase_bars(PERF_PHASES, transient=as_json) as progress:

            report = run(memory, services.settings, PerfOptions(memories=memories, seed=seed, questions=questions,
                                                       briefs=min(questions, 100), http=http, peers=peers),
                         progress=progress)
    if as_json:
        typer.echo(json.dumps(report, default=str))
        return
    print_perf(report)


def _ms(summary: dict | None) -> str:
    if not summary or not summary.get("n"):
        return "–"
    return f"{summary['p50']:.1f} / {summary['p95']:.1f} / {summary['p99']:.1f}"


def print_perf(report: dict) -> None:
    table = Table(title=f"kgmem bench perf: {report['memories']:,} memories, seed {report['seed']}, "
                        f"{report['embedding_model']}", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    embedding, graph, ingest = report["embedding"], report["graph_writes"], report["ingest"]
    table.add_row("embedding only", f"{embedding['texts_per_s']:,.1f} texts/s ({embedding['device']})")
    table.add_row("ingest (normal path)", f"{ingest['memories_per_s']:,.1f} memories/s")
    free_text = ingest.get("free_text") or {}
    if free_text.get("per_s"):
        table.add_row(f"free-text memories ({free_text['memories']:,}, batch path)", f"{free_text['per_s']:,.1f} /s")
    table.add_row("graph writes, entities", f"{graph['entities_per_s']:,.1f} /s")
    table.add_row("graph writes, relations", f"{graph['relations_per_s']:,.1f} /s")
    table.add_row("recall in process p50/p95/p99 ms", _ms(report["recall"]["in_process_ms"]))
    table.add_row("recall over HTTP p50/p95/p99 ms", _ms(report["recall"].get("http_ms")))
    table.add_row("BM25 only p50/p95/p99 ms", _ms(report["recall"]["bm25_only_ms"]))
    table.add_row("brief p50/p95/p99 ms", _ms(report["brief"]["ms"]))
    rss = report["peak_rss_mb"]
    table.add_row("peak RSS, service / Neo4j", f"{rss['service_process']:,.0f} MB / "
                  + (f"{rss['neo4j']:,.0f} MB" if rss.get("neo4j") else "–"))
    peers = report.get("peers") or {}
    if "mem0" in peers:
        mem0 = peers["mem0"]
        table.add_section()
        table.add_row(f"mem0 add ({mem0['items']:,} one at a time)", f"{mem0['add_per_s']:,.1f} memories/s")
        table.add_row("mem0 search p50/p95/p99 ms", _ms(mem0["search_ms"]))
    for size, figures in (peers.get("mcp_reference") or {}).items():
        if isinstance(figures, dict):
            table.add_row(f"MCP reference at {int(size):,}: add_observations ms", _ms(figures["add_observations_ms"]))
            table.add_row(f"MCP reference at {int(size):,}: search_nodes ms", _ms(figures["search_nodes_ms"]))
        else:
            table.add_row("MCP reference server", str(figures))
    table.add_section()
    for name, value in report["ratios"].items():
        table.add_row(f"ratio {name}", "–" if value is None else f"{value:,.2f}")
    out.print(table)
    for name, verdict in report["targets"].items():
        colour = {"pass": "green", "fail": "red"}.get(verdict["result"], "yellow")
        note = f" ({verdict['note']})" if verdict["note"] else ""
        out.print(f"[{colour}]{verdict['result'].upper()}[/] {name}: {verdict['value']} (target {verdict['target']}){note}")
    scanned = [plan["query"] for plan in report["plans"] if plan["scans"]]
    out.print(f"plans: {len(report['plans'])} hot queries, "
              + (f"[red]scans in {', '.join(scanned)}[/]" if scanned else "all use indexes (--json prints them)"))
    out.print(f"wall time {report['wall_s']:.0f} s")


BRIEF_PHASES = {"history": "Writing the history (brief, then outcome)", "tests": "Briefing held-out tasks",
                "closed loop": "Closed loop (a failure, then the next brief)"}


@app.command()
def briefs(
    seed: Annotated[int, typer.Option(help="Seed of the generated history and tasks.")] = 7,
    families: Annotated[int | None, typer.Option(min=2, help="How many task families (drawn by the seed); "
                                                 "default: all of them.")] = None,
    history: Annotated[int, typer.Option(min=4, max=60, help="Delegations per family in the history.")] = 9,
    tests: Annotated[int, typer.Option(min=1, max=8, help="Held-out tasks briefed per family.")] = 3,
    misses: Annotated[int, typer.Option(min=0, help="How many misses to print, with their reasons "
                                        "(--json has them all).")] = 8,
    keep: Annotated[bool, typer.Option(help="Leave the benchmark's space (bench-briefs-<seed>) in place "
                                       "afterwards.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
) -> None:
    """Measure brief quality on a seeded orchestration history written through brief → outcome: lesson
    recall@5, expert-first rate, closed-loop hit@5 and brief latency, each beside a naive baseline from the
    same run (BM25 over lessons; the agent with the most successes). Lists the misses with their reasons."""
    from api.bench.briefs import BriefsBenchOptions
    from api.bench.briefs import run as run_briefs

    with cli_services() as services:
        with err.status("Loading the embedding model…"):
            memory = services.memory()
        with phase_bars(BRIEF_PHASES, transient=as_json) as progress:

            report = run_briefs(memory, BriefsBenchOptions(seed=seed, families=families, history=history, tests=tests,
                                                           keep_space=keep), progress=progress)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), default=str))
        return
    print_briefs(report.to_dict(), misses)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{label} {n}" for label, n in sorted(counts.items(), key=lambda x: -x[1])) or "none"


def _miss_summary(s: dict) -> str:
    ranks = {("not listed" if rank == "absent" else f"at rank {rank}"): n for rank, n in s["expert_rank_in_misses"].items()}
    return (f"expert not first in {s['expert_misses']}: first instead {_counts(s['expert_misses_first_agent_was'])}; "
            f"the expert {_counts(ranks)}. Family lessons short in {s['lesson_misses']}: "
            f"{s['missing_family_lessons_absent_from_brief']} missing lessons absent from the brief, "
            f"{s['missing_family_lessons_ranked_below_5']} ranked below 5; their top-5 places held "
            f"{_counts(s['top5_mix_in_lesson_misses'])}. Closed loop missed {s['closed_loop_misses']}, "
            f"the fresh lesson absent from the brief in {s['closed_loop_fresh_lesson_absent']}")


def print_briefs(report: dict, misses: int = 8) -> None:
    params, history = report["params"], report["history"]
    table = Table(title=f"kgmem bench briefs: seed {params['seed']}, {params['family_count']} families, "
                        f"{params['history_delegations']} delegations in the history, {params['test_briefs']} test "
                        f"briefs, {params['closed_loops']} closed loops ({params['embedding_model']})",
                  title_justify="left")
    for column in ("metric", "kgmem", "baseline", "target"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for metric in report["metrics"].values():
        target = "–" if metric["target"] is None else f"≥ {metric['target']:.2f}"
        colour = "" if metric["kgmem"] is None or metric["target"] is None else \
            ("green" if metric["kgmem"] >= metric["target"] else "red")
        value = _cell(metric["kgmem"])
        table.add_row(f"{metric['name']} (n={metric['n']}; baseline: {metric['baseline_label']})",
                      f"[{colour}]{value}[/]" if colour else value, _cell(metric["baseline"]), target)
    table.add_section()
    brief, bm25 = report["latency"]["brief_ms"], report["latency"]["bm25_ms"]
    for q in ("p50", "p95"):
        table.add_row(f"brief {q} ms (baseline: the BM25 query)", f"{brief[q]:.1f}" if brief.get("n") else "–",
                      f"{bm25[q]:.1f}" if bm25.get("n") else "–", "–")
    out.print(table)
    out.print(f"history: {history['delegations']} delegations ({history['succeeded']} succeeded, {history['failed']} "
              f"failed), {history['lessons']} lessons ({history['family_lessons']} of the families, "
              f"{history['noise_lessons']} noise), {history['learned_from']} LEARNED_FROM, {history['projects']} "
              f"projects, {history['agents']} agents; most successes: {history['naive_agent']} "
              f"({history['naive_agent_is']}, {history['naive_agent_succeeded']}; the best expert has "
              f"{history['most_successes_of_an_expert']})")
    out.print("per family: " + ", ".join(
        f"{key} {_cell(f['lesson_recall_at_5'])}/{_cell(f['expert_first'])}/{_cell(f['closed_loop_hit_at_5'])}"
        for key, f in report["per_family"].items()) + " (recall@5 / expert first / closed loop)")
    found = report["misses"]
    out.print(f"misses: {len(found)} ({_miss_summary(report['miss_summary'])})", highlight=False)
    for miss in found[:misses]:
        head = f"{miss['phase']} · {miss['family']} · {', '.join(miss['missed'])}: {miss['task']}"
        out.print("\n" + head + (f" (project {miss['project']})" if miss.get("project") else ""),
                  style="bold", markup=False, highlight=False)
        lines = [f"  why: {why}" for why in miss["why"]]
        lines += [f"  {x['rank']}. [{x['is']}] {x['score']:.3f} {x['text'][:90]} ({'; '.join(x['reasons'])})"
                  for x in miss["lessons"]]
        for lesson in miss.get("missing_lessons", [])[:3]:
            where = f"rank {lesson['rank']}, {'; '.join(lesson['reasons'])}" if lesson["rank"] else lesson["why"]
            lines.append(f"  missing: {lesson['text'][:90]} ({where})")
        for line in lines:
            out.print(line, markup=False, highlight=False)
    if len(found) > misses:
        out.print(f"\n… {len(found) - misses} more misses (--misses N prints more, --json prints all)")
    out.print(f"\nwall time {report['wall_seconds']:.0f} s")


CONSOLE_PHASES = {"ingest": "Ingesting memories", "hub": "The 200-observation entity and its 2 hops",
                  "pages": "Timing the console's pages"}


@app.command()
def console(
    memories: Annotated[int, typer.Option(min=100, max=1_000_000, help="Memories in the synthetic history "
                                          "(as `kgmem bench perf`).")] = 10_000,
    requests: Annotated[int, typer.Option(min=1, max=1_000, help="Timed requests per page, after one warm-up.")] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic history.")] = 7,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as one JSON object.")] = False,
) -> None:
    """Time the console's pages server-side on a seeded space of N memories: the overview, a delegation, an
    entity with 200 observations and its 2-hop graph of 300 nodes. Prints p50/p95 and the Neo4j queries per
    page, with pass or fail against p50 < 300 ms and each page's query budget. See BENCHMARKS.md."""
    from api.bench.console import ConsoleBenchOptions, run

    with cli_services() as services:
        with err.status("Loading the embedding model…"):
            memory = services.memory()
        with phase_bars(CONSOLE_PHASES, transient=as_json) as progress:

            report = run(memory, services.settings, ConsoleBenchOptions(memories=memories, seed=seed,
                                                                        requests=requests), progress=progress)
    if as_json:
        typer.echo(json.dumps(report, default=str))
        return
    print_console(report)


def print_console(report: dict) -> None:
    table = Table(title=f"kgmem bench console: {report['memories']:,} memories, {report['requests']} requests "
                        f"per page", title_justify="left")
    for column, justify in (("page", "left"), ("p50 ms", "right"), ("p95 ms", "right"), ("Neo4j queries", "right"),
                            ("budget", "right"), ("result", "left")):
        table.add_column(column, justify=justify)
    for name, page in report["pages"].items():
        if page["missing"]:
            table.add_row(name, "–", "–", "–", "–", "[yellow]missing (404)[/]")
            continue
        result = "[green]PASS[/]" if page["passed"] else "[red]FAIL[/]"
        table.add_row(name, f"{page['ms']['p50']:.1f}", f"{page['ms']['p95']:.1f}", str(page["queries"]),
                      str(page["budget"]), result)
    out.print(table)
    out.print(f"targets: p50 < {report['targets']['p50_ms']:.0f} ms and at most the budget of Neo4j queries per page; "
              f"wall time {report['wall_s']:.0f} s")

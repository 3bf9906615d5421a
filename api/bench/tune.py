"""Choosing recall's defaults by cross-validation across datasets (`kgmem bench tune-recall`).

Each question's candidates are gathered once (`Recall.gather`, the default candidate depth), then
ranked under every configuration of a grid (`Recall.rank`, pure), so a grid of hundreds costs
minutes, not hours. Each dataset must have been ingested by `kgmem bench locomo --data FILE` first
(its spaces are reused as they are).

Leave one dataset out: for each dataset, the configuration that scores best on the others is
reported with its score on the one left out, beside the current default's. The configuration with
the best mean recall@10 over all datasets is proposed as the new default only when, question by
question against the current default, it gains significantly on some dataset and loses
significantly on none (`verdict`: a paired mean difference beyond two standard errors). Datasets
differ in size: 0.04 on 30 questions is one question, 0.01 on 1,500 is fifteen.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from api.bench.locomo import dia_ids, load_data, space_for
from api.bench.scoring import question_recall
from graph.errors import InvalidInput
from memory.recall import Gathered, RecallConfig, RecallQuery
from memory.service import MemoryService

K = 10
SIGNIFICANT_SE = 2.0  # a paired mean difference beyond this many standard errors is a real gain or loss
OBSERVATION_REFS = """
UNWIND $ids AS id
MATCH (o:Observation {id: id})
WHERE o.space = $space
RETURN o.id AS id, o.ref AS ref
"""

# What the grid varies: fusion weights and boosts (the candidate depth stays the default).
GRID: dict[str, Sequence[float]] = {
    "keyword": (0.5, 0.75, 1.0),
    "keyword_window": (0.5, 1.0),
    "vector": (0.75, 1.0, 1.5),
    "vector_window": (0.5, 1.0),
    "graph": (0.0, 0.5),
    "named_boost": (0.0, 0.5),
    "time_boost": (0.0, 0.5),
}
WEIGHTS = ("keyword", "keyword_window", "vector", "vector_window", "graph")


def configurations(base: RecallConfig, grid: dict[str, Sequence[float]] = GRID) -> list[RecallConfig]:
    names = list(grid)
    found = []
    for values in itertools.product(*(grid[name] for name in names)):
        chosen = dict(zip(names, values))
        weights = {**base.weights, **{w: chosen[w] for w in WEIGHTS if w in chosen}}
        others = {n: v for n, v in chosen.items() if n not in WEIGHTS}
        found.append(base.model_copy(update={"weights": weights, **others}))
    return found


def describe(config: RecallConfig) -> dict[str, float]:
    return {**{w: config.weights.get(w, 0.0) for w in WEIGHTS}, "named_boost": config.named_boost,
            "time_boost": config.time_boost}


@dataclass
class _Question:
    sample_id: str
    qa_index: int
    query: RecallQuery
    gathered: Gathered
    refs: dict[str, str]  # observation id -> dia_id


@dataclass
class TuneReport:
    datasets: list[str]
    configurations: int
    default: dict[str, float]
    default_scores: dict[str, float]
    best_overall: dict[str, float]
    best_overall_scores: dict[str, float]
    proposed: bool
    differences: dict[str, dict[str, float]] = field(default_factory=dict)  # best mean - default, per dataset
    folds: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__


def _gather(memory: MemoryService, path: Path, config: RecallConfig, progress: Callable[[int], None] | None
            ) -> tuple[list[dict[str, Any]], list[_Question]]:
    data = load_data(path)
    questions = []
    for sample in data:
        space = space_for(sample["sample_id"])
        target = memory.space(space)
        if not target.graph.rows("MATCH (o:Observation {space: $space}) RETURN o.id AS id LIMIT 1"):
            raise InvalidInput(f"{path}: sample {sample['sample_id']} is not ingested; run `kgmem bench locomo "
                               f"--data {path}` first")
        for qa_index, qa in enumerate(sample.get("qa") or []):
            text = str(qa.get("question") or "").strip()[:4000]
            if not text:
                continue
            query = RecallQuery(text=text, limit=50)
            gathered = memory.recaller.gather(space, query, config)
            ids = [c.id for c in gathered.pool.values() if c.type == "observation"]
            refs = {row["id"]: row["ref"] for row in target.graph.rows(OBSERVATION_REFS, ids=ids)}
            questions.append(_Question(str(sample["sample_id"]), qa_index, query, gathered, refs))
            if progress:
                progress(1)
    return data, questions


@dataclass(frozen=True)
class _Ranked:
    type: str
    ref: str | None


def _per_question(memory: MemoryService, data: list[dict[str, Any]], questions: list[_Question],
                  config: RecallConfig) -> dict[tuple[str, int], float]:
    rankings = {}
    for q in questions:
        ranked = memory.recaller.rank(q.query, config, q.gathered)
        rankings[(q.sample_id, q.qa_index)] = dia_ids(
            [_Ranked(c.type, q.refs.get(c.id)) for c in ranked], 20)
    return question_recall(data, rankings, K)


def difference(candidate: dict[Any, float], default: dict[Any, float]) -> dict[str, float]:
    """The paired difference of two configurations over the same questions: mean, standard error, n."""
    diffs = [candidate[q] - default[q] for q in default]
    n = len(diffs)
    mean = sum(diffs) / n if n else 0.0
    variance = sum((d - mean) ** 2 for d in diffs) / (n - 1) if n > 1 else 0.0
    return {"mean": round(mean, 4), "se": round(math.sqrt(variance / n), 4) if n else 0.0, "n": n}


def verdict(differences: dict[str, dict[str, float]]) -> bool:
    """Propose a change only when it gains beyond noise somewhere and loses beyond noise nowhere."""
    def beyond(d: dict[str, float]) -> float:
        return SIGNIFICANT_SE * d["se"]

    gains = [d for d in differences.values() if d["mean"] > beyond(d) and d["mean"] > 0]
    losses = [d for d in differences.values() if d["mean"] < -beyond(d) and d["mean"] < 0]
    return bool(gains) and not losses


def _mean(scores: dict[Any, float]) -> float:
    return round(sum(scores.values()) / len(scores), 4) if scores else 0.0


def cross_validate(memory: MemoryService, paths: Sequence[Path], *, grid: dict[str, Sequence[float]] = GRID,
                   progress: Callable[[str, int, int], None] | None = None) -> TuneReport:
    if len(paths) < 2:
        raise InvalidInput("cross-validation across datasets needs at least two --data files")
    default = memory.recaller.config
    names = [Path(p).name for p in paths]
    gathered = {}
    for name, path in zip(names, paths):
        done = 0

        def step(n: int, name: str = name) -> None:
            nonlocal done
            done += n
            if progress:
                progress(f"gathering {name}", done, 0)

        gathered[name] = _gather(memory, Path(path), default, step)
    grid_configs = configurations(default, grid)
    per_question: list[dict[str, dict]] = []
    for i, config in enumerate(grid_configs):
        per_question.append({name: _per_question(memory, *gathered[name], config) for name in names})
        if progress:
            progress("ranking", i + 1, len(grid_configs))
    scores = [{name: _mean(found[name]) for name in names} for found in per_question]
    default_found = {name: _per_question(memory, *gathered[name], default) for name in names}
    default_scores = {name: _mean(default_found[name]) for name in names}

    folds = []
    for held_out in names:
        others = [n for n in names if n != held_out]
        best = max(range(len(grid_configs)), key=lambda i: (sum(scores[i][n] for n in others), -i))
        folds.append({"held_out": held_out, "chosen_on": others, "config": describe(grid_configs[best]),
                      "held_out_score": scores[best][held_out], "default_held_out_score": default_scores[held_out],
                      "chosen_on_scores": {n: scores[best][n] for n in others}})
    best = max(range(len(grid_configs)), key=lambda i: (sum(scores[i].values()), -i))
    differences = {n: difference(per_question[best][n], default_found[n]) for n in names}
    return TuneReport(datasets=names, configurations=len(grid_configs), default=describe(default),
                      default_scores=default_scores, best_overall=describe(grid_configs[best]),
                      best_overall_scores=scores[best], proposed=verdict(differences), differences=differences,
                      folds=folds)

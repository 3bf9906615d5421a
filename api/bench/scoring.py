"""Scoring conversational-recall rankings: kgmem's own scorer, so `kgmem bench locomo` works anywhere.

Per question with evidence, over its ranked dialogue ids (duplicates after the first ignored):

- `recall@k`: the share of its evidence turns among the first k;
- `session_any@k`: whether any evidence session is among the first k distinct sessions of the
  ranked turns (session-level recall, as LongMemEval-S results are published).

Averages are per category and "overall" over categories 1-4. A question with evidence but no ranking
counts as a miss. Evidence ids are repaired the way LoCoMo needs ("D8:6; D9:17", "D:11:26", "D30:05"),
and ids that name no turn of the conversation are dropped. When the independent scorer of the
benchmark's protocol is at hand, the run is scored by it too and the two must agree.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

DIALOGUE_ID = re.compile(r"^D(\d+):(\d+)$")
SESSION_KEY = re.compile(r"^session_\d+$")
OVERALL_CATEGORIES = (1, 2, 3, 4)


def turn_ids(conversation: Mapping[str, Any]) -> set[str]:
    return {str(turn["dia_id"]) for key, turns in conversation.items() if SESSION_KEY.match(key) and isinstance(turns, list)
            for turn in turns if isinstance(turn, dict) and turn.get("dia_id")}


def evidence_ids(raw: Iterable[Any] | None, known: set[str]) -> list[str]:
    """The evidence as canonical dialogue ids of turns that exist, in order, once each."""
    found: list[str] = []
    for entry in raw or []:
        for part in re.split(r"[;,\s]+", str(entry).strip()):
            match = DIALOGUE_ID.match(part.replace("D:", "D"))
            if match:
                canonical = f"D{int(match.group(1))}:{int(match.group(2))}"
                if canonical in known and canonical not in found:
                    found.append(canonical)
    return found


def session_of(dialogue_id: str) -> str:
    match = DIALOGUE_ID.match(dialogue_id)
    return match.group(1) if match else dialogue_id


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def question_recall(data: Sequence[Mapping[str, Any]], rankings: Mapping[tuple[str, int], Sequence[str]],
                    k: int) -> dict[tuple[str, int], float]:
    """recall@k of each question `score` counts in `overall`, by (sample_id, position in its qa list)."""
    found = {}
    for sample in data:
        known = turn_ids(sample["conversation"])
        for position, qa in enumerate(sample.get("qa") or []):
            gold = set(evidence_ids(qa.get("evidence"), known))
            if not gold or int(qa.get("category") or 0) not in OVERALL_CATEGORIES:
                continue
            ranked = _unique(rankings.get((str(sample["sample_id"]), position)) or [])
            found[(str(sample["sample_id"]), position)] = len(gold.intersection(ranked[:k])) / len(gold)
    return found


def score(data: Sequence[Mapping[str, Any]], rankings: Mapping[tuple[str, int], Sequence[str]],
          ks: Sequence[int] = (5, 10)) -> dict[str, Any]:
    """Scores by category (`cat1`…) and `overall`, each with `n`, and `missing_answers`."""
    sums: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[int, int] = defaultdict(int)
    missing = 0
    for sample in data:
        known = turn_ids(sample["conversation"])
        for position, qa in enumerate(sample.get("qa") or []):
            gold = set(evidence_ids(qa.get("evidence"), known))
            if not gold:
                continue
            category = int(qa.get("category") or 0)
            ranked = rankings.get((str(sample["sample_id"]), position))
            if ranked is None:
                missing += 1
                ranked = []
            ranked = _unique(ranked)
            sessions = _unique(session_of(d) for d in ranked)
            gold_sessions = {session_of(d) for d in gold}
            counts[category] += 1
            for k in ks:
                sums[category][f"recall@{k}"] += len(gold.intersection(ranked[:k])) / len(gold)
                sums[category][f"session_any@{k}"] += float(bool(gold_sessions.intersection(sessions[:k])))

    def average(categories: Iterable[int]) -> dict[str, float] | None:
        categories = [c for c in categories if counts[c]]
        n = sum(counts[c] for c in categories)
        if not n:
            return None
        metrics = sorted({name for c in categories for name in sums[c]})
        return {**{name: round(sum(sums[c][name] for c in categories) / n, 4) for name in metrics}, "n": n}

    result: dict[str, Any] = {f"cat{c}": average([c]) for c in sorted(counts)}
    result["overall"] = average(OVERALL_CATEGORIES)
    result["missing_answers"] = missing
    return result

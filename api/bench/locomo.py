"""The LoCoMo retrieval benchmark: conversations in through the normal ingestion path, questions
out through the normal recall, rankings scored by kgmem and, when it is at hand, the independent scorer.

    memory = MemoryService.open(settings, gateway)
    report = run_benchmark(memory, Path("locomo10.json"), Path("rankings.jsonl"))

What it does, per the protocol in `shared/bench/README.md` (retrieval only, no LLM):

- every sample goes into its own space, `locomo-<sample_id>`, wiped first so reruns are clean;
- the conversation is a `Thing` entity (type "conversation"), each speaker a `Person` that
  `PARTICIPATES_IN` it;
- every turn is an observation of its speaker: the turn's text (a shared photo's caption
  appended), `valid_from` the session's date-time (UTC), `ref` its dia_id, `seq` its position in
  the session, and provenance `source = "<sample_id>/session_<n>"`, `agent = <speaker>`; written
  by `add_observations` in calls of whole sessions (up to `batch_turns` turns), so vectors follow
  as they do for any write;
- every question is asked through `SpaceMemory.recall` in its sample's space; observation items
  give their `ref`, the first `k` unique ones are written as one JSON line per question;
- the same questions run again with a `RecallConfig` that keeps only the keyword channel
  ("BM25 only") and only the vector channel ("vector only"), as baselines on the same data;
- each rankings file is scored by `api/bench/scoring.py` (turn-level recall@k and session-level
  recall, `session_any@k`) and, when the protocol's `locomo_eval.py` is at hand (`--scorer`, or
  `../shared/bench/locomo_eval.py` beside the checkout), by it too in a subprocess, and the report
  says whether the two agree; a fresh clone without it still runs the whole benchmark.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from api.bench import scoring
from graph.dates import read_datetime
from graph.errors import ConfigurationError, InvalidInput, KgmemError
from graph.model import EntityIn, EntityRef, ObservationIn, Provenance, RelationIn
from graph.vocabulary import Kind
from memory.recall import RecallConfig, RecallQuery
from memory.service import MemoryService, SpaceMemory

log = logging.getLogger(__name__)

SESSION_KEY = re.compile(r"^session_(\d+)$")
SPACE_PREFIX = "locomo-"
PARTICIPATES_IN = "PARTICIPATES_IN"
CONVERSATION_TYPE = "conversation"
DEFAULT_K = 20
FETCH_LIMIT = 50  # items asked of recall per question; entities and repeated refs are skipped
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
WIPE_BATCH = 1000
WIPE_SPACE = """
MATCH (n {space: $space})
CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF $batch ROWS
RETURN count(*) AS deleted
"""
# Turns per `add_observations` call; whole sessions are grouped up to this. Larger calls let the vector
# sync embed a few hundred texts at once, which sentence-transformers sorts by length into even batches:
# on 2 CPU cores that embeds about twice as fast as one session (~20 turns and their windows) per call.
DEFAULT_BATCH_TURNS = 512

# The hybrid product first, then the two single-channel baselines.
METHODS: dict[str, str] = {"kgmem": "kgmem recall (hybrid)", "bm25": "BM25 only", "vector": "vector only"}
BASELINE_CHANNEL = {"bm25": "keyword", "vector": "vector"}

Progress = Callable[[str, int, int], None]  # (phase, done, total): phase is "ingest" or "query"


def default_scorer() -> Path:
    """`<repo>/../shared/bench/locomo_eval.py`."""
    return Path(__file__).resolve().parents[3] / "shared" / "bench" / "locomo_eval.py"


# -- the data ------------------------------------------------------------------------------------

def space_for(sample_id: Any) -> str:
    """The space a sample is ingested into: "locomo-" + its id, kept to [A-Za-z0-9_.:-]."""
    slug = re.sub(r"[^A-Za-z0-9_.:-]+", "-", str(sample_id)).strip("-") or "sample"
    return (SPACE_PREFIX + slug)[:128]


def load_data(path: Path) -> list[dict[str, Any]]:
    """A LoCoMo-format file: a list of {"sample_id", "conversation", "qa"}."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise InvalidInput(f"{path} is not JSON: {exc}") from exc
    if not isinstance(data, list):
        raise InvalidInput(f"{path}: expected a list of samples, found {type(data).__name__}")
    seen: set[str] = set()
    for position, sample in enumerate(data):
        if not isinstance(sample, dict) or not isinstance(sample.get("conversation"), dict) or "sample_id" not in sample:
            raise InvalidInput(f"{path}: sample {position} lacks sample_id or conversation")
        space = space_for(sample["sample_id"])
        if space in seen:
            raise InvalidInput(f"{path}: two samples map to the same space {space!r}")
        seen.add(space)
    return data


def sessions(sample: dict[str, Any]) -> list[tuple[int, datetime | None, list[Any]]]:
    """(number, date-time or None when unreadable, turns) for each session, in session order."""
    conversation = sample["conversation"]
    found = []
    for key, turns in conversation.items():
        match = SESSION_KEY.match(key)
        if match and isinstance(turns, list):
            number = int(match.group(1))
            found.append((number, read_datetime(conversation.get(f"{key}_date_time")), turns))
    return sorted(found, key=lambda session: session[0])


def turn_text(turn: dict[str, Any]) -> str:
    """The turn's content: its text, and the caption of a photo it shares."""
    text = str(turn.get("text") or "").strip()
    caption = str(turn.get("blip_caption") or "").strip()
    if caption:
        text = f"{text} [shares a photo: {caption}]".strip()
    return text


def speakers(sample: dict[str, Any]) -> list[str]:
    conversation = sample["conversation"]
    names = [conversation.get("speaker_a"), conversation.get("speaker_b")]
    names += [turn.get("speaker") for _, _, turns in sessions(sample) for turn in turns if isinstance(turn, dict)]
    unique: list[str] = []
    for name in names:
        name = str(name or "").strip()
        if name and name not in unique:
            unique.append(name)
    return unique


def graph_of(sample: dict[str, Any]) -> tuple[list[EntityIn], list[RelationIn]]:
    """The conversation and its speakers, as an agent would record them."""
    sample_id = str(sample["sample_id"])
    provenance = Provenance(source=sample_id)
    conversation = EntityIn(kind=Kind.THING, entity_type=CONVERSATION_TYPE, name=sample_id, provenance=provenance)
    people = [EntityIn(kind=Kind.PERSON, name=name, provenance=provenance) for name in speakers(sample)]
    relations = [
        RelationIn(source=EntityRef(name=person.name, kind=Kind.PERSON), type=PARTICIPATES_IN,
                   target=EntityRef(name=sample_id, kind=Kind.THING), provenance=provenance)
        for person in people
    ]
    return [conversation, *people], relations


@dataclass
class SampleTurns:
    """A sample's turns as observations, one list per session, and what could not be read (with why)."""

    sessions: list[list[ObservationIn]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    undated_sessions: int = 0

    @property
    def turns(self) -> int:
        return sum(len(session) for session in self.sessions)


def read_turns(sample: dict[str, Any]) -> SampleTurns:
    """Every readable turn as an observation. A malformed turn (no speaker, text or dia_id, a text over
    the cap) is skipped and reported; the rest go in. A session whose date-time cannot be read keeps its
    turns undated, placed by their order (warned once per sample), never dated "now"."""
    sample_id = str(sample["sample_id"])
    read = SampleTurns()
    for number, at, turns in sessions(sample):
        session = []
        for seq, turn in enumerate(turns):
            where = f"{sample_id} session {number} turn {seq}"
            if not isinstance(turn, dict):
                read.skipped.append(f"{where}: not an object")
                continue
            speaker, text, dia_id = str(turn.get("speaker") or "").strip(), turn_text(turn), turn.get("dia_id")
            if not speaker or not text or not dia_id:
                read.skipped.append(f"{where}: no speaker, text or dia_id")
                continue
            try:
                session.append(ObservationIn(
                    entity=EntityRef(name=speaker, kind=Kind.PERSON), text=text, valid_from=at, undated=at is None,
                    ref=str(dia_id), seq=seq, provenance=Provenance(source=f"{sample_id}/session_{number}", agent=speaker),
                ))
            except ValidationError as exc:
                problem = exc.errors()[0]
                read.skipped.append(f"{where} ({dia_id}): {'.'.join(map(str, problem['loc']))}: {problem['msg']}")
        if session:
            read.sessions.append(session)
            read.undated_sessions += at is None
    if read.undated_sessions:
        log.warning("%s: %d session(s) have no date-time kgmem can read; their turns are stored undated",
                    sample_id, read.undated_sessions)
    for problem in read.skipped:
        log.warning("skipped %s", problem)
    return read


def batches_of(read: SampleTurns, batch_turns: int = DEFAULT_BATCH_TURNS) -> list[list[ObservationIn]]:
    """The turns in calls of up to `batch_turns`, whole sessions only (a longer session is one call)."""
    batches: list[list[ObservationIn]] = []
    for session in read.sessions:
        if batches and len(batches[-1]) + len(session) <= batch_turns:
            batches[-1].extend(session)
        else:
            batches.append(list(session))
    return batches


# -- ingestion -------------------------------------------------------------------------------------

@dataclass
class IngestStats:
    samples: int = 0
    turns: int = 0
    calls: int = 0  # add_observations calls
    seconds: float = 0.0  # wall time of the writes (Neo4j, embedding, Chroma), not of the wipes
    embed_seconds: float = 0.0
    chroma_seconds: float = 0.0
    undated_sessions: int = 0
    skipped: list[str] = field(default_factory=list)  # turns that could not be read, each with why

    @property
    def turns_per_s(self) -> float:
        return self.turns / self.seconds if self.seconds else 0.0

    @property
    def embed_share(self) -> float:
        return self.embed_seconds / self.seconds if self.seconds else 0.0

    @property
    def chroma_share(self) -> float:
        return self.chroma_seconds / self.seconds if self.seconds else 0.0


@contextmanager
def _timing_vectors(memory: MemoryService, stats: IngestStats) -> Iterator[None]:
    """Measure how much of ingestion goes to embedding and to Chroma writes, through their observers."""
    def embedded(operation: str, seconds: float) -> None:
        stats.embed_seconds += seconds

    def written(operation: str, seconds: float) -> None:
        if operation == "upsert":
            stats.chroma_seconds += seconds

    stops = [memory.embedder.observe(embedded), memory.index.observe(written)]
    try:
        yield
    finally:
        for stop in stops:
            stop()


def wipe_space(memory: MemoryService, space: str) -> int:
    """Remove everything in `space`, in Neo4j and in Chroma. Returns the nodes deleted.

    Neo4j commits every `WIPE_BATCH` nodes: one transaction for a 100k-memory space outgrows the
    transaction memory of a default heap."""
    deleted = memory.gateway.run_implicit(WIPE_SPACE, space=space, batch=WIPE_BATCH)[0]["deleted"]
    memory.index.delete_space(space)
    return deleted


def ingest_sample(memory: MemoryService, sample: dict[str, Any], *, on_turns: Callable[[int], None] | None = None,
                  stats: IngestStats | None = None, batch_turns: int = DEFAULT_BATCH_TURNS) -> IngestStats:
    """Wipe the sample's space, then write its conversation, speakers and turns through `SpaceMemory`,
    whole sessions at a time, up to `batch_turns` turns per call (1: one session per call)."""
    stats = stats or IngestStats()
    space = space_for(sample["sample_id"])
    wipe_space(memory, space)
    target = memory.space(space)
    entities, relations = graph_of(sample)
    read = read_turns(sample)
    stats.undated_sessions += read.undated_sessions
    stats.skipped += read.skipped
    started = time.perf_counter()
    with _timing_vectors(memory, stats):
        target.graph.upsert_entities(entities)
        target.graph.upsert_relations(relations)
        for batch in batches_of(read, batch_turns):
            target.graph.add_observations(batch)
            stats.calls += 1
            stats.turns += len(batch)
            if on_turns:
                on_turns(len(batch))
        # The writes above log and swallow a failing vector sync (the reconciler would finish it);
        # a benchmark must not silently run on a partial index, so finish here and let errors raise.
        memory.sync.process_pending(space=space)
    stats.seconds += time.perf_counter() - started
    stats.samples += 1
    return stats


# -- querying ----------------------------------------------------------------------------------------

def channel_only(channel: str, base: RecallConfig | None = None) -> RecallConfig:
    """A recall configuration that runs one channel ("keyword" or "vector") and nothing else.

    Every other channel weighs 0 (which is what turns a channel off), and whatever else would
    bring in or reorder items is off too: name matching, graph expansion, observations of seed
    entities, neighbours in a sequence, per-channel candidate counts of other channels, boosts and
    recency. Fields the configuration does not have are skipped, so this follows `RecallConfig`
    as it changes; `BenchReport.impure_baselines` names any channel that still answered.
    """
    base = base or RecallConfig()
    fields = type(base).model_fields
    update: dict[str, Any] = {}
    for name in fields:
        if name.endswith("_k") and name not in ("rrf_k", f"{channel}_k"):  # vector_k, keyword_k, ...
            update[name] = 0
        elif name.endswith("_boost"):  # named_boost, time_boost: reorder by more than the channel
            update[name] = 0.0
    for name, off in (("name_matches", False), ("expansion_depth", 0), ("expansion_seeds", 0),
                      ("observations_per_entity", 0), ("sequence_window", 0), ("recency_half_life_days", None)):
        if name in fields:
            update[name] = off
    if "weights" in fields:
        channels = {*base.weights, "keyword", "vector", "name", "graph"}
        update["weights"] = {name: 0.0 for name in sorted(channels)} | {channel: 1.0}
    return type(base).model_validate({**base.model_dump(), **update})


def configs() -> dict[str, RecallConfig | None]:
    """Method -> configuration; None is the service's own (the product's default)."""
    return {"kgmem": None, **{method: channel_only(channel) for method, channel in BASELINE_CHANNEL.items()}}


def dia_ids(items: Sequence[Any], k: int) -> list[str]:
    """The first `k` unique refs of the observation items, best first."""
    ranked: list[str] = []
    for item in items:
        if item.type == "observation" and item.ref and item.ref not in ranked:
            ranked.append(item.ref)
            if len(ranked) == k:
                break
    return ranked


@dataclass
class MethodRun:
    method: str
    label: str
    rankings: Path
    latencies_ms: list[float] = field(default_factory=list)
    channel_hits: dict[str, int] = field(default_factory=dict)  # summed over questions
    scores: dict[str, Any] = field(default_factory=dict)  # kgmem's scoring (api/bench/scoring.py)
    independent: dict[str, Any] | None = None  # the protocol's independent scorer's, when it was at hand

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies_ms, 50)

    @property
    def p95_ms(self) -> float:
        return percentile(self.latencies_ms, 95)

    def recall_at(self, group: str, k: int, metric: str = "recall") -> float | None:
        row = self.scores.get(group)
        return row.get(f"{metric}@{k}") if isinstance(row, dict) else None

    def scorers_agree(self) -> bool | None:
        """Whether the independent scorer found the same numbers (None when it did not run)."""
        if self.independent is None:
            return None
        return all(abs((self.recall_at(group, k, metric) or 0.0)
                       - ((self.independent.get(group) or {}).get(f"{metric}@{k}") or 0.0)) < 1e-3
                   for group in ("overall", *(f"cat{c}" for c in CATEGORIES)) for k in (5, 10)
                   for metric in ("recall", "session_any"))

    def to_dict(self) -> dict[str, Any]:
        groups = {f"cat{c}": c for c in CATEGORIES} | {"overall": None}
        return {
            "label": self.label, "rankings": str(self.rankings), "questions": len(self.latencies_ms),
            "latency_ms": {"p50": round(self.p50_ms, 2), "p95": round(self.p95_ms, 2)},
            "channel_hits": self.channel_hits,
            "recall": {group: {f"@{k}": self.recall_at(group, k) for k in (5, 10)} for group in groups
                       if isinstance(self.scores.get(group), dict)},
            "session_recall": {group: {f"@{k}": self.recall_at(group, k, "session_any") for k in (5, 10)}
                               for group in groups if isinstance(self.scores.get(group), dict)},
            "missing_answers": self.scores.get("missing_answers"),
            "scores": self.scores,
            "independent_scorer_agrees": self.scorers_agree(),
        }


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def ask(target: SpaceMemory, question: str, config: RecallConfig | None, k: int) -> tuple[list[str], float, dict[str, int]]:
    """One question through recall: (ranked dia_ids, latency in ms, channel hits)."""
    text = str(question or "").strip()[:4000]
    if not text:
        return [], 0.0, {}
    query = RecallQuery(text=text, limit=min(100, max(FETCH_LIMIT, k)))
    started = time.perf_counter()
    result = target.recall(query, config=config)
    latency = (time.perf_counter() - started) * 1000
    return dia_ids(result.items, k), latency, dict(result.channel_hits)


def query_samples(memory: MemoryService, data: Sequence[dict[str, Any]], runs: dict[str, MethodRun], *, k: int,
                  on_question: Callable[[int], None] | None = None) -> None:
    """Ask every question of every sample with every method; write one line per question and method."""
    methods = configs()
    files = {method: run.rankings.open("w") for method, run in runs.items()}
    try:
        for sample in data:
            target = memory.space(space_for(sample["sample_id"]))
            for qa_index, qa in enumerate(sample.get("qa") or []):
                for method, run in runs.items():
                    ranked, latency, hits = ask(target, qa.get("question"), methods[method], k)
                    run.latencies_ms.append(latency)
                    for channel, count in hits.items():
                        run.channel_hits[channel] = run.channel_hits.get(channel, 0) + count
                    line = {"sample_id": sample["sample_id"], "qa_index": qa_index, "ranked": ranked}
                    files[method].write(json.dumps(line) + "\n")
                    if on_question:
                        on_question(1)
    finally:
        for handle in files.values():
            handle.close()


def baseline_path(rankings: Path, method: str) -> Path:
    """OUT.jsonl -> OUT.bm25.jsonl, OUT.vector.jsonl; the product's own rankings stay at OUT."""
    if method == "kgmem":
        return rankings
    return rankings.with_name(f"{rankings.stem}.{method}.jsonl")


# -- scoring ---------------------------------------------------------------------------------------

def read_rankings(path: Path) -> dict[tuple[str, int], list[str]]:
    lines = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return {(str(line["sample_id"]), int(line["qa_index"])): line["ranked"] for line in lines}


def score(data_path: Path, rankings: Path, scorer: Path, ks: Sequence[int] = (5, 10)) -> dict[str, Any]:
    """Run the independent scorer on one rankings file and return its JSON."""
    if not scorer.is_file():
        raise ConfigurationError(f"the LoCoMo scorer is not at {scorer}; give its path with --scorer")
    command = [sys.executable, str(scorer), "--data", str(data_path), "--rankings", str(rankings),
               "--ks", ",".join(str(k) for k in ks), "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise KgmemError(f"the scorer failed on {rankings} (exit {result.returncode}): "
                         f"{(result.stderr or result.stdout).strip()[-500:]}")
    try:
        return json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise KgmemError(f"the scorer's output is not JSON: {result.stdout[-300:]!r}") from exc


# -- the whole run -----------------------------------------------------------------------------------

@dataclass
class BenchReport:
    data: Path
    samples: list[str]
    questions: int
    k: int
    ingest: IngestStats
    methods: dict[str, MethodRun]
    query_seconds: float
    wall_seconds: float
    embedding_model: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": str(self.data), "samples": self.samples, "questions": self.questions, "k": self.k,
            "embedding_model": self.embedding_model,
            "ingest": {**asdict(self.ingest), "turns_per_s": round(self.ingest.turns_per_s, 2),
                       "embed_share": round(self.ingest.embed_share, 4),
                       "chroma_share": round(self.ingest.chroma_share, 4)},
            "query_seconds": round(self.query_seconds, 2), "wall_seconds": round(self.wall_seconds, 2),
            "methods": {method: run.to_dict() for method, run in self.methods.items()},
            "impure_baselines": self.impure_baselines(),
        }

    def impure_baselines(self) -> dict[str, list[str]]:
        """Baselines in which a channel other than their own answered (the recall config changed under them)."""
        found = {}
        for method, channel in BASELINE_CHANNEL.items():
            run = self.methods.get(method)
            if run:
                others = sorted(name for name, hits in run.channel_hits.items() if hits and name != channel)
                if others:
                    found[method] = others
        return found


def run_benchmark(
    memory: MemoryService, data_path: Path, rankings: Path, *, samples: int | None = None, k: int = DEFAULT_K,
    scorer: Path | None = None, progress: Progress | None = None, methods: Sequence[str] = tuple(METHODS),
    batch_turns: int = DEFAULT_BATCH_TURNS,
) -> BenchReport:
    """Ingest, query with every method, score. `samples` keeps the first N samples of the file."""
    started = time.perf_counter()
    if not 1 <= k <= 100:
        raise InvalidInput("k must be between 1 and 100")
    if batch_turns < 1:
        raise InvalidInput("batch_turns must be at least 1")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise InvalidInput(f"unknown method(s): {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    if scorer is not None and not scorer.is_file():  # fail before ingesting for minutes
        raise ConfigurationError(f"the scorer is not at {scorer}")
    scorer = scorer or (default_scorer() if default_scorer().is_file() else None)
    data_path = Path(data_path)
    everything = load_data(data_path)
    data = everything[:samples] if samples else everything
    rankings = Path(rankings)
    rankings.parent.mkdir(parents=True, exist_ok=True)

    total_turns = sum(read_turns(sample).turns for sample in data)
    stats = IngestStats()
    done = 0

    def turns_done(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress("ingest", done, total_turns)

    if progress:
        progress("ingest", 0, total_turns)
    for sample in data:
        ingest_sample(memory, sample, on_turns=turns_done, stats=stats, batch_turns=batch_turns)

    runs = {method: MethodRun(method, METHODS[method], baseline_path(rankings, method)) for method in methods}
    questions = sum(len(sample.get("qa") or []) for sample in data)
    total_asks = questions * len(runs)
    asked = 0

    def asked_one(n: int) -> None:
        nonlocal asked
        asked += n
        if progress:
            progress("query", asked, total_asks)

    if progress:
        progress("query", 0, total_asks)
    query_started = time.perf_counter()
    query_samples(memory, data, runs, k=k, on_question=asked_one)
    query_seconds = time.perf_counter() - query_started

    # Score against exactly the samples that ran: a subset scored against the whole file would
    # count every question of the samples left out as a miss.
    for run in runs.values():
        run.scores = scoring.score(data, read_rankings(run.rankings))
    if scorer is not None:
        with tempfile.TemporaryDirectory(prefix="kgmem-locomo-") as tmp:
            scored_data = data_path
            if len(data) != len(everything):
                scored_data = Path(tmp) / "data.json"
                scored_data.write_text(json.dumps(data))
            for run in runs.values():
                run.independent = score(scored_data, run.rankings, scorer)

    return BenchReport(
        data=data_path, samples=[str(sample["sample_id"]) for sample in data], questions=questions, k=k,
        ingest=stats, methods=runs, query_seconds=query_seconds, wall_seconds=time.perf_counter() - started,
        embedding_model=memory.embedder.name,
    )

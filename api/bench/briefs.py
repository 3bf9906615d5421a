"""`kgmem bench briefs`: how good are briefs, measured on a seeded orchestration history.

    plan = generate(seed=7)                                   # the history and the tasks under test, no I/O
    report = run(memory, BriefsBenchOptions(seed=7))          # writes it, briefs, scores, wipes the space

What it does:

1. **History.** A seeded history of delegations over many task families (brief_families.py), written
   through the product's normal path: `Delegations.brief(BriefRequest(...))`, then
   `Delegations.record_outcome(OutcomeRequest(...))` with the status, the agent, a summary and the
   lessons. Per family there is one expert (succeeds about 85% of the time), a decoy who does the
   same work about as often and mostly fails (about 25%), a busy generalist who works in every family
   (about 45%, and more successes overall than any expert), and a few generalists. Failures usually
   carry one of the family's lessons (severity high), successes sometimes one (medium or low), and
   some outcomes carry a noise lesson that belongs to no family. About half the briefs name a project.
2. **Tests.** New tasks per family, from templates the history never used (other words, other
   sentence shapes), briefed mostly without project or role. Per brief: lesson recall@5 (the family's
   recorded lessons among the brief's first five lessons, over min(5, how many it has)) and whether
   the first recommended agent is the family's expert.
3. **Closed loop.** Per family, a new task fails with a fresh high-severity lesson; then another new
   task of the family is briefed: a hit when the fresh lesson is among its first five lessons.
4. **Baselines from the same run.** BM25 over lessons (Neo4j's fulltext index `entity_text`, the task
   as the query, the top five Lesson entities) for lesson recall@5 and the closed loop; the agent with
   the most succeeded delegations in the space for expert-first.

Every miss is reported with what the brief showed instead (agents with their evidence, lessons
with their `reasons`), so that a miss can be understood. The space (`bench-briefs-<seed>`) is wiped
before and after the run.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from agents.briefing import RELEVANT_KNOWLEDGE_FLOOR, SIMILAR_FLOOR
from agents.briefs import Brief, BriefRequest
from agents.delegations import Delegations
from agents.outcomes import OutcomeLesson, OutcomeRequest
from api.bench.brief_families import (
    AGENT_NAMES,
    FAILURE_SUMMARIES,
    FAMILIES,
    NOISE_LESSONS,
    PROJECT_NAMES,
    ROLES,
    SHARED_SLOTS,
    SUCCESS_SUMMARIES,
    Family,
)
from api.bench.perf.stats import Latencies
from graph import lucene
from graph.errors import InvalidInput
from api.bench.locomo import wipe_space
from memory.recall import keyword_terms
from memory.service import MemoryService, SpaceMemory

Progress = Callable[[str, int, int], None]

DEFAULT_SEED = 7
DEFAULT_HISTORY = 9  # delegations per family in the history
DEFAULT_TESTS = 3  # held-out tasks briefed per family
MIN_HISTORY = 4
TOP = 5  # "@5": the first five lessons of a brief
SPACE_PREFIX = "bench-briefs-"

EXPERT_SKILL = 0.85
DECOY_SKILL = 0.25
BUSY_SKILL = 0.45
GENERALIST_SKILL = 0.5
GENERALISTS = 3

P_PROJECT_HISTORY = 0.5  # history briefs that name a project
P_SHARED_PROJECT = 0.1  # of those, the platform project every family shares
P_ROLE_HISTORY = 0.3  # history briefs that ask for the assigned agent's role (always on an agent's first task)
P_LESSON_ON_FAILURE = 0.9
P_LESSON_ON_SUCCESS = 0.4
P_NOISE_LESSON = 0.2
P_PROJECT_TEST = 0.3
P_ROLE_TEST = 0.1
P_PROJECT_CLOSED_LOOP = 0.5

TARGETS = {"lesson_recall_at_5": 0.9, "expert_first": 0.9, "closed_loop_hit_at_5": 0.95}
METRIC_LABELS = {
    "lesson_recall_at_5": ("lesson recall@5", "BM25 over lessons"),
    "expert_first": ("expert first", "most successes overall"),
    "closed_loop_hit_at_5": ("closed-loop hit@5", "BM25 over lessons"),
}

# BM25 over the space's lessons: the product's fulltext index over entities, Lesson entities only.
# The index holds every kind, so it is asked for plenty of candidates before the filter.
BM25_LESSONS = """
CALL db.index.fulltext.queryNodes('entity_text', $query, {limit: $candidates}) YIELD node AS e, score
WHERE e.space = $space AND e.kind = 'Lesson' AND e.retracted_at IS NULL
RETURN e.id AS id, coalesce(e.summary, e.name) AS text, score
ORDER BY score DESC, e.id
LIMIT $limit
"""
BM25_CANDIDATES = 1000

MOST_SUCCESSFUL_AGENTS = """
MATCH (a:Entity {space: $space, kind: 'Agent'})
WHERE a.retracted_at IS NULL
RETURN a.name AS agent,
       COUNT { MATCH (a)<-[r:DELEGATED_TO]-(d:Delegation)
               WHERE r.valid_to IS NULL AND r.retracted_at IS NULL AND d.retracted_at IS NULL
                 AND d.status = 'succeeded' } AS succeeded
ORDER BY succeeded DESC, a.name_key
LIMIT 5
"""

WRITTEN_HISTORY = """
MATCH (d:Entity {space: $space, kind: 'Delegation'})
WHERE d.retracted_at IS NULL
RETURN count(d) AS delegations,
       count(CASE WHEN d.status = 'succeeded' THEN 1 END) AS succeeded,
       count(CASE WHEN d.status = 'failed' THEN 1 END) AS failed,
       COUNT { MATCH (l:Entity {space: $space, kind: 'Lesson'}) WHERE l.retracted_at IS NULL } AS lessons,
       COUNT { MATCH (l:Lesson)-[r:LEARNED_FROM]->(:Delegation) WHERE l.space = $space AND r.retracted_at IS NULL
             } AS learned_from,
       COUNT { MATCH (p:Entity {space: $space, kind: 'Project'}) WHERE p.retracted_at IS NULL } AS projects,
       COUNT { MATCH (a:Entity {space: $space, kind: 'Agent'}) WHERE a.retracted_at IS NULL } AS agents
"""


def norm(text: str) -> str:
    """How lessons are compared: their text, whitespace collapsed, case folded (the entity's name key)."""
    return " ".join(text.split()).casefold()


# -- the plan ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AgentSpec:
    name: str
    role: str
    kind: str  # expert, decoy, busy, generalist
    families: tuple[str, ...]
    skill: float

    def label(self) -> str:
        if self.kind == "expert":
            return f"expert of {self.families[0]}"
        if self.kind == "decoy":
            return f"decoy in {', '.join(self.families)}"
        return "busy generalist" if self.kind == "busy" else "generalist"


@dataclass(frozen=True)
class LessonSpec:
    text: str
    severity: str
    family: str | None  # None: a noise lesson
    fresh: bool = False


@dataclass(frozen=True)
class Step:
    """One delegation: a brief, and (in the history and the closed loop's failure) its outcome."""

    delegation_id: str
    family: str
    task: str
    project: str | None = None
    agent_role: str | None = None
    agent: str | None = None
    status: str | None = None
    summary: str | None = None
    failure_cause: str | None = None
    lessons: tuple[LessonSpec, ...] = ()

    def brief_request(self) -> BriefRequest:
        return BriefRequest(task=self.task, project=self.project, agent_role=self.agent_role,
                            delegation_id=self.delegation_id)

    def outcome_request(self) -> OutcomeRequest:
        return OutcomeRequest(
            delegation_id=self.delegation_id, status=self.status, agent=self.agent, summary=self.summary,
            failure_cause=self.failure_cause,
            lessons=[OutcomeLesson(text=lesson.text, severity=lesson.severity) for lesson in self.lessons])


@dataclass(frozen=True)
class ClosedLoop:
    family: str
    failure: Step  # a new task that fails, with a fresh lesson
    follow_up: Step  # the next brief on similar work
    fresh_lesson: str


@dataclass(frozen=True)
class BenchPlan:
    seed: int
    families: tuple[str, ...]
    history_per_family: int
    tests_per_family: int
    agents: tuple[AgentSpec, ...]
    projects: dict[str, tuple[str, ...]]
    shared_project: str
    history: tuple[Step, ...]
    tests: tuple[Step, ...]
    closed_loop: tuple[ClosedLoop, ...]

    def expert(self, family: str) -> AgentSpec:
        return next(a for a in self.agents if a.kind == "expert" and a.families == (family,))

    def agent(self, name: str) -> AgentSpec | None:
        return next((a for a in self.agents if norm(a.name) == norm(name)), None)

    def digest(self) -> str:
        """A fingerprint of everything the run writes and asks: the same seed and sizes give the same one."""
        body = json.dumps({"agents": [asdict(a) for a in self.agents], "history": [asdict(s) for s in self.history],
                           "tests": [asdict(s) for s in self.tests],
                           "closed_loop": [asdict(c) for c in self.closed_loop]}, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    def family_of(self) -> dict[str, str]:
        """Delegation id -> family, for every delegation the plan briefs."""
        steps = [*self.history, *self.tests, *(s for c in self.closed_loop for s in (c.failure, c.follow_up))]
        return {norm(s.delegation_id): s.family for s in steps}


_PLACEHOLDER = re.compile(r"\{([a-z_]+?)(\d?)\}")


def fill(template: str, slots: dict[str, tuple[str, ...]], rng: random.Random) -> str:
    """The template with each placeholder drawn from its slot; `{x2}` draws a value other than `{x}`'s."""
    used: dict[str, list[str]] = defaultdict(list)

    def draw(match: re.Match[str]) -> str:
        name = match.group(1)
        pool = slots[name]
        value = rng.choice([v for v in pool if v not in used[name]] or list(pool))
        used[name].append(value)
        return value

    text = _PLACEHOLDER.sub(draw, template)
    return text[:1].upper() + text[1:]


def _tasks(templates: Sequence[str], count: int, slots: dict[str, tuple[str, ...]], rng: random.Random,
           taken: set[str]) -> list[str]:
    """`count` distinct task texts from the templates, every template used before any is used again."""
    found: list[str] = []
    order: list[str] = []
    attempts = 0
    while len(found) < count:
        if not order:
            order = list(templates)
            rng.shuffle(order)
        text = fill(order.pop(), slots, rng)
        attempts += 1
        if norm(text) not in taken:
            taken.add(norm(text))
            found.append(text)
        elif attempts > 50 * count:
            raise InvalidInput("the templates cannot give that many distinct tasks; ask for fewer")
    return found


def _names(pool: Sequence[str], rng: random.Random) -> Iterator[str]:
    names = list(pool)
    rng.shuffle(names)
    yield from names
    for round_ in range(2, 1000):  # more than the pool: the same names with a number
        yield from (f"{name}-{round_}" for name in names)


def select_families(families: int | Sequence[str] | None, rng: random.Random) -> list[Family]:
    if families is None:
        return list(FAMILIES)
    if isinstance(families, int):
        if not 2 <= families <= len(FAMILIES):
            raise InvalidInput(f"families must be between 2 and {len(FAMILIES)}")
        picked = set(rng.sample([f.key for f in FAMILIES], families))
        return [f for f in FAMILIES if f.key in picked]
    known = {f.key: f for f in FAMILIES}
    unknown = [key for key in families if key not in known]
    if unknown or len(set(families)) < 2:
        raise InvalidInput(f"families must name at least two of: {', '.join(known)}"
                           + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    return [f for f in FAMILIES if f.key in set(families)]


def generate(seed: int = DEFAULT_SEED, *, families: int | Sequence[str] | None = None,
             history: int = DEFAULT_HISTORY, tests: int = DEFAULT_TESTS) -> BenchPlan:
    """The whole benchmark from a seed: agents, projects, the history, the tasks under test. No I/O."""
    if history < MIN_HISTORY:
        raise InvalidInput(f"history must be at least {MIN_HISTORY} delegations per family")
    if tests < 1:
        raise InvalidInput("tests must be at least 1 per family")
    rng = random.Random(seed)
    chosen = select_families(families, rng)
    keys = tuple(f.key for f in chosen)
    by_key = {f.key: f for f in chosen}

    # Agents: an expert per family, a decoy per two families, one busy generalist, a few generalists.
    names = _names(AGENT_NAMES, rng)
    experts = {f.key: AgentSpec(next(names), f.role, "expert", (f.key,), EXPERT_SKILL) for f in chosen}
    paired = list(keys)
    rng.shuffle(paired)
    decoys: dict[str, AgentSpec] = {}
    for i in range(0, len(paired), 2):
        pair = tuple(paired[i:i + 2])
        role = by_key[pair[0]].role if rng.random() < 0.6 else rng.choice(ROLES)  # often the expert's role
        decoy = AgentSpec(next(names), role, "decoy", pair, DECOY_SKILL)
        decoys.update({key: decoy for key in pair})
    busy = AgentSpec(next(names), rng.choice(ROLES), "busy", keys, BUSY_SKILL)
    generalists = [AgentSpec(next(names), rng.choice(ROLES), "generalist", keys, GENERALIST_SKILL)
                   for _ in range(GENERALISTS)]
    agents = (*experts.values(), *dict.fromkeys(decoys.values()), busy, *generalists)

    # Projects: one or two per family, and one platform project every family touches now and then.
    codenames = _names(PROJECT_NAMES, rng)
    projects = {key: tuple(next(codenames) for _ in range(rng.choice((1, 2)))) for key in keys}
    shared_project = next(codenames)

    taken: set[str] = set()
    drafts: list[tuple[Family, AgentSpec, bool, str]] = []  # family, agent, succeeded, task
    for f in chosen:
        n = history
        e = max(2, round(n * 0.35))
        d = max(1, min(n - e - 1, e + rng.choice((-1, 0, 0, 1))))  # the decoy often works as much as the expert
        b = max(0, min(n - e - d, max(1, round(n * 0.2))))
        assigned = [experts[f.key]] * e + [decoys[f.key]] * d + [busy] * b
        assigned += [rng.choice(generalists) for _ in range(n - len(assigned))]
        # Successes per agent: skill x tasks, rounded up or down at random (so experts fail now and then),
        # but the expert always has the most successes in its family: it is the right answer on the record.
        tasks_of = Counter(assigned)
        wins = {agent: math.floor(agent.skill * k + rng.random()) for agent, k in tasks_of.items()}
        expert = experts[f.key]
        best_other = max((w for agent, w in wins.items() if agent is not expert), default=0)
        wins[expert] = min(tasks_of[expert], max(wins[expert], best_other + 1))
        wins = {agent: w if agent is expert else min(w, wins[expert] - 1) for agent, w in wins.items()}
        outcomes: list[tuple[AgentSpec, bool]] = []
        for agent, k in tasks_of.items():
            results = [True] * wins[agent] + [False] * (k - wins[agent])
            rng.shuffle(results)
            outcomes += [(agent, ok) for ok in results]
        rng.shuffle(outcomes)
        for (agent, ok), task in zip(outcomes, _tasks(f.history, n, _slots(f), rng, taken), strict=True):
            drafts.append((f, agent, ok, task))
    rng.shuffle(drafts)  # families interleave, as work does

    lesson_queues: dict[str, list[str]] = defaultdict(list)
    noise_queue: list[str] = []

    def family_lesson(f: Family) -> str:
        queue = lesson_queues[f.key]
        if not queue:
            queue.extend(f.lessons)
            rng.shuffle(queue)
        return queue.pop()

    def noise_lesson() -> str:
        if not noise_queue:
            noise_queue.extend(NOISE_LESSONS)
            rng.shuffle(noise_queue)
        return noise_queue.pop()

    counter = iter(range(1, 1_000_000))

    def delegation_id() -> str:
        return f"dlg-{seed}-{next(counter):04d}"

    seen_agents: set[str] = set()
    steps: list[Step] = []
    for f, agent, ok, task in drafts:
        project = None
        if rng.random() < P_PROJECT_HISTORY:
            project = shared_project if rng.random() < P_SHARED_PROJECT else rng.choice(projects[f.key])
        role = agent.role if agent.name not in seen_agents or rng.random() < P_ROLE_HISTORY else None
        seen_agents.add(agent.name)
        lessons: list[LessonSpec] = []
        if not ok and rng.random() < P_LESSON_ON_FAILURE:
            lessons.append(LessonSpec(family_lesson(f), "high", f.key))
        if ok and rng.random() < P_LESSON_ON_SUCCESS:
            lessons.append(LessonSpec(family_lesson(f), rng.choice(("medium", "low")), f.key))
        if rng.random() < P_NOISE_LESSON:
            lessons.append(LessonSpec(noise_lesson(), rng.choice(("low", "medium")), None))
        steps.append(_outcome_step(delegation_id(), f, task, project, role, agent, ok, tuple(lessons), rng))

    # Held-out tasks: the tests, then two per family for the closed loop.
    held_out = {f.key: _tasks(f.held_out, tests + 2, _slots(f), rng, taken) for f in chosen}
    tests_steps: list[Step] = []
    for f in chosen:
        for task in held_out[f.key][:tests]:
            project = rng.choice(projects[f.key]) if rng.random() < P_PROJECT_TEST else None
            role = f.role if rng.random() < P_ROLE_TEST else None
            tests_steps.append(Step(delegation_id="", family=f.key, task=task, project=project, agent_role=role))
    rng.shuffle(tests_steps)
    tests_steps = [replace(s, delegation_id=delegation_id()) for s in tests_steps]

    loops: list[ClosedLoop] = []
    order = list(chosen)
    rng.shuffle(order)
    for f in order:
        failed_task, next_task = held_out[f.key][tests:tests + 2]
        fresh = rng.choice(f.fresh)
        project = rng.choice(projects[f.key]) if rng.random() < P_PROJECT_CLOSED_LOOP else None
        failure = _outcome_step(delegation_id(), f, failed_task, project, None, decoys[f.key], False,
                                (LessonSpec(fresh, "high", f.key, fresh=True),), rng)
        project = rng.choice(projects[f.key]) if rng.random() < P_PROJECT_TEST else None
        follow_up = Step(delegation_id=delegation_id(), family=f.key, task=next_task, project=project)
        loops.append(ClosedLoop(family=f.key, failure=failure, follow_up=follow_up, fresh_lesson=fresh))

    return BenchPlan(seed=seed, families=keys, history_per_family=history, tests_per_family=tests, agents=agents,
                     projects=projects, shared_project=shared_project, history=tuple(steps), tests=tuple(tests_steps),
                     closed_loop=tuple(loops))


def _slots(f: Family) -> dict[str, tuple[str, ...]]:
    return {**SHARED_SLOTS, **f.slots}


def _outcome_step(delegation_id: str, f: Family, task: str, project: str | None, role: str | None, agent: AgentSpec,
                  ok: bool, lessons: tuple[LessonSpec, ...], rng: random.Random) -> Step:
    words = {**SHARED_SLOTS, "obj": f.objects}
    if ok:
        return Step(delegation_id=delegation_id, family=f.key, task=task, project=project, agent_role=role,
                    agent=agent.name, status="succeeded", summary=fill(rng.choice(SUCCESS_SUMMARIES), words, rng),
                    lessons=lessons)
    cause = rng.choice(f.causes)
    summary = fill(rng.choice(FAILURE_SUMMARIES), {**words, "cause": (cause,)}, rng)
    return Step(delegation_id=delegation_id, family=f.key, task=task, project=project, agent_role=role,
                agent=agent.name, status="failed", summary=summary, failure_cause=cause, lessons=lessons)


# -- the report -------------------------------------------------------------------------------------
@dataclass
class Metric:
    name: str
    kgmem: float | None
    baseline: float | None
    baseline_label: str
    target: float | None
    n: int  # briefs (or families, for the closed loop) it is the mean over

    def passed(self) -> bool | None:
        return None if self.kgmem is None or self.target is None else self.kgmem >= self.target


@dataclass
class BriefsBenchReport:
    params: dict[str, Any]
    history: dict[str, Any]
    metrics: dict[str, Metric]
    latency: dict[str, dict[str, float]]
    per_family: dict[str, dict[str, Any]]
    misses: list[dict[str, Any]]
    miss_summary: dict[str, Any]
    wall_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"params": self.params, "history": self.history,
                "metrics": {key: asdict(m) for key, m in self.metrics.items()}, "latency": self.latency,
                "per_family": self.per_family, "miss_summary": self.miss_summary, "misses": self.misses,
                "wall_seconds": round(self.wall_seconds, 2)}


@dataclass
class BriefsBenchOptions:
    seed: int = DEFAULT_SEED
    families: int | Sequence[str] | None = None  # a count (drawn by the seed), keys, or None: all
    history: int = DEFAULT_HISTORY
    tests: int = DEFAULT_TESTS
    space: str | None = None  # default bench-briefs-<seed>
    keep_space: bool = False  # leave the history in place afterwards (for inspection)


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


@dataclass
class _Scores:
    recall: list[float] = field(default_factory=list)
    bm25_recall: list[float] = field(default_factory=list)
    expert_first: list[float] = field(default_factory=list)
    naive_first: list[float] = field(default_factory=list)
    closed_loop: list[float] = field(default_factory=list)
    bm25_closed_loop: list[float] = field(default_factory=list)


# -- the run ----------------------------------------------------------------------------------------
def bm25_lessons(memory: SpaceMemory, task: str, limit: int = TOP) -> list[dict[str, Any]]:
    """The baseline: the top lessons of the space by Lucene BM25 with the task's words as the query."""
    terms = keyword_terms(task, drop_stopwords=True)
    if not terms:
        return []
    return memory.graph.rows(BM25_LESSONS, query=lucene.in_space(memory.space, terms),
                             candidates=BM25_CANDIDATES, limit=limit)


class _Run:
    def __init__(self, memory: MemoryService, plan: BenchPlan, space: str, progress: Progress | None) -> None:
        self.plan = plan
        self.space = space
        self.memory = memory.space(space)
        self.delegations = Delegations(self.memory)
        self.say = progress or (lambda phase, done, total: None)
        self.recorded: dict[str, set[str]] = defaultdict(set)  # family -> normalised lesson texts recorded
        self.lesson_family: dict[str, str] = {}  # normalised lesson text -> family key or "noise"
        self.delegation_family = plan.family_of()
        self.brief_ms, self.bm25_ms = Latencies(), Latencies()  # the briefs under test, the baseline's query
        self.history_ms, self.outcome_ms = Latencies(), Latencies()
        self.scores: dict[str, _Scores] = defaultdict(_Scores)
        self.misses: list[dict[str, Any]] = []
        self.naive: dict[str, Any] = {}
        self._embedder = memory.embedder
        self._vectors: dict[str, list[float]] = {}

    def cosine(self, a: str, b: str) -> float:
        """Cosine of two texts' embeddings (the model the brief uses), to explain a miss."""
        missing = [t for t in (a, b) if t not in self._vectors]
        if missing:
            self._vectors.update(zip(missing, self._embedder.embed(missing), strict=True))
        return round(sum(x * y for x, y in zip(self._vectors[a], self._vectors[b], strict=True)), 4)

    # -- phases ---------------------------------------------------------------------------------
    def write_history(self) -> dict[str, Any]:
        total = len(self.plan.history)
        for i, step in enumerate(self.plan.history):
            self._brief_and_outcome(step, self.history_ms)
            self.say("history", i + 1, total)
        written = self.memory.graph.rows(WRITTEN_HISTORY)[0]
        top = self.memory.graph.rows(MOST_SUCCESSFUL_AGENTS)
        self.naive = top[0] if top else {"agent": None, "succeeded": 0}
        expert_wins = Counter(s.agent for s in self.plan.history
                              if s.status == "succeeded" and (a := self.plan.agent(s.agent)) and a.kind == "expert")
        naive_spec = self.plan.agent(self.naive["agent"]) if self.naive["agent"] else None
        return {
            **written, "family_lessons": sum(len(v) for v in self.recorded.values()),
            "noise_lessons": len({t for t, f in self.lesson_family.items() if f == "noise"}),
            "naive_agent": self.naive["agent"], "naive_agent_succeeded": self.naive["succeeded"],
            "naive_agent_is": naive_spec.label() if naive_spec else None,
            "most_successes_of_an_expert": max(expert_wins.values(), default=0),
            "agents_by_successes": top,
        }

    def run_tests(self) -> None:
        total = len(self.plan.tests)
        for i, step in enumerate(self.plan.tests):
            brief = self._timed_brief(step)
            scores = self.scores[step.family]
            expected = self.recorded[step.family]
            expert = self.plan.expert(step.family)
            shown = [norm(lesson.text) for lesson in brief.lessons[:TOP]]
            recall = None
            if expected:
                wanted = min(TOP, len(expected))
                recall = sum(1 for text in shown if text in expected) / wanted
                scores.recall.append(recall)
                with self.bm25_ms.timed():
                    found = bm25_lessons(self.memory, step.task)
                scores.bm25_recall.append(sum(1 for row in found if norm(row["text"]) in expected) / wanted)
            first = brief.recommended_agents[0].agent if brief.recommended_agents else None
            hit = first is not None and norm(first) == norm(expert.name)
            scores.expert_first.append(1.0 if hit else 0.0)
            scores.naive_first.append(1.0 if self.naive.get("agent") and norm(self.naive["agent"]) == norm(expert.name)
                                      else 0.0)
            missed = (["expert"] if not hit else []) + (["lessons"] if recall is not None and recall < 1 else [])
            if missed:
                self.misses.append(self._test_miss(step, brief, missed, recall, expert))
            self.say("tests", i + 1, total)

    def run_closed_loop(self) -> None:
        total = len(self.plan.closed_loop)
        for i, loop in enumerate(self.plan.closed_loop):
            self._brief_and_outcome(loop.failure, None)
            brief = self._timed_brief(loop.follow_up)
            fresh = norm(loop.fresh_lesson)
            ranks = [norm(lesson.text) for lesson in brief.lessons]
            hit = fresh in ranks[:TOP]
            with self.bm25_ms.timed():
                found = bm25_lessons(self.memory, loop.follow_up.task)
            scores = self.scores[loop.family]
            scores.closed_loop.append(1.0 if hit else 0.0)
            scores.bm25_closed_loop.append(1.0 if any(norm(row["text"]) == fresh for row in found) else 0.0)
            if not hit:
                self.misses.append(self._closed_loop_miss(loop, brief))
            self.say("closed loop", i + 1, total)

    # -- plumbing -------------------------------------------------------------------------------
    def _brief_and_outcome(self, step: Step, latencies: Latencies | None) -> Brief:
        if latencies is None:
            brief = self.delegations.brief(step.brief_request())
        else:
            with latencies.timed():
                brief = self.delegations.brief(step.brief_request())
        with self.outcome_ms.timed():
            self.delegations.record_outcome(step.outcome_request())
        for lesson in step.lessons:
            text = norm(lesson.text)
            if lesson.family is None:
                self.lesson_family[text] = "noise"
            else:
                self.lesson_family[text] = f"{lesson.family} (fresh)" if lesson.fresh else lesson.family
                if not lesson.fresh:
                    self.recorded[lesson.family].add(text)
        return brief

    def _timed_brief(self, step: Step) -> Brief:
        with self.brief_ms.timed():
            return self.delegations.brief(step.brief_request())

    # -- explaining misses ----------------------------------------------------------------------
    def _agents(self, brief: Brief) -> list[dict[str, Any]]:
        shown = []
        for rank, a in enumerate(brief.recommended_agents, 1):
            spec = self.plan.agent(a.agent)
            shown.append({"rank": rank, "agent": a.agent, "is": spec.label() if spec else "unknown", "role": a.role,
                          "score": a.score, "similar_tasks": a.similar_tasks, "succeeded": a.succeeded,
                          "failed": a.failed, "success_rate": a.success_rate, "role_match": a.role_match,
                          "load": a.load})
        return shown

    def _lessons(self, brief: Brief, limit: int = TOP) -> list[dict[str, Any]]:
        return [{"rank": rank, "text": lesson.text, "is": self.lesson_family.get(norm(lesson.text), "unknown"),
                 "severity": lesson.severity, "score": lesson.score, "reasons": lesson.reasons}
                for rank, lesson in enumerate(brief.lessons[:limit], 1)]

    def _similar(self, brief: Brief) -> list[dict[str, Any]]:
        return [{"task": d.task, "is": self.delegation_family.get(norm(d.delegation_id), "unknown"),
                 "agent": d.agent, "status": d.status, "similarity": d.similarity}
                for d in brief.similar_delegations]

    def _where(self, brief: Brief, text: str) -> dict[str, Any]:
        """Where a lesson the brief should have led with is in it: its rank, score and reasons, or absent."""
        for rank, lesson in enumerate(brief.lessons, 1):
            if norm(lesson.text) == norm(text):
                return {"text": text, "rank": rank, "score": lesson.score, "reasons": lesson.reasons}
        return {"text": text, "rank": None, "score": None, "reasons": [],
                "why": f"not among the brief's {len(brief.lessons)} lessons"}

    def _crowding(self, brief: Brief, family: str) -> dict[str, int]:
        """What took the first five places: this family's lessons, noise, or other families'."""
        mix: Counter[str] = Counter()
        for lesson in brief.lessons[:TOP]:
            label = self.lesson_family.get(norm(lesson.text), "unknown")
            mix["own family" if label.split(" ")[0] == family else "noise" if label == "noise" else "other family"] += 1
        return dict(mix)

    def _test_miss(self, step: Step, brief: Brief, missed: list[str], recall: float | None,
                   expert: AgentSpec) -> dict[str, Any]:
        agents = self._agents(brief)
        expert_entry = next((a for a in agents if norm(a["agent"]) == norm(expert.name)), None)
        shown = {norm(lesson.text) for lesson in brief.lessons[:TOP]}
        missing = [self._where(brief, text) for text in sorted(self.recorded[step.family]) if text not in shown]
        # the original wording of the missing lessons
        originals = {norm(t): t for f in FAMILIES for t in (*f.lessons, *f.fresh)}
        for item in missing:
            item["text"] = originals.get(item["text"], item["text"])
        reasons = []
        expert_work = [{"task": h.task, "status": h.status, "cosine": self.cosine(step.task, h.task)}
                       for h in self.plan.history if h.family == step.family and h.agent == expert.name]
        expert_work.sort(key=lambda w: -w["cosine"])
        if "expert" in missed:
            reasons.append(_expert_reason(expert, expert_entry, agents, expert_work))
        if "lessons" in missed:
            reasons.append(f"{round((recall or 0) * min(TOP, len(self.recorded[step.family])))} of "
                           f"{min(TOP, len(self.recorded[step.family]))} family lessons in the top {TOP}; "
                           f"top {TOP} held {_mix_text(self._crowding(brief, step.family))}")
        return {
            "phase": "test", "family": step.family, "delegation_id": step.delegation_id, "task": step.task,
            "project": step.project, "agent_role": step.agent_role, "missed": missed, "why": reasons,
            "expected_expert": expert.name, "expert_rank": expert_entry["rank"] if expert_entry else None,
            "expert_family_delegations": expert_work,
            "lesson_recall_at_5": recall, "family_lessons_recorded": len(self.recorded[step.family]),
            "missing_lessons": missing, "top5_mix": self._crowding(brief, step.family),
            "agents": agents, "lessons": self._lessons(brief), "similar_delegations": self._similar(brief),
        }

    def _closed_loop_miss(self, loop: ClosedLoop, brief: Brief) -> dict[str, Any]:
        where = self._where(brief, loop.fresh_lesson)
        place = (f"ranked {where['rank']} (score {where['score']}, reasons: {'; '.join(where['reasons'])})"
                 if where["rank"] else where["why"])
        sources = [d for d in brief.similar_delegations if norm(d.delegation_id) == norm(loop.failure.delegation_id)]
        task_cosine = self.cosine(loop.follow_up.task, loop.failure.task)
        lesson_cosine = self.cosine(loop.follow_up.task, loop.fresh_lesson)
        failure = (f"the failed delegation is among the similar delegations shown (similarity {sources[0].similarity})"
                   if sources else
                   f"the failed delegation is not among the {len(brief.similar_delegations)} similar delegations shown "
                   f"(its task's cosine with this task {task_cosine}, absolute floor {SIMILAR_FLOOR})")
        failure += (f"; the fresh lesson's own cosine with the task {lesson_cosine} "
                    f"(floor {RELEVANT_KNOWLEDGE_FLOOR})")
        return {
            "phase": "closed_loop", "family": loop.family, "delegation_id": loop.follow_up.delegation_id,
            "task": loop.follow_up.task, "project": loop.follow_up.project, "missed": ["closed_loop"],
            "why": [(f"fresh lesson {place}; {failure}; top {TOP} held "
                     f"{_mix_text(self._crowding(brief, loop.family))}")],
            "failed_task": loop.failure.task, "failed_project": loop.failure.project,
            "fresh_lesson": loop.fresh_lesson, "fresh_lesson_rank": where["rank"],
            "fresh_lesson_score": where["score"], "fresh_lesson_reasons": where["reasons"],
            "failed_task_cosine": task_cosine, "fresh_lesson_cosine": lesson_cosine,
            "top5_mix": self._crowding(brief, loop.family),
            "agents": self._agents(brief), "lessons": self._lessons(brief), "similar_delegations": self._similar(brief),
        }


def _mix_text(mix: dict[str, int]) -> str:
    return ", ".join(f"{n} {label}" for label, n in sorted(mix.items())) or "no lessons"


def _expert_reason(expert: AgentSpec, entry: dict[str, Any] | None, agents: list[dict[str, Any]],
                   work: list[dict[str, Any]]) -> str:
    first = agents[0] if agents else None
    record = (f"its {len(work)} delegations in the family ({sum(1 for w in work if w['status'] == 'succeeded')} "
              f"succeeded) have task cosines {', '.join(str(w['cosine']) for w in work)} with this task "
              f"(similar-delegation absolute floor {SIMILAR_FLOOR})")
    if first is None:
        return f"no agent recommended; expert {expert.name}: {record}"
    ahead = (f"{first['agent']} ({first['is']}, score {first['score']}, {first['succeeded']} of "
             f"{first['succeeded'] + first['failed']} similar succeeded)")
    if entry is None:
        return f"expert {expert.name} not recommended ({record}); first: {ahead}"
    return (f"expert {expert.name} ranked {entry['rank']} (score {entry['score']}, {entry['succeeded']} of "
            f"{entry['succeeded'] + entry['failed']} similar succeeded, {entry['similar_tasks']} similar tasks) "
            f"behind {ahead}")


def _summarise_misses(misses: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts that say what kind of misses dominate."""
    expert_misses = [m for m in misses if "expert" in m["missed"]]
    kinds = {"expert": "another family's expert", "busy": "the busy generalist", "decoy": "a decoy",
             "generalist": "a generalist"}
    first_is = Counter((kinds.get(m["agents"][0]["is"].split(" ")[0], "unknown") if m["agents"] else "nobody")
                       for m in expert_misses)
    expert_rank = Counter(str(m["expert_rank"]) if m["expert_rank"] else "absent" for m in expert_misses)
    lesson_misses = [m for m in misses if "lessons" in m["missed"]]
    missing = [item for m in lesson_misses for item in m["missing_lessons"]]
    crowd = Counter()
    for m in lesson_misses:
        crowd.update(m["top5_mix"])
    loop_misses = [m for m in misses if m["phase"] == "closed_loop"]
    return {
        "expert_misses": len(expert_misses), "expert_misses_first_agent_was": dict(first_is),
        "expert_rank_in_misses": dict(expert_rank),
        "lesson_misses": len(lesson_misses),
        "missing_family_lessons_absent_from_brief": sum(1 for item in missing if item["rank"] is None),
        "missing_family_lessons_ranked_below_5": sum(1 for item in missing if item["rank"] is not None),
        "top5_mix_in_lesson_misses": dict(crowd),
        "closed_loop_misses": len(loop_misses),
        "closed_loop_fresh_lesson_absent": sum(1 for m in loop_misses if m["fresh_lesson_rank"] is None),
    }


def run(memory: MemoryService, options: BriefsBenchOptions | None = None, *,
        progress: Progress | None = None) -> BriefsBenchReport:
    """Generate the plan, write the history, brief the held-out tasks and the closed loop, score, wipe."""
    options = options or BriefsBenchOptions()
    started = time.perf_counter()
    plan = generate(options.seed, families=options.families, history=options.history, tests=options.tests)
    space = options.space or f"{SPACE_PREFIX}{options.seed}"
    wipe_space(memory, space)
    bench = _Run(memory, plan, space, progress)
    try:
        history = bench.write_history()
        bench.run_tests()
        bench.run_closed_loop()
    finally:
        if not options.keep_space:
            wipe_space(memory, space)

    every = _Scores()
    per_family: dict[str, dict[str, Any]] = {}
    for key in plan.families:
        s = bench.scores[key]
        for name in asdict(every):
            getattr(every, name).extend(getattr(s, name))
        per_family[key] = {
            "expert": plan.expert(key).name, "family_lessons_recorded": len(bench.recorded[key]),
            "lesson_recall_at_5": _mean(s.recall), "bm25_lesson_recall_at_5": _mean(s.bm25_recall),
            "expert_first": _mean(s.expert_first), "naive_expert_first": _mean(s.naive_first),
            "closed_loop_hit_at_5": _mean(s.closed_loop), "bm25_closed_loop_hit_at_5": _mean(s.bm25_closed_loop),
        }
    metrics = {
        "lesson_recall_at_5": Metric("lesson recall@5", _mean(every.recall), _mean(every.bm25_recall),
                                     METRIC_LABELS["lesson_recall_at_5"][1], TARGETS["lesson_recall_at_5"],
                                     len(every.recall)),
        "expert_first": Metric("expert first", _mean(every.expert_first), _mean(every.naive_first),
                               METRIC_LABELS["expert_first"][1], TARGETS["expert_first"], len(every.expert_first)),
        "closed_loop_hit_at_5": Metric("closed-loop hit@5", _mean(every.closed_loop), _mean(every.bm25_closed_loop),
                                       METRIC_LABELS["closed_loop_hit_at_5"][1], TARGETS["closed_loop_hit_at_5"],
                                       len(every.closed_loop)),
    }
    params = {
        "seed": plan.seed, "families": list(plan.families), "family_count": len(plan.families),
        "history_per_family": plan.history_per_family, "tests_per_family": plan.tests_per_family,
        "history_delegations": len(plan.history), "test_briefs": len(plan.tests),
        "closed_loops": len(plan.closed_loop), "agents": len(plan.agents), "space": space,
        "kept_space": options.keep_space, "plan_digest": plan.digest(), "embedding_model": memory.embedder.name,
        "skills": {"expert": EXPERT_SKILL, "decoy": DECOY_SKILL, "busy": BUSY_SKILL, "generalist": GENERALIST_SKILL},
    }
    latency = {"brief_ms": bench.brief_ms.summary(), "bm25_ms": bench.bm25_ms.summary(),
               "history_brief_ms": bench.history_ms.summary(), "outcome_ms": bench.outcome_ms.summary()}
    return BriefsBenchReport(params=params, history=history, metrics=metrics, latency=latency, per_family=per_family,
                             misses=bench.misses, miss_summary=_summarise_misses(bench.misses),
                             wall_seconds=time.perf_counter() - started)

"""Gathering a brief: what the team's memory holds that bears on a task.

Candidates come from the product's hybrid recall (over past delegations' tasks and
outcomes, and over lessons, artifacts and incidents) and from the graph (lessons
learned from those delegations or applying to the project, artifacts they produced,
incidents near them). Recall ranks, but always returns something; whether an item
is similar at all is decided by the cosine of its stored vector with the task, so an
unrelated past delegation never counts as evidence for an agent.

Scores are sums of a few named parts, so a brief can say why each item is in it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agents.briefs import (
    AgentRecommendation,
    BriefArtifact,
    BriefIncident,
    BriefLesson,
    LessonSource,
    Risk,
    SimilarDelegation,
)
from graph.vocabulary import Kind, normalise_name
from memory.recall import RecallItem, RecallQuery
from memory.service import SpaceMemory

# Cosine of an item's vector with the task (all-MiniLM-L6-v2): related tasks score 0.5-0.8,
# unrelated ones below 0.2.
RELEVANT_KNOWLEDGE_FLOOR = 0.2
SIMILAR_FLOOR = 0.2  # a past delegation less similar than this is never evidence

# How much a past delegation counts as evidence: relative to the most similar one, so that work
# worded unlike anything before still finds its nearest kind of work (see `_similar_work`).
EVIDENCE_TAU = 0.1  # a delegation this much less similar than the best counts e^-1 as much
MIN_WEIGHT = 0.05  # below this weight a delegation is not similar work
PRF_SEEDS = 3  # the nearest delegations whose direction sharpens the task's (pseudo-relevance feedback)
COCITED = 3  # a delegation briefed before counts as much as the mean of the best this many its brief showed
STRONG_WEIGHT = 0.3  # counted in the evidence a brief states ("4 of 5 similar tasks succeeded")
THIN_EVIDENCE = 1.0  # weighted finished similar tasks below which an agent's record is called thin
RECENT_FAILURES = 20  # the latest failures are always candidates for "last time"
LAST_TIME_WEIGHT = 0.2  # how similar a failure must be to bring its lessons to "last time"
MAX_LAST_TIME = 3

MAX_AGENTS = 5
MAX_LESSONS = 10
MAX_SIMILAR = 5
MAX_PER_ARTIFACT_KIND = 5
MAX_INCIDENTS = 5
MAX_RISKS = 5
RECALL_LIMIT = 50  # ten per section shown at most; 100 made briefs 25% slower for the same content

# The parts of a score (see the module docstring).
W_TEXT = 0.5  # cosine with the task
W_RECALL = 0.5  # recall's fused score, normalised by the best item of its recall
W_LEARNED = 0.5  # times the evidence weight of the delegations a lesson was learned from (an artifact produced by)
W_PROJECT = 0.2  # applies to / hangs off the project
W_ROLE = 0.2  # an agent with the requested role (shrinks as evidence grows)
PRIOR_TASKS = 1.0  # an agent's success rate starts from one pseudo-task at 1/2
LOAD_PENALTY = 0.05  # per open delegation, at most MAX_LOAD_PENALTY
MAX_LOAD_PENALTY = 0.25
SEVERITY = {"critical": 0.3, "high": 0.2, "medium": 0.05, "low": 0.0}

ARTIFACT_KINDS = (Kind.MODEL, Kind.MODEL_VERSION, Kind.FEATURE, Kind.EXPERIMENT, Kind.DATASET)
KNOWLEDGE_KINDS = [Kind.LESSON, *ARTIFACT_KINDS, Kind.INCIDENT]
CLOSED_INCIDENT = frozenset({"resolved", "closed", "fixed", "done", "mitigated", "cancelled"})
LOWER_IS_BETTER = re.compile(r"loss|error|rmse|mse|mae|mape|latency|perplexity|brier|wer|cer|cost|time|duration")


def current(var: str) -> str:
    """A relationship or observation that is true now (a fixed fragment, never input)."""
    return f"{var}.valid_to IS NULL AND {var}.retracted_at IS NULL"


def higher_is_better(metric: str) -> bool:
    return not LOWER_IS_BETTER.search(metric)


# -- queries ------------------------------------------------------------------------------------
DELEGATION_DETAILS = f"""
UNWIND $ids AS id
MATCH (d:Entity {{id: id}})
WHERE d.space = $space AND d.kind = 'Delegation' AND d.retracted_at IS NULL
RETURN d.id AS id, d.name AS delegation_id, coalesce(d.task, d.summary) AS task, d.status AS status,
       d.ended_at AS ended_at, d.failure_cause AS failure_cause, d.shown_ids AS shown_ids,
       head(COLLECT {{ MATCH (d)-[r:DELEGATED_TO]->(a:Agent) WHERE {current('r')} AND a.retracted_at IS NULL
                      RETURN a {{.id, .name, .role}} }}) AS agent,
       head(COLLECT {{ MATCH (d)-[r:PART_OF]->(p:Project) WHERE {current('r')} AND p.retracted_at IS NULL
                      RETURN p.name }}) AS project,
       head(COLLECT {{ MATCH (d)-[:HAS_OBSERVATION]->(o:Observation) WHERE {current('o')} AND o.source = 'outcome'
                      RETURN o.text ORDER BY o.recorded_at DESC, o.id }}) AS summary
"""

# The latest failures, whatever recall found: a lesson learned a moment ago must reach the next brief.
LATEST_FAILURES = """
MATCH (d:Entity {space: $space, kind: 'Delegation'})
WHERE d.status = 'failed' AND d.retracted_at IS NULL AND d.ended_at IS NOT NULL
RETURN d.id AS id ORDER BY d.ended_at DESC LIMIT $limit
"""

AGENTS_WITH_ROLE = """
MATCH (a:Entity {space: $space, kind: 'Agent'})
WHERE a.retracted_at IS NULL AND toLower(trim(a.role)) = $role
RETURN a {.id, .name, .role} AS agent
ORDER BY a.name_key
LIMIT 20
"""

AGENT_LOAD = f"""
UNWIND $ids AS id
MATCH (a:Entity {{id: id}})
WHERE a.space = $space
RETURN a.id AS id, COUNT {{ MATCH (a)<-[r:DELEGATED_TO]-(d:Delegation)
                            WHERE {current('r')} AND d.retracted_at IS NULL AND d.status IN ['planned', 'running'] }} AS load
"""

LESSONS_NEAR = f"""
CALL () {{
  UNWIND $delegation_ids AS did
  MATCH (l:Lesson)-[r:LEARNED_FROM]->(d:Entity {{id: did}})
  WHERE l.space = $space AND {current('r')} AND l.retracted_at IS NULL
  RETURN l.id AS id
  UNION
  MATCH (p:Entity {{id: $project_id}})<-[r:APPLIES_TO]-(l:Lesson)
  WHERE p.space = $space AND {current('r')} AND l.retracted_at IS NULL
  RETURN l.id AS id
}}
RETURN DISTINCT id
LIMIT 200
"""

LESSON_DETAILS = f"""
UNWIND $ids AS id
MATCH (l:Entity {{id: id}})
WHERE l.space = $space AND l.kind = 'Lesson' AND l.retracted_at IS NULL
RETURN l.id AS id, coalesce(l.summary, l.name) AS text, l.severity AS severity, l.category AS category,
       l.source AS source,
       COLLECT {{ MATCH (l)-[r:LEARNED_FROM]->(d:Delegation) WHERE {current('r')} AND d.retracted_at IS NULL
                 RETURN {{id: d.id, delegation_id: d.name, task: d.task, status: d.status,
                         agent: head(COLLECT {{ MATCH (d)-[a:DELEGATED_TO]->(ag:Agent) WHERE {current('a')}
                                               RETURN ag.name }})}}
                 ORDER BY d.created_at DESC, d.id }} AS learned_from,
       COLLECT {{ MATCH (l)-[r:APPLIES_TO]->(t:Entity) WHERE {current('r')} AND t.retracted_at IS NULL
                 RETURN {{id: t.id, name: t.name}} ORDER BY t.name_key }} AS applies_to
"""

LESSONS_FROM = f"""
UNWIND $delegation_ids AS did
MATCH (l:Lesson)-[r:LEARNED_FROM]->(d:Entity {{id: did}})
WHERE l.space = $space AND {current('r')} AND l.retracted_at IS NULL
RETURN l.id AS id, d.id AS delegation, coalesce(l.summary, l.name) AS text, l.severity AS severity,
       l.category AS category, l.source AS source
"""

ARTIFACTS_OF = f"""
UNWIND $delegation_ids AS did
MATCH (d:Entity {{id: did}})-[r:PRODUCED|DEPENDS_ON]->(x:Entity)
WHERE d.space = $space AND {current('r')} AND x.retracted_at IS NULL AND x.kind IN $kinds
RETURN x.id AS id, d.id AS delegation
"""

# Artifacts and incidents within two hops of the project (its delegations' outputs, its models' versions).
NEAR_PROJECT = f"""
MATCH (p:Entity {{id: $project_id}})
WHERE p.space = $space
MATCH (p)-[rels*1..2]-(x:Entity)
WHERE x.kind IN $kinds AND x.retracted_at IS NULL
  AND all(r IN rels WHERE r.space = $space AND {current('r')} AND NOT type(r) IN ['HAS_OBSERVATION', 'HAS_REVISION'])
RETURN DISTINCT x.id AS id
LIMIT 200
"""

INCIDENTS_NEXT_TO = f"""
UNWIND $ids AS aid
MATCH (a:Entity {{id: aid}})-[r]-(i:Incident)
WHERE a.space = $space AND r.space = $space AND {current('r')} AND i.retracted_at IS NULL
RETURN DISTINCT i.id AS id
"""

ENTITY_DETAILS = f"""
UNWIND $ids AS id
MATCH (x:Entity {{id: id}})
WHERE x.space = $space AND x.retracted_at IS NULL
RETURN x {{.*}} AS props,
       head(COLLECT {{ MATCH (x)-[r:VERSION_OF]->(m:Model) WHERE {current('r')} RETURN m.name }}) AS model
"""


@dataclass
class BriefContent:
    recommended_agents: list[AgentRecommendation] = field(default_factory=list)
    last_time: list[BriefLesson] = field(default_factory=list)  # also the first of `lessons`
    lessons: list[BriefLesson] = field(default_factory=list)
    similar_delegations: list[SimilarDelegation] = field(default_factory=list)
    artifacts: dict[Kind, list[BriefArtifact]] = field(default_factory=dict)
    incidents: list[BriefIncident] = field(default_factory=list)
    risks: list[Risk] = field(default_factory=list)
    metric: str | None = None

    def shown_ids(self) -> list[str]:
        ids = [x.id for x in self.lessons] + [x.id for x in self.similar_delegations]
        ids += [x.id for items in self.artifacts.values() for x in items] + [x.id for x in self.incidents]
        return list(dict.fromkeys(ids))


@dataclass
class _Found:
    """Entities recall found, with the best normalised recall score and the vector keys of what matched."""

    score: dict[str, float] = field(default_factory=dict)
    kind: dict[str, str] = field(default_factory=dict)
    keys: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    named: set[str] = field(default_factory=set)  # the task names them

    def add(self, items: list[RecallItem]) -> None:
        top = max((item.score for item in items), default=0.0)
        for item in items:
            entity = item.entity.id
            normalised = max(0.0, item.score / top) if top > 0 else 0.0
            self.score[entity] = max(self.score.get(entity, 0.0), normalised)
            self.kind[entity] = item.entity.kind
            self.keys[entity].add(f"ent:{entity}")
            if item.type == "observation":
                self.keys[entity].add(f"obs:{item.id}")
            if "name" in item.channels:
                self.named.add(entity)

    def of_kind(self, *kinds: Kind) -> list[str]:
        wanted = {k.value for k in kinds}
        return [entity for entity, kind in self.kind.items() if kind in wanted]


class Briefing:
    """One brief's retrieval, for one task in one space."""

    def __init__(self, memory: SpaceMemory, task: str, *, project_id: str | None, agent_role: str | None,
                 metric: str | None, exclude_id: str, feedback: dict[str, int], boosts: dict[str, float]) -> None:
        self.memory = memory
        self.space = memory.space
        self.task = task
        self.project_id = project_id
        self.agent_role = agent_role
        self.metric = metric
        self.exclude_id = exclude_id
        self.feedback = feedback
        self.boosts = boosts
        service = memory.service
        self._index = service.index
        self._query = np.asarray(service.embedder.embed_one(task), dtype=float)
        self._agent_of: dict[str, dict[str, Any]] = {}  # similar delegation id -> its agent

    def gather(self) -> BriefContent:
        # One recall over every kind a brief shows; each group is normalised by its own best item.
        items = self._recall([Kind.DELEGATION, *KNOWLEDGE_KINDS])
        delegations, knowledge = _Found(), _Found()
        delegations.add([i for i in items if i.entity.kind == Kind.DELEGATION.value])
        knowledge.add([i for i in items if i.entity.kind != Kind.DELEGATION.value])
        work = self._similar_work(delegations)
        weights = {d.id: w for d, w in work}
        content = BriefContent(similar_delegations=[d for d, _ in work][:MAX_SIMILAR])
        content.recommended_agents = self._agents(work)
        pinned = self._last_time(work)
        content.lessons = self._lessons(knowledge, weights, pinned=pinned)
        content.last_time = [x for x in content.lessons if x.id in pinned]
        content.artifacts, content.metric = self._artifacts(knowledge, weights)
        anchors = list(weights) + [a.id for items in content.artifacts.values() for a in items]
        content.incidents = self._incidents(knowledge, anchors)
        content.risks = self._risks([d for d, w in work if w >= STRONG_WEIGHT], content.incidents)
        return content

    # -- plumbing -----------------------------------------------------------------------------
    def _rows(self, cypher: str, /, **params: Any) -> list[dict[str, Any]]:
        return self.memory.graph.rows(cypher, **params)

    def _recall(self, kinds: list[Kind]) -> list[RecallItem]:
        query = RecallQuery(text=self.task, limit=RECALL_LIMIT, kinds=kinds)
        return self.memory.recall(query, boosts=self.boosts).items

    def _vectors(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        return {key: np.asarray(v, dtype=float) for key, v in self._index.vectors(sorted(set(keys))).items()}

    def _cosines(self, keys: Iterable[str]) -> dict[str, float]:
        return {key: float(np.dot(vector, self._query)) for key, vector in self._vectors(keys).items()}

    def _relevance(self, found: _Found, ids: Iterable[str]) -> dict[str, float]:
        """Each entity's best cosine with the task, over its own vector and the observations recall matched."""
        ids = list(ids)
        keys = {key for entity in ids for key in found.keys.get(entity, ())} | {f"ent:{entity}" for entity in ids}
        cosines = self._cosines(keys)
        best: dict[str, float] = {}
        for entity in ids:
            own = [cosines[k] for k in {f"ent:{entity}", *found.keys.get(entity, ())} if k in cosines]
            best[entity] = max(own, default=0.0)
        return best

    def _boost(self, item_id: str) -> float:
        return self.boosts.get(item_id, 0.0)

    # -- similar work ---------------------------------------------------------------------------
    def _similar_work(self, found: _Found) -> list[tuple[SimilarDelegation, float]]:
        """Past delegations with the weight each carries as evidence for this task, heaviest first.

        1. Candidates: the delegations recall found, and the latest failures whatever it found.
        2. Similarity: each one's best cosine with the task over its task and outcome vectors.
        3. The task's direction is sharpened by its nearest delegations (pseudo-relevance feedback):
           a task worded unlike the history still lands among the work it is about.
        4. Weight: exp((similarity - best) / EVIDENCE_TAU), so the nearest kind of work counts most
           whatever the absolute cosines; below SIMILAR_FLOOR a delegation never counts.
        5. A delegation similar in its own right counts at least as much as the delegations its brief
           showed (work whose brief surfaced the same history is the same kind of work).
        """
        latest = [row["id"] for row in self._rows(LATEST_FAILURES, limit=RECENT_FAILURES)]
        ids = [d for d in dict.fromkeys([*found.of_kind(Kind.DELEGATION), *latest]) if d != self.exclude_id]
        if not ids:
            return []
        keys = {d: {f"ent:{d}", *found.keys.get(d, ())} for d in ids}
        vectors = self._vectors(k for ks in keys.values() for k in ks)

        def similarity(query: np.ndarray) -> dict[str, float]:
            return {d: max((float(np.dot(vectors[k], query)) for k in ks if k in vectors), default=0.0)
                    for d, ks in keys.items()}

        direct = similarity(self._query)
        seeds = sorted((d for d in ids if direct[d] >= SIMILAR_FLOOR), key=lambda d: -direct[d])[:PRF_SEEDS]
        refined = direct
        if seeds:
            best_keys = [max((k for k in keys[d] if k in vectors), key=lambda k: float(np.dot(vectors[k], self._query)))
                         for d in seeds]
            pull = np.exp((np.array([direct[d] for d in seeds]) - direct[seeds[0]]) / 0.05)
            centre = (pull[:, None] * np.array([vectors[k] for k in best_keys])).sum(axis=0)
            query = self._query + centre / np.linalg.norm(centre)
            refined = similarity(query / np.linalg.norm(query))
        top = max(refined.values())
        weight = {d: float(np.exp((refined[d] - top) / EVIDENCE_TAU)) if direct[d] >= SIMILAR_FLOOR else 0.0
                  for d in ids}

        rows = {row["id"]: row for row in self._rows(DELEGATION_DETAILS, ids=ids)}
        own = dict(weight)
        for d, row in rows.items():  # co-citation: the strongest of the delegations its own brief showed
            if own[d] < MIN_WEIGHT:  # only for work that is similar in its own right: a brief for new kinds
                continue             # of work shows the nearest history, which does not make it the same kind
            shown = sorted((own[x] for x in row.get("shown_ids") or [] if x in own), reverse=True)[:COCITED]
            if shown:
                weight[d] = max(weight[d], sum(shown) / COCITED)
        similar = []
        for d, w in weight.items():
            if w < MIN_WEIGHT or d not in rows:
                continue
            row = rows[d]
            agent = row["agent"] or {}
            self._agent_of[d] = agent
            similar.append((SimilarDelegation(
                id=d, delegation_id=row["delegation_id"], task=row["task"], agent=agent.get("name"),
                status=row["status"], project=row["project"], similarity=round(direct[d], 4), weight=round(w, 4),
                ended_at=row["ended_at"], failure_cause=row["failure_cause"], summary=row["summary"],
            ), w))
        similar.sort(key=lambda pair: (-(pair[1] + self._boost(pair[0].id)), pair[0].delegation_id))
        return similar

    def _agents(self, work: list[tuple[SimilarDelegation, float]]) -> list[AgentRecommendation]:
        """Agents by their success on similar work, weighted by how similar it is and shrunk towards 1/2
        while the evidence is thin; the requested role and the current load matter less as evidence grows."""
        stats: dict[str, dict[str, Any]] = {}

        def entry(agent: dict[str, Any]) -> dict[str, Any]:
            return stats.setdefault(agent["id"], {
                "agent": agent, "similar": 0, "succeeded": 0, "failed": 0, "weighted_success": 0.0,
                "weighted_ended": 0.0, "last_success": None,
            })

        for d, w in work:
            agent = self._agent_of.get(d.id) or {}
            if not agent.get("id"):
                continue
            s = entry(agent)
            strong = w >= STRONG_WEIGHT
            s["similar"] += strong
            if d.status in ("succeeded", "failed"):
                s["weighted_ended"] += w
            if d.status == "succeeded":
                s["succeeded"] += strong
                s["weighted_success"] += w
                if d.ended_at and (s["last_success"] is None or d.ended_at > s["last_success"]):
                    s["last_success"] = d.ended_at
            elif d.status == "failed":
                s["failed"] += strong
        role_key = normalise_name(self.agent_role) if self.agent_role else None
        if role_key:
            for row in self._rows(AGENTS_WITH_ROLE, role=role_key):
                entry(row["agent"])
        if not stats:
            return []
        load = {row["id"]: row["load"] for row in self._rows(AGENT_LOAD, ids=sorted(stats))}

        ranked = []
        for agent_id, s in stats.items():
            agent = s["agent"]
            role_match = bool(role_key and agent.get("role") and normalise_name(agent["role"]) == role_key)
            evidence = s["weighted_ended"]
            score = (s["weighted_success"] + 0.5 * PRIOR_TASKS) / (evidence + PRIOR_TASKS)
            secondary = (W_ROLE if role_match else 0.0) - min(MAX_LOAD_PENALTY, LOAD_PENALTY * load.get(agent_id, 0))
            score += secondary / (1.0 + evidence)  # evidence, when there is some, outweighs role and load
            ended = s["succeeded"] + s["failed"]
            ranked.append(AgentRecommendation(
                agent=agent["name"], agent_id=agent_id, role=agent.get("role"), score=round(score, 4),
                similar_tasks=s["similar"], succeeded=s["succeeded"], failed=s["failed"],
                success_rate=round(s["succeeded"] / ended, 4) if ended else None, last_success_at=s["last_success"],
                load=load.get(agent_id, 0), role_match=role_match, evidence_weight=round(evidence, 3),
                evidence=_evidence(s["succeeded"], s["failed"], s["similar"], evidence, role_match),
            ))
        ranked.sort(key=lambda a: (-a.score, a.agent.casefold()))
        return ranked[:MAX_AGENTS]

    # -- lessons --------------------------------------------------------------------------------
    def _last_time(self, work: list[tuple[SimilarDelegation, float]]) -> dict[str, str]:
        """The lessons of the latest failures on similar work, newest first, each with the reason it is
        pinned: what the last attempt learned."""
        failures = sorted((d for d, w in work if d.status == "failed" and w >= LAST_TIME_WEIGHT and d.ended_at),
                          key=lambda d: d.ended_at, reverse=True)
        if not failures:
            return {}
        rows = self._rows(LESSONS_FROM, delegation_ids=[d.id for d in failures[:MAX_LAST_TIME]])
        order = {d.id: i for i, d in enumerate(failures)}
        pinned: dict[str, str] = {}
        for row in sorted(rows, key=lambda r: (order[r["delegation"]], -SEVERITY.get(r["severity"] or "", 0.0))):
            if len(pinned) == MAX_LAST_TIME or row["id"] in pinned:
                continue
            source = failures[order[row["delegation"]]]
            when = source.ended_at.date().isoformat() if source.ended_at else "recently"
            pinned[row["id"]] = f"last time: learned when similar task {source.delegation_id} failed ({when})"
        return pinned

    def _lessons(self, found: _Found, weights: dict[str, float], *, pinned: dict[str, str]) -> list[BriefLesson]:
        """`pinned` (last time) first, in their order; then lessons by the evidence of the similar work
        they were learned from, their similarity to the task, their project, severity and feedback."""
        near = [row["id"] for row in self._rows(LESSONS_NEAR, delegation_ids=list(weights), project_id=self.project_id)]
        ids = list(dict.fromkeys([*pinned, *found.of_kind(Kind.LESSON), *near]))
        if not ids:
            return []
        relevance = self._relevance(found, ids)
        lessons = []
        for row in self._rows(LESSON_DETAILS, ids=ids):
            lesson_id = row["id"]
            reasons, score = ([pinned[lesson_id]] if lesson_id in pinned else []), 0.0
            sources = [s for s in row["learned_from"] if weights.get(s["id"], 0.0) >= MIN_WEIGHT]
            if sources:
                evidence = sum(weights[s["id"]] for s in sources)
                score += W_LEARNED * evidence
                best = max(sources, key=lambda s: weights[s["id"]])
                times = f" and {len(sources) - 1} more" if len(sources) > 1 else ""
                reasons.append(f"learned from similar delegation {best['delegation_id']} ({best['status'] or 'open'})"
                               f"{times}")
            text_relevant = relevance.get(lesson_id, 0.0) >= RELEVANT_KNOWLEDGE_FLOOR or lesson_id in found.named
            if text_relevant:
                score += W_TEXT * relevance[lesson_id] + W_RECALL * found.score.get(lesson_id, 0.0)
                reasons.append("similar to the task")
            if self.project_id and any(t["id"] == self.project_id for t in row["applies_to"]):
                score += W_PROJECT
                reasons.append("applies to the project")
            if not reasons:
                continue
            score += SEVERITY.get(row["severity"] or "", 0.0)
            net = self.feedback.get(lesson_id, 0)
            if net:
                reasons.append(f"marked {'helpful' if net > 0 else 'unhelpful'} before ({net:+d})")
            score += self._boost(lesson_id)
            lessons.append(BriefLesson(
                id=lesson_id, text=row["text"], score=round(score, 4), severity=row["severity"],
                category=row["category"], source=row["source"], feedback=net, reasons=reasons,
                learned_from=[LessonSource(delegation_id=s["delegation_id"], task=s["task"], status=s["status"],
                                           agent=s["agent"]) for s in row["learned_from"]],
                applies_to=[t["name"] for t in row["applies_to"]],
            ))
        place = {lesson_id: i for i, lesson_id in enumerate(pinned)}
        lessons.sort(key=lambda x: (place.get(x.id, len(place)), -x.score, x.text))
        return lessons[:MAX_LESSONS]

    # -- artifacts ------------------------------------------------------------------------------
    def _artifacts(self, found: _Found, weights: dict[str, float]) -> tuple[dict[Kind, list[BriefArtifact]], str | None]:
        kinds = [k.value for k in ARTIFACT_KINDS]
        producers: dict[str, float] = {}
        for row in self._rows(ARTIFACTS_OF, delegation_ids=list(weights), kinds=kinds):
            producers[row["id"]] = max(producers.get(row["id"], 0.0), weights[row["delegation"]])
        by_project = {row["id"] for row in self._rows(NEAR_PROJECT, project_id=self.project_id, kinds=kinds)} \
            if self.project_id else set()
        ids = list(dict.fromkeys(found.of_kind(*ARTIFACT_KINDS) + list(producers) + sorted(by_project)))
        if not ids:
            return {}, self.metric
        relevance = self._relevance(found, ids)
        artifacts: dict[Kind, list[BriefArtifact]] = defaultdict(list)
        for row in self._rows(ENTITY_DETAILS, ids=ids):
            props = row["props"]
            item_id = props["id"]
            reasons, score = [], 0.0
            if relevance.get(item_id, 0.0) >= RELEVANT_KNOWLEDGE_FLOOR or item_id in found.named:
                score += W_TEXT * relevance[item_id] + W_RECALL * found.score.get(item_id, 0.0)
                reasons.append("similar to the task")
            if item_id in producers:
                score += W_LEARNED * producers[item_id]
                reasons.append("from a similar delegation")
            if item_id in by_project:
                score += W_PROJECT
                reasons.append("part of the project's work")
            if not reasons:
                continue
            score += self._boost(item_id)
            kind = Kind(props["kind"])
            artifacts[kind].append(BriefArtifact(
                id=item_id, kind=kind.value, name=props["name"], summary=props.get("summary"), model=row["model"],
                stage=props.get("stage"), metrics=_prefixed(props, "metric_", numbers=True),
                params=_prefixed(props, "param_"), score=round(score, 4), reasons=reasons,
            ))
        metric = self.metric or _common_metric([*artifacts[Kind.MODEL_VERSION], *artifacts[Kind.EXPERIMENT]])
        for kind, items in artifacts.items():
            items.sort(key=lambda a: (-a.score, a.name.casefold()))
            if kind in (Kind.MODEL_VERSION, Kind.EXPERIMENT) and metric:
                items.sort(key=lambda a: _metric_rank(a, metric))  # stable: best by metric, the rest by score
            del items[MAX_PER_ARTIFACT_KIND:]
        return dict(artifacts), metric

    # -- incidents and risks ----------------------------------------------------------------------
    def _incidents(self, found: _Found, anchors: list[str]) -> list[BriefIncident]:
        near = {row["id"] for row in self._rows(INCIDENTS_NEXT_TO, ids=anchors)} if anchors else set()
        if self.project_id:
            near |= {row["id"] for row in self._rows(NEAR_PROJECT, project_id=self.project_id, kinds=["Incident"])}
        ids = list(dict.fromkeys(found.of_kind(Kind.INCIDENT) + sorted(near)))
        if not ids:
            return []
        relevance = self._relevance(found, ids)
        incidents = []
        for row in self._rows(ENTITY_DETAILS, ids=ids):
            props = row["props"]
            status = (props.get("status") or "").lower()
            if status in CLOSED_INCIDENT or props.get("resolved_at"):
                continue
            relevant = relevance.get(props["id"], 0.0) >= RELEVANT_KNOWLEDGE_FLOOR or props["id"] in found.named
            if not relevant and props["id"] not in near:
                continue
            score = W_TEXT * relevance.get(props["id"], 0.0) + (W_PROJECT if props["id"] in near else 0.0)
            score += SEVERITY.get((props.get("severity") or "").lower(), 0.0) + self._boost(props["id"])
            incidents.append(BriefIncident(
                id=props["id"], name=props["name"], summary=props.get("summary"), severity=props.get("severity"),
                status=props.get("status"), opened_at=props.get("opened_at"), score=round(score, 4),
            ))
        incidents.sort(key=lambda i: (-i.score, i.name.casefold()))
        return incidents[:MAX_INCIDENTS]

    @staticmethod
    def _risks(similar: list[SimilarDelegation], incidents: list[BriefIncident]) -> list[Risk]:
        risks = []
        for d in similar:
            if d.status in ("failed", "cancelled"):
                why = d.failure_cause or d.summary or "no cause recorded"
                who = f" ({d.agent})" if d.agent else ""
                risks.append(Risk(text=f"A similar task{who} {d.status}: {why}", source_id=d.id,
                                  kind="failed_delegation" if d.status == "failed" else "cancelled_delegation"))
        for incident in incidents:
            if (incident.severity or "").lower() in ("high", "critical"):
                risks.append(Risk(text=f"Open {incident.severity} incident: {incident.name}", source_id=incident.id,
                                  kind="open_incident"))
        return risks[:MAX_RISKS]


def _evidence(succeeded: int, failed: int, similar: int, weight: float, role_match: bool) -> str:
    """What an agent's recommendation rests on, in words."""
    if succeeded + failed:
        said = f"{succeeded} of {succeeded + failed} similar tasks succeeded ({succeeded / (succeeded + failed):.0%})"
    elif similar:
        said = f"{similar} similar task{'s' if similar != 1 else ''}, none finished"
    else:
        said = "no closely similar tasks"
    if weight < THIN_EVIDENCE:
        said += "; thin evidence" + (", recommended for the requested role" if role_match else "")
    return said


def _prefixed(props: dict[str, Any], prefix: str, *, numbers: bool = False) -> dict[str, Any]:
    found = {}
    for key, value in props.items():
        if not key.startswith(prefix):
            continue
        if numbers and not (isinstance(value, (int, float)) and not isinstance(value, bool)):
            continue
        if isinstance(value, (str, int, float, bool)):
            found[key.removeprefix(prefix)] = float(value) if numbers else value
    return dict(sorted(found.items()))


def _common_metric(items: list[BriefArtifact]) -> str | None:
    counts: dict[str, int] = defaultdict(int)
    for item in items:
        for name in item.metrics:
            counts[name] += 1
    return min(counts, key=lambda name: (-counts[name], name)) if counts else None


def _metric_rank(item: BriefArtifact, metric: str) -> tuple[int, float]:
    value = item.metrics.get(metric)
    if value is None:
        return (1, 0.0)
    return (0, -value if higher_is_better(metric) else value)

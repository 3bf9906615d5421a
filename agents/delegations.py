"""The delegation lifecycle: a brief before each delegation, an outcome record after it.

    delegations = Delegations(memory.space("acme"), extractor=ClaudeExtractor())
    brief = delegations.brief(BriefRequest(task="Retrain the churn model", project="churn", agent_role="ml-engineer"))
    # ... delegate, with brief.markdown in the specialist's prompt ...
    delegations.record_outcome(OutcomeRequest(delegation_id=brief.delegation_id, status="succeeded", agent="ml-1",
                                              summary="...", lessons=[...], helpful=[brief.lessons[0].id]))

How it lands in the graph (docs/delegations.md has the whole picture):

- A `:Delegation` named by its delegation id (summary and `task`: the task), PART_OF its project,
  DELEGATED_TO its agent (single-valued, so a reassignment keeps history). `status` starts
  `planned`; `shown_ids` lists the memories its briefs showed; `helpful_ids` and `unhelpful_ids`
  are the feedback on them; `outcome_keys` fingerprints the outcomes already applied.
- An outcome summary is an observation of the delegation (`source` outcome), so recall finds it.
- Lessons are `:Lesson` entities named by their text, LEARNED_FROM the delegation, APPLIES_TO the
  project and whatever else they concern; artifacts hang off it by PRODUCED or DEPENDS_ON.
- An agent's track record is read from the graph (its current DELEGATED_TO delegations), never counted.

Each call writes in one transaction that starts by locking the delegation node, so concurrent
calls on one delegation queue up: the same outcome ten times is applied once, ten different
lessons are all kept. Vectors follow the commit, as for every memory write.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from datetime import datetime
from typing import Any

from agents.briefing import Briefing, BriefContent, current
from agents.briefs import DELEGATION_ID, Brief, BriefRequest, estimate_tokens, render_markdown
from agents.outcomes import (
    ARTIFACT_KINDS,
    ARTIFACT_RELATIONS,
    AgentTrackRecord,
    DelegationState,
    ExtractionReport,
    OutcomeRecord,
    OutcomeRequest,
    RecordedArtifact,
    RecordedLesson,
)
from graph.errors import InvalidInput, KgmemError, NotFound
from graph.model import EntityIn, EntityRef, ObservationIn, Provenance, RelationIn
from graph.writes import SpaceWriter
from graph.vocabulary import OPEN_STATUSES, TERMINAL_STATUSES, Kind, normalise_name
from memory.extraction import ClaudeExtractor, GraphWrites, Skipped, lesson_name, to_graph_writes
from memory.service import SpaceMemory

log = logging.getLogger(__name__)

# Delegation entity ids derive from (space, delegation id), so concurrent first briefs agree on one.
ID_NAMESPACE = uuid.UUID("6f1d8a52-3c4b-4e8e-9a57-2b0f5d1c7e90")
UUID_TEXT = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
FEEDBACK_WEIGHT = 0.5  # the most a memory's feedback adds to (or takes from) its score
MAX_OUTCOME_KEYS = 50

# -- queries --------------------------------------------------------------------------------------
# Any write takes the node's lock until the transaction ends; the next statement then reads it fresh.
LOCK_DELEGATION = """
MATCH (d:Entity {space: $space, kind: 'Delegation', name_key: $key})
WHERE d.retracted_at IS NULL
SET d.kgmem_lock = true
REMOVE d.kgmem_lock
RETURN d.id AS id
"""

DELEGATION_STATE = f"""
MATCH (d:Entity {{space: $space, kind: 'Delegation', name_key: $key}})
WHERE d.retracted_at IS NULL
RETURN d {{.*}} AS delegation,
       head(COLLECT {{ MATCH (d)-[r:PART_OF]->(p:Project) WHERE {current('r')} AND p.retracted_at IS NULL
                      RETURN p {{.id, .name}} ORDER BY r.recorded_at }}) AS project,
       head(COLLECT {{ MATCH (d)-[r:DELEGATED_TO]->(a:Agent) WHERE {current('r')} AND a.retracted_at IS NULL
                      RETURN a.name }}) AS agent,
       COLLECT {{ MATCH (d)<-[r:LEARNED_FROM]-(l:Lesson) WHERE {current('r')} AND l.retracted_at IS NULL
                 RETURN l {{.id, .name, .summary, .severity, .category, .source,
                           applies_to: COLLECT {{ MATCH (l)-[a:APPLIES_TO]->(t:Entity)
                                                 WHERE {current('a')} AND t.retracted_at IS NULL
                                                 RETURN t.name ORDER BY t.name_key }}}}
                 ORDER BY l.created_at, l.id }} AS lessons,
       COLLECT {{ MATCH (d)-[r:PRODUCED|DEPENDS_ON]->(x:Entity) WHERE {current('r')} AND x.retracted_at IS NULL
                 RETURN {{id: x.id, kind: x.kind, name: x.name, relation: type(r)}} ORDER BY x.name_key, x.kind }} AS artifacts,
       head(COLLECT {{ MATCH (d)-[:HAS_OBSERVATION]->(o:Observation) WHERE {current('o')} AND o.source = 'outcome'
                      RETURN o.text ORDER BY o.recorded_at DESC, o.id }}) AS summary
"""

SET_DEFAULTS = """
MATCH (d:Entity {id: $id})
WHERE d.space = $space
SET d.status = coalesce(d.status, 'planned'),
    d.shown_ids = coalesce(d.shown_ids, []) + [x IN $shown WHERE NOT x IN coalesce(d.shown_ids, [])],
    d.brief_markdown = $markdown, d.brief_budget_tokens = $budget
RETURN d.status AS status
"""

ADD_SHOWN = """
MATCH (d:Entity {id: $id})
WHERE d.space = $space
SET d.shown_ids = coalesce(d.shown_ids, []) + [x IN $shown WHERE NOT x IN coalesce(d.shown_ids, [])],
    d.brief_markdown = $markdown, d.brief_budget_tokens = $budget
RETURN d.status AS status
"""

AGENT_ROLE = """
MATCH (a:Entity {space: $space, kind: 'Agent', name_key: $key})
RETURN a.role AS role
"""

CLAIM_EXTRACTION = "MATCH (d:Entity {id: $id}) WHERE d.space = $space SET d.extraction_key = $key"
RELEASE_EXTRACTION = """
MATCH (d:Entity {id: $id})
WHERE d.space = $space AND d.extraction_key = $key
SET d.extraction_key = null
"""

FEEDBACK = """
MATCH (d:Entity {space: $space, kind: 'Delegation'})
WHERE d.retracted_at IS NULL AND (d.helpful_ids IS NOT NULL OR d.unhelpful_ids IS NOT NULL)
UNWIND [x IN coalesce(d.helpful_ids, []) | {id: x, vote: 1}] + [x IN coalesce(d.unhelpful_ids, []) | {id: x, vote: -1}] AS v
RETURN v.id AS id, sum(v.vote) AS net
"""

TRACK_RECORD = f"""
MATCH (a:Entity {{space: $space, kind: 'Agent', name_key: $key}})
WHERE a.retracted_at IS NULL
OPTIONAL MATCH (a)<-[r:DELEGATED_TO]-(d:Delegation)
WHERE {current('r')} AND d.retracted_at IS NULL
RETURN a.id AS id, a.name AS name, a.role AS role, count(d) AS delegations,
       count(CASE WHEN d.status = 'succeeded' THEN 1 END) AS succeeded,
       count(CASE WHEN d.status = 'failed' THEN 1 END) AS failed,
       count(CASE WHEN d.status = 'cancelled' THEN 1 END) AS cancelled,
       count(CASE WHEN d.status IN $open THEN 1 END) AS open,
       max(CASE WHEN d.status = 'succeeded' THEN coalesce(d.ended_at, d.updated_at) END) AS last_success_at,
       avg(d.duration_s) AS mean_duration_s,
       sum(coalesce(d.cost_usd, 0.0)) AS total_cost_usd
"""


def feedback_boost(net: int) -> float:
    """Net votes to a recall boost: +1 gives a quarter, and it never passes FEEDBACK_WEIGHT either way."""
    return FEEDBACK_WEIGHT * net / (1 + abs(net))


def _fingerprint(request: OutcomeRequest) -> str:
    """The outcome's content; asking for extraction again is not a new outcome."""
    body = request.model_dump_json(exclude={"extract", "delegation_id"})
    return hashlib.sha256(body.encode()).hexdigest()[:32]


def _key(delegation_id: str) -> str:
    if not DELEGATION_ID.fullmatch(delegation_id):
        raise InvalidInput(
            f"delegation id {delegation_id!r} is not valid: use 1-200 characters, without control characters "
            "or spaces at either end")
    return normalise_name(delegation_id)


class Delegations:
    """Briefs and outcomes for one space's delegations."""

    def __init__(self, memory: SpaceMemory, *, extractor: ClaudeExtractor | None = None) -> None:
        self.memory = memory
        self.graph = memory.graph
        self.space = memory.space
        self.extractor = extractor

    # -- brief ----------------------------------------------------------------------------------
    def brief(self, request: BriefRequest) -> Brief:
        """What memory holds on the task, as JSON and as markdown within the budget; records the delegation."""
        name = self._delegation_name(request)
        key = _key(name)
        entity_id = str(uuid.uuid5(ID_NAMESPACE, f"{self.space}\n{key}"))
        existing = self._state_row(key)
        project = self._project(request.project)
        role = request.agent_role
        if existing:
            self._same_delegation(existing, request, project)
            if project is None and existing["project"]:
                project = (existing["project"]["id"], existing["project"]["name"])
            stored = existing["delegation"]
            role = role or stored.get("agent_role") or stored.get("role")  # "role": a template's planned delegation

        votes = self.feedback()
        content = Briefing(
            self.memory, request.task, project_id=project[0] if project else None, agent_role=role,
            metric=request.metric, exclude_id=existing["delegation"]["id"] if existing else entity_id,
            feedback=votes, boosts={item: feedback_boost(net) for item, net in votes.items()},
        ).gather()
        # The markdown names neither the entity id nor the status, so it is rendered once, before the
        # write, and stored with the delegation as the agent receives it (the latest brief wins).
        brief = self._brief(request, name, entity_id, "planned", True, project, role, content)
        entity_id, status, created = self.graph.write(
            lambda w: self._open_tx(w, request, name, key, entity_id, project, brief))
        return brief.model_copy(update={"entity_id": entity_id, "status": status, "created": created})

    def _delegation_name(self, request: BriefRequest) -> str:
        if request.delegation_id:
            return request.delegation_id
        if request.idempotency_key:
            digest = hashlib.sha256(request.idempotency_key.encode()).hexdigest()
            return f"d-{digest[:16]}"
        return f"d-{uuid.uuid4().hex[:16]}"

    def _project(self, project: str | None) -> tuple[str | None, str] | None:
        """(id, name) of the named project; id None for a new name, created with the delegation."""
        if not project:
            return None
        try:
            entity = self.graph.get_entity(project)
        except NotFound:
            entity = None
        if entity is not None:
            if entity.kind is not Kind.PROJECT:
                raise InvalidInput(f"{project!r} is the id of a {entity.kind.value}, not of a project")
            return entity.id, entity.name
        found = self.graph.find_by_name(project, kind=Kind.PROJECT)
        if found:
            return found[0].id, found[0].name
        if UUID_TEXT.fullmatch(project.strip()):
            raise NotFound(f"no project {project!r} in this space")
        return None, " ".join(project.split())

    @staticmethod
    def _same_delegation(row: dict[str, Any], request: BriefRequest, project: tuple[str | None, str] | None) -> None:
        """A retried brief must describe the same delegation; reusing an id for other work is a mistake.
        A delegation planned elsewhere (a template, an MCP client) and never briefed takes the brief's task."""
        delegation = row["delegation"]
        briefed = delegation.get("shown_ids") is not None
        if briefed and normalise_name(delegation.get("task") or "") != normalise_name(request.task):
            raise InvalidInput(
                f"delegation {delegation['name']} was briefed for another task ({delegation.get('task')!r}); "
                "use a new delegation_id or idempotency_key for new work")
        stored = row["project"]
        if project is not None and stored is not None and (
                project[0] != stored["id"] if project[0] else normalise_name(project[1]) != normalise_name(stored["name"])):
            raise InvalidInput(
                f"delegation {delegation['name']} belongs to project {stored['name']!r}, not {project[1]!r}; "
                "use a new delegation_id or idempotency_key for new work")

    def _open_tx(self, w: SpaceWriter, request: BriefRequest, name: str, key: str, entity_id: str,
                 project: tuple[str | None, str] | None, brief: Brief) -> tuple[str, str, bool]:
        shown, stored = brief.shown_ids, {"markdown": brief.markdown, "budget": brief.budget_tokens}
        locked = w.row(LOCK_DELEGATION, key=key)
        if locked:
            row = w.row(DELEGATION_STATE, key=key)
            self._same_delegation(row, request, project)
            if row["delegation"].get("shown_ids") is not None:  # a retry: now with what this brief showed too
                status = w.row(ADD_SHOWN, id=locked["id"], shown=shown, **stored)["status"]
                return locked["id"], status, False
            # else planned elsewhere and never briefed: this brief completes it

        attributes = {"task": request.task, "task_type": request.task_type, "agent_role": request.agent_role,
                      "idempotency_key": request.idempotency_key}
        provenance = Provenance(source="brief", delegation_id=name)
        written = w.upsert_entities([EntityIn(
            id=entity_id, kind=Kind.DELEGATION, name=name, summary=request.task, provenance=provenance,
            attributes={k: v for k, v in attributes.items() if v is not None})])
        entity_id = written[0]["id"]  # one planned elsewhere, or deleted before, keeps its own id
        created = written[0]["created_at"] == w.at
        if project is not None:
            target = EntityRef(id=project[0]) if project[0] else EntityRef(kind=Kind.PROJECT, name=project[1])
            w.upsert_relations([RelationIn(
                source=EntityRef(id=entity_id), type="PART_OF", target=target, provenance=provenance)],
                create_missing=True)
        # Only a delegation that has no status yet starts as planned: a late retry never resets an outcome.
        status = w.row(SET_DEFAULTS, id=entity_id, shown=shown, **stored)["status"]
        return entity_id, status, created

    def _brief(self, request: BriefRequest, name: str, entity_id: str, status: str, created: bool,
               project: tuple[str | None, str] | None, role: str | None, content: BriefContent) -> Brief:
        brief = Brief(
            delegation_id=name, entity_id=entity_id, created=created, status=status, task=request.task,
            project=project[1] if project else None, agent_role=role,
            recommended_agents=content.recommended_agents, last_time=content.last_time, lessons=content.lessons,
            similar_delegations=content.similar_delegations,
            models=content.artifacts.get(Kind.MODEL, []), model_versions=content.artifacts.get(Kind.MODEL_VERSION, []),
            features=content.artifacts.get(Kind.FEATURE, []), experiments=content.artifacts.get(Kind.EXPERIMENT, []),
            datasets=content.artifacts.get(Kind.DATASET, []), incidents=content.incidents, risks=content.risks,
            metric=content.metric, shown_ids=content.shown_ids(), budget_tokens=request.budget_tokens,
        )
        brief.markdown = render_markdown(brief, request.budget_tokens)
        brief.estimated_tokens = estimate_tokens(brief.markdown)
        return brief

    # -- feedback -------------------------------------------------------------------------------
    def feedback(self) -> dict[str, int]:
        """Net votes per memory id: times marked helpful minus times marked unhelpful, over all delegations."""
        return {row["id"]: row["net"] for row in self._rows(FEEDBACK) if row["net"]}

    def feedback_boosts(self) -> dict[str, float]:
        """The stored feedback as `boosts` for memory recall: memories that helped before rank higher."""
        return {item: feedback_boost(net) for item, net in self.feedback().items()}

    # -- outcome --------------------------------------------------------------------------------
    def record_outcome(self, request: OutcomeRequest) -> OutcomeRecord:
        """Apply an outcome to a briefed delegation; the same outcome twice changes nothing."""
        key = _key(request.delegation_id)
        fingerprint = _fingerprint(request)
        extraction_key = None
        if request.extract and self.extractor is not None and request.summary:
            extraction_key = hashlib.sha256(normalise_name(request.summary).encode()).hexdigest()[:32]

        applied = self.graph.write(lambda w: self._outcome_tx(w, request, key, fingerprint, extraction_key))
        extraction = self._extraction(request, applied, extraction_key)
        state = self.get(request.delegation_id)
        agent = self.track_record(state.agent) if state.agent else None
        return OutcomeRecord(delegation=state, changed=applied["changed"], agent_record=agent, extraction=extraction)

    def _outcome_tx(self, w: SpaceWriter, request: OutcomeRequest, key: str, fingerprint: str,
                    extraction_key: str | None) -> dict[str, Any]:
        if not w.row(LOCK_DELEGATION, key=key):
            raise NotFound(f"no delegation {request.delegation_id!r} in this space; brief it first")
        row = w.row(DELEGATION_STATE, key=key)
        delegation = row["delegation"]
        changed = fingerprint not in (delegation.get("outcome_keys") or [])
        if changed:
            self._apply_outcome(w, request, row, fingerprint)
        claimed = bool(extraction_key) and delegation.get("extraction_key") != extraction_key
        if claimed:
            w.run(CLAIM_EXTRACTION, id=delegation["id"], key=extraction_key)
        return {"id": delegation["id"], "name": delegation["name"], "task": delegation.get("task"),
                "project": row["project"], "changed": changed, "claimed": claimed,
                "agent": request.agent or row["agent"]}

    def _apply_outcome(self, w: SpaceWriter, request: OutcomeRequest, row: dict[str, Any], fingerprint: str) -> None:
        delegation = row["delegation"]
        ref = EntityRef(id=delegation["id"])
        provenance = Provenance(source="outcome", agent=request.agent or row["agent"], delegation_id=delegation["name"])
        entities = [EntityIn(kind=Kind.DELEGATION, name=delegation["name"], provenance=provenance,
                             attributes=self._outcome_attributes(request, delegation, fingerprint, w.at))]
        relations: list[RelationIn] = []

        if request.agent:
            role = delegation.get("agent_role") or delegation.get("role")
            known = w.row(AGENT_ROLE, key=normalise_name(request.agent))
            if role and (known is None or not known["role"]):
                entities.append(EntityIn(kind=Kind.AGENT, name=request.agent, attributes={"role": role},
                                         provenance=provenance))
            relations.append(RelationIn(source=ref, type="DELEGATED_TO", target=EntityRef(kind=Kind.AGENT, name=request.agent),
                                        provenance=provenance))

        for artifact in request.artifacts:
            kind = ARTIFACT_KINDS[artifact.kind]
            entities.append(EntityIn(kind=kind, name=artifact.name, summary=artifact.summary,
                                     attributes=artifact.properties(), provenance=provenance))
            target = EntityRef(kind=kind, name=artifact.name)
            relations.append(RelationIn(source=ref, type=ARTIFACT_RELATIONS[artifact.role], target=target,
                                        provenance=provenance))
            if artifact.model:
                relations.append(RelationIn(source=target, type="VERSION_OF", target=EntityRef(kind=Kind.MODEL, name=artifact.model),
                                            provenance=provenance))

        project = EntityRef(id=row["project"]["id"]) if row["project"] else None
        for lesson in request.lessons:
            lesson_ref = EntityRef(kind=Kind.LESSON, name=lesson_name(lesson.text))
            attributes = {"severity": lesson.severity, **({"category": lesson.category} if lesson.category else {})}
            entities.append(EntityIn(kind=Kind.LESSON, name=lesson_ref.name, summary=lesson.text, attributes=attributes,
                                     provenance=provenance))
            relations.append(RelationIn(source=lesson_ref, type="LEARNED_FROM", target=ref, provenance=provenance))
            targets = [EntityRef(kind=t.kind, name=t.name) for t in lesson.applies_to] + ([project] if project else [])
            relations += [RelationIn(source=lesson_ref, type="APPLIES_TO", target=t, provenance=provenance) for t in targets]

        w.upsert_entities(entities)
        if relations:
            w.upsert_relations(relations, create_missing=True)
        if request.summary:
            w.add_observations([ObservationIn(entity=ref, text=request.summary, provenance=provenance)])

    def _outcome_attributes(self, request: OutcomeRequest, delegation: dict[str, Any], fingerprint: str,
                            at: datetime) -> dict[str, Any]:
        status = delegation.get("status")
        if status in TERMINAL_STATUSES and request.status == "running":
            raise InvalidInput(
                f"delegation {delegation['name']} already ended ({status}); a running update cannot reopen it")
        shown = set(delegation.get("shown_ids") or [])
        unknown = sorted({*request.helpful, *request.unhelpful} - shown)
        if unknown:
            raise InvalidInput(
                f"feedback names memories the brief of {delegation['name']} did not show: {', '.join(unknown[:10])}; "
                "use ids from the brief's shown_ids")

        attributes: dict[str, Any] = {"status": request.status}
        started = delegation.get("started_at")
        if request.status == "running" and started is None:
            attributes["started_at"] = at
        ended = delegation.get("ended_at")
        if request.status in TERMINAL_STATUSES:
            if status != request.status or ended is None:
                ended = attributes["ended_at"] = at
            if request.duration_s is None and started is not None and delegation.get("duration_s") is None:
                attributes["duration_s"] = max(0.0, (ended - started).total_seconds())
        for field in ("duration_s", "cost_usd", "failure_cause"):
            if getattr(request, field) is not None:
                attributes[field] = getattr(request, field)
        attributes |= {f"metric_{name}": value for name, value in request.metrics.items()}

        helpful = [x for x in delegation.get("helpful_ids") or [] if x not in request.unhelpful]
        unhelpful = [x for x in delegation.get("unhelpful_ids") or [] if x not in request.helpful]
        if request.helpful or request.unhelpful:
            attributes["helpful_ids"] = list(dict.fromkeys(helpful + request.helpful))
            attributes["unhelpful_ids"] = list(dict.fromkeys(unhelpful + request.unhelpful))
        attributes["outcome_keys"] = [*(delegation.get("outcome_keys") or []), fingerprint][-MAX_OUTCOME_KEYS:]
        return attributes

    # -- extraction -----------------------------------------------------------------------------
    def _extraction(self, request: OutcomeRequest, applied: dict[str, Any], extraction_key: str | None) -> ExtractionReport:
        if not request.extract:
            return ExtractionReport(status="not_requested")
        if self.extractor is None:
            return ExtractionReport(status="skipped", detail="no Claude extractor is configured (set ANTHROPIC_API_KEY)")
        if not request.summary:
            return ExtractionReport(status="skipped", detail="the outcome has no summary to extract from")
        if not applied["claimed"]:
            return ExtractionReport(status="already_done", detail="this summary was extracted before")
        try:
            return self._extract(request, applied)
        except KgmemError as exc:  # Claude or the graph refused; the outcome itself is recorded
            self.graph.write(lambda w: w.run(RELEASE_EXTRACTION, id=applied["id"], key=extraction_key))
            log.warning("extraction for delegation %s failed: %s", applied["name"], exc)
            return ExtractionReport(status="failed", detail=str(exc),
                                    input_tokens=getattr(getattr(exc, "usage", None), "input_tokens", 0),
                                    output_tokens=getattr(getattr(exc, "usage", None), "output_tokens", 0))

    def _extract(self, request: OutcomeRequest, applied: dict[str, Any]) -> ExtractionReport:
        name = applied["name"]
        project = applied["project"]["name"] if applied["project"] else None
        known = [name, *(x for x in (project, applied["agent"]) if x), *(a.name for a in request.artifacts)]
        context = f"This is the outcome of delegation {name}" + (f" in project {project}" if project else "")
        context += f". Its task: {applied['task']}" if applied["task"] else ""
        result = self.extractor.extract(request.summary, context=context, known_entities=known)
        provenance = Provenance(source="extraction", agent=applied["agent"], delegation_id=name)
        found = _own_delegation(to_graph_writes(result.extraction, provenance), name, applied["id"])

        delegation = EntityRef(id=applied["id"])
        lessons = [e for e in found.entities if e.kind is Kind.LESSON]
        for lesson in lessons:
            lesson_ref = EntityRef(kind=Kind.LESSON, name=lesson.name)
            found.relations.append(RelationIn(source=lesson_ref, type="LEARNED_FROM", target=delegation, provenance=provenance))
            if applied["project"]:
                found.relations.append(RelationIn(source=lesson_ref, type="APPLIES_TO",
                                                  target=EntityRef(id=applied["project"]["id"]), provenance=provenance))

        def unit(w: SpaceWriter) -> None:
            w.upsert_entities(found.entities)
            if found.observations:
                w.add_observations(found.observations, create_missing=True)
            if found.relations:
                w.upsert_relations(found.relations, create_missing=True)

        self.graph.write(unit)
        return ExtractionReport(
            status="done", lessons=[lesson.summary or lesson.name for lesson in lessons], entities=len(found.entities),
            relations=len(found.relations), observations=len(found.observations),
            skipped=[f"{s.item}: {s.reason}" for s in found.skipped],
            contradictions=[f"{c.existing} / {c.new}: {c.explanation}" for c in found.contradictions],
            input_tokens=result.usage.input_tokens, output_tokens=result.usage.output_tokens,
        )

    # -- reads ----------------------------------------------------------------------------------
    def get(self, delegation_id: str) -> DelegationState:
        """A delegation as it stands: status, outcome, lessons, artifacts, feedback."""
        row = self._state_row(_key(delegation_id))
        if row is None:
            raise NotFound(f"no delegation {delegation_id!r} in this space")
        return _state(row)

    def track_record(self, agent: str) -> AgentTrackRecord:
        """An agent's record over the delegations currently assigned to it."""
        rows = self._rows(TRACK_RECORD, key=normalise_name(agent), open=list(OPEN_STATUSES))
        if not rows:
            raise NotFound(f"no agent {agent!r} in this space")
        row = rows[0]
        ended = row["succeeded"] + row["failed"]
        return AgentTrackRecord(
            agent=row["name"], agent_id=row["id"], role=row["role"], delegations=row["delegations"],
            succeeded=row["succeeded"], failed=row["failed"], cancelled=row["cancelled"], open=row["open"],
            success_rate=round(row["succeeded"] / ended, 4) if ended else None, last_success_at=row["last_success_at"],
            mean_duration_s=row["mean_duration_s"], total_cost_usd=float(row["total_cost_usd"] or 0.0),
        )

    # -- plumbing -------------------------------------------------------------------------------
    def _rows(self, cypher: str, /, **params: Any) -> list[dict[str, Any]]:
        return self.graph.rows(cypher, **params)

    def _state_row(self, key: str) -> dict[str, Any] | None:
        rows = self._rows(DELEGATION_STATE, key=key)
        return rows[0] if rows else None


def _own_delegation(found: GraphWrites, name: str, delegation_id: str) -> GraphWrites:
    """Claude may name delegations too. This one is kgmem's to write, so its extracted entity is dropped and
    references to it point at the node; other delegations are not invented from a summary."""
    ours = normalise_name(name)

    def resolve(ref: EntityRef) -> EntityRef | None:
        if ref.name_key == ours and ref.kind in (None, Kind.DELEGATION):
            return EntityRef(id=delegation_id)
        return None if ref.kind is Kind.DELEGATION else ref

    kept = GraphWrites(contradictions=found.contradictions, skipped=list(found.skipped))
    for entity in found.entities:
        if entity.kind is Kind.DELEGATION:
            kept.skipped.append(Skipped(f"entity {entity.name} (Delegation)", "delegations are recorded by brief, not extracted"))
        else:
            kept.entities.append(entity)
    for observation in found.observations:
        target = resolve(observation.entity)
        if target is None:
            kept.skipped.append(Skipped(f"observation on {observation.entity.name}", "names a delegation kgmem does not know"))
        else:
            kept.observations.append(observation.model_copy(update={"entity": target}))
    for relation in found.relations:
        source, target = resolve(relation.source), resolve(relation.target)
        if source is None or target is None:
            kept.skipped.append(Skipped(f"relation {relation.source.name} -[{relation.type}]-> {relation.target.name}",
                                        "names a delegation kgmem does not know"))
        else:
            kept.relations.append(relation.model_copy(update={"source": source, "target": target}))
    return kept


def _state(row: dict[str, Any]) -> DelegationState:
    d = row["delegation"]
    metrics = {k.removeprefix("metric_"): float(v) for k, v in d.items()
               if k.startswith("metric_") and isinstance(v, (int, float)) and not isinstance(v, bool)}
    return DelegationState(
        delegation_id=d["name"], entity_id=d["id"], task=d.get("task"), task_type=d.get("task_type"),
        agent_role=d.get("agent_role"), status=d.get("status"), project=row["project"]["name"] if row["project"] else None,
        agent=row["agent"], created_at=d["created_at"], started_at=d.get("started_at"), ended_at=d.get("ended_at"),
        duration_s=d.get("duration_s"), cost_usd=d.get("cost_usd"), failure_cause=d.get("failure_cause"),
        metrics=dict(sorted(metrics.items())), summary=row["summary"],
        lessons=[RecordedLesson(id=l["id"], text=l.get("summary") or l["name"], severity=l.get("severity"),
                                category=l.get("category"), source=l.get("source"), applies_to=l["applies_to"])
                 for l in row["lessons"]],
        artifacts=[RecordedArtifact(**a) for a in row["artifacts"]],
        shown_ids=d.get("shown_ids") or [], helpful_ids=d.get("helpful_ids") or [],
        unhelpful_ids=d.get("unhelpful_ids") or [], brief_markdown=d.get("brief_markdown"),
        brief_budget_tokens=d.get("brief_budget_tokens"),
    )

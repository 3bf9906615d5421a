"""A synthetic orchestration history, generated from a seed, for `kgmem bench perf`.

N counts memories: observations, lessons and free-text memories. The rest of the graph
(projects, agents, delegations, experiments, model versions, features, incidents and
their relations) grows with N in fixed proportions, so the same generator gives the
1k, 10k and 100k workloads and cost can be compared across them.

Texts are assembled from domain phrases with a seeded RNG: varied enough that keyword
and vector search have real work to do, deterministic so two runs see the same data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from graph.model import EntityIn, EntityRef, ObservationIn, Provenance, RelationIn
from graph.vocabulary import Kind

DOMAINS = [
    ("churn", "customer churn", ["tenure_months", "support_tickets", "plan_price", "last_login_days", "nps_score"]),
    ("fraud", "card fraud", ["txn_amount", "merchant_risk", "velocity_1h", "geo_distance", "device_age"]),
    ("demand", "demand forecasting", ["lag_7", "promo_flag", "holiday", "price_index", "weather_temp"]),
    ("recsys", "product recommendations", ["item_popularity", "user_recency", "category_affinity", "dwell_time"]),
    ("support-bot", "support assistant", ["intent_confidence", "retrieval_hits", "answer_length", "escalations"]),
    ("pricing", "dynamic pricing", ["competitor_price", "stock_level", "elasticity", "season"]),
    ("ltv", "customer lifetime value", ["first_order_value", "orders_90d", "channel", "discount_share"]),
    ("anomaly", "sensor anomaly detection", ["vibration_rms", "temp_delta", "pressure", "uptime_hours"]),
]
ROLES = ["data-scientist", "data-engineer", "ml-engineer", "ai-engineer", "data-architect", "analytics-expert"]
MODEL_FAMILIES = ["xgboost", "lightgbm", "logistic regression", "random forest", "transformer", "prophet", "two-tower"]
TASKS = [
    "Retrain the {domain} model on the {month} snapshot",
    "Backfill the {domain} feature table for {month}",
    "Evaluate the {family} candidate for {domain} against production",
    "Investigate the drop in {metric} for the {domain} model",
    "Build the {domain} dashboard for the {month} review",
    "Tune hyperparameters of the {family} {domain} model",
    "Design the data contract for {domain} events",
    "Deploy the {domain} model version {version} to staging",
    "Write the {domain} evaluation harness for offline {metric}",
    "Migrate the {domain} pipeline to incremental loads",
]
FINDINGS = [
    "{feature} leaked the label through a late-arriving join; dropping it cut offline {metric} from {a} to {b} but closed the production gap",
    "the {month} snapshot had duplicate rows for {feature}, which inflated {metric} by {d} points",
    "{family} beat the baseline by {d} points of {metric} once {feature} was bucketed",
    "training on the {month} data without reweighting made {metric} fall to {b} for new customers",
    "the nightly job timed out because {feature} was recomputed from raw events instead of the daily aggregate",
    "calibration drifted after the {month} release; isotonic recalibration restored {metric} to {a}",
    "a schema change renamed {feature} upstream and the pipeline silently filled it with nulls",
    "early stopping at {n} rounds gave the best {metric} ({a}) with learning rate {lr}",
    "the staging deploy failed because the feature store lagged {n} minutes behind the model's expectations",
    "stakeholders asked for weekly rather than daily {metric} reporting to cut noise",
]
LESSONS = [
    "Check {feature} for label leakage before trusting a jump in {metric}",
    "Deduplicate the {month} snapshot on the business key before training",
    "Pin the schema of upstream {domain} events with a data contract",
    "Recalibrate probabilities after every major release of the {domain} model",
    "Use the daily aggregate of {feature}, never the raw events, in nightly jobs",
    "Compare against the production model on the same holdout before promoting",
    "Start {family} tuning from learning rate {lr} and early stopping",
    "Alert on feature-store lag above {n} minutes before deploying",
]
INCIDENTS = [
    "{domain} model served stale predictions after the feature store lagged",
    "{metric} of the {domain} model fell below its benchmark in production",
    "{feature} arrived null for {n} hours after an upstream schema change",
]
MEMORIES = [
    "The {domain} team prefers {metric} over accuracy for model reviews",
    "Ask the data-architect before changing the {domain} event schema",
    "{feature} is owned by the {domain} data-engineering team",
    "The {month} review of {domain} is the deadline for the next model version",
]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
METRICS = ["auc", "recall", "precision", "rmse", "mape", "ndcg"]
QUESTIONS = [
    "what went wrong last time we retrained the {domain} model?",
    "which features leaked the label in {domain}?",
    "how did we tune the {family} model?",
    "why did {metric} drop for {domain}?",
    "lessons about deploying the {domain} model",
    "duplicate rows in the {month} snapshot",
    "feature store lag incidents",
    "who did well on {domain} evaluation work?",
]
START = datetime(2025, 1, 6, tzinfo=UTC)


@dataclass
class Workload:
    """Everything to write, in the order a history would be written, plus the questions to ask."""

    seed: int
    memories: int
    entities: list[EntityIn] = field(default_factory=list)
    relations: list[RelationIn] = field(default_factory=list)
    observations: list[ObservationIn] = field(default_factory=list)
    free_text: list[tuple[str, str]] = field(default_factory=list)  # (agent, text) for mem0
    questions: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)  # tasks to brief

    @property
    def lessons(self) -> list[EntityIn]:
        return [e for e in self.entities if e.kind == Kind.LESSON]

    @property
    def texts(self) -> list[str]:
        """The texts ingestion embeds, one per memory (what the embedding-only rate is measured on)."""
        return ([f"{o.entity.name}: {o.text}" for o in self.observations]
                + [f"Lesson: {e.name}. {e.summary}" if e.summary else f"Lesson: {e.name}" for e in self.lessons]
                + [text for _, text in self.free_text])

    def counts(self) -> dict[str, int]:
        kinds: dict[str, int] = {}
        for entity in self.entities:
            kinds[entity.kind.value] = kinds.get(entity.kind.value, 0) + 1
        return {"memories": len(self.observations) + len(self.lessons) + len(self.free_text),
                "observations": len(self.observations), "lessons": len(self.lessons),
                "free_text": len(self.free_text), "entities": len(self.entities),
                "relations": len(self.relations), **{f"kind_{k}": v for k, v in sorted(kinds.items())}}


def generate(memories: int, *, seed: int = 7, free_text_share: float = 0.02, questions: int = 200) -> Workload:
    """A workload of `memories` memories: about 80% observations, 18% lessons, 2% free text."""
    rng = random.Random(seed)
    work = Workload(seed=seed, memories=memories)
    free_text_count = max(1, round(memories * free_text_share))
    lesson_count = max(1, round(memories * 0.18))
    observation_count = max(1, memories - free_text_count - lesson_count)
    delegation_count = max(4, observation_count // 4)
    project_count = max(2, memories // 2000)

    agents = [f"{role}-{i + 1}" for i in range(max(2, memories // 5000) * 2) for role in ROLES]
    for name in agents:
        work.entities.append(EntityIn(kind=Kind.AGENT, name=name, attributes={"role": name.rsplit("-", 1)[0]}))

    projects = []
    for p in range(project_count):
        slug, title, features = DOMAINS[p % len(DOMAINS)]
        name = f"{slug}-{p // len(DOMAINS) + 1}"
        projects.append((name, slug, title, features))
        work.entities.append(EntityIn(kind=Kind.PROJECT, name=name, summary=f"{title.capitalize()} project"))
        model = f"{name} model"
        work.entities.append(EntityIn(kind=Kind.MODEL, name=model, summary=f"{title} model of {name}"))
        work.relations.append(_rel(model, Kind.MODEL, "PART_OF", name, Kind.PROJECT))
        for feature in features:
            feature_name = f"{name}.{feature}"
            work.entities.append(EntityIn(kind=Kind.FEATURE, name=feature_name))
            work.relations.append(_rel(feature_name, Kind.FEATURE, "PART_OF", name, Kind.PROJECT))

    def fill(template: str, project: tuple) -> str:
        name, slug, title, features = project
        a = rng.uniform(0.6, 0.95)
        return template.format(
            domain=slug, month=rng.choice(MONTHS), family=rng.choice(MODEL_FAMILIES), metric=rng.choice(METRICS),
            feature=rng.choice(features), version=f"v{rng.randint(1, 30)}", a=f"{a:.2f}",
            b=f"{a - rng.uniform(0.02, 0.1):.2f}", d=rng.randint(1, 9), n=rng.randint(5, 90),
            lr=rng.choice(["0.01", "0.03", "0.05", "0.1"]))

    delegations = []
    for d in range(delegation_count):
        project = projects[d % project_count]
        agent = rng.choice(agents)
        task = fill(rng.choice(TASKS), project)
        name = f"delegation-{d + 1:06d}"
        status = rng.choices(["succeeded", "failed", "cancelled"], weights=[7, 2, 1])[0]
        began = START + timedelta(hours=6 * d)
        delegations.append((name, project, agent, began))
        work.entities.append(EntityIn(kind=Kind.DELEGATION, name=name, summary=task, attributes={
            "task": task, "status": status, "started_at": began, "ended_at": began + timedelta(hours=rng.randint(1, 48)),
            "due_at": began + timedelta(hours=36), "cost_usd": round(rng.uniform(0.2, 12), 2)}))
        work.relations.append(_rel(name, Kind.DELEGATION, "PART_OF", project[0], Kind.PROJECT))
        work.relations.append(_rel(name, Kind.DELEGATION, "DELEGATED_TO", agent, Kind.AGENT))

    experiment_count = max(2, delegation_count // 5)
    for x in range(experiment_count):
        project = projects[x % project_count]
        name = f"{project[0]} experiment {x + 1}"
        params = {"param_learning_rate": rng.choice([0.01, 0.03, 0.05, 0.1]), "param_max_depth": rng.randint(3, 10)}
        metrics = {f"metric_{m}": round(rng.uniform(0.5, 0.95), 4) for m in rng.sample(METRICS, 2)}
        work.entities.append(EntityIn(kind=Kind.EXPERIMENT, name=name, attributes={**params, **metrics}))
        work.relations.append(_rel(name, Kind.EXPERIMENT, "PART_OF", project[0], Kind.PROJECT))
        if x % 3 == 0:
            version = f"{project[0]} model v{x // 3 + 1}"
            work.entities.append(EntityIn(kind=Kind.MODEL_VERSION, name=version, attributes={
                "version": f"v{x // 3 + 1}", "stage": rng.choice(["staging", "production", "archived"]), **metrics}))
            work.relations.append(_rel(version, Kind.MODEL_VERSION, "VERSION_OF", f"{project[0]} model", Kind.MODEL))
            work.relations.append(_rel(name, Kind.EXPERIMENT, "PRODUCED", version, Kind.MODEL_VERSION))
            for feature in rng.sample(project[3], 3):
                work.relations.append(_rel(version, Kind.MODEL_VERSION, "USES_FEATURE", f"{project[0]}.{feature}",
                                           Kind.FEATURE))

    for i in range(max(1, memories // 200)):
        project = projects[i % project_count]
        name = f"incident {i + 1}: " + fill(rng.choice(INCIDENTS), project)
        work.entities.append(EntityIn(kind=Kind.INCIDENT, name=name[:200], attributes={
            "severity": rng.choice(["low", "medium", "high"]), "status": rng.choice(["open", "resolved"])}))
        work.relations.append(_rel(name[:200], Kind.INCIDENT, "PART_OF", project[0], Kind.PROJECT))

    for o in range(observation_count):
        name, project, agent, began = delegations[o % delegation_count]
        work.observations.append(ObservationIn(
            entity=EntityRef(name=name, kind=Kind.DELEGATION), text=fill(rng.choice(FINDINGS), project).capitalize(),
            valid_from=began + timedelta(minutes=o % 600), provenance=Provenance(source="bench", agent=agent)))

    for l_ in range(lesson_count):
        name, project, agent, began = delegations[rng.randrange(delegation_count)]
        text = fill(rng.choice(LESSONS), project)
        lesson = f"{text} (#{l_ + 1})"
        work.entities.append(EntityIn(kind=Kind.LESSON, name=lesson[:200], summary=text,
                                      provenance=Provenance(source="bench", agent=agent)))
        work.relations.append(_rel(lesson[:200], Kind.LESSON, "LEARNED_FROM", name, Kind.DELEGATION))
        work.relations.append(_rel(lesson[:200], Kind.LESSON, "APPLIES_TO", project[0], Kind.PROJECT))

    for _ in range(free_text_count):
        project = rng.choice(projects)
        work.free_text.append((rng.choice(agents), fill(rng.choice(MEMORIES), project)))

    for _ in range(questions):
        work.questions.append(fill(rng.choice(QUESTIONS), rng.choice(projects)))
        work.tasks.append(fill(rng.choice(TASKS), rng.choice(projects)))
    return work


def _rel(source: str, source_kind: Kind, rel_type: str, target: str, target_kind: Kind) -> RelationIn:
    return RelationIn(source=EntityRef(name=source, kind=source_kind), type=rel_type,
                      target=EntityRef(name=target, kind=target_kind))

"""Model, feature and experiment memory: what was tried, what it scored, what shipped.

    ml = MlMemory(memory.space("acme"))
    ml.record_experiment(ExperimentIn(project="Churn", name="xgb-depth6", task="predict churn of telco customers",
                                      parameters={"max_depth": 6}, metrics={"auc": 0.86}, dataset="customers-2025"))
    ml.record_model_version(ModelVersionIn(model="churn-model", version="3", metrics={"auc": 0.86},
                                           experiment="xgb-depth6", stage="staging"))
    ml.best_model(BestModelQuery(project="Churn", metric="auc"))

How it lands in the graph (docs/ml-memory.md has the picture):

- An experiment is an `:Experiment` PART_OF its project, TRAINED_ON its dataset; a model it trains
  is EVALUATED_IN it. Its parameters and metrics are flattened to `param_<name>` and `metric_<name>`
  properties (docs/schema.md), so Cypher sorts on them. Names are checked against a strict pattern
  before they become part of a property key, and queries read them by map lookup
  (`v['metric_' + $metric]`), never by building Cypher text.
- A model version is a `:ModelVersion` named "<model> v<version>", VERSION_OF its `:Model`; the
  experiment that trained it PRODUCED it; it USES_FEATURE its features, with the feature's importance
  as the relationship's `weight`. A changed importance retracts the old relationship and writes a new
  one, so the old value stays in the version's history.
- Stage: both an IN_STAGE relationship to a stage entity (a `:Thing` of type `stage` named
  `production`, `staging`, ...) and the `stage` property. IN_STAGE is single-valued and bi-temporal:
  a new stage closes the old fact at the change time (graph/temporal.py), so "which stage was v3 in
  on 1 March" stays answerable and a late-arriving older change lands in the right place. The
  property mirrors the current IN_STAGE target for plain filtering (`v.stage = 'production'`, the
  reports); each change of it leaves a `:Revision`.
- Drift is an `:Incident` (severity, status `open`, `opened_at`, the metric and value), RELATED_TO the
  model and version, and CAUSED by the drifting feature. An incident rather than an observation:
  briefs list open incidents and risks, lessons can be LEARNED_FROM it, and the incident reports
  count it; an observation is only text.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field

from graph.errors import InvalidInput, NotFound
from graph.model import EntityIn, EntityRef, InputModel, Name, Provenance, RelationIn, UtcDatetime
from graph.records import native
from graph.vocabulary import Kind, normalise_name
from memory.recall import RecallQuery
from memory.service import SpaceMemory

# A metric or parameter name becomes part of a property key (`metric_<name>`, at most 64 characters).
METRIC_NAME = re.compile(r"^[a-z][a-z0-9_]{0,55}$")
STAGE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
STAGE_TYPE = "stage"
SEVERITIES = ("low", "medium", "high", "critical")


def check_metric_name(name: str) -> str:
    if not METRIC_NAME.fullmatch(name):
        raise ValueError(
            f"metric or parameter name {name!r} must match {METRIC_NAME.pattern}: lower-case letters, digits and "
            "underscores, starting with a letter, at most 56 characters (e.g. auc, val_loss, learning_rate)"
        )
    return name


def normalise_stage(stage: str) -> str:
    """'Production ' -> 'production'; stages are compared and stored in this form."""
    value = "-".join(stage.strip().lower().split())
    if not STAGE_NAME.fullmatch(value):
        raise ValueError(f"stage {stage!r} must be a word such as development, staging, production or archived")
    return value


def version_name(model: str, version: str) -> str:
    """The version entity's name: ('churn-model', '3') and ('churn-model', 'v3') are both 'churn-model v3'."""
    bare = version[1:] if re.fullmatch(r"[vV]\d.*", version) else version
    return f"{model} v{bare}"


MetricName = Annotated[str, AfterValidator(check_metric_name)]
Stage = Annotated[str, AfterValidator(normalise_stage)]
Version = Annotated[str, Field(min_length=1, max_length=100, description="The version label, e.g. 3 or 2025-03-01")]
MetricValue = Annotated[float, Field(allow_inf_nan=False)]
ParameterValue = bool | int | Annotated[float, Field(allow_inf_nan=False)] | Annotated[str, Field(max_length=500)]
Metrics = Annotated[dict[MetricName, MetricValue], Field(
    default_factory=dict, max_length=200, description="Metric name -> value, e.g. {\"auc\": 0.86, \"logloss\": 0.31}")]


# -- requests: what callers (and Claude, through tool schemas) send ---------------------------

class ExperimentIn(InputModel):
    """One training or evaluation run. Recording the same name again updates it."""

    project: Name = Field(description="The project the experiment belongs to")
    name: Name = Field(description="The experiment's name, unique in the space (e.g. xgb-depth6-2025-03-02)")
    task: str | None = Field(None, max_length=2000, description=(
        "What the experiment tried to do, in words (e.g. 'predict which telco customers churn next month'); "
        "hyperparameter advice finds similar tasks by this text"))
    parameters: dict[MetricName, ParameterValue] = Field(
        default_factory=dict, max_length=200, description="Hyperparameter name -> value, e.g. {\"max_depth\": 6}")
    metrics: Metrics
    dataset: Name | None = Field(None, description="The dataset it trained on")
    dataset_uri: str | None = Field(None, max_length=2000, description="Where the dataset lives")
    code_ref: str | None = Field(None, max_length=500, description="Code reference, e.g. a git commit or path@commit")
    model: Name | None = Field(None, description="The model (the line of versions) the experiment trains")
    started_at: UtcDatetime | None = None
    external_id: str | None = Field(None, max_length=200, description="Its id in a tracking system, e.g. an MLflow run id")
    provenance: Provenance = Field(default_factory=Provenance)


class ModelIn(InputModel):
    """A model (the line of versions), its project and the benchmarks its production version must beat."""

    name: Name
    project: Name | None = None
    task: str | None = Field(None, max_length=500, description="What the model predicts, e.g. churn classification")
    framework: str | None = Field(None, max_length=100)
    benchmarks: Metrics = Field(default_factory=dict, max_length=200, description=(
        "Metric name -> the value to beat, stored as benchmark_<metric>; the model-vs-benchmark report "
        "compares the production version with it"))
    provenance: Provenance = Field(default_factory=Provenance)


class ModelVersionIn(InputModel):
    """One trained version of a model. Recording it again adds to it; metrics are overwritten by name."""

    model: Name
    version: Version
    project: Name | None = Field(None, description="The project the model belongs to")
    metrics: Metrics
    stage: Stage | None = Field(None, description="development, staging, production, archived, ...")
    dataset: Name | None = Field(None, description="The dataset it was trained on")
    dataset_uri: str | None = Field(None, max_length=2000)
    experiment: Name | None = Field(None, description="The experiment that produced it")
    features: list[Name] = Field(default_factory=list, max_length=1000, description="Input features")
    feature_importance: dict[Name, MetricValue] = Field(
        default_factory=dict, max_length=1000, description="Feature -> importance; implies the feature is used")
    registered_at: UtcDatetime | None = Field(None, description="When it was trained or registered; orders the lineage")
    stage_since: UtcDatetime | None = Field(None, description="When it entered `stage`; default registered_at, else now")
    aliases: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(None, max_length=50, description=(
        "Registry aliases that point at this version now, e.g. champion; [] clears them, null leaves them"))
    provenance: Provenance = Field(default_factory=Provenance)


class StageChange(InputModel):
    model: Name
    version: Version
    stage: Stage
    at: UtcDatetime | None = Field(None, description="When the stage changed; default now")
    provenance: Provenance = Field(default_factory=Provenance)


class FeatureImportanceIn(InputModel):
    model: Name
    version: Version
    importance: dict[Name, MetricValue] = Field(min_length=1, max_length=1000, description="Feature -> importance")
    provenance: Provenance = Field(default_factory=Provenance)


class DriftIn(InputModel):
    """A drift measurement worth acting on: recorded as an open Incident."""

    model: Name
    version: Version | None = None
    feature: Name | None = Field(None, description="The drifting feature; none for prediction or label drift")
    metric: MetricName = Field(description="The drift statistic, e.g. psi, ks, kl")
    value: MetricValue
    threshold: MetricValue | None = Field(None, description="The alert threshold it crossed")
    detected_at: UtcDatetime
    severity: str = Field("medium", pattern="^(low|medium|high|critical)$")
    note: str | None = Field(None, max_length=2000)
    provenance: Provenance = Field(default_factory=Provenance)


class BestModelQuery(InputModel):
    project: Name
    metric: MetricName = Field(description="Rank by this metric, e.g. auc")
    higher_is_better: bool = Field(True, description="False for losses and errors")
    stage: Stage | None = Field(None, description="Only versions in this stage")
    limit: int = Field(5, ge=1, le=50)


class HyperparameterQuery(InputModel):
    task: str = Field(min_length=1, max_length=2000, description="The task to advise on, in words")
    metric: MetricName
    higher_is_better: bool = True
    similar: int = Field(10, ge=1, le=100, description="How many of the most similar experiments to consider")
    limit: int = Field(5, ge=1, le=50)


class StableFeaturesQuery(InputModel):
    model: Name
    min_versions: int = Field(2, ge=2, le=1000, description="Importance recorded in at least this many versions")
    max_relative_spread: float = Field(0.25, ge=0, le=100, description="(max - min) / |mean| of the importances")


class LineageQuery(InputModel):
    model: Name


class VersionDiffQuery(InputModel):
    model: Name
    a: Version = Field(description="The older (or reference) version")
    b: Version = Field(description="The version to compare with it")


# -- results ---------------------------------------------------------------------------------

class ExperimentView(BaseModel):
    id: str
    name: str
    task: str | None = None
    projects: list[str]
    parameters: dict[str, Any]
    metrics: dict[str, float]
    datasets: list[str]
    models: list[str]
    produced: list[str] = Field(description="Model versions it produced")
    code_ref: str | None = None


class StageSpan(BaseModel):
    stage: str
    valid_from: datetime
    valid_to: datetime | None = None


class VersionView(BaseModel):
    id: str
    model: str
    version: str
    stage: str | None
    stages: list[StageSpan] = Field(description="Every stage it was in, oldest first; the open one is current")
    registered_at: datetime
    aliases: list[str] = Field(default_factory=list, description="Registry aliases pointing at it, e.g. champion")
    metrics: dict[str, float]
    parameters: dict[str, Any] = Field(description="The parameters of the experiment(s) that produced it")
    datasets: list[str]
    experiments: list[str]
    features: dict[str, float | None] = Field(description="Feature -> importance (null: used, importance unknown)")
    incidents: list[str] = Field(description="Incidents (drift, ...) related to this version")


class RankedVersion(BaseModel):
    model: str
    version: str
    stage: str | None
    value: float
    experiments: list[str]


class BestModel(BaseModel):
    project: str
    metric: str
    higher_is_better: bool
    best: RankedVersion | None
    ranking: list[RankedVersion] = Field(description="The best first")


class SimilarExperiment(BaseModel):
    experiment: str
    projects: list[str]
    similarity: float = Field(description="Recall's score for the task text; higher is more similar")
    value: float
    parameters: dict[str, Any]
    datasets: list[str]


class HyperparameterAdvice(BaseModel):
    task: str
    metric: str
    recommended: dict[str, Any] = Field(description="The parameters of the best similar experiment")
    experiments: list[SimilarExperiment] = Field(description="Similar experiments with the metric, best first")


class StableFeature(BaseModel):
    feature: str
    versions: int
    mean: float
    min: float
    max: float
    relative_spread: float
    by_version: dict[str, float]


class Lineage(BaseModel):
    model: str
    projects: list[str]
    benchmarks: dict[str, float]
    versions: list[VersionView] = Field(description="Oldest first")


class ValueChange(BaseModel):
    name: str
    a: Any = None
    b: Any = None
    delta: float | None = None


class VersionDiff(BaseModel):
    model: str
    a: str
    b: str
    metrics: list[ValueChange]
    parameters: list[ValueChange]
    features_added: list[str]
    features_removed: list[str]
    importance: list[ValueChange] = Field(description="Features in both whose importance changed")
    datasets_added: list[str]
    datasets_removed: list[str]
    stage: ValueChange | None


class DriftRecord(BaseModel):
    incident_id: str
    incident: str
    severity: str
    status: str


# -- Cypher -----------------------------------------------------------------------------------

def _current(var: str) -> str:
    """A current relationship (fixed variable names only, never input)."""
    return f"{var}.valid_to IS NULL AND {var}.retracted_at IS NULL"


FIND_ENTITY = """
MATCH (e:Entity {space: $space, kind: $kind, name_key: $key})
WHERE e.retracted_at IS NULL
RETURN e.id AS id, e.name AS name
"""

FIND_VERSION = f"""
MATCH (v:ModelVersion {{space: $space, name_key: $version_key}})-[r:VERSION_OF]->(m:Model)
WHERE v.retracted_at IS NULL AND m.retracted_at IS NULL AND {_current('r')} AND m.name_key = $model_key
RETURN v.id AS id, v.name AS name, m.name AS model
"""

# Which model a version name already belongs to, if any: two models must not share a version entity.
VERSION_OWNER = f"""
MATCH (v:ModelVersion {{space: $space, name_key: $version_key}})
WHERE v.retracted_at IS NULL
OPTIONAL MATCH (v)-[r:VERSION_OF]->(m:Model)
WHERE {_current('r')}
RETURN m.name_key AS model_key, m.name AS model
"""

CURRENT_STAGE = f"""
MATCH (v:ModelVersion {{id: $id}})-[s:IN_STAGE]->(stage:Entity)
WHERE v.space = $space AND {_current('s')}
RETURN stage.name AS stage
"""

CURRENT_FEATURES = f"""
MATCH (v:ModelVersion {{id: $id}})-[u:USES_FEATURE]->(f:Feature)
WHERE v.space = $space AND {_current('u')} AND f.retracted_at IS NULL
RETURN f.name_key AS key, f.name AS name, u.weight AS weight
"""

EXPERIMENT_DETAILS = f"""
UNWIND $ids AS id
MATCH (e:Experiment {{id: id}})
WHERE e.space = $space AND e.retracted_at IS NULL
RETURN e {{.*}} AS experiment,
       COLLECT {{ MATCH (e)-[r:PART_OF]->(p:Project) WHERE {_current('r')} AND p.retracted_at IS NULL
                 RETURN p.name ORDER BY p.name }} AS projects,
       COLLECT {{ MATCH (e)-[r:TRAINED_ON]->(d:Dataset) WHERE {_current('r')} AND d.retracted_at IS NULL
                 RETURN d.name ORDER BY d.name }} AS datasets,
       COLLECT {{ MATCH (m:Model)-[r:EVALUATED_IN]->(e) WHERE {_current('r')} AND m.retracted_at IS NULL
                 RETURN m.name ORDER BY m.name }} AS models,
       COLLECT {{ MATCH (e)-[r:PRODUCED]->(v:ModelVersion) WHERE {_current('r')} AND v.retracted_at IS NULL
                 RETURN v.name ORDER BY v.name }} AS produced
"""

MODEL_DETAILS = f"""
MATCH (m:Model {{space: $space, name_key: $model_key}})
WHERE m.retracted_at IS NULL
RETURN m {{.*}} AS model,
       COLLECT {{ MATCH (m)-[r:PART_OF]->(p:Project) WHERE {_current('r')} AND p.retracted_at IS NULL
                 RETURN p.name ORDER BY p.name }} AS projects
"""

# Every version of a model (or one, by its name key) with what it is linked to, oldest first.
VERSION_DETAILS = f"""
MATCH (m:Model {{space: $space, name_key: $model_key}})<-[r:VERSION_OF]-(v:ModelVersion)
WHERE m.retracted_at IS NULL AND v.retracted_at IS NULL AND {_current('r')}
  AND ($version_key IS NULL OR v.name_key = $version_key)
RETURN v {{.*}} AS version, m.name AS model,
       COLLECT {{ MATCH (v)-[s:IN_STAGE]->(st:Entity) WHERE s.retracted_at IS NULL
                 RETURN {{stage: st.name, valid_from: s.valid_from, valid_to: s.valid_to}}
                 ORDER BY s.valid_from, s.recorded_at }} AS stages,
       COLLECT {{ MATCH (v)-[t:TRAINED_ON]->(d:Dataset) WHERE {_current('t')} AND d.retracted_at IS NULL
                 RETURN d.name ORDER BY d.name }} AS datasets,
       COLLECT {{ MATCH (e:Experiment)-[p:PRODUCED]->(v) WHERE {_current('p')} AND e.retracted_at IS NULL
                 RETURN e {{.*}} ORDER BY e.name }} AS experiments,
       COLLECT {{ MATCH (v)-[u:USES_FEATURE]->(f:Feature) WHERE {_current('u')} AND f.retracted_at IS NULL
                 RETURN {{feature: f.name, importance: u.weight}} ORDER BY f.name }} AS features,
       COLLECT {{ MATCH (i:Incident)-[x:RELATED_TO]->(v) WHERE {_current('x')} AND i.retracted_at IS NULL
                 RETURN i.name ORDER BY i.opened_at, i.name }} AS incidents
ORDER BY coalesce(v.registered_at, v.created_at), v.name_key
"""

# A project's model versions: those of models PART_OF it and those its experiments PRODUCED.
BEST_VERSIONS = f"""
MATCH (p:Project {{space: $space, name_key: $project_key}})
WHERE p.retracted_at IS NULL
CALL (p) {{
  MATCH (m:Model)-[r:PART_OF]->(p)
  WHERE m.retracted_at IS NULL AND {_current('r')}
  MATCH (v:ModelVersion)-[o:VERSION_OF]->(m)
  WHERE v.retracted_at IS NULL AND {_current('o')}
  RETURN v, m
  UNION
  MATCH (e:Experiment)-[r:PART_OF]->(p)
  WHERE e.retracted_at IS NULL AND {_current('r')}
  MATCH (e)-[pr:PRODUCED]->(v:ModelVersion)-[o:VERSION_OF]->(m:Model)
  WHERE v.retracted_at IS NULL AND m.retracted_at IS NULL AND {_current('pr')} AND {_current('o')}
  RETURN v, m
}}
WITH DISTINCT v, m, v['metric_' + $metric] AS value
WHERE value IS NOT NULL AND value IS :: INTEGER | FLOAT AND ($stage IS NULL OR v.stage = $stage)
RETURN m.name AS model, v.version AS version, v.stage AS stage, value,
       COLLECT {{ MATCH (e:Experiment)-[pr:PRODUCED]->(v) WHERE {_current('pr')} AND e.retracted_at IS NULL
                 RETURN e.name ORDER BY e.name }} AS experiments
ORDER BY CASE WHEN $higher_is_better THEN -value ELSE value END, model, v.name_key
LIMIT $limit
"""

STABLE_FEATURES = f"""
MATCH (m:Model {{space: $space, name_key: $model_key}})<-[r:VERSION_OF]-(v:ModelVersion)
WHERE m.retracted_at IS NULL AND v.retracted_at IS NULL AND {_current('r')}
MATCH (v)-[u:USES_FEATURE]->(f:Feature)
WHERE {_current('u')} AND f.retracted_at IS NULL AND u.weight IS NOT NULL
WITH f, count(DISTINCT v) AS versions, avg(u.weight) AS mean, min(u.weight) AS low, max(u.weight) AS high,
     collect([v.version, u.weight]) AS by_version
WHERE versions >= $min_versions AND mean <> 0
WITH f, versions, mean, low, high, by_version, (high - low) / abs(mean) AS spread
WHERE spread <= $max_spread
RETURN f.name AS feature, versions, mean, low AS min, high AS max, spread AS relative_spread, by_version
ORDER BY abs(mean) DESC, feature
"""


# -- the service -----------------------------------------------------------------------------

class MlMemory:
    """Model, feature and experiment memory for one tenant (the SpaceMemory's space)."""

    def __init__(self, memory: SpaceMemory) -> None:
        self.memory = memory
        self.space = memory.space

    # -- record -------------------------------------------------------------------------------
    def record_experiment(self, request: ExperimentIn) -> ExperimentView:
        attributes: dict[str, Any] = {f"param_{k}": v for k, v in request.parameters.items()}
        attributes.update({f"metric_{k}": v for k, v in request.metrics.items()})
        for key in ("task", "code_ref", "started_at", "external_id"):
            if getattr(request, key) is not None:
                attributes[key] = getattr(request, key)
        # The summary is what recall embeds: the task in words, with its context.
        context = ", ".join(f"{what} {name}" for what, name in (
            ("project", request.project), ("dataset", request.dataset), ("model", request.model)) if name)
        summary = f"{request.task or 'Experiment'} ({context})"
        entities = [EntityIn(kind=Kind.EXPERIMENT, name=request.name, summary=summary, attributes=attributes,
                             provenance=request.provenance)]
        if request.dataset and request.dataset_uri:
            entities.append(EntityIn(kind=Kind.DATASET, name=request.dataset, attributes={"uri": request.dataset_uri},
                                     provenance=request.provenance))
        (experiment, *_) = self.memory.graph.upsert_entities(entities)

        this = EntityRef(id=experiment.id)
        relations = [self._relation(this, "PART_OF", Kind.PROJECT, request.project, request.provenance)]
        if request.dataset:
            relations.append(self._relation(this, "TRAINED_ON", Kind.DATASET, request.dataset, request.provenance))
        if request.model:
            model = EntityRef(kind=Kind.MODEL, name=request.model)
            relations.append(RelationIn(source=model, type="EVALUATED_IN", target=this, provenance=request.provenance))
            relations.append(self._relation(model, "PART_OF", Kind.PROJECT, request.project, request.provenance))
        self.memory.graph.upsert_relations(relations, create_missing=True)
        return self._experiments([experiment.id])[0]

    def record_model(self, request: ModelIn) -> Lineage:
        attributes: dict[str, Any] = {f"benchmark_{k}": v for k, v in request.benchmarks.items()}
        for key in ("task", "framework"):
            if getattr(request, key) is not None:
                attributes[key] = getattr(request, key)
        (model,) = self.memory.graph.upsert_entities([EntityIn(kind=Kind.MODEL, name=request.name, attributes=attributes,
                                                         provenance=request.provenance)])
        if request.project:
            self.memory.graph.upsert_relations(
                [self._relation(EntityRef(id=model.id), "PART_OF", Kind.PROJECT, request.project, request.provenance)],
                create_missing=True)
        return self.lineage(LineageQuery(model=request.name))

    def record_model_version(self, request: ModelVersionIn) -> VersionView:
        attributes: dict[str, Any] = {"version": request.version, "model": request.model}
        attributes.update({f"metric_{k}": v for k, v in request.metrics.items()})
        if request.registered_at is not None:
            attributes["registered_at"] = request.registered_at
        if request.aliases is not None:
            attributes["registry_aliases"] = list(dict.fromkeys(request.aliases))
        name = version_name(request.model, request.version)
        for owner in self._rows(VERSION_OWNER, version_key=normalise_name(name)):
            if owner["model_key"] not in (None, normalise_name(request.model)):
                raise InvalidInput(f"{name!r} is already a version of the model {owner['model']!r}; "
                                   "use a different version label")
        entities = [EntityIn(kind=Kind.MODEL_VERSION, name=name, attributes=attributes, provenance=request.provenance)]
        if request.dataset and request.dataset_uri:
            entities.append(EntityIn(kind=Kind.DATASET, name=request.dataset, attributes={"uri": request.dataset_uri},
                                     provenance=request.provenance))
        (version, *_) = self.memory.graph.upsert_entities(entities)

        this = EntityRef(id=version.id)
        relations = [self._relation(this, "VERSION_OF", Kind.MODEL, request.model, request.provenance)]
        if request.project:
            relations.append(self._relation(EntityRef(kind=Kind.MODEL, name=request.model), "PART_OF", Kind.PROJECT,
                                            request.project, request.provenance))
        if request.dataset:
            relations.append(self._relation(this, "TRAINED_ON", Kind.DATASET, request.dataset, request.provenance))
        if request.experiment:
            relations.append(RelationIn(source=EntityRef(kind=Kind.EXPERIMENT, name=request.experiment),
                                        type="PRODUCED", target=this, provenance=request.provenance))
        self.memory.graph.upsert_relations(relations, create_missing=True)
        self._write_features(version.id, request.features, request.feature_importance, request.provenance)
        if request.stage:
            self._set_stage(version.id, name, request.stage, request.stage_since or request.registered_at,
                            request.provenance)
        return self._versions(request.model, request.version)[0]

    def set_stage(self, request: StageChange) -> VersionView:
        found = self._find_version(request.model, request.version)
        self._set_stage(found["id"], found["name"], request.stage, request.at, request.provenance)
        return self._versions(request.model, request.version)[0]

    def record_feature_importance(self, request: FeatureImportanceIn) -> VersionView:
        found = self._find_version(request.model, request.version)
        self._write_features(found["id"], [], request.importance, request.provenance)
        return self._versions(request.model, request.version)[0]

    def record_drift(self, request: DriftIn) -> DriftRecord:
        model = self._find_entity(Kind.MODEL, request.model)
        version = self._find_version(request.model, request.version) if request.version else None
        target = version["name"] if version else model["name"]
        subject = f"{request.feature} in {target}" if request.feature else target
        moment = request.detected_at.strftime("%Y-%m-%d %H:%M")
        name = f"drift: {request.metric} of {subject} at {moment}"
        summary = (f"Drift detected on {request.detected_at:%Y-%m-%d}: {request.metric} = {request.value:g}"
                   + (f" (threshold {request.threshold:g})" if request.threshold is not None else "")
                   + f" for {subject}; severity {request.severity}." + (f" {request.note}" if request.note else ""))
        attributes: dict[str, Any] = {
            "severity": request.severity, "opened_at": request.detected_at, "category": "drift",
            "drift_metric": request.metric, "drift_value": request.value, "drift_threshold": request.threshold,
            "drift_feature": request.feature, "model_name": model["name"], "version": request.version,
        }
        existing = self._rows(FIND_ENTITY, kind=Kind.INCIDENT.value, key=normalise_name(name))
        if not existing:  # recording the same event again leaves its status (and its resolution) alone
            attributes["status"] = "open"
        (incident,) = self.memory.graph.upsert_entities([EntityIn(
            kind=Kind.INCIDENT, name=name, summary=summary,
            attributes={k: v for k, v in attributes.items() if v is not None}, provenance=request.provenance)])
        this = EntityRef(id=incident.id)
        relations = [RelationIn(source=this, type="RELATED_TO", target=EntityRef(id=model["id"]),
                                provenance=request.provenance)]
        if version:
            relations.append(RelationIn(source=this, type="RELATED_TO", target=EntityRef(id=version["id"]),
                                        provenance=request.provenance))
        if request.feature:
            relations.append(RelationIn(source=EntityRef(kind=Kind.FEATURE, name=request.feature), type="CAUSED",
                                        target=this, provenance=request.provenance))
        self.memory.graph.upsert_relations(relations, create_missing=True)
        return DriftRecord(incident_id=incident.id, incident=incident.name, severity=request.severity,
                           status=str(incident.attributes.get("status", "open")))

    # -- ask ----------------------------------------------------------------------------------
    def best_model(self, query: BestModelQuery) -> BestModel:
        self._find_entity(Kind.PROJECT, query.project)
        rows = self._rows(BEST_VERSIONS, project_key=normalise_name(query.project), metric=query.metric,
                          higher_is_better=query.higher_is_better, stage=query.stage, limit=query.limit)
        ranking = [RankedVersion(model=r["model"], version=r["version"], stage=r["stage"], value=r["value"],
                                 experiments=r["experiments"]) for r in rows]
        return BestModel(project=query.project, metric=query.metric, higher_is_better=query.higher_is_better,
                         best=ranking[0] if ranking else None, ranking=ranking)

    def hyperparameters_for(self, query: HyperparameterQuery) -> HyperparameterAdvice:
        """Hybrid recall finds the experiments whose task reads most like this one; the best of those
        by the metric come first."""
        found = self.memory.recall(RecallQuery(text=query.task, kinds=[Kind.EXPERIMENT], limit=100))
        similarity: dict[str, float] = {}
        for item in found.items:
            if item.entity.kind == Kind.EXPERIMENT.value and item.entity.id not in similarity:
                similarity[item.entity.id] = item.score
            if len(similarity) == query.similar:
                break
        scored = []
        for view in self._experiments(list(similarity)):
            value = view.metrics.get(query.metric)
            if value is not None:
                scored.append(SimilarExperiment(
                    experiment=view.name, projects=view.projects, similarity=round(similarity[view.id], 4),
                    value=value, parameters=view.parameters, datasets=view.datasets))
        scored.sort(key=lambda s: (-s.value if query.higher_is_better else s.value, -s.similarity, s.experiment))
        best = scored[: query.limit]
        return HyperparameterAdvice(task=query.task, metric=query.metric,
                                    recommended=best[0].parameters if best else {}, experiments=best)

    def stable_features(self, query: StableFeaturesQuery) -> list[StableFeature]:
        self._find_entity(Kind.MODEL, query.model)
        rows = self._rows(STABLE_FEATURES, model_key=normalise_name(query.model), min_versions=query.min_versions,
                          max_spread=query.max_relative_spread)
        return [StableFeature(feature=r["feature"], versions=r["versions"], mean=r["mean"], min=r["min"],
                              max=r["max"], relative_spread=round(r["relative_spread"], 6),
                              by_version={str(version): weight for version, weight in r["by_version"]})
                for r in rows]

    def lineage(self, query: LineageQuery) -> Lineage:
        rows = self._rows(MODEL_DETAILS, model_key=normalise_name(query.model))
        if not rows:
            raise NotFound(f"no model {query.model!r} in this space")
        props = native(rows[0]["model"])
        benchmarks = {k.removeprefix("benchmark_"): v for k, v in sorted(props.items())
                      if k.startswith("benchmark_") and _number(v)}
        return Lineage(model=props["name"], projects=rows[0]["projects"], benchmarks=benchmarks,
                       versions=self._versions(query.model))

    def diff_versions(self, query: VersionDiffQuery) -> VersionDiff:
        self._find_entity(Kind.MODEL, query.model)
        a, b = (self._versions(query.model, label) for label in (query.a, query.b))
        for label, found in ((query.a, a), (query.b, b)):
            if not found:
                raise NotFound(f"model {query.model!r} has no version {label!r} in this space")
        va, vb = a[0], b[0]
        in_both = sorted(set(va.features) & set(vb.features))
        return VersionDiff(
            model=va.model, a=va.version, b=vb.version,
            metrics=_changes(va.metrics, vb.metrics), parameters=_changes(va.parameters, vb.parameters),
            features_added=sorted(set(vb.features) - set(va.features)),
            features_removed=sorted(set(va.features) - set(vb.features)),
            importance=[change for change in _changes({f: va.features[f] for f in in_both},
                                                      {f: vb.features[f] for f in in_both})],
            datasets_added=sorted(set(vb.datasets) - set(va.datasets)),
            datasets_removed=sorted(set(va.datasets) - set(vb.datasets)),
            stage=None if va.stage == vb.stage else ValueChange(name="stage", a=va.stage, b=vb.stage),
        )

    def experiments(self, ids: list[str]) -> list[ExperimentView]:
        """The experiments with these entity ids, in that order; ids of no experiment are left out."""
        return self._experiments(ids) if ids else []

    # -- helpers ------------------------------------------------------------------------------
    def _rows(self, cypher: str, /, **params: Any) -> list[dict[str, Any]]:
        return self.memory.graph.rows(cypher, **params)

    @staticmethod
    def _relation(source: EntityRef, rel_type: str, kind: Kind, name: str, provenance: Provenance) -> RelationIn:
        return RelationIn(source=source, type=rel_type, target=EntityRef(kind=kind, name=name), provenance=provenance)

    def _find_entity(self, kind: Kind, name: str) -> dict[str, Any]:
        rows = self._rows(FIND_ENTITY, kind=kind.value, key=normalise_name(name))
        if not rows:
            raise NotFound(f"no {kind.value.lower()} {name!r} in this space")
        return rows[0]

    def _find_version(self, model: str, version: str, *, required: bool = True) -> dict[str, Any] | None:
        rows = self._rows(FIND_VERSION, model_key=normalise_name(model),
                          version_key=normalise_name(version_name(model, version)))
        if not rows and required:
            self._find_entity(Kind.MODEL, model)
            raise NotFound(f"model {model!r} has no version {version!r} in this space")
        return rows[0] if rows else None

    def _set_stage(self, version_id: str, name: str, stage: str, at: datetime | None, provenance: Provenance) -> None:
        self.memory.graph.upsert_entities([EntityIn(kind=Kind.THING, entity_type=STAGE_TYPE, name=stage,
                                              summary=f"The {stage} stage of model versions")])
        self.memory.graph.upsert_relations([RelationIn(
            source=EntityRef(id=version_id), type="IN_STAGE", target=EntityRef(kind=Kind.THING, name=stage),
            valid_from=at, provenance=provenance)])
        # The property follows the current fact, which a late-arriving older change does not replace.
        current = self._rows(CURRENT_STAGE, id=version_id)
        if current:
            self.memory.graph.upsert_entities([EntityIn(kind=Kind.MODEL_VERSION, name=name,
                                                  attributes={"stage": current[0]["stage"]}, provenance=provenance)])

    def _write_features(self, version_id: str, features: list[str], importance: dict[str, float],
                        provenance: Provenance) -> None:
        wanted: dict[str, tuple[str, float | None]] = {normalise_name(f): (f, None) for f in features}
        wanted.update({normalise_name(f): (f, w) for f, w in importance.items()})
        if not wanted:
            return
        current = {row["key"]: row for row in self._rows(CURRENT_FEATURES, id=version_id)}
        this = EntityRef(id=version_id)
        # A new importance replaces the old one; the retracted relationship keeps the old value in history.
        changed = [RelationIn(source=this, type="USES_FEATURE", target=EntityRef(kind=Kind.FEATURE, name=current[k]["name"]))
                   for k, (_, weight) in wanted.items()
                   if k in current and weight is not None and current[k]["weight"] != weight]
        if changed:
            self.memory.graph.retract_relations(changed)
        self.memory.graph.upsert_relations([
            RelationIn(source=this, type="USES_FEATURE", target=EntityRef(kind=Kind.FEATURE, name=name), weight=weight,
                       provenance=provenance)
            for name, weight in wanted.values()], create_missing=True)

    def _experiments(self, ids: list[str]) -> list[ExperimentView]:
        views = {}
        for row in self._rows(EXPERIMENT_DETAILS, ids=ids):
            props = native(row["experiment"])
            views[props["id"]] = ExperimentView(
                id=props["id"], name=props["name"], task=props.get("task"), projects=row["projects"],
                parameters=_prefixed(props, "param_"), metrics=_numbers(_prefixed(props, "metric_")),
                datasets=row["datasets"], models=row["models"], produced=row["produced"], code_ref=props.get("code_ref"))
        return [views[i] for i in ids if i in views]

    def _versions(self, model: str, version: str | None = None) -> list[VersionView]:
        key = normalise_name(version_name(model, version)) if version is not None else None
        views = []
        for row in self._rows(VERSION_DETAILS, model_key=normalise_name(model), version_key=key):
            props = native(row["version"])
            parameters: dict[str, Any] = {}
            for experiment in native(row["experiments"]):
                for name, value in _prefixed(experiment, "param_").items():
                    parameters.setdefault(name, value)
            views.append(VersionView(
                id=props["id"], model=row["model"], version=str(props.get("version", "")), stage=props.get("stage"),
                stages=[StageSpan(**span) for span in native(row["stages"])],
                registered_at=props.get("registered_at") or props["created_at"],
                aliases=props.get("registry_aliases") or [],
                metrics=_numbers(_prefixed(props, "metric_")), parameters=dict(sorted(parameters.items())),
                datasets=row["datasets"], experiments=[e["name"] for e in row["experiments"]],
                features={f["feature"]: f["importance"] for f in row["features"]}, incidents=row["incidents"]))
        return views


def _prefixed(props: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k.removeprefix(prefix): v for k, v in sorted(props.items()) if k.startswith(prefix)}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(values: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in values.items() if _number(v)}


def _changes(a: dict[str, Any], b: dict[str, Any]) -> list[ValueChange]:
    """What differs between two name -> value maps, by name; `delta` is b - a for numbers."""
    changes = []
    for name in sorted(set(a) | set(b)):
        old, new = a.get(name), b.get(name)
        if old != new:
            delta = round(new - old, 12) if _number(old) and _number(new) else None
            changes.append(ValueChange(name=name, a=old, b=new, delta=delta))
    return changes

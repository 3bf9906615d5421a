"""Model, feature and experiment memory, over a recorded history of a churn model's three versions."""

import inspect
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from agents.ml import (
    BestModelQuery,
    DriftIn,
    ExperimentIn,
    FeatureImportanceIn,
    HyperparameterQuery,
    LineageQuery,
    MlMemory,
    ModelIn,
    ModelVersionIn,
    StableFeaturesQuery,
    StageChange,
    StageSpan,
    ValueChange,
    VersionDiffQuery,
)
from graph.errors import InvalidInput, NotFound
from graph.reports import run_report
from graph.vocabulary import Kind
from memory.service import MemoryService
from memory.vectors import open_chroma


def at(day: int) -> datetime:
    return datetime(2025, 3, day, 9, tzinfo=UTC)


CHURN_TASK = "predict which telco customers will churn next month"


@pytest.fixture
def memory(settings, gateway, embedder):
    return MemoryService.open(settings, gateway, embedder=embedder, chroma=open_chroma(settings))


@pytest.fixture
def ml(memory, space):
    return MlMemory(memory.space(space))


@pytest.fixture
def history(ml):
    """Three experiments and three versions of churn-model, a fraud experiment that scores higher on an
    unrelated task, and a forecast model in another project."""
    ml.record_model(ModelIn(name="churn-model", project="Churn", task="churn classification",
                            benchmarks={"auc": 0.85}))
    experiments = [
        ("churn-lr", {"c": 1.0, "penalty": "l2"}, {"auc": 0.78, "logloss": 0.50}, "customers-2024"),
        ("churn-xgb-d4", {"max_depth": 4, "learning_rate": 0.1, "n_estimators": 300}, {"auc": 0.84}, "customers-2024"),
        ("churn-xgb-d6", {"max_depth": 6, "learning_rate": 0.05, "n_estimators": 600}, {"auc": 0.87}, "customers-2025"),
    ]
    for name, parameters, metrics, dataset in experiments:
        ml.record_experiment(ExperimentIn(project="Churn", name=name, task=CHURN_TASK, parameters=parameters,
                                          metrics=metrics, dataset=dataset, code_ref=f"git:{name}", model="churn-model"))
    ml.record_experiment(ExperimentIn(project="Fraud", name="fraud-gbm", parameters={"max_depth": 12},
                                      task="detect fraudulent card payments in real time", metrics={"auc": 0.97}))

    ml.record_model_version(ModelVersionIn(
        model="churn-model", version="1", metrics={"auc": 0.78, "latency_ms": 8}, experiment="churn-lr",
        dataset="customers-2024", stage="production", registered_at=at(1),
        feature_importance={"tenure": 0.40, "monthly_charges": 0.30, "contract_type": 0.20}))
    ml.record_model_version(ModelVersionIn(
        model="churn-model", version="2", metrics={"auc": 0.84, "latency_ms": 12}, experiment="churn-xgb-d4",
        dataset="customers-2024", stage="staging", registered_at=at(2),
        feature_importance={"tenure": 0.42, "monthly_charges": 0.22, "support_calls": 0.25}))
    ml.set_stage(StageChange(model="churn-model", version="2", stage="Production", at=at(3)))
    ml.set_stage(StageChange(model="churn-model", version="1", stage="archived", at=at(3)))
    ml.record_model_version(ModelVersionIn(
        model="churn-model", version="v3", metrics={"auc": 0.87, "latency_ms": 30}, experiment="churn-xgb-d6",
        dataset="customers-2025", stage="staging", registered_at=at(4), features=["payment_delay"],
        feature_importance={"tenure": 0.41, "monthly_charges": 0.12, "support_calls": 0.28}))
    ml.record_model_version(ModelVersionIn(model="demand-model", version="1", project="Forecast",
                                           metrics={"auc": 0.99}, registered_at=at(2)))
    return ml


# -- recording ------------------------------------------------------------------------------------------

def test_an_experiment_keeps_its_parameters_metrics_dataset_and_code(ml):
    view = ml.record_experiment(ExperimentIn(
        project="Churn", name="churn-xgb-d6", task=CHURN_TASK, parameters={"max_depth": 6, "booster": "gbtree"},
        metrics={"auc": 0.87}, dataset="customers-2025", dataset_uri="s3://lake/customers/2025",
        code_ref="git:1a2b3c", model="churn-model"))
    assert (view.projects, view.datasets, view.models, view.code_ref) == (
        ["Churn"], ["customers-2025"], ["churn-model"], "git:1a2b3c")
    assert view.parameters == {"booster": "gbtree", "max_depth": 6}
    assert view.metrics == {"auc": 0.87}
    # Flattened so Cypher can sort on them.
    (props,) = ml.memory.graph.find_by_name("churn-xgb-d6", kind=Kind.EXPERIMENT)
    assert props.attributes["param_max_depth"] == 6 and props.attributes["metric_auc"] == 0.87
    (dataset,) = ml.memory.graph.find_by_name("customers-2025", kind=Kind.DATASET)
    assert dataset.attributes["uri"] == "s3://lake/customers/2025"


def test_recording_the_same_experiment_or_version_twice_duplicates_nothing(ml):
    experiment = ExperimentIn(project="Churn", name="e1", metrics={"auc": 0.8}, dataset="d1", model="m")
    version = ModelVersionIn(model="m", version="1", experiment="e1", stage="staging", features=["f"],
                             feature_importance={"g": 0.5})
    first = ml.record_experiment(experiment)
    assert ml.record_experiment(experiment) == first
    first = first, ml.record_model_version(version)
    assert ml.record_model_version(version) == first[1]
    graph = ml.memory.graph
    for kind, name in ((Kind.EXPERIMENT, "e1"), (Kind.MODEL_VERSION, "m v1"), (Kind.MODEL, "m"),
                       (Kind.FEATURE, "f"), (Kind.THING, "staging")):
        assert len(graph.find_by_name(name, kind=kind)) == 1, name
    relations = graph.history(first[1].id).relations
    assert sorted(r.type for r in relations) == ["IN_STAGE", "PRODUCED", "USES_FEATURE", "USES_FEATURE", "VERSION_OF"]


def test_a_stage_change_supersedes_the_old_stage_and_history_keeps_it(history):
    (v1,) = [v for v in history.lineage(LineageQuery(model="churn-model")).versions if v.version == "1"]
    assert v1.stage == "archived"
    assert v1.stages == [StageSpan(stage="production", valid_from=at(1), valid_to=at(3)),
                         StageSpan(stage="archived", valid_from=at(3))]
    # The entity's own history shows the closed IN_STAGE fact and the revision of `stage`.
    log = history.memory.graph.history(v1.id)
    stages = sorted((r.target_name, r.valid_to) for r in log.relations if r.type == "IN_STAGE")
    assert stages == [("archived", None), ("production", at(3))]
    changes = [r.changes["stage"] for r in log.revisions if "stage" in r.changes]
    assert changes[-1] == {"old": "production", "new": "archived"}


def test_a_late_arriving_older_stage_does_not_replace_the_current_one(history):
    view = history.set_stage(StageChange(model="churn-model", version="2", stage="canary", at=at(2)))
    assert view.stage == "production"
    assert [(s.stage, s.valid_from, s.valid_to) for s in view.stages] == [
        ("staging", at(2), at(2)), ("canary", at(2), at(3)), ("production", at(3), None)]


def test_a_new_feature_importance_replaces_the_old_one_with_history(history):
    view = history.record_feature_importance(FeatureImportanceIn(
        model="churn-model", version="3", importance={"monthly_charges": 0.15, "tenure": 0.41}))
    assert view.features == {"monthly_charges": 0.15, "payment_delay": None, "support_calls": 0.28, "tenure": 0.41}
    weights = sorted((r.weight, r.retracted_at is None) for r in history.memory.graph.history(view.id).relations
                     if r.type == "USES_FEATURE" and r.target_name == "monthly_charges")
    assert weights == [(0.12, False), (0.15, True)]


def test_drift_is_an_open_incident_about_the_version_caused_by_the_feature(history, gateway, space):
    drift = DriftIn(model="churn-model", version="3", feature="monthly_charges", metric="psi", value=0.31,
                    threshold=0.2, detected_at=at(10), severity="high")
    record = history.record_drift(drift)
    assert history.record_drift(drift) == record  # the same event twice is one incident
    assert (record.severity, record.status) == ("high", "open")
    assert record.incident == "drift: psi of monthly_charges in churn-model v3 at 2025-03-10 09:00"
    (v3,) = history.lineage(LineageQuery(model="churn-model")).versions[2:]
    assert v3.incidents == [record.incident]
    (row,) = run_report(gateway, "incident-lessons", {"space": space}).rows
    assert (row["incident"], row["severity"], row["status"], row["caused_by"]) == (
        record.incident, "high", "open", ["monthly_charges"])


# -- asking ----------------------------------------------------------------------------------------------

def test_the_best_model_of_a_project_by_a_metric(history):
    best = history.best_model(BestModelQuery(project="Churn", metric="auc"))
    assert [(v.model, v.version, v.value, v.stage, v.experiments) for v in best.ranking] == [
        ("churn-model", "v3", 0.87, "staging", ["churn-xgb-d6"]),
        ("churn-model", "2", 0.84, "production", ["churn-xgb-d4"]),
        ("churn-model", "1", 0.78, "archived", ["churn-lr"]),
    ]  # demand-model (0.99) belongs to Forecast
    assert best.best == best.ranking[0]
    fastest = history.best_model(BestModelQuery(project="churn", metric="latency_ms", higher_is_better=False, limit=1))
    assert [(v.version, v.value) for v in fastest.ranking] == [("1", 8)]
    in_production = history.best_model(BestModelQuery(project="Churn", metric="auc", stage="production"))
    assert [v.version for v in in_production.ranking] == ["2"]
    assert history.best_model(BestModelQuery(project="Churn", metric="f1")).best is None


def test_hyperparameters_that_worked_on_similar_tasks(history):
    advice = history.hyperparameters_for(HyperparameterQuery(
        task="which telco subscribers are about to churn", metric="auc", similar=3))
    # fraud-gbm scores higher but on another task: the three churn experiments are the similar ones.
    assert [(e.experiment, e.value) for e in advice.experiments] == [
        ("churn-xgb-d6", 0.87), ("churn-xgb-d4", 0.84), ("churn-lr", 0.78)]
    assert advice.recommended == {"learning_rate": 0.05, "max_depth": 6, "n_estimators": 600}
    assert advice.experiments[0].projects == ["Churn"] and advice.experiments[0].datasets == ["customers-2025"]
    lower = history.hyperparameters_for(HyperparameterQuery(
        task="which telco subscribers are about to churn", metric="logloss", higher_is_better=False, similar=3))
    assert [e.experiment for e in lower.experiments] == ["churn-lr"]  # the only one with a logloss


def test_features_whose_importance_is_stable_across_versions(history):
    stable = history.stable_features(StableFeaturesQuery(model="churn-model", min_versions=2, max_relative_spread=0.25))
    assert [(f.feature, f.versions) for f in stable] == [("tenure", 3), ("support_calls", 2)]
    tenure = stable[0]
    assert (tenure.min, tenure.max, tenure.by_version) == (0.40, 0.42, {"1": 0.40, "2": 0.42, "v3": 0.41})
    assert tenure.relative_spread == pytest.approx(0.02 / 0.41, abs=1e-6)
    # monthly_charges swings 0.30 -> 0.12; contract_type and payment_delay appear once.
    strict = history.stable_features(StableFeaturesQuery(model="churn-model", min_versions=3))
    assert [f.feature for f in strict] == ["tenure"]


def test_a_models_lineage(history):
    lineage = history.lineage(LineageQuery(model="Churn-Model"))
    assert (lineage.model, lineage.projects, lineage.benchmarks) == ("churn-model", ["Churn"], {"auc": 0.85})
    assert [(v.version, v.registered_at, v.stage, v.experiments, v.datasets) for v in lineage.versions] == [
        ("1", at(1), "archived", ["churn-lr"], ["customers-2024"]),
        ("2", at(2), "production", ["churn-xgb-d4"], ["customers-2024"]),
        ("v3", at(4), "staging", ["churn-xgb-d6"], ["customers-2025"]),
    ]
    v2 = lineage.versions[1]
    assert [s.stage for s in v2.stages] == ["staging", "production"]
    assert v2.features == {"monthly_charges": 0.22, "support_calls": 0.25, "tenure": 0.42}
    assert v2.parameters == {"learning_rate": 0.1, "max_depth": 4, "n_estimators": 300}
    assert v2.metrics == {"auc": 0.84, "latency_ms": 12}


def test_what_changed_between_two_versions(history):
    diff = history.diff_versions(VersionDiffQuery(model="churn-model", a="1", b="3"))
    assert (diff.a, diff.b) == ("1", "v3")
    assert diff.metrics == [ValueChange(name="auc", a=0.78, b=0.87, delta=0.09),
                            ValueChange(name="latency_ms", a=8, b=30, delta=22)]
    assert [(c.name, c.a, c.b) for c in diff.parameters] == [
        ("c", 1.0, None), ("learning_rate", None, 0.05), ("max_depth", None, 6), ("n_estimators", None, 600),
        ("penalty", "l2", None)]
    assert (diff.features_added, diff.features_removed) == (["payment_delay", "support_calls"], ["contract_type"])
    assert diff.importance == [ValueChange(name="monthly_charges", a=0.30, b=0.12, delta=-0.18),
                               ValueChange(name="tenure", a=0.40, b=0.41, delta=0.01)]
    assert (diff.datasets_added, diff.datasets_removed) == (["customers-2025"], ["customers-2024"])
    assert diff.stage == ValueChange(name="stage", a="archived", b="staging")
    same = history.diff_versions(VersionDiffQuery(model="churn-model", a="2", b="2"))
    assert (same.metrics, same.parameters, same.importance, same.stage) == ([], [], [], None)


# -- bad input ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("metric", ["AUC", "auc) RETURN 1 //", "1st", "a-b", "x" * 57, ""])
def test_metric_names_that_would_not_make_a_safe_property_key_are_refused(metric):
    with pytest.raises(ValidationError, match="must match"):
        BestModelQuery(project="Churn", metric=metric)
    with pytest.raises(ValidationError, match="must match"):
        ExperimentIn(project="Churn", name="e", metrics={metric: 1.0})


def test_other_bad_input_is_refused_with_a_clear_message(history):
    with pytest.raises(ValidationError, match="finite"):
        ExperimentIn(project="Churn", name="e", metrics={"auc": float("nan")})
    with pytest.raises(ValidationError, match="stage"):
        StageChange(model="churn-model", version="1", stage="in prod!")
    with pytest.raises(NotFound, match="no project 'Nope'"):
        history.best_model(BestModelQuery(project="Nope", metric="auc"))
    with pytest.raises(NotFound, match="has no version '9'"):
        history.set_stage(StageChange(model="churn-model", version="9", stage="production"))
    with pytest.raises(NotFound, match="no model 'ghost'"):
        history.record_drift(DriftIn(model="ghost", metric="psi", value=1, detected_at=at(5)))
    with pytest.raises(NotFound, match="has no version '7'"):
        history.diff_versions(VersionDiffQuery(model="churn-model", a="1", b="7"))
    # "a vb v1" would be a version of model "a" and of model "a vb": refused, not merged.
    history.record_model_version(ModelVersionIn(model="a", version="b v1"))
    with pytest.raises(InvalidInput, match="already a version of the model 'a'"):
        history.record_model_version(ModelVersionIn(model="a vb", version="1"))


# -- tenants ------------------------------------------------------------------------------------------

COVERED = {"record_experiment", "record_model", "record_model_version", "set_stage", "record_feature_importance",
           "record_drift", "best_model", "hyperparameters_for", "stable_features", "lineage", "diff_versions",
           "experiments"}


def test_another_space_sees_and_changes_nothing(history, memory, space, gateway):
    other = MlMemory(memory.space(f"{space}-b"))
    experiment_ids = [row["id"] for row in gateway.rows("MATCH (e:Experiment {space: $s}) RETURN e.id AS id", s=space)]
    try:
        assert experiment_ids and other.experiments(experiment_ids) == []
        assert len(history.experiments(experiment_ids)) == len(experiment_ids)
        for call in (
            lambda: other.best_model(BestModelQuery(project="Churn", metric="auc")),
            lambda: other.stable_features(StableFeaturesQuery(model="churn-model")),
            lambda: other.lineage(LineageQuery(model="churn-model")),
            lambda: other.diff_versions(VersionDiffQuery(model="churn-model", a="1", b="2")),
            lambda: other.set_stage(StageChange(model="churn-model", version="1", stage="production")),
            lambda: other.record_feature_importance(FeatureImportanceIn(model="churn-model", version="1",
                                                                        importance={"tenure": 1.0})),
            lambda: other.record_drift(DriftIn(model="churn-model", metric="psi", value=1, detected_at=at(5))),
        ):
            with pytest.raises(NotFound):
                call()
        assert other.hyperparameters_for(HyperparameterQuery(task=CHURN_TASK, metric="auc")).experiments == []
        # Writing the same names in the other space makes that space's own entities.
        other.record_experiment(ExperimentIn(project="Churn", name="churn-lr", metrics={"auc": 0.1}, model="churn-model"))
        other.record_model(ModelIn(name="churn-model", benchmarks={"auc": 0.1}))
        other.record_model_version(ModelVersionIn(model="churn-model", version="1", metrics={"auc": 0.1},
                                                  stage="production", experiment="churn-lr"))
        assert [v.value for v in other.best_model(BestModelQuery(project="Churn", metric="auc")).ranking] == [0.1]
        mine = history.lineage(LineageQuery(model="churn-model"))
        assert mine.benchmarks == {"auc": 0.85}
        assert [(v.version, v.metrics["auc"], v.stage) for v in mine.versions] == [
            ("1", 0.78, "archived"), ("2", 0.84, "production"), ("v3", 0.87, "staging")]
    finally:
        gateway.write("MATCH (n {space: $s}) DETACH DELETE n", s=f"{space}-b")


def test_every_public_operation_is_covered_by_the_isolation_test():
    public = {name for name, _ in inspect.getmembers(MlMemory, inspect.isfunction) if not name.startswith("_")}
    assert public == COVERED

"""`kgmem import mlflow` against a real local MLflow file store, written with MLflow's own client."""

import json
import os
import subprocess
from datetime import UTC, datetime

import pytest
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param

from agents.ml import BestModelQuery, LineageQuery, MlMemory
from agents.mlflow_import import import_mlflow, mlflow_key, open_mlflow
from graph.errors import InvalidInput, NotFound
from graph.vocabulary import Kind
from memory.service import MemoryService
from memory.vectors import open_chroma
from cli_helpers import KGMEM, assert_one_error_line

# Registry stages are deprecated in MLflow but still what many registries use; the import reads both stages and aliases.
pytestmark = pytest.mark.filterwarnings("ignore:.*transition_model_version_stage.*:FutureWarning")

T0 = int(datetime(2025, 3, 1, tzinfo=UTC).timestamp() * 1000)

RUNS = {  # run name -> (experiment, params, metrics, dataset)
    "logreg": ("churn", {"C": "1.0", "penalty": "l2"}, {"auc": 0.78, "val/AUC": 0.77}, "customers-2024"),
    "xgb-d4": ("churn", {"max_depth": "4", "learning_rate": "0.1"}, {"auc": 0.84, "val/AUC": 0.83}, "customers-2024"),
    "xgb-d6": ("churn", {"max_depth": "6", "learning_rate": "0.05", "booster": "gbtree", "early_stop": "True"},
               {"auc": 0.87, "val/AUC": 0.86, "1st_epoch_loss": 0.9}, "customers-2025"),
    "gbm": ("fraud", {"max_depth": "12"}, {"auc": 0.97}, None),
}


@pytest.fixture
def store(tmp_path, monkeypatch):
    """An MLflow file store: experiments churn and fraud, four runs, two registered models."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    client = MlflowClient(uri, uri)
    experiments = {name: client.create_experiment(name) for name in ("churn", "fraud")}
    run_ids = {}
    for i, (name, (experiment, params, metrics, dataset)) in enumerate(RUNS.items()):
        run = client.create_run(experiments[experiment], run_name=name, start_time=T0 + i * 3_600_000, tags={
            "mlflow.note.content": f"{experiment} model trained with {name}",
            "mlflow.source.name": "train.py", "mlflow.source.git.commit": f"c0ffee{i}"})
        run_id = run.info.run_id
        client.log_batch(run_id, metrics=[Metric(k, v, T0, 0) for k, v in metrics.items()],
                         params=[Param(k, v) for k, v in params.items()])
        if dataset:
            source = json.dumps({"url": f"https://data.example/{dataset}.csv"})
            client.log_inputs(run_id, datasets=[DatasetInput(Dataset(dataset, "d1g35t", "http", source),
                                                             [InputTag("mlflow.data.context", "training")])])
        client.set_terminated(run_id)
        run_ids[name] = run_id
    for model, runs in (("churn-model", ["logreg", "xgb-d4", "xgb-d6"]), ("fraud-model", ["gbm"])):
        client.create_registered_model(model)
        for run in runs:
            client.create_model_version(model, f"runs:/{run_ids[run]}/model", run_id=run_ids[run])
    client.transition_model_version_stage("churn-model", "1", "Archived")
    client.transition_model_version_stage("churn-model", "2", "Production")
    client.transition_model_version_stage("churn-model", "3", "Staging")
    client.set_registered_model_alias("churn-model", "champion", "2")
    return uri, client, run_ids


@pytest.fixture
def memory(settings, gateway, embedder):
    return MemoryService.open(settings, gateway, embedder=embedder, chroma=open_chroma(settings))


def experiment_name(run: str, run_ids: dict[str, str]) -> str:
    return f"{run} [{run_ids[run][:8]}]"


def census(gateway, space: str) -> dict:
    """Every node and relationship of the space's memory, current or not, by label and type. The audit trail is
    left out: it is append-only, and each import's writes are recorded there again (who ran it, and when)."""
    records = gateway.rows("""
        MATCH (n {space: $space}) WHERE NOT n:AuditEvent
        WITH labels(n) AS labels, count(*) AS n RETURN 'node' AS what, labels AS key, n
        UNION ALL
        MATCH ({space: $space})-[r]->() RETURN 'rel' AS what, [type(r), toString(r.valid_to IS NULL)] AS key, count(*) AS n
        """, space=space)
    return {(r["what"], tuple(sorted(r["key"]))): r["n"] for r in records}


def test_experiments_runs_and_registered_models_land_in_the_graph(store, memory, space):
    uri, _, run_ids = store
    report = import_mlflow(memory.space(space), open_mlflow(uri))
    assert (report.experiments, report.runs, report.models, report.versions) == (2, 4, 2, 4)
    assert report.skipped == [f"run {experiment_name('xgb-d6', run_ids)}: metric '1st_epoch_loss'"]

    ml = MlMemory(memory.space(space))
    lineage = ml.lineage(LineageQuery(model="churn-model"))
    assert lineage.projects == ["churn"]
    assert [(v.version, v.stage, v.aliases, v.experiments, v.datasets) for v in lineage.versions] == [
        ("1", "archived", [], [experiment_name("logreg", run_ids)], ["customers-2024"]),
        ("2", "production", ["champion"], [experiment_name("xgb-d4", run_ids)], ["customers-2024"]),
        ("3", "staging", [], [experiment_name("xgb-d6", run_ids)], ["customers-2025"]),
    ]
    v3 = lineage.versions[2]
    assert v3.metrics == {"auc": 0.87, "val_auc": 0.86}
    assert v3.parameters == {"booster": "gbtree", "early_stop": True, "learning_rate": 0.05, "max_depth": 6}
    assert ml.best_model(BestModelQuery(project="churn", metric="val_auc")).best.version == "3"

    (run,) = memory.space(space).graph.find_by_name(experiment_name("xgb-d6", run_ids), kind=Kind.EXPERIMENT)
    assert run.attributes["external_id"] == run_ids["xgb-d6"]
    assert run.attributes["code_ref"] == "train.py@c0ffee2"
    assert run.attributes["task"] == "churn model trained with xgb-d6"
    assert run.attributes["started_at"] == datetime(2025, 3, 1, 2, tzinfo=UTC)
    (dataset,) = memory.space(space).graph.find_by_name("customers-2025", kind=Kind.DATASET)
    assert dataset.attributes["uri"] == "https://data.example/customers-2025.csv"
    (fraud,) = ml.lineage(LineageQuery(model="fraud-model")).versions
    assert (fraud.stage, fraud.stages, fraud.metrics) == (None, [], {"auc": 0.97})


def test_importing_again_duplicates_nothing_and_follows_stage_and_alias_changes(store, memory, space, gateway):
    uri, client, _ = store
    import_mlflow(memory.space(space), open_mlflow(uri))
    before = census(gateway, space)
    import_mlflow(memory.space(space), open_mlflow(uri))
    assert census(gateway, space) == before

    client.transition_model_version_stage("churn-model", "3", "Production", archive_existing_versions=True)
    client.set_registered_model_alias("churn-model", "champion", "3")
    import_mlflow(memory.space(space), open_mlflow(uri))
    versions = MlMemory(memory.space(space)).lineage(LineageQuery(model="churn-model")).versions
    assert [(v.version, v.stage, [s.stage for s in v.stages], v.aliases) for v in versions] == [
        ("1", "archived", ["archived"], []),
        ("2", "archived", ["production", "archived"], []),
        ("3", "production", ["staging", "production"], ["champion"]),
    ]


def test_one_experiment_brings_only_the_versions_trained_in_it(store, memory, space):
    uri, _, run_ids = store
    report = import_mlflow(memory.space(space), open_mlflow(uri, experiment="fraud"), project="Fraud detection")
    assert (report.experiments, report.runs, report.models, report.versions) == (1, 1, 1, 1)
    graph = memory.space(space).graph
    assert [p.name for p in graph.list_entities(kinds=[Kind.PROJECT]).items] == ["Fraud detection"]
    assert [m.name for m in graph.list_entities(kinds=[Kind.MODEL]).items] == ["fraud-model"]
    (version,) = MlMemory(memory.space(space)).lineage(LineageQuery(model="fraud-model")).versions
    assert version.experiments == [experiment_name("gbm", run_ids)]


def test_a_missing_store_or_experiment_is_a_clear_error(store, tmp_path):
    uri, _, _ = store
    with pytest.raises(NotFound, match="no MLflow experiment named 'nope'"):
        open_mlflow(uri, experiment="nope")
    with pytest.raises(InvalidInput, match="no MLflow store at"):
        open_mlflow((tmp_path / "elsewhere").as_uri())
    assert not (tmp_path / "elsewhere").exists()  # an import never creates a store


def test_mlflow_names_become_property_safe_names():
    assert [mlflow_key(n) for n in ("val/AUC", "f1-score", "loss", "a..b", "1st")] == [
        "val_auc", "f1_score", "loss", "a_b", "1st"]


def test_the_command_imports_and_reports(store, managed_neo4j, memory, space, tmp_path):
    uri, _, _ = store
    env = {**os.environ, "KGMEM_CHROMA_PATH": str(tmp_path / "chroma")}

    def kgmem(*args):
        return subprocess.run([KGMEM, "import", "mlflow", *args], capture_output=True, text=True, env=env, timeout=300)

    result = kgmem("--tracking-uri", uri, "--space", space, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert {k: report[k] for k in ("experiments", "runs", "models", "versions", "space")} == {
        "experiments": 2, "runs": 4, "models": 2, "versions": 4, "space": space}
    assert [v.stage for v in MlMemory(memory.space(space)).lineage(LineageQuery(model="churn-model")).versions] == [
        "archived", "production", "staging"]

    assert assert_one_error_line(kgmem("--tracking-uri", uri, "--space", space, "--experiment", "nope")) == (
        "error: no MLflow experiment named 'nope' at this tracking URI")
    assert "no MLflow store at" in assert_one_error_line(kgmem("--tracking-uri", str(tmp_path / "none")))

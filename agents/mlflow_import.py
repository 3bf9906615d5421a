"""Bring an MLflow tracking server or store into the graph: experiments, runs, registered models.

    source = open_mlflow("file:///srv/mlruns", experiment="churn")   # checks the URI and the experiment
    report = import_mlflow(memory.space("acme"), source)

The mapping, all through MlMemory (so it is what any other writer records):

- an MLflow experiment becomes a `:Project` (its name; or the `project` given);
- each run becomes an `:Experiment` named "<run name> [<first 8 of the run id>]" with the run id as
  `external_id`: its params (numbers where they parse), its latest metrics, its dataset (the
  logged dataset input, training context first, else a `dataset` tag), its code reference (source
  name and git commit) and its note as the task text;
- each registered model becomes a `:Model`, and each of its versions a `:ModelVersion` with its
  run's metrics and dataset, PRODUCED by its run's experiment, in its registry stage (None is no
  stage; the stage starts at the version's last update) and with its aliases.

MLflow names are lower-cased and anything outside [a-z0-9_] becomes `_` (`val/AUC` -> `val_auc`);
a name that still does not fit is skipped and listed in the report. Importing again writes
nothing new for what has not changed; a stage changed in MLflow supersedes the old one.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from agents.ml import METRIC_NAME, ExperimentIn, MlMemory, ModelIn, ModelVersionIn, normalise_stage
from graph.errors import ConfigurationError, InvalidInput, NotFound
from graph.model import Provenance
from memory.service import SpaceMemory

Progress = Callable[[str, int, int], None]  # (phase, done so far, total)
PAGE = 1000
PROVENANCE = Provenance(source="mlflow")


@dataclass
class ImportReport:
    experiments: int = 0
    runs: int = 0
    models: int = 0
    versions: int = 0
    skipped: list[str] = field(default_factory=list)


@dataclass
class _Run:
    """What the graph needs of one MLflow run."""

    id: str
    experiment: str  # the kgmem experiment name
    project: str
    metrics: dict[str, float]
    dataset: str | None


@dataclass
class MlflowSource:
    """An MLflow tracking store (and registry) to import from, and which experiments."""

    client: Any
    experiments: list[Any]
    only_experiment: bool  # import only the model versions trained in these experiments


def open_mlflow(tracking_uri: str, *, registry_uri: str | None = None, experiment: str | None = None) -> MlflowSource:
    """Connect and check: InvalidInput for a file store that is not there, NotFound for an unknown experiment."""
    client = _client(tracking_uri, registry_uri)
    return MlflowSource(client, _experiments(client, experiment), only_experiment=experiment is not None)


def import_mlflow(
    memory: SpaceMemory, source: MlflowSource, *, project: str | None = None, progress: Progress | None = None,
) -> ImportReport:
    client = source.client
    ml = MlMemory(memory)
    report = ImportReport()
    tick = progress or (lambda phase, done, total: None)

    listed = [(exp, run) for exp in source.experiments for run in _pages(
        lambda token, exp=exp: client.search_runs([exp.experiment_id], max_results=PAGE, page_token=token))]
    runs: dict[str, _Run] = {}
    tick("runs", 0, len(listed))
    for done, (exp, run) in enumerate(listed, start=1):
        runs[run.info.run_id] = _import_run(ml, exp, run, project or exp.name, report)
        tick("runs", done, len(listed))
    report.runs = len(runs)
    report.experiments = len({exp.experiment_id for exp, _ in listed})

    versions = [v for v in _pages(lambda token: client.search_model_versions(max_results=PAGE, page_token=token))
                if not source.only_experiment or v.run_id in runs]
    models: set[str] = set()
    tick("model versions", 0, len(versions))
    for done, version in enumerate(sorted(versions, key=lambda v: (v.name, int(v.version))), start=1):
        run = runs.get(version.run_id)  # None: its run was deleted; the version imports without it
        if version.name not in models:
            ml.record_model(ModelIn(name=version.name, project=run.project if run else project,
                                    provenance=PROVENANCE))
            models.add(version.name)
        _import_version(ml, version, run, report)
        tick("model versions", done, len(versions))
    report.models = len(models)
    report.versions = len(versions)
    return report


# -- MLflow access ------------------------------------------------------------------------------

def _client(tracking_uri: str, registry_uri: str | None) -> Any:
    try:
        from mlflow import MlflowClient
    except ImportError:
        raise ConfigurationError("importing from MLflow needs the mlflow extra: pip install 'kgmem[mlflow]'") from None
    for uri in filter(None, (tracking_uri, registry_uri)):
        path = _file_store_path(uri)
        if path is not None:
            if not path.is_dir():
                raise InvalidInput(f"no MLflow store at {uri}: {path} is not a directory")
            # MLflow 3 refuses file stores unless asked; reading one for an import is what we want.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri or tracking_uri)


def _file_store_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" or re.fullmatch(r"[A-Za-z]", parsed.scheme):  # a bare path (or a Windows drive)
        return Path(uri)
    return None


def _pages(fetch: Callable[[str | None], Any]) -> Iterator[Any]:
    token = None
    while True:
        page = fetch(token)
        yield from page
        token = page.token
        if not token:
            return


def _experiments(client: Any, name: str | None) -> list[Any]:
    if name is not None:
        found = client.get_experiment_by_name(name)
        if found is None or found.lifecycle_stage != "active":
            raise NotFound(f"no MLflow experiment named {name!r} at this tracking URI")
        return [found]
    return list(_pages(lambda token: client.search_experiments(max_results=PAGE, page_token=token)))


# -- mapping --------------------------------------------------------------------------------------

def _import_run(ml: MlMemory, exp: Any, run: Any, project: str, report: ImportReport) -> _Run:
    info, data = run.info, run.data
    name = f"{info.run_name or 'run'} [{info.run_id[:8]}]"
    metrics = _named(data.metrics, f"run {name}: metric", report, _metric_value)
    parameters = _named(data.params, f"run {name}: parameter", report, _param_value)
    dataset, dataset_uri = _dataset(run)
    tags = data.tags
    commit, source = tags.get("mlflow.source.git.commit"), tags.get("mlflow.source.name")
    code_ref = f"{source}@{commit}" if source and commit else (commit or source)
    task = tags.get("mlflow.note.content") or f"MLflow run {info.run_name or info.run_id} of experiment {exp.name}"
    ml.record_experiment(ExperimentIn(
        project=project, name=name, task=task[:2000], parameters=parameters, metrics=metrics, dataset=dataset,
        dataset_uri=dataset_uri, code_ref=code_ref[:500] if code_ref else None, external_id=info.run_id,
        started_at=_time(info.start_time), provenance=PROVENANCE))
    return _Run(id=info.run_id, experiment=name, project=project, metrics=metrics, dataset=dataset)


def _import_version(ml: MlMemory, version: Any, run: _Run | None, report: ImportReport) -> None:
    stage = version.current_stage if version.current_stage and version.current_stage != "None" else None
    if stage is not None:
        try:
            stage = normalise_stage(stage)
        except ValueError:
            report.skipped.append(f"{version.name} version {version.version}: stage {stage!r}")
            stage = None
    ml.record_model_version(ModelVersionIn(
        model=version.name, version=str(version.version), project=run.project if run else None,
        metrics=run.metrics if run else {}, stage=stage, dataset=run.dataset if run else None,
        experiment=run.experiment if run else None, registered_at=_time(version.creation_timestamp),
        stage_since=_time(version.last_updated_timestamp), aliases=list(getattr(version, "aliases", None) or []),
        provenance=PROVENANCE))


def _dataset(run: Any) -> tuple[str | None, str | None]:
    inputs = list(getattr(run.inputs, "dataset_inputs", None) or []) if run.inputs else []
    training = [i for i in inputs if any(t.key == "mlflow.data.context" and t.value == "training" for t in i.tags)]
    for item in training + inputs:
        dataset = item.dataset
        if dataset.name:
            return dataset.name[:512], _source_uri(dataset.source)
    tag = run.data.tags.get("dataset") or run.data.tags.get("dataset_name")
    return (tag[:512], None) if tag else (None, None)


def _source_uri(source: str | None) -> str | None:
    if not source:
        return None
    try:
        parsed = json.loads(source)
    except ValueError:
        return source[:2000]
    if isinstance(parsed, dict):
        for key in ("url", "uri", "path", "table_name"):
            if isinstance(parsed.get(key), str):
                return parsed[key][:2000]
    return source[:2000]


def mlflow_key(name: str) -> str:
    """An MLflow metric or param name as a kgmem one: 'val/AUC' -> 'val_auc'."""
    return re.sub(r"_+", "_", re.sub(r"[^a-z0-9_]", "_", name.lower())).strip("_")


def _named(values: dict[str, Any], what: str, report: ImportReport, convert: Callable[[Any], Any]) -> dict[str, Any]:
    out = {}
    for raw, value in sorted(values.items()):
        key, converted = mlflow_key(raw), convert(value)
        if not METRIC_NAME.fullmatch(key) or converted is None:
            report.skipped.append(f"{what} {raw!r}")
            continue
        out[key] = converted
    return out


def _metric_value(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _param_value(value: str) -> Any:
    """MLflow keeps params as text: numbers and booleans become what they say, so Cypher can sort on them."""
    text = str(value)
    if re.fullmatch(r"[+-]?\d{1,15}", text):
        return int(text)
    try:
        number = float(text)
    except ValueError:
        return {"true": True, "false": False}.get(text.lower(), text[:500])
    return number if math.isfinite(number) else text[:500]


def _time(millis: int | None) -> datetime | None:
    return datetime.fromtimestamp(millis / 1000, tz=UTC) if millis else None

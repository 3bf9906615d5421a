"""Model, feature and experiment memory (agents/ml.py) as Claude tools.

The inputs are ml.py's own request models. For Claude they forbid unknown fields, describe
every field, and leave out `provenance`: the tool context stamps who is acting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict

from agents import ml
from agents.tools import Tool, ToolContext


def tool_input(base: type[BaseModel], /, **descriptions: str) -> type[BaseModel]:
    """`base` as a tool input: unknown fields refused, `provenance` hidden, these field descriptions added."""

    def adjust(schema: dict[str, Any]) -> None:
        properties = schema.get("properties", {})
        properties.pop("provenance", None)
        for name, text in descriptions.items():
            properties[name]["description"] = text
        if "required" in schema:
            schema["required"] = [name for name in schema["required"] if name != "provenance"]

    config = ConfigDict(extra="forbid", json_schema_extra=adjust)
    return type(f"{base.__name__}Tool", (base,), {"model_config": config, "__module__": __name__,
                                                   "__doc__": base.__doc__})


def _ml(context: ToolContext) -> ml.MlMemory:
    return context.cached("ml", lambda: ml.MlMemory(context.memory))


def _stamped(context: ToolContext, params: BaseModel) -> Any:
    return params.model_copy(update={"provenance": context.provenance})


def _write(method: Callable[[ml.MlMemory], Callable[[Any], Any]]) -> Callable[[ToolContext, Any], Any]:
    return lambda context, params: method(_ml(context))(_stamped(context, params))


def _read(method: Callable[[ml.MlMemory], Callable[[Any], Any]]) -> Callable[[ToolContext, Any], Any]:
    return lambda context, params: method(_ml(context))(params)


STARTED_AT = "When the run started (ISO 8601)"
MODEL = "The model's name (the line of versions), e.g. churn-model"
METRIC = "The metric to rank by, e.g. auc or val_loss"
HIGHER = "True when a higher value is better (auc, accuracy); false for losses and errors"
LIMIT = "At most this many results"

RECORD_EXPERIMENT = Tool(
    name="record_experiment",
    title="Record an experiment",
    description=(
        "Record a training or evaluation run: its project, what it tried to do (task, in words), hyperparameters, "
        "metrics, dataset and code reference, and the model it trains. Recording the same experiment name again "
        "updates it. Hyperparameter advice later finds similar tasks by the task text."),
    input_model=tool_input(ml.ExperimentIn, started_at=STARTED_AT),
    handler=_write(lambda m: m.record_experiment), idempotent=True,
)

RECORD_MODEL = Tool(
    name="record_model",
    title="Record a model",
    description=(
        "Record a model (the line of its versions): its project, what it predicts, its framework, and the benchmark "
        "metrics its production version must beat. Recording it again updates it."),
    input_model=tool_input(ml.ModelIn, name=MODEL, project="The project the model belongs to",
                           framework="The ML framework, e.g. xgboost or pytorch"),
    handler=_write(lambda m: m.record_model), idempotent=True,
)

RECORD_MODEL_VERSION = Tool(
    name="record_model_version",
    title="Record a model version",
    description=(
        "Record one trained version of a model: its metrics, stage, dataset, the experiment that produced it, its "
        "features and their importance. Recording it again adds to it; metrics are overwritten by name."),
    input_model=tool_input(ml.ModelVersionIn, model=MODEL, dataset_uri="Where the training dataset lives"),
    handler=_write(lambda m: m.record_model_version), idempotent=True,
)

SET_MODEL_STAGE = Tool(
    name="set_model_stage",
    title="Set a model version's stage",
    description=(
        "Move a model version to a stage (development, staging, production, archived, ...). The previous stage is "
        "closed at that time, not erased, so 'what was in production on 1 March' stays answerable."),
    input_model=tool_input(ml.StageChange, model=MODEL, stage="The new stage, e.g. production"),
    handler=_write(lambda m: m.set_stage), idempotent=True,
)

RECORD_FEATURE_IMPORTANCE = Tool(
    name="record_feature_importance",
    title="Record feature importance",
    description=(
        "Record the importance of features in one model version (feature -> importance). A changed value replaces "
        "the old one, which stays in the version's history."),
    input_model=tool_input(ml.FeatureImportanceIn, model=MODEL),
    handler=_write(lambda m: m.record_feature_importance), idempotent=True,
)

RECORD_DRIFT = Tool(
    name="record_drift",
    title="Record drift",
    description=(
        "Record a drift measurement worth acting on (a feature's or the predictions' distribution moved). It becomes "
        "an open incident on the model, which briefs list as a risk."),
    input_model=tool_input(
        ml.DriftIn, model=MODEL, version="The model version that drifted, if known", value="The drift statistic's value",
        detected_at="When the drift was measured (ISO 8601)", severity="low, medium, high or critical",
        note="What was seen, in a sentence or two"),
    handler=_write(lambda m: m.record_drift),
)

BEST_MODEL = Tool(
    name="best_model",
    title="Best model for a project",
    description=(
        "The best model versions of a project by a metric, best first, with their stage and the experiment that "
        "produced them. Use it before building a model to know the number to beat."),
    input_model=tool_input(ml.BestModelQuery, project="The project's name", limit=LIMIT),
    handler=_read(lambda m: m.best_model), read_only=True, idempotent=True,
)

HYPERPARAMETERS = Tool(
    name="hyperparameters_for_task",
    title="Hyperparameters that worked on similar tasks",
    description=(
        "The hyperparameters of the best experiments on tasks similar to the one described, with their metric and "
        "how similar each task was. Use it to pick a starting configuration."),
    input_model=tool_input(ml.HyperparameterQuery, metric=METRIC, higher_is_better=HIGHER, limit=LIMIT),
    handler=_read(lambda m: m.hyperparameters_for), read_only=True, idempotent=True,
)

STABLE_FEATURES = Tool(
    name="stable_features",
    title="Stable features of a model",
    description=(
        "The features of a model whose importance stayed stable across its versions (small relative spread), most "
        "important first. Good candidates to keep when the model is rebuilt."),
    input_model=tool_input(ml.StableFeaturesQuery, model=MODEL),
    handler=_read(lambda m: m.stable_features), read_only=True, idempotent=True,
)

MODEL_LINEAGE = Tool(
    name="model_lineage",
    title="A model's lineage",
    description=(
        "A model's versions in order, each with its metrics, stage history, dataset, features and the experiment "
        "that produced it."),
    input_model=tool_input(ml.LineageQuery, model=MODEL),
    handler=_read(lambda m: m.lineage), read_only=True, idempotent=True,
)

DIFF_VERSIONS = Tool(
    name="diff_model_versions",
    title="What changed between two versions",
    description=(
        "What changed between two versions of a model: metrics, hyperparameters, dataset, stage and features "
        "(added, removed, importance changed)."),
    input_model=tool_input(ml.VersionDiffQuery, model=MODEL),
    handler=_read(lambda m: m.diff_versions), read_only=True, idempotent=True,
)

TOOLS: tuple[Tool, ...] = (
    RECORD_EXPERIMENT, RECORD_MODEL, RECORD_MODEL_VERSION, SET_MODEL_STAGE, RECORD_FEATURE_IMPORTANCE, RECORD_DRIFT,
    BEST_MODEL, HYPERPARAMETERS, STABLE_FEATURES, MODEL_LINEAGE, DIFF_VERSIONS,
)

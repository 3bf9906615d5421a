"""Experiments, models, versions and features (agents/ml.py): record what was tried and shipped, and ask about it.

Recording routes take `write` (and `Idempotency-Key`); questions are POSTs with a body, like
recall, and take `read`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse

from agents.ml import (
    BestModel,
    BestModelQuery,
    DriftIn,
    DriftRecord,
    ExperimentIn,
    ExperimentView,
    FeatureImportanceIn,
    HyperparameterAdvice,
    HyperparameterQuery,
    Lineage,
    LineageQuery,
    MlMemory,
    ModelIn,
    ModelVersionIn,
    StableFeature,
    StableFeaturesQuery,
    StageChange,
    VersionDiff,
    VersionDiffQuery,
    VersionView,
)
from api.deps import Idempotency, IdempotencyKey, Memory, Reader, SpacePath, Writer
from api.routes import PROBLEMS, responses

router = APIRouter(prefix="/v1/spaces/{space}", tags=["experiments, models and features"], responses=PROBLEMS)

EXPERIMENT = {"project": "Churn", "name": "xgb-depth6", "task": "predict which telco customers churn next month",
              "parameters": {"max_depth": 6, "eta": 0.1}, "metrics": {"auc": 0.86}, "dataset": "customers-2025",
              "model": "churn-model"}
MODEL = {"name": "churn-model", "project": "Churn", "task": "churn classification", "framework": "xgboost",
         "benchmarks": {"auc": 0.8}}
VERSION = {"model": "churn-model", "version": "3", "project": "Churn", "metrics": {"auc": 0.86},
           "stage": "staging", "experiment": "xgb-depth6", "feature_importance": {"tenure": 0.4, "plan": 0.2}}
STAGE = {"model": "churn-model", "version": "3", "stage": "production"}
IMPORTANCE = {"model": "churn-model", "version": "3", "importance": {"tenure": 0.38}}
DRIFT = {"model": "churn-model", "version": "3", "feature": "tenure", "metric": "psi", "value": 0.31,
         "threshold": 0.2, "detected_at": "2026-04-02T08:00:00Z", "severity": "high"}


def ml(memory) -> MlMemory:
    return MlMemory(memory)


@router.post("/experiments", response_model=ExperimentView, summary="Record an experiment (again: update it)",
             responses=responses(409))
def record_experiment(space: SpacePath, request: Request, caller: Writer, memory: Memory, store: Idempotency,
                      body: Annotated[ExperimentIn, Body(examples=[EXPERIMENT])],
                      idempotency_key: IdempotencyKey = None) -> JSONResponse:
    return store.run(request, caller.key.key_id, idempotency_key, body, lambda: ml(memory).record_experiment(body))


@router.post("/experiments/hyperparameters", response_model=HyperparameterAdvice,
             summary="Hyperparameters that worked best on similar tasks")
def hyperparameters(space: SpacePath, caller: Reader, memory: Memory,
                    body: Annotated[HyperparameterQuery, Body(examples=[{"task": "predict churn", "metric": "auc"}])],
                    ) -> HyperparameterAdvice:
    return ml(memory).hyperparameters_for(body)


@router.post("/models", response_model=Lineage, summary="Record a model (a line of versions) and its benchmarks",
             responses=responses(409))
def record_model(space: SpacePath, request: Request, caller: Writer, memory: Memory, store: Idempotency,
                 body: Annotated[ModelIn, Body(examples=[MODEL])], idempotency_key: IdempotencyKey = None,
                 ) -> JSONResponse:
    return store.run(request, caller.key.key_id, idempotency_key, body, lambda: ml(memory).record_model(body))


@router.post("/models/versions", response_model=VersionView, summary="Record a model version",
             responses=responses(409))
def record_model_version(space: SpacePath, request: Request, caller: Writer, memory: Memory, store: Idempotency,
                         body: Annotated[ModelVersionIn, Body(examples=[VERSION])],
                         idempotency_key: IdempotencyKey = None) -> JSONResponse:
    return store.run(request, caller.key.key_id, idempotency_key, body,
                     lambda: ml(memory).record_model_version(body))


@router.post("/models/stage", response_model=VersionView, summary="Move a model version to a stage")
def set_stage(space: SpacePath, caller: Writer, memory: Memory,
              body: Annotated[StageChange, Body(examples=[STAGE])]) -> VersionView:
    return ml(memory).set_stage(body)


@router.post("/models/drift", response_model=DriftRecord, summary="Record drift as an open incident",
             responses=responses(409))
def record_drift(space: SpacePath, request: Request, caller: Writer, memory: Memory, store: Idempotency,
                 body: Annotated[DriftIn, Body(examples=[DRIFT])], idempotency_key: IdempotencyKey = None,
                 ) -> JSONResponse:
    return store.run(request, caller.key.key_id, idempotency_key, body, lambda: ml(memory).record_drift(body))


@router.post("/models/best", response_model=BestModel, summary="The project's best model versions by a metric")
def best_model(space: SpacePath, caller: Reader, memory: Memory,
               body: Annotated[BestModelQuery, Body(examples=[{"project": "Churn", "metric": "auc"}])]) -> BestModel:
    return ml(memory).best_model(body)


@router.post("/models/lineage", response_model=Lineage, summary="A model's versions, experiments, stages, features")
def lineage(space: SpacePath, caller: Reader, memory: Memory,
            body: Annotated[LineageQuery, Body(examples=[{"model": "churn-model"}])]) -> Lineage:
    return ml(memory).lineage(body)


@router.post("/models/diff", response_model=VersionDiff, summary="What changed between two versions of a model")
def diff_versions(space: SpacePath, caller: Reader, memory: Memory,
                  body: Annotated[VersionDiffQuery, Body(examples=[{"model": "churn-model", "a": "2", "b": "3"}])],
                  ) -> VersionDiff:
    return ml(memory).diff_versions(body)


@router.post("/features/importance", response_model=VersionView, summary="Record feature importances of a version")
def record_feature_importance(space: SpacePath, caller: Writer, memory: Memory,
                              body: Annotated[FeatureImportanceIn, Body(examples=[IMPORTANCE])]) -> VersionView:
    return ml(memory).record_feature_importance(body)


@router.post("/features/stable", response_model=list[StableFeature],
             summary="Features whose importance held steady across a model's versions")
def stable_features(space: SpacePath, caller: Reader, memory: Memory,
                    body: Annotated[StableFeaturesQuery, Body(examples=[{"model": "churn-model"}])],
                    ) -> list[StableFeature]:
    return ml(memory).stable_features(body)

"""What callers send is taken whole or refused by name: no unknown field is dropped, no NaN gets in."""

from __future__ import annotations

import math

import pytest
from pydantic import BaseModel, ValidationError

from agents.briefs import BriefRequest
from agents.ml import DriftIn, ExperimentIn, FeatureImportanceIn, ModelVersionIn, StableFeaturesQuery
from agents.outcomes import OutcomeRequest
from api.app import create_app
from api.models import CypherRequest, EntityBatch, RelationBatch
from graph.model import EntityIn, ObservationIn, Provenance, RelationIn
from graph.settings import Settings
from memory.free_text import AddMemoryRequest, SearchMemoryRequest, UpdateMemoryRequest



def open_request_schemas() -> set[str]:
    """Object schemas reachable from a request body of the REST API that accept properties they do not list."""
    spec = create_app(Settings()).openapi()
    schemas = spec["components"]["schemas"]
    open_ones: set[str] = set()
    seen: set[str] = set()

    def walk(schema: dict, name: str) -> None:
        if "$ref" in schema:
            ref = schema["$ref"].rsplit("/", 1)[-1]
            if ref not in seen:
                seen.add(ref)
                walk(schemas[ref], ref)
            return
        for key in ("anyOf", "oneOf", "allOf"):
            for option in schema.get(key, []):
                walk(option, name)
        if "properties" in schema and schema.get("additionalProperties") is not False:
            open_ones.add(name)
        for child in [*schema.get("properties", {}).values(), schema.get("items"), schema.get("additionalProperties")]:
            if isinstance(child, dict):
                walk(child, name)

    for operations in spec["paths"].values():
        for operation in operations.values():
            for content in operation.get("requestBody", {}).get("content", {}).values():
                walk(content["schema"], operation["operationId"])
    return open_ones


def test_every_request_body_refuses_fields_it_does_not_know():
    assert open_request_schemas() == set()


def error_paths(model: type[BaseModel], data: dict) -> list[tuple]:
    with pytest.raises(ValidationError) as refused:
        model.model_validate(data)
    return [error["loc"] for error in refused.value.errors()]


@pytest.mark.parametrize(("model", "data", "typo"), [
    (EntityIn, {"name": "Churn", "sumary": "who leaves"}, ("sumary",)),
    (ObservationIn, {"entity": {"name": "Churn"}, "text": "AUC 0.81", "provenance": {"agnet": "ds-1"}},
     ("provenance", "agnet")),
    (RelationIn, {"source": {"name": "a", "kidn": "Agent"}, "type": "USES", "target": {"name": "b"}},
     ("source", "kidn")),
    (BriefRequest, {"task": "Retrain the churn model", "projet": "Churn"}, ("projet",)),
    (OutcomeRequest, {"delegation_id": "d-1", "status": "succeeded", "lessons": [{"text": "Pin the snapshot date",
                                                                                 "severty": "high"}]},
     ("lessons", 0, "severty")),
    (ExperimentIn, {"project": "Churn", "name": "xgb-1", "metric": {"auc": 0.8}}, ("metric",)),
    (AddMemoryRequest, {"messages": "I prefer Polars", "user_id": "alice", "metdata": {}}, ("metdata",)),
    (UpdateMemoryRequest, {"text": "I prefer DuckDB", "metdata": {}}, ("metdata",)),
    (CypherRequest, {"query": "RETURN 1", "parms": {}}, ("parms",)),
])
def test_an_unknown_field_is_refused_by_its_name(model, data, typo):
    assert error_paths(model, data) == [typo]


def test_an_old_alias_is_not_an_unknown_field():
    assert UpdateMemoryRequest.model_validate({"data": "I prefer DuckDB"}).text == "I prefer DuckDB"


NON_FINITE = [math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("value", NON_FINITE, ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize(("model", "make", "where"), [
    (RelationIn, lambda v: {"source": {"name": "a"}, "type": "USES", "target": {"name": "b"}, "weight": v}, ("weight",)),
    (EntityIn, lambda v: {"name": "Churn", "attributes": {"score": v}}, ("attributes", "score")),
    (EntityIn, lambda v: {"name": "Churn", "attributes": {"scores": [0.5, v]}}, ("attributes", "scores")),
    (EntityIn, lambda v: {"kind": "Delegation", "name": "d-1", "attributes": {"cost_usd": v}}, ("attributes", "cost_usd")),
    (AddMemoryRequest, lambda v: {"messages": "I prefer Polars", "user_id": "alice", "metadata": {"weight": v}},
     ("metadata", "weight")),
    (UpdateMemoryRequest, lambda v: {"text": "I prefer DuckDB", "metadata": {"weight": v}}, ("metadata", "weight")),
    (SearchMemoryRequest, lambda v: {"query": "polars", "user_id": "alice", "filters": {"weight": {"gt": v}}},
     ("filters", "weight")),
    (CypherRequest, lambda v: {"query": "RETURN $x", "params": {"x": v}}, ("params", "x")),
    (OutcomeRequest, lambda v: {"delegation_id": "d-1", "status": "succeeded", "metrics": {"auc": v}}, ("metrics", "auc")),
    (OutcomeRequest, lambda v: {"delegation_id": "d-1", "status": "succeeded",
                                "artifacts": [{"kind": "experiment", "name": "x", "params": {"lr": v}}]},
     ("artifacts", 0, "params", "lr")),
    (ExperimentIn, lambda v: {"project": "Churn", "name": "xgb-1", "parameters": {"eta": v}}, ("parameters", "eta")),
    (ModelVersionIn, lambda v: {"model": "churn", "version": "3", "metrics": {"auc": v}}, ("metrics", "auc")),
    (FeatureImportanceIn, lambda v: {"model": "churn", "version": "3", "importance": {"tenure": v}},
     ("importance", "tenure")),
    (DriftIn, lambda v: {"model": "churn", "metric": "psi", "value": v, "detected_at": "2026-03-01"}, ("value",)),
    (StableFeaturesQuery, lambda v: {"model": "churn", "max_relative_spread": v}, ("max_relative_spread",)),
])
def test_a_non_finite_number_is_refused_where_it_is(model, make, where, value):
    paths = error_paths(model, make(value))
    assert paths and all(path[:len(where)] == where for path in paths), paths


def test_finite_numbers_and_stored_shapes_still_pass():
    assert RelationIn.model_validate({"source": {"name": "a"}, "type": "USES", "target": {"name": "b"},
                                      "weight": 0.5}).weight == 0.5
    assert EntityIn(name="Churn", attributes={"score": 1e308, "tags": ["a"]}).attributes["score"] == 1e308
    assert Provenance(source="api", agent="ds-1").agent == "ds-1"
    assert EntityBatch.model_validate({"entities": [{"name": "Churn"}]}).entities[0].name == "Churn"
    assert RelationBatch.model_validate({"relations": [{"source": {"id": "x"}, "type": "USES", "target": {"id": "y"}}],
                                         "create_missing": False}).relations[0].type == "USES"

"""Schemathesis over the whole OpenAPI description, against the live API (real Neo4j, real Chroma).

Every operation gets MAX_EXAMPLES generated requests, valid and invalid, sent with an API
key bound to every space; the checks: no 5xx, and every answer's status, content type,
headers and body are the ones the description documents. Path parameters are pinned to a
seeded space and to real ids (plus a missing one), so requests reach real data instead of
bouncing off a 404.

Schemathesis never sends NaN or Infinity (its number strategies leave them out, with no
setting to let them in), yet Python's JSON parser reads them; so a second test puts one in
place of a value of each generated body and wants a 422 naming that value's field.
"""

from __future__ import annotations

import json
import math
import time
import uuid

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.problems import field_path
from graph import Settings

MAX_EXAMPLES = 25
# The archive import's body is a .tar.gz: generate it as bytes, as for application/octet-stream.
schemathesis.serializer.alias("application/gzip", "application/octet-stream")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def fuzz(live_api, gateway):
    """A seeded space, a key for every space, and the ids the path parameters are pinned to."""
    space = f"fuzz-{uuid.uuid4().hex[:10]}"
    token = live_api.token(["*"], ["read", "write", "cypher", "admin"], name="fuzz")
    with live_api.client(space, token=token) as kg:
        project = kg.upsert_entities([{"kind": "Project", "name": "Churn"}, {"kind": "Agent", "name": "ds-1"}])[0]
        kg.add_observations([{"entity": {"id": project.id}, "text": "AUC 0.81 on the March snapshot"}])
        kg.upsert_relations([{"source": {"name": "ds-1"}, "type": "LEADS_ANALYSIS_FOR", "target": {"id": project.id}}])
        memory_id = kg.add_memory("I prefer Polars", user_id="alice", infer=False).results[0].id
        kg.brief({"task": "Retrain the churn model", "project": "Churn", "delegation_id": "d-1"})
        key_id = kg.create_key("fuzzed", ["read"]).key.key_id
        job_id = kg.reindex().id
    pinned = {"space": [space], "entity_id": [project.id, "no-such-entity"], "memory_id": [memory_id, "no-such-memory"],
              "delegation_id": ["d-1", "no-such-delegation"], "key_id": [key_id, "nosuchkey123"],
              "job_id": [job_id, "no-such-job"], "name": ["lessons-per-project", "agent-success", "no-such-report"]}
    yield {"space": space, "token": token, "pinned": pinned}
    gateway.write("MATCH (k:ApiKey) WHERE k.spaces = [$space] DETACH DELETE k", space=space)
    gateway.write("MATCH (n {space: $space}) DETACH DELETE n", space=space)


def _operations() -> list:
    # The description is static: build it from an app that is never started.
    schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi())
    return [result.ok() for result in schema.get_all_operations()]


OPERATIONS = _operations()
MODES = [GenerationMode.POSITIVE, GenerationMode.POSITIVE, GenerationMode.NEGATIVE]


@pytest.mark.parametrize("operation", OPERATIONS, ids=[operation.label for operation in OPERATIONS])
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_the_api_keeps_its_description(live_api, fuzz, operation, data):
    pins = {name: data.draw(st.sampled_from(fuzz["pinned"][name]), label=name)
            for name in _path_parameters(operation) if name in fuzz["pinned"]}
    mode = data.draw(st.sampled_from(MODES), label="mode")
    case = data.draw(operation.as_strategy(generation_mode=mode, path_parameters=pins or None), label="case")
    if case.path == "/v1/admin/reindex" and isinstance(case.body, dict):
        case.body["full"] = False  # a full rebuild would empty the index under the rest of the suite
    response = case.call_and_validate(base_url=live_api.base_url,
                                      headers={"Authorization": f"Bearer {fuzz['token']}"}, checks=CHECKS, timeout=120)
    if case.path == "/v1/admin/reindex" and response.status_code == 202:
        # A reconcile of every space works on the spaces of every test sharing this Neo4j: it ends here,
        # not under a later test.
        _wait_for_global_job(live_api, fuzz["token"], response.json()["id"])


def _wait_for_global_job(live_api, token: str, job_id: str, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    with live_api.http(token) as http:
        while http.get(f"/v1/admin/jobs/{job_id}").json()["state"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, f"the global reindex job {job_id} did not end"
            time.sleep(0.2)


BODY_OPERATIONS = [operation for operation in OPERATIONS if "requestBody" in operation.definition.raw]
NON_FINITE = [math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("operation", BODY_OPERATIONS, ids=[operation.label for operation in BODY_OPERATIONS])
@settings(max_examples=10, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_a_non_finite_number_anywhere_in_a_body_is_refused_by_its_field(live_api, fuzz, operation, data):
    pins = {name: data.draw(st.sampled_from(fuzz["pinned"][name]), label=name)
            for name in _path_parameters(operation) if name in fuzz["pinned"]}
    case = data.draw(operation.as_strategy(generation_mode=GenerationMode.POSITIVE, path_parameters=pins or None),
                     label="case")
    leaves = list(_leaves(case.body))
    if not leaves:  # an empty body: no value to put a NaN in place of
        return
    where = data.draw(st.sampled_from(leaves), label="where")
    body = _replaced(case.body, where, data.draw(st.sampled_from(NON_FINITE), label="number"))
    response = httpx.request(
        case.method, live_api.base_url + case.formatted_path, params=case.query, content=json.dumps(body),
        headers={**(case.headers or {}), "Authorization": f"Bearer {fuzz['token']}", "Content-Type": "application/json"},
        timeout=120)
    assert response.status_code == 422, response.text
    # Named where it is, or by the field it sits in (an attribute's list, a metadata filter's condition).
    expected = field_path(("body", *where))
    paths = [error["path"] for error in response.json()["errors"]]
    assert any(path.startswith(expected) or expected.startswith(path) and path.count(".") > 0
               for path in paths), (expected, paths)


def _leaves(value, at: tuple = ()):
    """Paths to every scalar in a JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*at, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*at, index))
    elif at:
        yield at


def _replaced(value, where: tuple, new):
    if not where:
        return new
    head, *rest = where
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _replaced(value[head], tuple(rest), new)
    return copy


def _path_parameters(operation) -> list[str]:
    return [p["name"] for p in operation.definition.raw.get("parameters", []) if p.get("in") == "path"]

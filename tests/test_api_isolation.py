"""Tenant isolation on every /v1 route: a key for space A can neither see nor change space B.

Two legs for every route: (1) A's key on B's path answers 404 "no such space" (or, on the
global admin routes, 403: they need a key bound to every space); (2) A's key on A's own
path, given B's ids, names or words, finds nothing of B's and changes nothing of B's.
`test_every_route_has_a_case` fails when a new route has no case here.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from fastapi.routing import APIRoute

from api.client import KgmemApiError, KgmemClient


@dataclass
class Tenants:
    a: KgmemClient  # every scope, bound to A only
    b: KgmemClient
    a_space: str
    b_space: str
    ids: dict[str, str] = field(default_factory=dict)  # B's: entity_id, observation_id, memory_id, key_id, job_id


def missing(call: Callable[[], object]) -> KgmemApiError:
    with pytest.raises(KgmemApiError) as raised:
        call()
    assert raised.value.status == 404, raised.value.problem
    return raised.value


def b_snapshot(gateway, space: str) -> list:
    return gateway.rows(
        "MATCH (n {space: $space}) OPTIONAL MATCH (n)-[r]->() "
        "RETURN n.id AS id, n.text AS text, n.summary AS summary, n.retracted_at AS retracted, "
        "n.valid_to AS closed, count(r) AS out ORDER BY id", space=space)


@pytest.fixture(scope="module")
def tenants(live_api, gateway):
    suffix = str(int(time.time() * 1000))
    a_space, b_space = f"iso-a-{suffix}", f"iso-b-{suffix}"
    a = live_api.client(a_space)
    b = live_api.client(b_space)
    t = Tenants(a, b, a_space, b_space)
    project = b.upsert_entities([{"kind": "Project", "name": "Secret Project", "aliases": ["skunkworks"]},
                                 {"kind": "Agent", "name": "spy"}])[0]
    t.ids["entity_id"] = project.id
    t.ids["observation_id"] = b.add_observations([{"entity": {"id": project.id}, "text": "budget is 2M"}])[0].id
    b.upsert_relations([{"source": {"name": "spy"}, "type": "LEADS_ANALYSIS_FOR", "target": {"name": "Secret Project"}}])
    t.ids["memory_id"] = b.add_memory("Bob keeps the secret budget", user_id="alice", infer=False).results[0].id
    b.record_experiment({"project": "Secret Project", "name": "secret-xgb", "task": "predict secret churn",
                         "parameters": {"depth": 6}, "metrics": {"auc": 0.9}})
    b.record_model_version({"model": "secret-model", "version": "1", "project": "Secret Project",
                            "metrics": {"auc": 0.9}, "feature_importance": {"tenure": 0.5}})
    b.brief({"task": "Audit the Secret Project budget", "project": "Secret Project", "delegation_id": "secret-delegation"})
    b.record_outcome({"delegation_id": "secret-delegation", "status": "succeeded", "agent": "spy",
                      "summary": "budget is 2M and on track"})
    t.ids["delegation_id"] = "secret-delegation"
    created = b.create_key("b reader", ["read"])
    live_api.key_ids.append(created.key.key_id)
    t.ids["key_id"] = created.key.key_id
    t.ids["job_id"] = b.reindex().id
    t.ids["name"] = "lessons-per-project"
    time.sleep(0.5)  # let B's reindex job finish before the snapshot
    before = b_snapshot(gateway, b_space)
    yield t
    assert b_snapshot(gateway, b_space) == before, "space B changed"
    assert b.get_memory(t.ids["memory_id"]).memory == "Bob keeps the secret budget"
    assert b.list_keys().items[0].revoked_at is None
    for space in (a_space, b_space):
        gateway.write("MATCH (n {space: $space}) DETACH DELETE n", space=space)
        gateway.write("MATCH (k:ApiKey) WHERE k.spaces = [$space] DETACH DELETE k", space=space)
    a.close()
    b.close()


def no_b(values: object, t: Tenants) -> None:
    text = repr(values)
    for secret in ("Secret Project", "skunkworks", "budget is 2M", "secret budget", "secret-xgb", "secret-model",
                   t.ids["entity_id"], t.ids["memory_id"], t.b_space):
        assert secret not in text, f"{secret!r} leaked: {text[:500]}"


# -- leg 2: A's own path, B's ids and words -------------------------------------------------------------------
def upsert_entities(t: Tenants) -> None:
    with pytest.raises(KgmemApiError) as taken:
        t.a.upsert_entities([{"kind": "Project", "name": "Mine", "id": t.ids["entity_id"]}])
    assert taken.value.status == 422
    twin = t.a.upsert_entities([{"kind": "Agent", "name": "spy", "summary": "decoy"}])[0]
    assert twin.id != t.ids["entity_id"] and twin.space == t.a_space


def observations(t: Tenants) -> None:
    missing(lambda: t.a.add_observations([{"entity": {"id": t.ids["entity_id"]}, "text": "pwned"}]))


def relations(t: Tenants) -> None:
    missing(lambda: t.a.upsert_relations([{"source": {"id": t.ids["entity_id"]}, "type": "RELATED_TO",
                                           "target": {"id": t.ids["entity_id"]}}]))


def track_record(t: Tenants) -> None:
    try:
        record = t.a.track_record("spy")  # B's agent; A may have a namesake of its own
    except KgmemApiError as exc:
        assert exc.status == 404
        return
    assert record.delegations == 0
    no_b(record.model_dump(), t)


CASES: dict[tuple[str, str], Callable[[Tenants], None]] = {
    ("POST", "/v1/spaces/{space}/entities"): upsert_entities,
    ("GET", "/v1/spaces/{space}/entities"): lambda t: no_b([e.id for e in t.a.iter_entities()], t),
    ("GET", "/v1/spaces/{space}/entities/search"): lambda t: no_b(
        [h.entity.id for h in t.a.search("Secret Project skunkworks budget").items], t),
    ("GET", "/v1/spaces/{space}/entities/{entity_id}"): lambda t: missing(lambda: t.a.get_entity(t.ids["entity_id"])),
    ("DELETE", "/v1/spaces/{space}/entities/{entity_id}"): lambda t: missing(
        lambda: t.a.delete_entity(t.ids["entity_id"])),
    ("GET", "/v1/spaces/{space}/entities/{entity_id}/history"): lambda t: missing(
        lambda: t.a.history(t.ids["entity_id"])),
    ("GET", "/v1/spaces/{space}/entities/{entity_id}/neighbourhood"): lambda t: missing(
        lambda: t.a.neighbourhood(t.ids["entity_id"])),
    ("POST", "/v1/spaces/{space}/entities/{entity_id}/retract"): lambda t: missing(
        lambda: t.a.retract_entity(t.ids["entity_id"])),
    ("POST", "/v1/spaces/{space}/entities/{entity_id}/purge"): lambda t: missing(
        lambda: t.a.purge_entity(t.ids["entity_id"])),
    ("POST", "/v1/spaces/{space}/observations"): observations,
    ("POST", "/v1/spaces/{space}/observations/retract"): lambda t: (
        t.a.retract_observations([t.ids["observation_id"]]) == 0 or pytest.fail("retracted B's observation")),
    ("POST", "/v1/spaces/{space}/relations"): relations,
    ("POST", "/v1/spaces/{space}/relations/retract"): lambda t: missing(lambda: t.a.retract_relations(
        [{"source": {"name": "spy"}, "type": "LEADS_ANALYSIS_FOR", "target": {"name": "Secret Project"}}])),
    ("POST", "/v1/spaces/{space}/recall"): lambda t: no_b(
        t.a.recall("what is the budget of the Secret Project?").model_dump()["items"], t),
    ("POST", "/v1/spaces/{space}/memories"): lambda t: no_b(
        t.a.add_memory("Alice likes tea", user_id="alice", infer=False).model_dump(), t),
    ("POST", "/v1/spaces/{space}/memories/batch"): lambda t: no_b(t.a.add_memories(
        [{"text": "Alice likes tea, not the secret project", "user_id": "alice"}]).model_dump(), t),
    ("GET", "/v1/spaces/{space}/memories"): lambda t: no_b(t.a.get_memories(user_id="alice").model_dump(), t),
    ("POST", "/v1/spaces/{space}/memories/search"): lambda t: no_b(
        t.a.search_memories("secret budget", user_id="alice").model_dump(), t),
    ("GET", "/v1/spaces/{space}/memories/{memory_id}"): lambda t: missing(lambda: t.a.get_memory(t.ids["memory_id"])),
    ("PUT", "/v1/spaces/{space}/memories/{memory_id}"): lambda t: missing(
        lambda: t.a.update_memory(t.ids["memory_id"], "pwned")),
    ("DELETE", "/v1/spaces/{space}/memories/{memory_id}"): lambda t: missing(
        lambda: t.a.delete_memory(t.ids["memory_id"])),
    ("GET", "/v1/spaces/{space}/memories/{memory_id}/history"): lambda t: missing(
        lambda: t.a.memory_history(t.ids["memory_id"])),
    ("POST", "/v1/spaces/{space}/delegations/brief"): lambda t: no_b(t.a.brief(
        {"task": "Audit the budget of the secret project", "delegation_id": "mine-1"}).model_dump(
        exclude={"task", "markdown"}), t),
    ("POST", "/v1/spaces/{space}/delegations/outcome"): lambda t: missing(lambda: t.a.record_outcome(
        {"delegation_id": "secret-delegation", "status": "succeeded", "summary": "pwned"})),
    ("GET", "/v1/spaces/{space}/delegations/{delegation_id}"): lambda t: missing(
        lambda: t.a.delegation("secret-delegation")),
    ("GET", "/v1/spaces/{space}/delegations/feedback"): lambda t: no_b(t.a.feedback(), t),
    ("GET", "/v1/spaces/{space}/delegations/track-record"): track_record,
    ("POST", "/v1/spaces/{space}/experiments"): lambda t: no_b(t.a.record_experiment(
        {"project": "Mine", "name": "mine-xgb", "metrics": {"auc": 0.5}}).model_dump(), t),
    ("POST", "/v1/spaces/{space}/experiments/hyperparameters"): lambda t: no_b(
        t.a.hyperparameters_for({"task": "predict secret churn", "metric": "auc"}).model_dump(), t),
    ("POST", "/v1/spaces/{space}/models"): lambda t: no_b(t.a.record_model({"name": "my-model"}).model_dump(), t),
    ("POST", "/v1/spaces/{space}/models/versions"): lambda t: no_b(t.a.record_model_version(
        {"model": "my-model", "version": "1", "metrics": {"auc": 0.5}}).model_dump(), t),
    ("POST", "/v1/spaces/{space}/models/stage"): lambda t: missing(
        lambda: t.a.set_stage({"model": "secret-model", "version": "1", "stage": "production"})),
    ("POST", "/v1/spaces/{space}/models/drift"): lambda t: missing(lambda: t.a.record_drift(
        {"model": "secret-model", "version": "1", "metric": "psi", "value": 0.3, "detected_at": "2026-01-01T00:00:00Z"})),
    ("POST", "/v1/spaces/{space}/models/best"): lambda t: missing(
        lambda: t.a.best_model({"project": "Secret Project", "metric": "auc"})),
    ("POST", "/v1/spaces/{space}/models/lineage"): lambda t: missing(lambda: t.a.lineage("secret-model")),
    ("POST", "/v1/spaces/{space}/models/diff"): lambda t: missing(lambda: t.a.diff_versions("secret-model", "1", "1")),
    ("POST", "/v1/spaces/{space}/features/importance"): lambda t: missing(lambda: t.a.record_feature_importance(
        {"model": "secret-model", "version": "1", "importance": {"tenure": 0.1}})),
    ("POST", "/v1/spaces/{space}/features/stable"): lambda t: missing(
        lambda: t.a.stable_features({"model": "secret-model", "min_versions": 2})),
    ("POST", "/v1/spaces/{space}/cypher"): lambda t: (
        pytest.raises(KgmemApiError, t.a.cypher, "MATCH (e:Entity {space: 'x'}) RETURN e").value.status == 403
        or pytest.fail("a one-space key ran Cypher")),
    ("GET", "/v1/spaces/{space}/reports"): lambda t: no_b(t.a.reports().model_dump(), t),
    ("POST", "/v1/spaces/{space}/reports/{name}"): lambda t: no_b(
        [t.a.run_report(name).rows for name in ("lessons-per-project", "model-lineage", "experiment-leaderboard",
                                                 "agent-success", "delegation-throughput", "incident-lessons")], t),
    ("GET", "/v1/spaces/{space}/admin/stats"): lambda t: (
        sum(t.a.stats().entities.values()) == len(list(t.a.iter_entities())) or pytest.fail("A's stats count B's")),
    ("POST", "/v1/spaces/{space}/admin/reindex"): lambda t: (
        t.a.reindex().space == t.a_space or pytest.fail("A's reindex reached another space")),
    ("GET", "/v1/spaces/{space}/admin/jobs/{job_id}"): lambda t: missing(lambda: t.a.job(t.ids["job_id"])),
    ("GET", "/v1/spaces/{space}/admin/keys"): lambda t: (
        t.ids["key_id"] not in {k.key_id for k in t.a.list_keys().items} or pytest.fail("A lists B's key")),
    ("POST", "/v1/spaces/{space}/admin/keys"): lambda t: (
        t.a.create_key("a reader", ["read"]).key.spaces == [t.a_space] or pytest.fail("A made a key for another space")),
    ("DELETE", "/v1/spaces/{space}/admin/keys/{key_id}"): lambda t: missing(lambda: t.a.revoke_key(t.ids["key_id"])),
    ("POST", "/v1/admin/reindex"): lambda t: None,  # leg 1 covers it: a key for one space gets 403
    ("GET", "/v1/admin/jobs/{job_id}"): lambda t: None,
}


def v1_routes(app) -> list[tuple[str, str]]:
    return sorted((method, route.path) for route in app.routes if isinstance(route, APIRoute)
                  and route.path.startswith("/v1/") for method in route.methods)


def test_every_route_has_a_case(live_api):
    uncovered = set(v1_routes(live_api.app)) - set(CASES)
    assert uncovered == set(), f"add a tenant-isolation case for: {sorted(uncovered)}"


def test_a_key_for_a_space_gets_404_on_another_space_and_403_on_global_routes(live_api, tenants):
    token = live_api.token([tenants.a_space])
    with live_api.http(token) as http:
        for method, template in v1_routes(live_api.app):
            path = re.sub(r"\{(\w+)\}", lambda m: tenants.b_space if m[1] == "space" else tenants.ids[m[1]], template)
            body = {} if method in ("POST", "PUT") else None
            response = http.request(method, path, json=body)
            expected = 404 if "{space}" in template else 403
            assert response.status_code == expected, (method, template, response.text)
            if expected == 404:
                assert "no such space" in response.json()["detail"]


@pytest.mark.parametrize(("method", "path"), sorted(CASES), ids=[f"{m} {p}" for m, p in sorted(CASES)])
def test_a_key_for_a_space_cannot_reach_into_another(tenants, method, path):
    CASES[(method, path)](tenants)

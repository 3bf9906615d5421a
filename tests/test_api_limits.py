"""Auth answers, limits, problem details, query timeouts, unreachable dependencies and Idempotency-Key."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from api_server import api_settings
from fastapi.testclient import TestClient

from api.app import create_app
from api.client import KgmemApiError, KgmemClient
from api.problems import PROBLEM_JSON
from graph.neo4j_server.server import free_port

ENTITY = {"kind": "Project", "name": "Churn model"}


# -- auth ---------------------------------------------------------------------------------------------------
def test_v1_without_a_key_is_401_and_health_needs_none(live_api, space):
    with live_api.http() as http:
        response = http.get(f"/v1/spaces/{space}/entities")
        assert response.status_code == 401
        assert response.headers["content-type"].startswith(PROBLEM_JSON)
        assert response.headers["www-authenticate"] == "Bearer"
        assert http.get("/healthz").status_code == 200
    with live_api.http("kgm_AAAAAAAAAAAA_" + "x" * 43) as http:
        response = http.post(f"/v1/spaces/{space}/recall", json={"text": "x"})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_missing_scope_is_403_and_another_space_is_404(live_api, space):
    token = live_api.token([space], ["read"])
    with KgmemClient(live_api.base_url, token, space) as reader:
        with pytest.raises(KgmemApiError) as refused:
            reader.upsert_entities([ENTITY])
        assert refused.value.status == 403 and "'write'" in refused.value.detail
    with KgmemClient(live_api.base_url, token, f"{space}-other") as elsewhere:
        with pytest.raises(KgmemApiError) as hidden:
            elsewhere.list_entities()
        assert hidden.value.status == 404 and "no such space" in hidden.value.detail


def test_an_address_that_fails_too_often_gets_429_on_rest_and_mcp_alike(live_api, space):
    """Failed API key checks count per client address, whichever door they came through; once the
    address has used them up, a new key from it waits too, and other addresses are not affected."""
    per_minute = live_api.app.state.key_store.settings.api_auth_failures_per_minute
    bad = {"Authorization": "Bearer kgm_AAAAAAAAAAAA_" + "x" * 43}
    mcp = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}
    fresh = {"Authorization": f"Bearer {live_api.token([space], ['read'])}"}

    def from_address(address: str) -> httpx.Client:
        return httpx.Client(base_url=live_api.base_url, transport=httpx.HTTPTransport(local_address=address),
                            timeout=60)

    with from_address("127.0.3.1") as failing, from_address("127.0.3.2") as other:
        statuses = [failing.get(f"/v1/spaces/{space}/entities", headers=bad).status_code for _ in range(per_minute - 1)]
        statuses.append(failing.post("/mcp", json=initialize, headers={**mcp, **bad}).status_code)
        assert statuses == [401] * per_minute
        for refused in (failing.get(f"/v1/spaces/{space}/entities", headers=bad),
                        failing.post("/mcp", json=initialize, headers={**mcp, **bad}),
                        failing.get(f"/v1/spaces/{space}/entities", headers=fresh)):
            assert refused.status_code == 429, refused.text
            assert refused.json()["type"] == "urn:kgmem:problem:auth-rate-limited"
            assert int(refused.headers["retry-after"]) >= 1
        assert other.get(f"/v1/spaces/{space}/entities", headers=fresh).status_code == 200


# -- validation and bounds -----------------------------------------------------------------------------------
def test_422_names_the_path_of_each_invalid_field(live_api, space):
    with live_api.http(live_api.token([space])) as http:
        response = http.post(f"/v1/spaces/{space}/entities", json={"entities": [ENTITY, {"kind": "Project"},
                                                                                 {"name": "x", "kind": "Nope"}]})
    assert response.status_code == 422
    paths = [e["path"] for e in response.json()["errors"]]
    assert paths == ["body.entities[1].name", "body.entities[2].kind"]


@pytest.mark.parametrize(("method", "path", "kwargs", "field"), [
    ("GET", "/entities", {"params": {"limit": 101}}, "query.limit"),
    ("GET", "/entities/x/neighbourhood", {"params": {"depth": 4}}, "query.depth"),
    ("POST", "/recall", {"json": {"text": "x", "limit": 1000}}, "body.limit"),
    ("POST", "/entities", {"json": {"entities": [ENTITY] * 1001}}, "body.entities"),
    ("POST", "/entities", {"json": {"entities": []}}, "body.entities"),
])
def test_hard_bounds(live_api, space, method, path, kwargs, field):
    with live_api.http(live_api.token([space])) as http:
        response = http.request(method, f"/v1/spaces/{space}{path}", **kwargs)
    assert response.status_code == 422
    assert field in [e["path"] for e in response.json()["errors"]]


@pytest.fixture(scope="module")
def tight(neo4j_server, embedder, tmp_path_factory):
    """An app whose settings tighten every limit."""
    settings = api_settings(neo4j_server, tmp_path_factory.mktemp("tight"), api_max_batch=2, api_max_limit=5,
                            api_max_depth=1, api_max_body_bytes=4096, api_rate_limit_per_minute=3)
    with TestClient(create_app(settings, embedder=embedder)) as client:
        yield client


def test_settings_tighten_the_bounds(tight, live_api, space):
    headers = {"Authorization": f"Bearer {live_api.token([space])}"}
    cases = [
        ("POST", "/entities", {"json": {"entities": [ENTITY] * 3}}, "body.entities", "at most 2 items"),
        ("GET", "/entities", {"params": {"limit": 6}}, "query.limit", "at most 5 results"),
        ("GET", "/entities/x/neighbourhood", {"params": {"depth": 2}}, "query.depth", "at most 1 hops"),
    ]
    for method, path, kwargs, field, message in cases:
        response = tight.request(method, f"/v1/spaces/{space}{path}", headers=headers, **kwargs)
        assert response.status_code == 422, response.text
        error = response.json()["errors"][0]
        assert (error["path"], message in error["message"]) == (field, True)


def test_a_body_over_the_limit_is_413(tight, live_api, space):
    headers = {"Authorization": f"Bearer {live_api.token([space])}"}
    response = tight.post(f"/v1/spaces/{space}/recall", headers=headers, json={"text": "x" * 5000})
    assert response.status_code == 413
    assert "4096 bytes" in response.json()["detail"]


def test_the_rate_limit_is_per_key_with_retry_after(tight, live_api, space):
    first, second = ({"Authorization": f"Bearer {live_api.token([space])}"} for _ in range(2))
    answers = [tight.get(f"/v1/spaces/{space}/entities", headers=first) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert int(answers[-1].headers["retry-after"]) >= 1
    assert answers[-1].json()["type"] == "urn:kgmem:problem:rate-limited"
    assert tight.get(f"/v1/spaces/{space}/entities", headers=second).status_code == 200


# -- timeouts and dependencies --------------------------------------------------------------------------------
def test_a_query_over_the_time_limit_is_504(neo4j_server, embedder, live_api, tmp_path):
    settings = api_settings(neo4j_server, tmp_path, api_query_timeout_s=0.5)
    with TestClient(create_app(settings, embedder=embedder)) as client:
        headers = {"Authorization": f"Bearer {live_api.token(['*'], ['admin', 'cypher'])}"}
        response = client.post("/v1/spaces/default/cypher", headers=headers, json={
            "query": SLOW})
    assert response.status_code == 504
    assert response.json()["type"] == "urn:kgmem:problem:query-timeout"
    assert "time limit" in response.json()["detail"]


SLOW = "UNWIND range(1, 2000000000) AS x WITH x WHERE x % 7 = 99 RETURN count(*) AS n"


def idle_transaction(gateway) -> list[dict]:
    """A transaction that stays open for 3.5 s: past a 0.2 s limit plus Neo4j's 2 s timeout check interval,
    whatever the machine's speed."""
    def work(tx):
        tx.run("RETURN 1")
        time.sleep(3.5)
        return tx.rows("RETURN 2 AS two")

    return gateway.read_transaction(work)


def test_requests_carry_the_query_timeout_into_neo4j(gateway):
    """QueryTimeLimit gives every transaction a request runs (through any of the gateway's doors, in sync
    and async routes alike) the time limit; Neo4j stops it there and the API answers 504."""
    from fastapi import FastAPI

    from api import problems
    from api.limits import QueryTimeLimit
    from graph.gateway import current_time_limit

    app = FastAPI()
    problems.install(app)
    app.add_middleware(QueryTimeLimit, seconds=0.2)
    doors = {
        "rows": lambda query: gateway.rows(query),
        "write": lambda query: gateway.write(query),
        "read_transaction": lambda query: gateway.read_transaction(lambda tx: tx.rows(query)),
        "write_transaction": lambda query: gateway.write_transaction(lambda tx: tx.rows(query)),
        "implicit": lambda query: gateway.run_implicit(query),
    }

    @app.get("/limit")
    def sync_limit() -> dict:
        return {"limit": current_time_limit()}

    @app.get("/async-limit")
    async def async_limit() -> dict:
        return {"limit": current_time_limit()}

    @app.get("/slow/{door}")
    def slow(door: str) -> dict:
        return {"rows": doors[door](SLOW)}

    @app.get("/idle")
    def idle() -> dict:
        return {"rows": idle_transaction(gateway)}

    @app.get("/async-slow")
    async def async_slow() -> dict:
        return {"rows": gateway.rows(SLOW)}

    with TestClient(app) as client:
        assert client.get("/limit").json() == {"limit": 0.2}
        assert client.get("/async-limit").json() == {"limit": 0.2}
        for path in [*(f"/slow/{door}" for door in doors), "/async-slow", "/idle"]:
            started = time.monotonic()
            response = client.get(path)
            assert response.status_code == 504, (path, response.text)
            assert response.json()["type"] == "urn:kgmem:problem:query-timeout"
            assert "time limit" in response.json()["detail"]
            assert time.monotonic() - started < 30, path  # stopped by Neo4j, not run to its end

    # Outside a request there is no limit: the same transaction the request could not finish runs to its end.
    assert current_time_limit() is None
    assert idle_transaction(gateway) == [{"two": 2}]


def test_neo4j_down_is_503_with_retry_after(settings, embedder):
    broken = settings.model_copy(update={"neo4j_uri": f"bolt://127.0.0.1:{free_port()}"})
    with TestClient(create_app(broken, embedder=embedder)) as client:
        # A well-formed token: checking it needs Neo4j (a malformed one is refused without asking anyone).
        response = client.get("/v1/spaces/default/entities",
                              headers={"Authorization": "Bearer kgm_AAAAAAAAAAAA_" + "x" * 43})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["type"] == "urn:kgmem:problem:dependency-unavailable"


def test_chroma_down_is_503_with_retry_after(settings, embedder, live_api, space):
    broken = settings.model_copy(update={"chroma_host": "127.0.0.1", "chroma_port": free_port()})
    with TestClient(create_app(broken, embedder=embedder)) as client:
        headers = {"Authorization": f"Bearer {live_api.token([space])}"}
        response = client.post(f"/v1/spaces/{space}/recall", headers=headers, json={"text": "churn"})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "Chroma" in response.json()["detail"] or "chroma" in response.json()["detail"].lower()


# -- Cypher ---------------------------------------------------------------------------------------------------
def test_cypher_needs_a_key_for_every_space(live_api, space):
    with live_api.client(space, ["read", "cypher"]) as analyst:
        with pytest.raises(KgmemApiError) as refused:
            analyst.cypher("MATCH (e:Entity {space: $space}) RETURN count(e) AS n")
        assert refused.value.status == 403 and "all spaces" in refused.value.detail
    token = live_api.token(["*"], ["admin", "cypher"])
    with live_api.client(space, token=token) as console:
        assert console.cypher("MATCH (e:Entity {space: $space}) RETURN count(e) AS n").rows == [{"n": 0}]
        with pytest.raises(KgmemApiError) as writes:
            console.cypher("CREATE (n:Entity {space: $space})")
        assert writes.value.status == 400 and writes.value.type == "urn:kgmem:problem:cypher-refused"
        with pytest.raises(KgmemApiError) as keys:
            console.cypher("MATCH (k:ApiKey) RETURN k.hash AS hash")
        assert keys.value.status == 400 and "ApiKey" in keys.value.detail


# -- idempotency ----------------------------------------------------------------------------------------------
def test_a_retry_with_the_same_idempotency_key_returns_the_first_answer(live_api, space, gateway):
    key = str(uuid.uuid4())
    with live_api.http(live_api.token([space])) as http:
        path = f"/v1/spaces/{space}/observations"
        body = {"observations": [{"entity": ENTITY, "text": "AUC 0.81"}], "create_missing": True}
        first = http.post(path, json=body, headers={"Idempotency-Key": key})
        gateway.write("MATCH (o:Observation {space: $space}) SET o.text = 'changed'", space=space)
        again = http.post(path, json=body, headers={"Idempotency-Key": key})
        assert first.status_code == again.status_code == 200
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        count = gateway.rows("MATCH (o:Observation {space: $space}) RETURN count(o) AS n", space=space)[0]["n"]
        assert count == 1

        other = http.post(path, json={**body, "create_missing": False}, headers={"Idempotency-Key": key})
        assert other.status_code == 422
        assert other.json()["type"] == "urn:kgmem:problem:idempotency-key-reused"

        fresh = http.post(path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
        assert "idempotent-replayed" not in fresh.headers


def test_a_failed_request_does_not_keep_its_idempotency_key(live_api, space):
    key = str(uuid.uuid4())
    with live_api.http(live_api.token([space])) as http:
        path = f"/v1/spaces/{space}/observations"
        body = {"observations": [{"entity": ENTITY, "text": "AUC 0.81"}]}
        assert http.post(path, json=body, headers={"Idempotency-Key": key}).status_code == 404  # no such entity
        http.post(f"/v1/spaces/{space}/entities", json={"entities": [ENTITY]})
        assert http.post(path, json=body, headers={"Idempotency-Key": key}).status_code == 200


def test_the_same_key_is_separate_per_api_key_and_route(live_api, space):
    key = str(uuid.uuid4())
    body = {"entities": [ENTITY]}
    with live_api.http(live_api.token([space])) as a, live_api.http(live_api.token([space])) as b:
        assert a.post(f"/v1/spaces/{space}/entities", json=body, headers={"Idempotency-Key": key}).status_code == 200
        replay = b.post(f"/v1/spaces/{space}/entities", json=body, headers={"Idempotency-Key": key})
        assert "idempotent-replayed" not in replay.headers
        relation = {"relations": [{"source": ENTITY, "type": "RELATED_TO", "target": ENTITY}]}
        answer = a.post(f"/v1/spaces/{space}/relations", json=relation, headers={"Idempotency-Key": key})
        assert answer.status_code == 200 and "idempotent-replayed" not in answer.headers


def test_integers_beyond_64_bits_are_422(live_api, space):
    with live_api.http(live_api.token([space])) as http:
        response = http.post(f"/v1/spaces/{space}/entities", json={"entities": [
            {"kind": "Project", "name": "Big", "attributes": {"rows": 2 ** 70}}]})
    assert response.status_code == 422, response.text
    assert "64 bits" in response.json()["detail"]

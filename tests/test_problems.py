"""Errors are RFC 9457 problem details: field paths on 422, 503 + Retry-After when a dependency is down,
413 for big bodies, and a generic 500 with the request id for everything unexpected."""

from __future__ import annotations

import socket
import uuid

import anthropic
import chromadb
import neo4j
import pytest
import structlog
from fastapi import FastAPI, HTTPException, Query
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from api import observability, problems
from graph import Neo4jTarget, Settings, open_driver
from graph.cypher import CypherFailed
from graph.errors import ConfigurationError, CypherRefused, InvalidInput, Neo4jUnavailable, NotFound
from memory.extraction import ExtractionBudgetExceeded, ExtractionFailed
from memory.free_text import LLMUnavailable
from memory.index import ModelMismatch
from memory.vectors import open_chroma

PROBLEM = "application/problem+json"


def closed_port() -> int:
    """A port nothing listens on: bound to find it free, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Entity(BaseModel):
    name: str = Field(min_length=1)
    attributes: dict[str, int] = {}


class Batch(BaseModel):
    entities: list[Entity]


def build_app(raise_: dict[str, BaseException] | None = None, **problem_options) -> tuple[FastAPI, dict[str, int]]:
    """problems and observability installed as create_app will; `/raise/{kind}` raises `raise_[kind]`."""
    app = FastAPI()
    problems.install(app, **problem_options)
    observability.install(app, configure_logs=False)
    calls = {"batch": 0}
    errors = raise_ or {}

    @app.post("/spaces/{space}/entities")
    def add_entities(space: str, batch: Batch, limit: int = Query(10, ge=1)) -> dict:
        calls["batch"] += 1
        return {"space": space, "count": len(batch.entities)}

    @app.get("/raise/{kind}")
    def raise_error(kind: str) -> dict:
        raise errors[kind]

    return app, calls


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["type"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


# -- 422 and malformed JSON -------------------------------------------------------------------------------------
def test_422_names_the_path_of_every_invalid_field():
    app, calls = build_app()
    body = {"entities": [{"name": "ok"}, {"name": ""}, {"attributes": {"a b": "x"}}]}
    response = TestClient(app).post("/spaces/acme/entities?limit=0", json=body)
    problem = assert_problem(response, 422)
    assert problem["type"] == "urn:kgmem:problem:validation-failed"
    assert problem["instance"] == "/spaces/acme/entities"
    paths = {error["path"]: error for error in problem["errors"]}
    assert set(paths) == {
        "body.entities[1].name",
        "body.entities[2].name",
        'body.entities[2].attributes["a b"]',
        "query.limit",
    }
    assert paths["body.entities[2].name"]["type"] == "missing"
    assert paths["body.entities[1].name"]["type"] == "string_too_short"
    assert paths["query.limit"]["message"] == "Input should be greater than or equal to 1"
    assert problem["detail"].startswith("4 fields are invalid: ")
    assert calls["batch"] == 0


def test_malformed_json_is_a_400_problem_not_a_422():
    app, calls = build_app()
    response = TestClient(app).post(
        "/spaces/acme/entities", content=b'{"entities": [', headers={"content-type": "application/json"})
    problem = assert_problem(response, 400)
    assert problem["type"] == "urn:kgmem:problem:malformed-json"
    assert problem["errors"][0]["path"] == "body"
    assert problem["errors"][0]["type"] == "json_invalid"
    assert "at character 14" in problem["detail"]
    assert calls["batch"] == 0


def test_a_pydantic_error_raised_in_a_route_is_a_422_without_location_prefix():
    try:
        Batch.model_validate({"entities": [{"name": ""}]})
    except Exception as exc:  # noqa: BLE001 - the real ValidationError, raised by a route below
        error = exc
    app, _ = build_app({"pydantic": error})
    problem = assert_problem(TestClient(app).get("/raise/pydantic"), 422)
    assert [e["path"] for e in problem["errors"]] == ["entities[0].name"]


def test_field_path_quotes_keys_that_are_not_plain_names():
    assert problems.field_path(("body", "entities", 2, "name")) == "body.entities[2].name"
    assert problems.field_path(("body", "meta", 'we"ird.key')) == 'body.meta["we\\"ird.key"]'
    assert problems.field_path(("header", "x-api-key")) == "header.x-api-key"
    assert problems.field_path((0, "a")) == "[0].a"


# -- body size -----------------------------------------------------------------------------------------------
def test_a_body_over_the_limit_is_refused_with_413_before_the_route_runs():
    app, calls = build_app(max_body_bytes=1024)
    client = TestClient(app)
    small = {"entities": [{"name": "x" * 100}]}
    assert client.post("/spaces/acme/entities", json=small).status_code == 200
    big = {"entities": [{"name": "x" * 2000}]}
    problem = assert_problem(client.post("/spaces/acme/entities", json=big), 413)
    assert problem["title"] == "Content Too Large"
    assert "1024 bytes" in problem["detail"]
    assert calls["batch"] == 1


def test_a_chunked_body_without_content_length_is_cut_off_at_the_limit():
    app, calls = build_app(max_body_bytes=1024)

    def chunks():
        yield b'{"entities": [{"name": "'
        for _ in range(10):
            yield b"x" * 500
        yield b'"}]}'

    response = TestClient(app).post("/spaces/acme/entities", content=chunks(),
                                    headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    assert_problem(response, 413)
    assert calls["batch"] == 0


def test_the_default_limit_is_two_mebibytes():
    app, calls = build_app()
    client = TestClient(app)
    just_under = {"entities": [{"name": "x" * (2 * 1024 * 1024 - 100)}]}
    assert client.post("/spaces/acme/entities", json=just_under).status_code == 200
    over = {"entities": [{"name": "x" * (2 * 1024 * 1024)}]}
    assert_problem(client.post("/spaces/acme/entities", json=over), 413)


# -- HTTP errors -------------------------------------------------------------------------------------------------
def test_http_exceptions_keep_their_status_detail_and_headers():
    app, _ = build_app({
        "401": HTTPException(401, detail="missing API key", headers={"WWW-Authenticate": 'Bearer realm="kgmem"'}),
        "429": HTTPException(429, detail="slow down", headers={"Retry-After": "30"}),
    })
    client = TestClient(app)
    problem = assert_problem(response := client.get("/raise/401"), 401)
    assert response.headers["www-authenticate"] == 'Bearer realm="kgmem"'
    assert problem == {**problem, "type": "about:blank", "title": "Unauthorized", "detail": "missing API key"}
    assert_problem(response := client.get("/raise/429"), 429)
    assert response.headers["retry-after"] == "30"


def test_unknown_routes_and_wrong_methods_are_problems():
    app, _ = build_app()
    client = TestClient(app)
    problem = assert_problem(client.get("/no/such/route"), 404)
    assert problem["title"] == "Not Found"
    assert problem["instance"] == "/no/such/route"
    assert_problem(response := client.delete("/spaces/acme/entities"), 405)
    assert response.headers["allow"] == "POST"


# -- kgmem's errors ----------------------------------------------------------------------------------------------
KGMEM_ERRORS = {
    "not-found": (NotFound("no entity e1 in space acme"), 404, "not-found", None),
    "invalid-input": (InvalidInput("a relation needs two distinct entities"), 422, "invalid-input", None),
    "cypher-refused": (CypherRefused("the query writes: CREATE"), 400, "cypher-refused", None),
    "cypher-failed": (CypherFailed("the query ran longer than its 5 s time limit"), 422, "cypher-failed", None),
    "model-mismatch": (ModelMismatch("the collection holds vectors of another model"), 409, "model-mismatch", None),
    "budget": (ExtractionBudgetExceeded("text too long for one extraction"), 422, "text-too-long", None),
    "extraction": (ExtractionFailed("Claude's extraction was invalid after 2 attempts"), 502, "extraction-failed",
                   None),
    "llm": (LLMUnavailable("add: the LLM call for infer=true failed"), 503, "llm-unavailable", "5"),
    "neo4j-down": (Neo4jUnavailable("Neo4j is unreachable"), 503, "dependency-unavailable", "5"),
    "config": (ConfigurationError("infer=true needs Claude, and ANTHROPIC_API_KEY is not set"), 503, "not-ready",
               None),
}


@pytest.mark.parametrize("kind", sorted(KGMEM_ERRORS))
def test_kgmem_errors_map_to_their_status(kind):
    error, status, slug, retry_after = KGMEM_ERRORS[kind]
    app, _ = build_app({kind: error})
    response = TestClient(app).get(f"/raise/{kind}")
    problem = assert_problem(response, status)
    assert problem["type"] == f"urn:kgmem:problem:{slug}"
    assert problem["detail"] == str(error)
    assert response.headers.get("retry-after") == retry_after


def test_retry_after_is_configurable():
    app, _ = build_app({"down": Neo4jUnavailable("Neo4j is unreachable")}, retry_after_s=17)
    response = TestClient(app).get("/raise/down")
    assert_problem(response, 503)
    assert response.headers["retry-after"] == "17"


def test_claude_unreachable_during_extraction_is_503_with_retry_after():
    client = anthropic.Anthropic(api_key="test-key", base_url=f"http://127.0.0.1:{closed_port()}", max_retries=0)
    try:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    except anthropic.APIConnectionError as exc:
        cause = exc
    try:
        raise ExtractionFailed("Claude could not be reached") from cause
    except ExtractionFailed as exc:
        error = exc
    app, _ = build_app({"claude": error})
    response = TestClient(app).get("/raise/claude")
    problem = assert_problem(response, 503)
    assert problem["type"] == "urn:kgmem:problem:llm-unavailable"
    assert response.headers["retry-after"] == "5"


# -- dependencies down, for real ---------------------------------------------------------------------------------
def build_dependency_app(call) -> FastAPI:
    app = FastAPI()
    problems.install(app)
    observability.install(app, configure_logs=False)

    @app.get("/work")
    def work() -> dict:
        call()
        return {"ok": True}

    return app


def test_a_neo4j_driver_on_a_closed_port_gives_503_with_retry_after():
    driver = neo4j.GraphDatabase.driver(f"bolt://127.0.0.1:{closed_port()}", auth=("neo4j", "x"),
                                        max_transaction_retry_time=0, connection_timeout=5)
    try:
        app = build_dependency_app(lambda: driver.execute_query("RETURN 1"))
        with structlog.testing.capture_logs() as logs:
            response = TestClient(app).get("/work")
    finally:
        driver.close()
    problem = assert_problem(response, 503)
    assert response.headers["retry-after"] == "5"
    assert problem["type"] == "urn:kgmem:problem:dependency-unavailable"
    assert problem["detail"] == "Neo4j cannot be reached right now; retry later."
    warning = [line for line in logs if line["event"] == "request failed"]
    assert warning and warning[0]["error"] == "ServiceUnavailable"
    assert "exc_info" not in warning[0]


def test_open_driver_on_a_closed_port_gives_503_with_retry_after():
    target = Neo4jTarget(f"bolt://127.0.0.1:{closed_port()}", "neo4j", "x", "neo4j")
    app = build_dependency_app(lambda: open_driver(target))
    response = TestClient(app).get("/work")
    problem = assert_problem(response, 503)
    assert response.headers["retry-after"] == "5"
    assert "is unreachable" in problem["detail"]


def test_a_chroma_server_that_is_down_gives_503_with_retry_after():
    port = closed_port()
    app = build_dependency_app(lambda: chromadb.HttpClient(host="127.0.0.1", port=port))
    response = TestClient(app).get("/work")
    problem = assert_problem(response, 503)
    assert response.headers["retry-after"] == "5"
    assert problem["detail"] == "Chroma cannot be reached right now; retry later."


def test_open_chroma_on_a_closed_port_is_503_not_a_configuration_500(tmp_path):
    settings = Settings(home=tmp_path, chroma_host="127.0.0.1", chroma_port=closed_port())
    app = build_dependency_app(lambda: open_chroma(settings))
    response = TestClient(app).get("/work")
    problem = assert_problem(response, 503)
    assert problem["type"] == "urn:kgmem:problem:dependency-unavailable"
    assert response.headers["retry-after"] == "5"
    assert "unreachable" in problem["detail"]


def test_neo4j_client_errors(neo4j_driver, neo4j_server, space):
    database = neo4j_server.database

    def constraint_violation():
        neo4j_driver.execute_query(
            "CREATE (a:ProblemsTest {space: $space})-[:LINKS]->(:ProblemsTest {space: $space})",
            space=space, database_=database)
        neo4j_driver.execute_query("MATCH (a:ProblemsTest {space: $space}) DELETE a", space=space,
                                   database_=database)

    def bad_argument():
        neo4j_driver.execute_query("RETURN range(1, 10, 0)", database_=database)

    def syntax_error():
        neo4j_driver.execute_query("RETURN RETURN", database_=database)

    conflict = TestClient(build_dependency_app(constraint_violation)).get("/work")
    problem = assert_problem(conflict, 409)
    assert problem["type"] == "urn:kgmem:problem:conflict"
    assert "relationships" in problem["detail"]

    rejected = TestClient(build_dependency_app(bad_argument)).get("/work")
    assert assert_problem(rejected, 400)["type"] == "urn:kgmem:problem:rejected-by-neo4j"

    # kgmem's own statement being wrong is a bug: a generic 500, not the client's fault
    bug = TestClient(build_dependency_app(syntax_error)).get("/work")
    problem = assert_problem(bug, 500)
    assert problem["detail"] == problems.GENERIC_DETAIL
    assert "RETURN" not in bug.text


# -- the unexpected ----------------------------------------------------------------------------------------------
def test_an_unknown_exception_is_a_generic_500_with_the_request_id_and_no_traceback():
    app, _ = build_app({"bug": RuntimeError("secret: password=hunter2")})
    with structlog.testing.capture_logs() as logs:
        response = TestClient(app).get("/raise/bug", headers={"X-Request-ID": "req-42"})
    problem = assert_problem(response, 500)
    assert problem == {
        "type": "urn:kgmem:problem:internal-error", "title": "Internal server error", "status": 500,
        "detail": problems.GENERIC_DETAIL, "instance": "/raise/bug", "request_id": "req-42",
    }
    for leak in ("hunter2", "Traceback", "RuntimeError", "File "):
        assert leak not in response.text
    logged = [line for line in logs if line["event"] == "unhandled exception"]
    assert len(logged) == 1
    assert logged[0]["request_id"] == "req-42"
    assert isinstance(logged[0]["exc_info"], RuntimeError)


@pytest.mark.parametrize("order", ["problems first", "observability first"])
def test_install_order_does_not_matter(order):
    app = FastAPI()
    if order == "problems first":
        problems.install(app)
        observability.install(app, configure_logs=False)
    else:
        observability.install(app, configure_logs=False)
        problems.install(app)

    @app.get("/bug")
    def bug() -> dict:
        raise KeyError("nope")

    with structlog.testing.capture_logs() as logs:
        response = TestClient(app).get("/bug")
    problem = assert_problem(response, 500)
    uuid.UUID(problem["request_id"])
    access = [line for line in logs if line["event"] == "request"]
    assert [(line["status"], line["request_id"]) for line in access] == [(500, problem["request_id"])]


def test_problems_work_without_observability():
    app = FastAPI()
    problems.install(app)

    @app.get("/missing")
    def missing() -> dict:
        raise NotFound("nothing here")

    response = TestClient(app).get("/missing")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    assert uuid.UUID(response.json()["request_id"]).version == 4

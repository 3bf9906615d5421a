"""Errors are RFC 9457 problem details: field paths on 422, 503 + Retry-After when a dependency is down,
413 for big bodies, and a generic 500 with the request id for everything unexpected."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import anthropic
import chromadb
import httpx
import neo4j
import pytest
import structlog
from chromadb import errors as chroma_errors
from fakes import FakeAnthropicTransport
from fastapi import FastAPI, HTTPException, Query
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from api import observability, problems
from graph import Gateway, Neo4jTarget, Settings, time_limit
from graph.errors import (
    ChromaCorrupt,
    ChromaUnavailable,
    ConfigurationError,
    Conflict,
    CypherFailed,
    CypherRefused,
    DownloadError,
    ExtractionFailed,
    InvalidInput,
    JavaNotFound,
    KgmemError,
    LLMUnavailable,
    ModelMismatch,
    Neo4jStartError,
    Neo4jUnavailable,
    NotFound,
    PortInUse,
    QueryTimeout,
    TextTooLong,
    Unavailable,
)
from graph.gateway import translate
from memory.extraction import ClaudeExtractor
from memory.index import VectorIndex
from memory.index import translate as translate_chroma
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
# One case per row of the table in api/problems.py's docstring that a kgmem error class decides (subclasses too).
KGMEM_ERRORS = {
    "not-found": (NotFound("no entity e1 in space acme"), 404, "not-found", None),
    "text-too-long": (TextTooLong("text too long for one extraction"), 422, "text-too-long", None),
    "invalid-input": (InvalidInput("a relation needs two distinct entities"), 422, "invalid-input", None),
    "model-mismatch": (ModelMismatch("the collection holds vectors of another model"), 409, "model-mismatch", None),
    "conflict": (Conflict("Node(12) already exists with label `ApiKey` and property `key_id`"), 409, "conflict",
                 None),
    "cypher-refused": (CypherRefused("the query writes: CREATE"), 400, "cypher-refused", None),
    "cypher-failed": (CypherFailed("Neo4j refused the query: division by zero"), 422, "cypher-failed", None),
    "query-timeout": (QueryTimeout("Neo4j stopped the query at its time limit"), 504, "query-timeout", None),
    "extraction": (ExtractionFailed("Claude's extraction was invalid after 2 attempts"), 502, "extraction-failed",
                   None),
    "llm": (LLMUnavailable("add: the LLM call for infer=true failed"), 503, "llm-unavailable", "5"),
    "unavailable": (Unavailable("a dependency is busy"), 503, "dependency-unavailable", "5"),
    "neo4j-down": (Neo4jUnavailable("Neo4j is unreachable"), 503, "dependency-unavailable", "5"),
    "neo4j-start": (Neo4jStartError("the managed Neo4j did not come up"), 503, "dependency-unavailable", "5"),
    "chroma-down": (ChromaUnavailable("Chroma cannot be reached right now"), 503, "dependency-unavailable", "5"),
    "config": (ConfigurationError("infer=true needs Claude, and ANTHROPIC_API_KEY is not set"), 503, "not-ready",
               None),
    "chroma-corrupt": (ChromaCorrupt("Chroma's store is damaged; run `kgmem reindex --full`"), 503, "index-corrupt",
                       None),
    "java": (JavaNotFound("no Java 17+ runtime"), 503, "not-ready", None),
    "port": (PortInUse("port 7687 is taken"), 503, "not-ready", None),
    "download": (DownloadError("the Neo4j distribution could not be fetched"), 503, "not-ready", None),
    "other": (KgmemError("the reconciler found an impossible state"), 500, "internal-error", None),
}
# What the log says: the caller's own mistakes nothing, a dependency or setting a warning line, a bug a traceback.
LOGGED = {"not-found": None, "text-too-long": None, "invalid-input": None, "model-mismatch": None, "conflict": None,
          "cypher-refused": None, "cypher-failed": None, "other": "unhandled exception"}


@pytest.mark.parametrize("kind", sorted(KGMEM_ERRORS))
def test_kgmem_errors_map_to_their_status(kind):
    error, status, slug, retry_after = KGMEM_ERRORS[kind]
    app, _ = build_app({kind: error})
    with structlog.testing.capture_logs() as logs:
        response = TestClient(app).get(f"/raise/{kind}")
    problem = assert_problem(response, status)
    assert problem["type"] == f"urn:kgmem:problem:{slug}"
    assert problem["detail"] == str(error)
    assert response.headers.get("retry-after") == retry_after
    logged = [line for line in logs if line["event"] in ("request failed", "unhandled exception")]
    expected = LOGGED.get(kind, "request failed")
    assert [line["event"] for line in logged] == ([expected] if expected else [])
    if expected == "request failed":
        assert "exc_info" not in logged[0]
    elif expected == "unhandled exception":
        assert logged[0]["exc_info"] is error


def test_every_kgmem_error_class_in_the_table_is_covered():
    covered = {type(error) for error, *_ in KGMEM_ERRORS.values()}
    assert set(problems.KGMEM_PROBLEMS) <= covered


def test_an_api_problem_keeps_its_status_slug_and_headers():
    app, _ = build_app({"limited": problems.ApiProblem(429, "rate-limited", "Too many requests", "slow down",
                                                       headers={"Retry-After": "12"})})
    response = TestClient(app).get("/raise/limited")
    problem = assert_problem(response, 429)
    assert problem["type"] == "urn:kgmem:problem:rate-limited"
    assert problem["detail"] == "slow down"
    assert response.headers["retry-after"] == "12"


def test_retry_after_is_configurable():
    app, _ = build_app({"down": Neo4jUnavailable("Neo4j is unreachable")}, retry_after_s=17)
    response = TestClient(app).get("/raise/down")
    assert_problem(response, 503)
    assert response.headers["retry-after"] == "17"


# -- Claude's failures, translated by the extractor (memory.extraction.api_error) ----------------------------------
def build_dependency_app(call) -> FastAPI:
    app = FastAPI()
    problems.install(app)
    observability.install(app, configure_logs=False)

    @app.get("/work")
    def work() -> dict:
        call()
        return {"ok": True}

    return app


TEXT = "Ada leads the churn project."


def test_claude_unreachable_during_extraction_is_503_with_retry_after():
    client = anthropic.Anthropic(api_key="test-key", base_url=f"http://127.0.0.1:{closed_port()}", max_retries=0)
    extractor = ClaudeExtractor(client=client)
    with pytest.raises(LLMUnavailable) as raised:
        extractor.extract(TEXT)
    assert isinstance(raised.value.__cause__, anthropic.APIConnectionError)

    response = TestClient(build_dependency_app(lambda: extractor.extract(TEXT))).get("/work")
    problem = assert_problem(response, 503)
    assert problem["type"] == "urn:kgmem:problem:llm-unavailable"
    assert "cannot reach the Anthropic API" in problem["detail"]
    assert response.headers["retry-after"] == "5"


@pytest.mark.parametrize(("status", "error_type", "kgmem_error", "slug", "retry_after"), [
    (429, "rate_limit_error", LLMUnavailable, "llm-unavailable", "5"),
    (529, "overloaded_error", LLMUnavailable, "llm-unavailable", "5"),
    (500, "api_error", LLMUnavailable, "llm-unavailable", "5"),
    (401, "authentication_error", ConfigurationError, "not-ready", None),
    (403, "permission_error", ConfigurationError, "not-ready", None),
    (400, "invalid_request_error", ExtractionFailed, "extraction-failed", None),
])
def test_claude_api_errors_become_kgmem_errors(status, error_type, kgmem_error, slug, retry_after):
    fake = FakeAnthropicTransport().error(status, error_type, "scripted failure", times=2)
    extractor = ClaudeExtractor(client=fake.client(max_retries=0))
    with pytest.raises(kgmem_error) as raised:
        extractor.extract(TEXT)
    assert type(raised.value) is kgmem_error
    assert isinstance(raised.value.__cause__, anthropic.APIStatusError)
    assert raised.value.__cause__.status_code == status

    response = TestClient(build_dependency_app(lambda: extractor.extract(TEXT))).get("/work")
    problem = assert_problem(response, {"llm-unavailable": 503, "not-ready": 503, "extraction-failed": 502}[slug])
    assert problem["type"] == f"urn:kgmem:problem:{slug}"
    assert f"Anthropic API returned {status} {error_type}" in problem["detail"]
    assert response.headers.get("retry-after") == retry_after
    assert fake.remaining == 0


# -- Neo4j's failures, translated by the gateway (graph.gateway.translate) -----------------------------------------
def unreachable_gateway() -> Gateway:
    """A gateway to a port nothing listens on; no retries, so the failure comes at once."""
    uri = f"bolt://127.0.0.1:{closed_port()}"
    return Gateway(lambda: neo4j.GraphDatabase.driver(uri, auth=("neo4j", "x"), max_transaction_retry_time=0,
                                                      connection_timeout=5))


def test_a_neo4j_on_a_closed_port_gives_503_with_retry_after():
    gateway, in_route = unreachable_gateway(), unreachable_gateway()  # each meets the closed port first-hand
    try:
        with pytest.raises(Neo4jUnavailable) as raised:
            gateway.rows("RETURN 1")
        assert isinstance(raised.value.__cause__, neo4j.exceptions.ServiceUnavailable)
        app = build_dependency_app(lambda: in_route.rows("RETURN 1"))
        with structlog.testing.capture_logs() as logs:
            response = TestClient(app).get("/work")
    finally:
        gateway.close()
        in_route.close()
    problem = assert_problem(response, 503)
    assert response.headers["retry-after"] == "5"
    assert problem["type"] == "urn:kgmem:problem:dependency-unavailable"
    assert problem["detail"].startswith("Neo4j cannot be reached right now (")
    assert problem["detail"].endswith("; retry later")
    warning = [line for line in logs if line["event"] == "request failed"]
    assert warning and warning[0]["error"] == "Neo4jUnavailable"
    assert "exc_info" not in warning[0]


def test_opening_a_gateway_on_a_closed_port_gives_503_with_retry_after():
    target = Neo4jTarget(f"bolt://127.0.0.1:{closed_port()}", "neo4j", "x", "neo4j")
    app = build_dependency_app(lambda: Gateway.to(target))
    response = TestClient(app).get("/work")
    problem = assert_problem(response, 503)
    assert response.headers["retry-after"] == "5"
    assert problem["type"] == "urn:kgmem:problem:dependency-unavailable"
    assert "is unreachable" in problem["detail"]


def test_refused_credentials_are_503_not_ready_without_retry_after(neo4j_server):
    # One failed login only: Neo4j rate-limits repeated ones, and the suite's other tests share this server.
    target = Neo4jTarget(neo4j_server.uri, "kgmem-nobody", "wrong", neo4j_server.database)
    with pytest.raises(ConfigurationError) as raised:
        Gateway.to(target)
    assert isinstance(raised.value.__cause__, neo4j.exceptions.AuthError)

    def refused() -> None:
        raise raised.value

    response = TestClient(build_dependency_app(refused)).get("/work")
    problem = assert_problem(response, 503)
    assert problem["type"] == "urn:kgmem:problem:not-ready"
    assert "rejected the credentials" in problem["detail"]
    assert "retry-after" not in response.headers


def test_no_free_connection_in_the_pool_is_503_with_retry_after(neo4j_server):
    """Pool exhausted (ConnectionAcquisitionTimeoutError): Neo4j is busy, retry later."""
    target = neo4j_server
    gateway = Gateway(lambda: neo4j.GraphDatabase.driver(
        target.uri, auth=(target.username, target.password), max_connection_pool_size=1,
        connection_acquisition_timeout=0.5, max_transaction_retry_time=0), target.database)

    def nested() -> None:  # a second connection while the only one is held
        gateway.read_transaction(lambda tx: [tx.rows("RETURN 1 AS one"), gateway.rows("RETURN 2 AS two")])

    try:
        with pytest.raises(Neo4jUnavailable) as raised:
            nested()
        assert isinstance(raised.value.__cause__, neo4j.exceptions.ConnectionAcquisitionTimeoutError)
        response = TestClient(build_dependency_app(nested)).get("/work")
    finally:
        gateway.close()
    problem = assert_problem(response, 503)
    assert problem["type"] == "urn:kgmem:problem:dependency-unavailable"
    assert problem["detail"].startswith("Neo4j is busy")
    assert response.headers["retry-after"] == "5"


@pytest.mark.parametrize(("code", "driver_class"), [
    ("Neo.TransientError.Transaction.DeadlockDetected", neo4j.exceptions.TransientError),
    ("Neo.TransientError.General.MemoryPoolOutOfMemoryError", neo4j.exceptions.TransientError),
    ("Neo.DatabaseError.General.UnknownError", neo4j.exceptions.DatabaseError),
])
def test_neo4j_transient_and_database_errors_are_503_with_retry_after(code, driver_class):
    failure = neo4j.exceptions.Neo4jError._hydrate_neo4j(code=code, message="the server could not do it")
    assert type(failure) is driver_class  # the driver's own error, as it builds it from the server's failure
    translated = translate(failure)
    assert type(translated) is Neo4jUnavailable
    assert "could not process the request right now" in str(translated)

    def fail() -> None:
        raise translated from failure

    response = TestClient(build_dependency_app(fail)).get("/work")
    problem = assert_problem(response, 503)
    assert problem["type"] == "urn:kgmem:problem:dependency-unavailable"
    assert response.headers["retry-after"] == "5"


@pytest.mark.parametrize("failure", [
    neo4j.exceptions.ServiceUnavailable("Couldn't connect to 127.0.0.1:1"),
    neo4j.exceptions.SessionExpired("the session expired"),
])
def test_translate_turns_lost_connections_into_neo4j_unavailable(failure):
    translated = translate(failure)
    assert type(translated) is Neo4jUnavailable
    assert str(translated).startswith("Neo4j cannot be reached right now")


SLOW = "UNWIND range(1, 2000000000) AS x WITH x WHERE x % 7 = 99 RETURN count(*) AS n"


def test_a_query_past_its_time_limit_is_504(gateway):
    def slow() -> None:
        with time_limit(0.3):
            gateway.rows(SLOW)

    with pytest.raises(QueryTimeout) as raised:
        slow()
    assert "TransactionTimedOut" in raised.value.__cause__.code
    response = TestClient(build_dependency_app(slow)).get("/work")
    problem = assert_problem(response, 504)
    assert problem["type"] == "urn:kgmem:problem:query-timeout"
    assert "time limit" in problem["detail"]
    assert "retry-after" not in response.headers


def test_neo4j_client_errors(gateway, space):
    def constraint_violation():
        gateway.write("CREATE (a:ProblemsTest {space: $space})-[:LINKS]->(:ProblemsTest {space: $space})",
                      space=space)
        gateway.write("MATCH (a:ProblemsTest {space: $space}) DELETE a", space=space)

    def bad_argument():
        gateway.rows("RETURN range(1, 10, 0)")

    def too_big():
        gateway.rows("RETURN $n AS n", n=2 ** 70)

    def syntax_error():
        gateway.rows("RETURN RETURN")

    with pytest.raises(Conflict) as raised:
        constraint_violation()
    assert isinstance(raised.value.__cause__, neo4j.exceptions.ConstraintError)
    conflict = TestClient(build_dependency_app(constraint_violation)).get("/work")
    problem = assert_problem(conflict, 409)
    assert problem["type"] == "urn:kgmem:problem:conflict"
    assert "relationships" in problem["detail"]

    with pytest.raises(InvalidInput) as raised:
        bad_argument()
    assert isinstance(raised.value.__cause__, neo4j.exceptions.Neo4jError)
    rejected = TestClient(build_dependency_app(bad_argument)).get("/work")
    problem = assert_problem(rejected, 422)
    assert problem["type"] == "urn:kgmem:problem:invalid-input"
    assert problem["detail"].startswith("Neo4j refused a value: ")

    with pytest.raises(InvalidInput) as raised:
        too_big()
    assert isinstance(raised.value.__cause__, OverflowError)
    overflow = TestClient(build_dependency_app(too_big)).get("/work")
    assert assert_problem(overflow, 422)["type"] == "urn:kgmem:problem:invalid-input"
    assert "64 bits" in overflow.json()["detail"]
    # an OverflowError that is not the driver's is a bug, not the caller's input
    assert translate(OverflowError("math range error")) is None

    # kgmem's own statement being wrong is a bug: passed through untranslated, a generic 500, not the client's fault
    with pytest.raises(neo4j.exceptions.CypherSyntaxError):
        syntax_error()
    bug = TestClient(build_dependency_app(syntax_error)).get("/work")
    problem = assert_problem(bug, 500)
    assert problem["detail"] == problems.GENERIC_DETAIL
    assert "RETURN" not in bug.text
    # each constraint_violation() committed its CREATE; only the DELETE was refused
    assert gateway.rows("MATCH (n:ProblemsTest {space: $space}) RETURN count(n) AS n", space=space)[0]["n"] == 4


# -- Chroma's failures, translated by the vector index (memory.index.translate) ------------------------------------
def test_a_chroma_server_that_is_down_gives_503_with_retry_after():
    port = closed_port()
    with pytest.raises(Exception) as raised:  # chromadb raises a bare ValueError for this
        chromadb.HttpClient(host="127.0.0.1", port=port)
    translated = translate_chroma(raised.value)
    assert type(translated) is ChromaUnavailable

    def connect() -> None:
        try:
            chromadb.HttpClient(host="127.0.0.1", port=port)
        except Exception as exc:
            raise translate_chroma(exc) or exc from exc

    response = TestClient(build_dependency_app(connect)).get("/work")
    problem = assert_problem(response, 503)
    assert response.headers["retry-after"] == "5"
    assert problem["detail"] == "Chroma cannot be reached right now; retry later"


def test_a_vector_index_whose_chroma_server_went_away_gives_503_with_retry_after(tmp_path):
    chroma = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")
    assert chroma, "the `chroma` CLI (from the chromadb package) is not installed"
    port = closed_port()
    process = subprocess.Popen([chroma, "run", "--path", str(tmp_path), "--host", "127.0.0.1", "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "`chroma run` did not come up"
            time.sleep(0.3)
        index = VectorIndex(chromadb.HttpClient(host="127.0.0.1", port=port), "problems-test-model", 3)
        assert index.count() == 0
    finally:
        process.terminate()
        process.wait(timeout=30)
    with pytest.raises(ChromaUnavailable):
        index.count()
    response = TestClient(build_dependency_app(index.count)).get("/work")
    problem = assert_problem(response, 503)
    assert problem["type"] == "urn:kgmem:problem:dependency-unavailable"
    assert response.headers["retry-after"] == "5"
    assert problem["detail"] == "Chroma cannot be reached right now; retry later"


@pytest.mark.parametrize(("failure", "kgmem_error", "status", "slug", "retry_after"), [
    (chroma_errors.RateLimitError(), ChromaUnavailable, 503, "dependency-unavailable", "5"),
    (chroma_errors.ChromaAuthError(), ConfigurationError, 503, "not-ready", None),
    (chroma_errors.AuthorizationError(), ConfigurationError, 503, "not-ready", None),
    (chroma_errors.QuotaError(), ConfigurationError, 503, "not-ready", None),
])
def test_chroma_refusals_become_kgmem_errors(failure, kgmem_error, status, slug, retry_after):
    translated = translate_chroma(failure)
    assert type(translated) is kgmem_error

    def fail() -> None:
        raise translated from failure

    response = TestClient(build_dependency_app(fail)).get("/work")
    problem = assert_problem(response, status)
    assert problem["type"] == f"urn:kgmem:problem:{slug}"
    assert response.headers.get("retry-after") == retry_after


def test_other_chroma_errors_are_bugs():
    assert translate_chroma(ValueError("Collection foo does not exist")) is None


def test_open_chroma_on_a_closed_port_is_503_not_a_configuration_500(tmp_path):
    settings = Settings(home=tmp_path, chroma_host="127.0.0.1", chroma_port=closed_port())
    app = build_dependency_app(lambda: open_chroma(settings))
    response = TestClient(app).get("/work")
    problem = assert_problem(response, 503)
    assert problem["type"] == "urn:kgmem:problem:dependency-unavailable"
    assert response.headers["retry-after"] == "5"
    assert "unreachable" in problem["detail"]


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

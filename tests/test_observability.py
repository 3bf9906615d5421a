"""Request ids, one structured log line per request, and Prometheus metrics on the app's own registry."""

from __future__ import annotations

import io
import json
import re
import time
import uuid

import neo4j
import prometheus_client
import pytest
import structlog
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api import observability, problems
from api.observability import Metrics, instrument_services, timed
from api.services import open_services
from graph import Gateway
from graph.errors import NotFound
from memory.index import VectorItem


def build_app() -> FastAPI:
    app = FastAPI()
    problems.install(app)
    observability.install(app, configure_logs=False)

    @app.get("/items/{item_id}")
    def item(item_id: int, request: Request) -> dict:
        structlog.get_logger("test").info("inside the route")
        return {"item_id": item_id, "contextvar": observability.current_request_id(),
                "state": request.state.request_id}

    @app.get("/async/{name}")
    async def async_route(name: str) -> dict:
        return {"contextvar": observability.current_request_id()}

    @app.get("/missing/{name}")
    def missing(name: str) -> dict:
        raise NotFound(f"no {name}")

    @app.get("/search")
    def search() -> dict:
        with timed("chroma", "query"):
            time.sleep(0.02)
        return {}

    return app


def samples(client: TestClient, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """`name`'s samples from GET /metrics, keyed by their sorted labels."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def labels(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(values.items()))


# -- request ids ---------------------------------------------------------------------------------------------------
def test_a_request_id_is_generated_and_visible_to_the_route():
    client = TestClient(build_app())
    first, second = client.get("/items/1"), client.get("/items/1")
    request_id = first.headers["x-request-id"]
    assert uuid.UUID(request_id).version == 4
    assert first.json()["contextvar"] == request_id
    assert first.json()["state"] == request_id
    assert second.headers["x-request-id"] != request_id
    async_response = client.get("/async/x")
    assert async_response.json()["contextvar"] == async_response.headers["x-request-id"]
    assert observability.current_request_id() is None


@pytest.mark.parametrize("incoming", ["abc-123", "3f2b0c1e-8f7a-4c5d-9e6f-0a1b2c3d4e5f", "trace:01HX/z+=~@.", "a" * 128])
def test_a_sane_incoming_request_id_is_kept(incoming):
    response = TestClient(build_app()).get("/items/1", headers={"X-Request-ID": incoming})
    assert response.headers["x-request-id"] == incoming
    assert response.json()["contextvar"] == incoming


@pytest.mark.parametrize("incoming", ["a" * 129, "has space", "<script>", "-leading-dash", "", "ünïcode"])
def test_a_malformed_incoming_request_id_is_replaced(incoming):
    with structlog.testing.capture_logs() as logs:
        response = TestClient(build_app()).get(
            "/items/1", headers=[(b"x-request-id", incoming.encode("utf-8"))])
    request_id = response.headers["x-request-id"]
    assert request_id != incoming
    assert uuid.UUID(request_id).version == 4
    assert response.json()["contextvar"] == request_id
    [line] = [line for line in logs if line["event"] == "request"]
    assert line["request_id"] == request_id
    assert line["request_id_refused"] is True


def test_problems_carry_the_same_request_id_as_the_header():
    response = TestClient(build_app()).get("/missing/thing", headers={"X-Request-ID": "req-7"})
    assert response.status_code == 404
    assert response.headers["x-request-id"] == "req-7"
    assert response.json()["request_id"] == "req-7"


# -- the log line ----------------------------------------------------------------------------------------------------
def test_one_log_line_per_request_with_the_route_template():
    client = TestClient(build_app())
    with structlog.testing.capture_logs() as logs:
        response = client.get("/items/42")
        client.get("/nowhere/at/all")
    access = [line for line in logs if line["event"] == "request"]
    assert len(access) == 2
    line = access[0]
    assert line == {
        "event": "request", "log_level": "info", "request_id": response.headers["x-request-id"],
        "method": "GET", "route": "/items/{item_id}", "status": 200, "duration_ms": line["duration_ms"],
        "client": "testclient",
    }
    assert isinstance(line["duration_ms"], float) and 0 <= line["duration_ms"] < 10_000
    assert access[1]["route"] == "<unmatched>"
    assert access[1]["status"] == 404


def test_log_lines_are_json_and_carry_the_request_id_of_the_request():
    saved = structlog.get_config()
    stream = io.StringIO()
    try:
        observability.configure_logging(json=True, stream=stream)
        response = TestClient(build_app()).get("/items/5", headers={"X-Request-ID": "req-json"})
    finally:
        structlog.configure(**saved)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    inside = [line for line in lines if line["event"] == "inside the route"]
    assert inside and inside[0]["request_id"] == "req-json"
    [access] = [line for line in lines if line["event"] == "request"]
    assert access["route"] == "/items/{item_id}"
    assert access["status"] == response.status_code == 200
    assert access["level"] == "info"
    assert re.match(r"^\d{4}-\d\d-\d\dT", access["timestamp"])


def test_server_errors_are_logged_at_error_level():
    app = build_app()

    @app.get("/bug")
    def bug() -> dict:
        raise ZeroDivisionError

    with structlog.testing.capture_logs() as logs:
        TestClient(app).get("/bug")
    [access] = [line for line in logs if line["event"] == "request"]
    assert (access["status"], access["log_level"], access["route"]) == (500, "error", "/bug")


# -- metrics -------------------------------------------------------------------------------------------------------
def test_metrics_expose_the_request_histogram_by_route_template():
    client = TestClient(build_app())
    client.get("/items/1")
    client.get("/items/2")
    client.get("/missing/x")
    counts = samples(client, "kgmem_http_request_duration_seconds_count")
    assert counts[labels(method="GET", route="/items/{item_id}", status_class="2xx")] == 2
    assert counts[labels(method="GET", route="/missing/{name}", status_class="4xx")] == 1
    assert not any(dict(key)["route"] in ("/items/1", "/items/2") for key in counts)
    buckets = samples(client, "kgmem_http_request_duration_seconds_bucket")
    assert buckets[labels(method="GET", route="/items/{item_id}", status_class="2xx", le="+Inf")] == 2


def test_each_app_has_its_own_registry():
    first, second = TestClient(build_app()), TestClient(build_app())
    first.get("/items/1")
    assert labels(method="GET", route="/items/{item_id}", status_class="2xx") in samples(
        first, "kgmem_http_request_duration_seconds_count")
    assert labels(method="GET", route="/items/{item_id}", status_class="2xx") not in samples(
        second, "kgmem_http_request_duration_seconds_count")
    assert prometheus_client.REGISTRY.get_sample_value(
        "kgmem_http_request_duration_seconds_count",
        {"method": "GET", "route": "/items/{item_id}", "status_class": "2xx"}) is None


def test_timed_in_a_request_records_on_that_apps_registry():
    first, second = TestClient(build_app()), TestClient(build_app())
    first.get("/search")
    key = labels(dependency="chroma", operation="query")
    assert samples(first, "kgmem_dependency_duration_seconds_count")[key] == 1
    assert samples(first, "kgmem_dependency_duration_seconds_sum")[key] >= 0.02
    assert key not in samples(second, "kgmem_dependency_duration_seconds_count")


def test_timed_as_decorator_and_outside_requests():
    metrics = Metrics(process_metrics=False)

    @timed("embedder", "embed", metrics)
    def embed(fail: bool = False) -> str:
        if fail:
            raise ValueError("boom")
        return "done"

    assert embed() == "done"
    with pytest.raises(ValueError):
        embed(fail=True)
    value = metrics.registry.get_sample_value(
        "kgmem_dependency_duration_seconds_count", {"dependency": "embedder", "operation": "embed"})
    assert value == 2
    with timed("neo4j", "nothing"):  # no request, no metrics given: a no-op
        pass
    assert observability.current_metrics() is None


def test_every_gateway_call_is_observed_once_under_its_operation(neo4j_server):
    """The gateway calls its observers once per call, failures included, labelled with the operation."""
    metrics = Metrics(process_metrics=False)
    gateway = Gateway.to(neo4j_server)  # its connectivity check runs before anyone observes
    gateway.observe(lambda operation, seconds: metrics.observe_dependency("neo4j", operation, seconds))
    try:
        assert gateway.rows("RETURN 1 AS one") == [{"one": 1}]
        assert gateway.write("RETURN 2 AS two") == [{"two": 2}]
        assert gateway.read_transaction(lambda tx: tx.row("RETURN 3 AS three")) == {"three": 3}
        assert gateway.write_transaction(lambda tx: tx.row("RETURN 4 AS four")) == {"four": 4}
        assert gateway.run_implicit("RETURN 5 AS five") == [{"five": 5}]
        assert gateway.explain("RETURN $x AS x", {"x": 6}).plan is not None
        gateway.ping()
        with pytest.raises(neo4j.exceptions.CypherSyntaxError):  # a bug in a query: passed as it is, still timed
            gateway.rows("RETURN RETURN")
    finally:
        gateway.close()

    counts = {dict(key)["operation"]: value
              for key, value in metrics_samples(metrics, "kgmem_dependency_duration_seconds_count").items()
              if dict(key)["dependency"] == "neo4j"}
    assert counts == {"read": 2, "write": 1, "read_transaction": 1, "write_transaction": 1, "implicit": 1,
                      "explain": 1, "ping": 1}
    assert metrics.registry.get_sample_value(
        "kgmem_dependency_duration_seconds_sum", {"dependency": "neo4j", "operation": "read"}) > 0


def metrics_samples(metrics: Metrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """`name`'s samples on a registry, keyed by their sorted labels."""
    return {tuple(sorted(sample.labels.items())): sample.value
            for family in metrics.registry.collect() for sample in family.samples if sample.name == name}


def test_instrumented_services_show_neo4j_chroma_and_embedder_time_on_metrics(settings):
    """The wiring create_app uses: Services instrumented with the app's Metrics, read through /metrics."""
    services = open_services(settings)
    app = build_app()
    instrument_services(services, app.state.metrics)
    instrument_services(services, app.state.metrics)  # idempotent: counted once per call below
    space = "observability"

    @app.get("/work")
    def work() -> dict:
        assert services.gateway.rows("RETURN 1 AS one") == [{"one": 1}]
        assert services.gateway.write_transaction(lambda tx: tx.row("RETURN 2 AS two")) == {"two": 2}
        vector = services.embedder.embed_one("hello")
        index = services.memory().index
        index.upsert([VectorItem(id="obs:a", space=space, type="observation", text="hello", entity_id="e",
                                 kind="Note", valid_from=0.0)], [vector])
        hits = index.query(vector, space=space, k=1)
        return {"hits": [hit.id for hit in hits], "dimension": len(vector)}

    try:
        client = TestClient(app)
        services.memory()  # opened after instrumenting: its vector index is observed too
        before = samples(client, "kgmem_dependency_duration_seconds_count")
        response = client.get("/work")
        assert response.json() == {"hits": ["obs:a"], "dimension": services.embedder.dimension}
        services.gateway.reset()  # a driver the gateway opens later is observed too
        client.get("/work")
        after = samples(client, "kgmem_dependency_duration_seconds_count")
    finally:
        services.close()
    counted = {key: value - before.get(key, 0) for key, value in after.items() if value != before.get(key, 0)}
    assert counted == {
        labels(dependency="neo4j", operation="read"): 2,
        labels(dependency="neo4j", operation="write_transaction"): 2,
        labels(dependency="chroma", operation="upsert"): 2,
        labels(dependency="chroma", operation="query"): 2,
        labels(dependency="embedder", operation="embed"): 2,
    }
    assert after.get(labels(dependency="chroma", operation="count")) is None
    assert samples(client, "kgmem_http_request_duration_seconds_count")[
        labels(method="GET", route="/work", status_class="2xx")] == 2


def test_install_refuses_a_started_app():
    app = build_app()
    TestClient(app).get("/items/1")
    with pytest.raises(RuntimeError):
        observability.install(app)
    with pytest.raises(RuntimeError):
        problems.install(app)

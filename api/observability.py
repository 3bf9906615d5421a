"""Request ids, one structured log line per request, and Prometheus metrics.

Request ids. An incoming `X-Request-ID` is kept when it is a sane token (1-128 of
letters, digits and `._:~+=@/-`, starting with a letter or digit); anything else is
replaced by a fresh UUID4. The id is echoed in the response's `X-Request-ID`, stored in
`request.state.request_id` (so `api.problems` puts it in every problem), in the
`current_request_id()` context variable (visible in sync routes too: Starlette copies the
context into its thread pool), and bound into structlog's context variables, so every
structlog line logged while handling the request carries it.

Logs. One line per request, event `request` (logger `kgmem.access`): `request_id`,
`method`, `route` (the route's template, `/v1/entities/{entity_id}`, never the raw path;
`<unmatched>` when no route matched), `status`, `duration_ms` and `client` (the peer's
address). `configure_logging()` renders JSON when stderr is not a terminal and
human-readable lines when it is; `install` calls it unless structlog is configured already.

Metrics live on a `CollectorRegistry` of the app's own (`Metrics`, `app.state.metrics`),
never on prometheus_client's global registry, so a process can build many apps (the
tests do). `GET /metrics` serves it in the Prometheus text format.

- `kgmem_http_request_duration_seconds{method, route, status_class}`: time from the
  request's arrival to the last byte of the response; `status_class` is `2xx`…`5xx`.
- `kgmem_dependency_duration_seconds{dependency, operation}`: time spent in a call to
  `neo4j`, `chroma` or the `embedder`.

Timing dependencies. `timed(dependency, operation)` is a context manager and a decorator
that observes the time its block takes, on the `Metrics` given or else on the app that is
handling the current request (a context variable the request middleware sets), and is a
no-op outside of both. kgmem's `graph` and `memory` packages do not import `api`; each of
their doors to a dependency (the Neo4j gateway, the vector index, the embedder) calls
observers after every call, and `instrument_services(services, metrics)` adds one that
records into `metrics`. Operations: the gateway's `read`, `write`, `read_transaction`,
`write_transaction`, `implicit`, `explain` and `ping`; Chroma's collection calls (`query`,
`get`, `upsert`, `delete`, …); the embedder's `embed`, including the model's lazy load on
first use and cache hits.
"""

from __future__ import annotations

import re
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import IO, Any

import structlog
from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client import gc_collector, platform_collector, process_collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
UNMATCHED_ROUTE = "<unmatched>"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:~+=@/-]{0,127}$")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
DEPENDENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


_request_id: ContextVar[str | None] = ContextVar("kgmem_request_id", default=None)
_metrics: ContextVar[Metrics | None] = ContextVar("kgmem_metrics", default=None)

access_log = structlog.get_logger("kgmem.access")



# -- metrics ----------------------------------------------------------------------------------------------
class Metrics:
    """The app's Prometheus registry and kgmem's two histograms on it."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process_metrics: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        if process_metrics:
            process_collector.ProcessCollector(registry=self.registry)
            platform_collector.PlatformCollector(registry=self.registry)
            gc_collector.GCCollector(registry=self.registry)
        self.http_request_duration = Histogram(
            "kgmem_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response, by route template.",
            ("method", "route", "status_class"),
            buckets=REQUEST_BUCKETS, registry=self.registry,
        )
        self.dependency_duration = Histogram(
            "kgmem_dependency_duration_seconds",
            "Time spent in calls to Neo4j, Chroma and the embedder.",
            ("dependency", "operation"),
            buckets=DEPENDENCY_BUCKETS, registry=self.registry,
        )

    def observe_dependency(self, dependency: str, operation: str, seconds: float) -> None:
        self.dependency_duration.labels(dependency=dependency, operation=operation).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def current_request_id() -> str | None:
    """The id of the request being handled, or None outside of one."""
    return _request_id.get()


def current_metrics() -> Metrics | None:
    """The `Metrics` of the app handling the current request, or None outside of one."""
    return _metrics.get()


@contextmanager
def timed(dependency: str, operation: str, metrics: Metrics | None = None) -> Iterator[None]:
    """Observe how long the block (or decorated function) takes, failures included.

        with timed("chroma", "query"):
            collection.query(...)

        @timed("embedder", "embed")
        def embed(texts): ...
    """
    target = metrics if metrics is not None else _metrics.get()
    if target is None:
        yield
        return
    start = time.perf_counter()
    try:
        yield
    finally:
        target.observe_dependency(dependency, operation, time.perf_counter() - start)


def instrument_services(services: Any, metrics: Metrics) -> None:
    """Time everything `services` (an `api.services.Services`) calls: see the module doc. Call it before
    `start_background_work`, so the start-up reconcile is timed too. Idempotent: a second call with
    the same `metrics` adds nothing (each call would otherwise be counted twice)."""
    instrumented = services.__dict__.setdefault("_kgmem_instrumented_for", [])
    if any(known is metrics for known in instrumented):
        return
    instrumented.append(metrics)
    services.observe(metrics.observe_dependency)


# -- logging ----------------------------------------------------------------------------------------------
class _StderrLoggerFactory:
    """PrintLoggers on whatever `sys.stderr` is when a line is logged (test runners swap it)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream

    def __call__(self, *args: Any) -> structlog.PrintLogger:
        return structlog.PrintLogger(self.stream or sys.stderr)


def configure_logging(*, json: bool | None = None, stream: IO[str] | None = None) -> None:
    """structlog to `stream` (default: stderr): JSON lines, or readable ones on a terminal."""
    target = stream or sys.stderr
    if json is None:
        json = not (hasattr(target, "isatty") and target.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    if json:
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        processors += [structlog.dev.ConsoleRenderer()]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(0),
        logger_factory=_StderrLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )


# -- the request middleware ----------------------------------------------------------------------------------
def _request_id_from(scope: Scope) -> tuple[str, bool]:
    """The id to use, and whether an incoming one was refused."""
    incoming = None
    for name, value in scope.get("headers", ()):
        if name.lower() == b"x-request-id":
            incoming = value.decode("latin-1")
            break
    if incoming is not None and _SANE_REQUEST_ID.match(incoming):
        return incoming, False
    return str(uuid.uuid4()), incoming is not None


def route_template(scope: Scope, root_path_before: str = "") -> str:
    """The template of the route that handled the request (`/v1/entities/{entity_id}`).

    Read from `scope["route"]`, which the router sets, after the app ran; a route inside a
    mounted app gets the mount's prefix in front. `<unmatched>` when no route matched (404)
    or the request never reached the router.
    """
    route = scope.get("route")
    path = getattr(route, "path_format", None)
    if route is None or path is None or isinstance(route, Mount):
        return UNMATCHED_ROUTE
    root_path = scope.get("root_path", "")
    prefix = root_path[len(root_path_before):] if root_path.startswith(root_path_before) else ""
    return prefix + path


class RequestContextMiddleware:
    """Request id, access log line and request histogram; the outermost of kgmem's middlewares."""

    kgmem_outermost = True

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        root_path = scope.get("root_path", "")
        request_id, refused = _request_id_from(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        id_token = _request_id.set(request_id)
        metrics_token = _metrics.set(self.metrics)
        log_tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        header = (REQUEST_ID_HEADER.lower().encode(), request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != header[0]]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - start
            try:
                self._record(scope, root_path, status, seconds, request_id, refused)
            finally:
                structlog.contextvars.reset_contextvars(**log_tokens)
                _metrics.reset(metrics_token)
                _request_id.reset(id_token)

    def _record(self, scope: Scope, root_path: str, status: int, seconds: float,
                request_id: str, refused: bool) -> None:
        route = route_template(scope, root_path)
        method = scope.get("method", "GET")
        self.metrics.http_request_duration.labels(
            method=method if method in _METHODS else "OTHER", route=route, status_class=f"{status // 100}xx",
        ).observe(seconds)
        client = scope.get("client")
        fields: dict[str, Any] = {
            "request_id": request_id, "method": method, "route": route, "status": status,
            "duration_ms": round(seconds * 1000, 2), "client": client[0] if client else None,
        }
        if refused:
            fields["request_id_refused"] = True
        if status >= 500:
            access_log.error("request", **fields)
        else:
            access_log.info("request", **fields)


def install(app: FastAPI, *, metrics: Metrics | None = None, metrics_path: str | None = "/metrics",
            configure_logs: bool = True) -> Metrics:
    """Request ids, access log and request metrics for `app`; `GET metrics_path` serves the metrics.

    Returns the app's `Metrics` (also `app.state.metrics`): pass it to `instrument_services`.
    `configure_logs` calls `configure_logging()` unless structlog was configured already.
    """
    if app.middleware_stack is not None:
        raise RuntimeError("install observability before the app starts")
    metrics = metrics or Metrics()
    app.state.metrics = metrics
    if configure_logs and not structlog.is_configured():
        configure_logging()
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    if metrics_path:
        def serve_metrics(request: Request) -> Response:
            return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

        app.add_api_route(metrics_path, serve_metrics, methods=["GET"], include_in_schema=False, name="metrics")
    return metrics

"""Errors as RFC 9457 problem details (`application/problem+json`).

Every error response of the API has this body:

    {"type": "urn:kgmem:problem:not-found", "title": "Not found", "status": 404,
     "detail": "no entity ent_123 in space acme", "instance": "/v1/entities/ent_123",
     "request_id": "5f0c…"}

- `type` identifies the kind of problem. Plain HTTP errors (unknown route, wrong method,
  an `HTTPException` raised by a route) use `about:blank`, whose `title` is the status
  phrase; kgmem's own kinds are `urn:kgmem:problem:<slug>` (an identifier, not a page).
- `detail` is meant for a person. For kgmem's own errors it is their one-line message;
  for unexpected errors it is generic and never carries a traceback or exception text.
- `instance` is the request path; `request_id` is the id the response's `X-Request-ID`
  header carries (see `api.observability`) and that the server's log lines carry.
- 400 (malformed JSON) and 422 (validation) add `errors`, one entry per invalid field:
  `{"path": "body.entities[2].name", "message": "Field required", "type": "missing"}`.

Field paths: the location first (`body`, `query`, `path`, `header`, `cookie`), then
each key joined with `.`, list indexes as `[i]`, and keys that are not plain names
(letters, digits, `_`, `-`) quoted as JSON strings in brackets: `body.attributes["a b"]`.
Errors from validating data the route built itself (a `pydantic.ValidationError` raised
in a handler) have no location prefix: `entities[0].name`.

Status codes. Validation and HTTP errors are FastAPI's; kgmem's own errors (`graph/errors.py`,
where the drivers' errors are already translated) are looked up by class in `KGMEM_PROBLEMS`,
the most specific class first:

| exception                                               | status | type slug            |
|---------------------------------------------------------|--------|----------------------|
| `RequestValidationError`, malformed JSON body           | 400    | malformed-json       |
| `RequestValidationError`                                | 422    | validation-failed    |
| a `pydantic.ValidationError` raised in a handler        | 422    | validation-failed    |
| starlette/FastAPI `HTTPException` (its headers kept)    | its own| about:blank          |
| body over `max_body_bytes`                              | 413    | about:blank          |
| `ApiProblem` (raised on purpose: 409, 429, …)           | its own| its own slug         |
| `NotFound`                                              | 404    | not-found            |
| `TextTooLong`                                           | 422    | text-too-long        |
| `InvalidInput` (type-correct input breaking a rule)     | 422    | invalid-input        |
| `ModelMismatch`                                         | 409    | model-mismatch       |
| `Conflict`                                              | 409    | conflict             |
| `CypherRefused` (the read-only guard refuses the query) | 400    | cypher-refused       |
| `CypherFailed` (Neo4j stopped an analyst's query)       | 422    | cypher-failed        |
| `QueryTimeout` (the request's Neo4j time limit)         | 504    | query-timeout        |
| `ExtractionFailed` (Claude's answer was unusable)       | 502    | extraction-failed    |
| `LLMUnavailable`                                        | 503 ⏲  | llm-unavailable      |
| `Unavailable` (Neo4j or Chroma down or busy)            | 503 ⏲  | dependency-unavailable |
| `ChromaCorrupt` (the vector index's store is damaged)   | 503    | index-corrupt        |
| `ConfigurationError` (the operator must act)            | 503    | not-ready            |
| other `KgmemError`                                      | 500    | internal-error (its message kept) |
| anything else (a bug)                                   | 500    | internal-error (generic detail; traceback logged) |

⏲ = with `Retry-After: 5` (seconds; `retry_after_s` of `install`).

Why: 422 is for a body that parsed but breaks a rule (RFC 9110 §15.5.21), so `InvalidInput`
is 422 like Pydantic's own validation errors, while unparseable JSON and a Cypher query
the guard will not run are 400. `ConfigurationError` is the operator's mistake, not the
client's, and the server cannot do the work until it is fixed: 503 without Retry-After
(a retry in five seconds will not help). A bare `ValueError` is *not* mapped to 400: the
domain code turns client mistakes into `InvalidInput`/`NotFound`, so a `ValueError` that
escapes is a bug (500). Neo4j syntax errors are kgmem's own statements (analyst Cypher
is wrapped in `CypherRefused`/`CypherFailed`), so they are 500 too.
"""

from __future__ import annotations

import http
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graph import errors

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:kgmem:problem:"
DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024
DEFAULT_RETRY_AFTER_S = 5
MAX_ERRORS_IN_DETAIL = 3
GENERIC_DETAIL = "An unexpected error occurred. Quote the request id when you report it."

log = structlog.get_logger("kgmem.api.problems")

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


class RequestBodyTooLarge(HTTPException):
    """Raised from `receive()` when the body's declared or received size passes the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"The request body is larger than the limit of {limit} bytes.")


class ApiProblem(Exception):
    """A problem a route raises on purpose: a rate limit, an Idempotency-Key conflict, a refused grant."""

    def __init__(self, status: int, slug: str, title: str, detail: str, *,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.headers = dict(headers or {})


# -- building problems ---------------------------------------------------------------------------------
class Problem:
    """What one response says; `response()` renders it."""

    def __init__(self, status: int, *, slug: str | None = None, title: str | None = None,
                 detail: str | None = None, headers: Mapping[str, str] | None = None,
                 errors: list[dict[str, str]] | None = None, extra: Mapping[str, Any] | None = None) -> None:
        self.status = status
        self.type = f"{TYPE_PREFIX}{slug}" if slug else "about:blank"
        self.title = title or _phrase(status)
        self.detail = detail
        self.headers = dict(headers or {})
        self.errors = errors
        self.extra = dict(extra or {})

    def body(self, request_id: str | None, instance: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        if request_id:
            body["request_id"] = request_id
        if self.errors is not None:
            body["errors"] = self.errors
        body.update(self.extra)
        return body

    def response(self, scope: Scope) -> Response:
        if self.status in (204, 304):  # no body allowed
            return Response(status_code=self.status, headers=self.headers)
        body = self.body(request_id_of(scope), _instance(scope))
        return ProblemResponse(body, status_code=self.status, headers=self.headers)


_RFC9110_PHRASES = {413: "Content Too Large", 422: "Unprocessable Content"}  # Python still has the RFC 7231 names


def _phrase(status: int) -> str:
    if status in _RFC9110_PHRASES:
        return _RFC9110_PHRASES[status]
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _instance(scope: Scope) -> str | None:
    path = scope.get("path")
    if not path:
        return None
    root = scope.get("root_path", "")
    return path if not root or path.startswith(root) else root + path


def request_id_of(scope: Scope) -> str:
    """The request id `api.observability` put in `scope["state"]`; one of our own if it did not run."""
    state = scope.setdefault("state", {})
    request_id = state.get("request_id")
    if not request_id:
        request_id = state["request_id"] = str(uuid.uuid4())
    return request_id


def field_path(loc: Sequence[str | int]) -> str:
    """`("body", "entities", 2, "name")` → `body.entities[2].name`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(str(part)):
            out += f".{part}" if out else str(part)
        else:
            out += f"[{json.dumps(str(part))}]"
    return out


def _message(error: Mapping[str, Any]) -> str:
    return str(error.get("msg", "invalid")).removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _field_errors(errors: Sequence[Mapping[str, Any]], body: Any = None) -> list[dict[str, str]]:
    return [{"path": field_path(_without_union_tags(e.get("loc", ()), body)), "message": _message(e),
             "type": str(e.get("type", ""))} for e in errors]


def _without_union_tags(loc: Sequence[str | int], body: Any) -> list[str | int]:
    """Pydantic names the member of a union it tried inside `loc` (`messages.list[Message][0]`);
    the caller knows only their own keys. A name applied to a value that is not an object is such
    a tag, and is left out: `messages[0].content`."""
    if not loc or loc[0] != "body" or body is None:
        return list(loc)
    kept: list[str | int] = ["body"]
    value = body
    for part in loc[1:]:
        if isinstance(part, str) and not isinstance(value, dict) and value is not None:
            continue
        kept.append(part)
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and isinstance(part, int) and -len(value) <= part < len(value):
            value = value[part]
        else:
            value = None
    return kept


def _summary(errors: list[dict[str, str]]) -> str:
    shown = "; ".join(f"{e['path'] or 'request'}: {e['message']}" for e in errors[:MAX_ERRORS_IN_DETAIL])
    more = len(errors) - MAX_ERRORS_IN_DETAIL
    noun = "field is" if len(errors) == 1 else "fields are"
    return f"{len(errors)} {noun} invalid: {shown}" + (f" (and {more} more)" if more > 0 else "")


def validation_problem(errors: Sequence[Mapping[str, Any]], body: Any = None) -> Problem:
    errors = list(errors)
    malformed = [e for e in errors if e.get("type") == "json_invalid"]
    if malformed:
        e = malformed[0]
        ctx = e.get("ctx") or {}
        loc = list(e.get("loc", ("body",)))
        position = loc[-1] if loc and isinstance(loc[-1], int) else None
        reason = str(ctx.get("error") or "invalid JSON")
        where = f" at character {position}" if position is not None else ""
        return Problem(400, slug="malformed-json", title="Malformed JSON body",
                       detail=f"The request body is not valid JSON: {reason}{where}.",
                       errors=[{"path": "body", "message": f"{reason}{where}", "type": "json_invalid"}])
    fields = _field_errors(errors, body)
    return Problem(422, slug="validation-failed", title="Request validation failed",
                   detail=_summary(fields), errors=fields)


# -- classifying exceptions ------------------------------------------------------------------------------
# kgmem's errors by class: (status, slug, title, retry?). The first class in an error's MRO that is here wins.
KGMEM_PROBLEMS: dict[type[errors.KgmemError], tuple[int, str, str, bool]] = {
    errors.NotFound: (404, "not-found", "Not found", False),
    errors.TextTooLong: (422, "text-too-long", "Text too long", False),
    errors.InvalidInput: (422, "invalid-input", "Invalid input", False),
    errors.ModelMismatch: (409, "model-mismatch", "Embedding model mismatch", False),
    errors.Conflict: (409, "conflict", "Conflict", False),
    errors.CypherRefused: (400, "cypher-refused", "Cypher query refused", False),
    errors.CypherFailed: (422, "cypher-failed", "Cypher query failed", False),
    errors.QueryTimeout: (504, "query-timeout", "Query timed out", False),
    errors.ExtractionFailed: (502, "extraction-failed", "Extraction failed", False),
    errors.LLMUnavailable: (503, "llm-unavailable", "LLM unavailable", True),
    errors.Unavailable: (503, "dependency-unavailable", "Dependency unavailable", True),
    errors.ChromaCorrupt: (503, "index-corrupt", "Vector index corrupt", False),
    errors.ConfigurationError: (503, "not-ready", "Service not ready", False),
    errors.KgmemError: (500, "internal-error", "Internal server error", False),
}
# The caller's own mistakes: not worth a log line.
CLIENT_ERRORS = (errors.NotFound, errors.InvalidInput, errors.Conflict, errors.CypherRefused, errors.CypherFailed)


def kgmem_problem(exc: errors.KgmemError, *, retry_after_s: int = DEFAULT_RETRY_AFTER_S) -> Problem:
    status, slug, title, retry = next(KGMEM_PROBLEMS[cls] for cls in type(exc).__mro__ if cls in KGMEM_PROBLEMS)
    return Problem(status, slug=slug, title=title, detail=str(exc).strip() or type(exc).__name__,
                   headers={"Retry-After": str(retry_after_s)} if retry else None)


def classify(exc: BaseException, *, retry_after_s: int = DEFAULT_RETRY_AFTER_S) -> tuple[Problem, str]:
    """The problem for `exc` and how to log it: "none", "warning" (one line) or "error" (with traceback)."""
    if isinstance(exc, RequestValidationError):
        return validation_problem(exc.errors(), exc.body), "none"
    if isinstance(exc, HTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else None
        extra = {} if detail is not None or exc.detail is None else {"data": exc.detail}
        if detail == _phrase(exc.status_code):
            detail = None
        level = "error" if exc.status_code >= 500 else "none"
        return Problem(exc.status_code, detail=detail, headers=exc.headers, extra=extra), level
    if isinstance(exc, ApiProblem):
        return Problem(exc.status, slug=exc.slug, title=exc.title, detail=exc.detail, headers=exc.headers), "none"
    if isinstance(exc, ValidationError):
        fields = _field_errors(exc.errors())
        return Problem(422, slug="validation-failed", title="Request validation failed",
                       detail=_summary(fields), errors=fields), "none"
    if isinstance(exc, errors.KgmemError):
        problem = kgmem_problem(exc, retry_after_s=retry_after_s)
        if isinstance(exc, CLIENT_ERRORS):
            return problem, "none"
        return problem, "error" if problem.status == 500 else "warning"
    return Problem(500, slug="internal-error", title="Internal server error", detail=GENERIC_DETAIL), "error"


# -- wiring -------------------------------------------------------------------------------------------------
def problem_response(request: Request, exc: BaseException, *,
                     retry_after_s: int = DEFAULT_RETRY_AFTER_S) -> Response:
    """Render `exc` as a problem and log it as `classify` says."""
    exc = _unwrap_group(exc)
    problem, level = classify(exc, retry_after_s=retry_after_s)
    scope = request.scope
    fields = {"request_id": request_id_of(scope), "status": problem.status, "problem": problem.type,
              "method": scope.get("method"), "error": type(exc).__name__}
    if level == "error":
        log.error("unhandled exception", exc_info=exc, **fields)
    elif level == "warning":
        log.warning("request failed", detail=_one_line(exc), **fields)
    return problem.response(scope)


def _unwrap_group(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


class ProblemMiddleware:
    """Refuses bodies over the limit (413) and turns exceptions no handler took into problems.

    The limit is applied where the body is read, so the request is routed first (its log
    line and metrics name the route) and a route that reads no body is not refused: with a
    Content-Length over the limit, the first `receive()` raises `RequestBodyTooLarge` (an
    HTTPException, which FastAPI passes on to the handlers) before a byte is read; a body
    without one is counted as it arrives and refused once it passes the limit, before it is
    parsed.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 retry_after_s: int = DEFAULT_RETRY_AFTER_S) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.retry_after_s = retry_after_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        limit = self.max_body_bytes
        declared = request.headers.get("content-length", "").strip()
        too_long = declared.isdigit() and int(declared) > limit
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            if too_long:  # refused before a byte of it is read
                raise RequestBodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestBodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except Exception as exc:  # noqa: BLE001 - every error becomes a problem
            if started:
                log.error("exception after the response started", exc_info=exc,
                          request_id=request_id_of(scope))
                raise
            await problem_response(request, exc, retry_after_s=self.retry_after_s)(scope, receive, send)


def install(app: FastAPI, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
            retry_after_s: int = DEFAULT_RETRY_AFTER_S) -> None:
    """Make every error response of `app` a problem; limit request bodies to `max_body_bytes`.

    Call it before the app serves its first request (routes may be added before or after). The
    middleware goes just inside `api.observability`'s request middleware whichever of the
    two `install`s runs first, so problems carry the request id and get logged and timed.
    """
    if app.middleware_stack is not None:
        raise RuntimeError("install problems before the app starts")
    if max_body_bytes < 0:
        raise ValueError("max_body_bytes must be >= 0")

    async def handler(request: Request, exc: Exception) -> Response:
        return problem_response(request, exc, retry_after_s=retry_after_s)

    handled = (HTTPException, RequestValidationError, ValidationError, errors.KgmemError, ApiProblem)
    for cls in handled:
        app.add_exception_handler(cls, handler)
    # The last line of defence for errors outside ProblemMiddleware (Starlette's ServerErrorMiddleware).
    app.add_exception_handler(Exception, handler)

    index = next((i + 1 for i, m in enumerate(app.user_middleware) if getattr(m.cls, "kgmem_outermost", False)), 0)
    app.user_middleware.insert(index, Middleware(ProblemMiddleware, max_body_bytes=max_body_bytes,
                                                  retry_after_s=retry_after_s))

"""The API's routers; each module is one area. `PROBLEMS` documents the error answers every /v1 route may give."""

from __future__ import annotations

from typing import Any

from api.problems import PROBLEM_JSON

_WHEN = {
    400: "The body is not valid JSON",
    401: "No API key, or a bad or revoked one",
    403: "The API key lacks the route's scope",
    404: "No such space (or one this key is not bound to), or no such item in it",
    409: "The Idempotency-Key is in use by a request still running, or the write conflicts",
    413: "The body is larger than the limit",
    422: "Invalid input; `errors` names the path of each invalid field",
    429: "This API key's rate limit is spent; see Retry-After",
    503: "Neo4j, Chroma or the LLM cannot be reached, or the service is not configured; see Retry-After",
    504: "Neo4j stopped the request's query at its time limit",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for these problem statuses (application/problem+json)."""
    return {status: {"description": _WHEN[status], "model": _problem_model(),
                     "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}}
            for status in statuses}


def _problem_model() -> type:
    from api.models import ProblemDetails

    return ProblemDetails


PROBLEMS = responses(400, 401, 403, 404, 413, 422, 429, 503, 504)

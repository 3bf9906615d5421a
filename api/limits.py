"""The API's limits: per-key rate limit, bounds the settings tighten, and Neo4j query timeouts.

- Rate limit: a token bucket per API key, **in this process** (`api_rate_limit_per_minute`
  requests a minute, bursts up to the same number). With N replicas a key gets up to N times
  the limit; put a shared limiter in front (the proxy or gateway) when that matters.
- Bounds: the request models declare hard maxima (what the OpenAPI description shows); the
  settings may only tighten them, and `check_at_most` refuses what passes the model but not
  the setting with the same 422 body as any validation error, naming the field's path.
- Query timeout: every transaction a request runs gets `api_query_timeout_s` as its Neo4j
  transaction timeout (unless the code set its own); Neo4j stops it there and the API answers
  504. Background work (the start-up reconcile, reindex jobs) runs outside requests and has none.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from fastapi.exceptions import RequestValidationError
from neo4j import Query, unit_of_work

from api.observability import current_request_id
from api.problems import ApiProblem


# -- rate limit ---------------------------------------------------------------------------------------------
class RateLimiter:
    """Token buckets by key id: `per_minute` tokens, refilled continuously; 0 turns it off."""

    MAX_BUCKETS = 10_000

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key_id -> (tokens, at)

    def take(self, key_id: str) -> float | None:
        """None when the request may go ahead; else the seconds until a token is there."""
        if self.per_minute <= 0:
            return None
        rate = self.per_minute / 60.0
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(key_id, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - at) * rate)
            if tokens >= 1.0:
                self._buckets[key_id] = (tokens - 1.0, now)
                self._prune(now, rate)
                return None
            self._buckets[key_id] = (tokens, now)
            return (1.0 - tokens) / rate

    def check(self, key_id: str) -> None:
        """Raise a 429 problem with Retry-After when `key_id` has no token left."""
        wait = self.take(key_id)
        if wait is not None:
            seconds = max(1, math.ceil(wait))
            raise ApiProblem(429, "rate-limited", "Too many requests",
                             f"this API key may make {self.per_minute} requests a minute; retry in {seconds} s",
                             headers={"Retry-After": str(seconds)})

    def _prune(self, now: float, rate: float) -> None:
        # Buckets that have refilled completely carry no state worth keeping.
        if len(self._buckets) > self.MAX_BUCKETS:
            full = [k for k, (tokens, at) in self._buckets.items() if tokens + (now - at) * rate >= self.per_minute]
            for key in full:
                del self._buckets[key]


# -- bounds -------------------------------------------------------------------------------------------------
def check_at_most(loc: tuple[str | int, ...], value: int, limit: int, what: str = "items") -> None:
    """A 422 naming `loc` (like `("body", "entities")`) when `value` is over the configured `limit`."""
    if value > limit:
        raise RequestValidationError([{
            "loc": loc, "type": "too_long" if what == "items" else "less_than_equal",
            "msg": f"at most {limit} {what} on this server, not {value}",
        }])


def page_size(value: int | None, default: int, limit: int, loc: tuple[str | int, ...] = ("query", "limit"),
              what: str = "results") -> int:
    """The size to use: the default (within the server's limit) when none was asked for."""
    if value is None:
        return min(default, limit)
    check_at_most(loc, value, limit, what)
    return value


# -- query timeout ------------------------------------------------------------------------------------------
def with_query_timeout(driver: Any, seconds: float) -> Any:
    """Give every transaction `driver` runs while a request is handled a Neo4j timeout of `seconds`.

    Wraps this driver instance only (like api.observability's timing): `execute_query`, and each
    session's `run`, `begin_transaction`, `execute_read` and `execute_write`. A timeout the caller
    set itself is kept.
    """
    if getattr(driver, "_kgmem_query_timeout", None) is not None:
        return driver
    driver._kgmem_query_timeout = seconds

    def in_request() -> bool:
        return current_request_id() is not None

    def as_query(query: Any) -> Any:
        return Query(query, timeout=seconds) if isinstance(query, str) and in_request() else query

    execute_query = driver.execute_query

    @functools.wraps(execute_query)
    def timed_execute_query(query_: Any, *args: Any, **kwargs: Any) -> Any:
        return execute_query(as_query(query_), *args, **kwargs)

    open_session = driver.session

    @functools.wraps(open_session)
    def session(*args: Any, **kwargs: Any) -> Any:
        sess = open_session(*args, **kwargs)
        run, begin = sess.run, sess.begin_transaction
        read, write = sess.execute_read, sess.execute_write

        def timed_run(query: Any, *a: Any, **kw: Any) -> Any:
            return run(as_query(query), *a, **kw)

        def timed_begin(*a: Any, **kw: Any) -> Any:
            if in_request() and kw.get("timeout") is None and len(a) < 2:
                kw["timeout"] = seconds
            return begin(*a, **kw)

        def with_timeout(work: Callable[..., Any]) -> Callable[..., Any]:
            if not in_request() or getattr(work, "timeout", None) is not None:
                return work
            return unit_of_work(timeout=seconds)(work)

        def timed_read(work: Callable[..., Any], *a: Any, **kw: Any) -> Any:
            return read(with_timeout(work), *a, **kw)

        def timed_write(work: Callable[..., Any], *a: Any, **kw: Any) -> Any:
            return write(with_timeout(work), *a, **kw)

        sess.run, sess.begin_transaction = timed_run, timed_begin
        sess.execute_read, sess.execute_write = timed_read, timed_write
        return sess

    driver.execute_query = timed_execute_query
    driver.session = session
    return driver

"""The API's limits: per-key rate limit, bounds the settings tighten, and Neo4j query timeouts.

- Rate limit: a token bucket per API key, **in this process** (`api_rate_limit_per_minute`
  requests a minute, bursts up to the same number). With N replicas a key gets up to N times
  the limit; put a shared limiter in front (the proxy or gateway) when that matters.
- Failed authentications: a token bucket per client address (`client_address`), used by
  `api.auth.KeyStore.admit` (`api_auth_failures_per_minute`; docs/auth.md).
- Bounds: the request models declare hard maxima (what the OpenAPI description shows); the
  settings may only tighten them, and `check_at_most` refuses what passes the model but not
  the setting with the same 422 body as any validation error, naming the field's path.
- Query timeout: every transaction a request runs gets `api_query_timeout_s` as its Neo4j
  transaction timeout (unless the code set its own); Neo4j stops it there and the API answers
  504. Background work (the start-up reconcile, reindex jobs) runs outside requests and has none.
  The gateway applies it (`graph.time_limit`); nothing here touches the driver.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections.abc import Callable

from fastapi.exceptions import RequestValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from api.problems import ApiProblem
from graph import time_limit


# -- rate limit ---------------------------------------------------------------------------------------------
class RateLimiter:
    """Token buckets by key (an API key id, a client address): `per_minute` tokens, refilled continuously;
    0 turns it off."""

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

    def give_back(self, key: str) -> None:
        """Return the token `take` took: what it was taken for did not count (a successful authentication)."""
        if self.per_minute <= 0:
            return
        with self._lock:
            entry = self._buckets.get(key)
            if entry is not None:
                tokens, at = entry
                self._buckets[key] = (min(float(self.per_minute), tokens + 1.0), at)

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


def client_address(scope: Scope) -> str:
    """Who a request comes from, for per-client limits: the peer address uvicorn puts in the ASGI scope
    (behind a proxy, the client's from X-Forwarded-For, when uvicorn trusts the proxy: FORWARDED_ALLOW_IPS).
    An IPv6 client counts by its /64, which one host gets whole; an IPv4-mapped one by its IPv4 address."""
    client = scope.get("client")
    host = client[0] if client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host or "unknown"  # a Unix socket, a test client
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


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
class QueryTimeLimit:
    """Every Neo4j transaction a request runs gets `seconds` as its timeout (`graph.time_limit`), unless
    the code sets its own; Neo4j stops it there and the API answers 504. The limit is a context variable,
    which Starlette copies into the threads that run sync routes; background work started outside a
    request (the start-up reconcile, reindex jobs) has none."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with time_limit(self.seconds):
            await self.app(scope, receive, send)

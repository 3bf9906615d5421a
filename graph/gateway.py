"""The one door to Neo4j: every query kgmem runs goes through a `Gateway`.

    gateway = Gateway.to(target)
    gateway.rows("MATCH (e:Entity {space: $space}) RETURN e.name AS name", space="acme")
    gateway.write_transaction(lambda tx: tx.run("CREATE (:Note {text: $text})", text="hi"))

What it does for every call, so no caller has to:

- **Values** come back as plain Python: rows are dicts, Neo4j's temporal values are
  `datetime`/`date`/`time`, nodes and relationships are property maps.
- **Errors** come back as kgmem's own (`graph/errors.py`): an unreachable or overloaded
  Neo4j is `Neo4jUnavailable` (retry later), a query past its time limit is `QueryTimeout`,
  a uniqueness violation is `Conflict`, a value Neo4j refuses is `InvalidInput`, and
  refused credentials are a `ConfigurationError`. Anything else is a bug and passes as is.
- **Time limits**: inside `with time_limit(seconds):` every transaction gets that Neo4j
  timeout (the API wraps each request in one); a call may set its own instead.
- **Causal consistency**: every session shares the driver's bookmark manager, so a read
  sees the writes this process made before it, on a cluster too.
- **Retries**: transactions are the driver's managed ones, which retry transient
  failures (deadlocks, leader switches) with the work function run again.
- **Metrics**: each call's duration goes to the observers added with `observe()`.
- **Failing fast**: once Neo4j has been found unreachable, calls fail at once with
  `Neo4jUnavailable` (a circuit breaker) instead of each waiting out the driver's retries;
  a quick connectivity check every `cooldown_s` lets them through again when it is back.

Queries stay next to the code that owns them, named and parameterised; only this
module holds the driver.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from neo4j import READ_ACCESS, Driver, GraphDatabase, ManagedTransaction, Query, Record, unit_of_work
from neo4j import exceptions as neo4j_errors
from neo4j.graph import Node, Relationship

from graph.errors import ConfigurationError, Conflict, InvalidInput, Neo4jUnavailable, QueryTimeout
from graph.records import native

T = TypeVar("T")
Observer = Callable[[str, float], None]  # (operation, seconds)

_time_limit: ContextVar[float | None] = ContextVar("kgmem_neo4j_time_limit", default=None)


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Give every Neo4j transaction started in this block (and in threads that copy its context)
    a timeout of `seconds`; None lifts the limit."""
    token = _time_limit.set(seconds)
    try:
        yield
    finally:
        _time_limit.reset(token)


def current_time_limit() -> float | None:
    return _time_limit.get()


# -- translating the driver's errors --------------------------------------------------------------------------
def translate(exc: BaseException) -> Exception | None:
    """kgmem's error for a driver error, or None when it is a bug to report as it is."""
    code = str(getattr(exc, "code", None) or "")
    message = _first_line(exc)
    if isinstance(exc, neo4j_errors.ConnectionAcquisitionTimeoutError):
        return Neo4jUnavailable(f"Neo4j is busy: no connection came free in time ({message}); retry later")
    if isinstance(exc, neo4j_errors.ServiceUnavailable | neo4j_errors.SessionExpired):
        return Neo4jUnavailable(f"Neo4j cannot be reached right now ({message}); retry later")
    if "TransactionTimedOut" in code:
        return QueryTimeout("Neo4j stopped the query at its time limit; ask for less "
                            "(a smaller limit, depth or batch) or retry later")
    if isinstance(exc, neo4j_errors.AuthError | neo4j_errors.Forbidden) or code.startswith("Neo.ClientError.Security."):
        return ConfigurationError(f"Neo4j refused kgmem's credentials ({message}); fix NEO4J_USERNAME/NEO4J_PASSWORD")
    if isinstance(exc, neo4j_errors.TransientError | neo4j_errors.DatabaseError):
        return Neo4jUnavailable(f"Neo4j could not process the request right now ({message}); retry later")
    if isinstance(exc, neo4j_errors.ConstraintError):
        return Conflict(message)
    if isinstance(exc, neo4j_errors.CypherTypeError) or code == "Neo.ClientError.Statement.ArgumentError":
        return InvalidInput(f"Neo4j refused a value: {message}")
    if isinstance(exc, OverflowError) and _raised_in_driver(exc):
        # JSON integers have no size limit; Neo4j's are 64-bit, and the driver refuses to send a bigger one.
        return InvalidInput(f"a number is out of range: Neo4j stores integers of 64 bits ({exc})")
    return None


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__


def _raised_in_driver(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if str(tb.tb_frame.f_globals.get("__name__", "")).startswith("neo4j."):
            return True
        tb = tb.tb_next
    return False


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except (neo4j_errors.Neo4jError, neo4j_errors.DriverError, OverflowError) as exc:
        mapped = translate(exc)
        if mapped is None:
            raise
        raise mapped from exc


def _plain(value: Any) -> Any:
    """A record value as plain Python: temporal values native, nodes and relationships as property maps."""
    if isinstance(value, Node | Relationship):
        return native(dict(value))
    return native(value)


def _row(record: Record) -> dict[str, Any]:
    return {key: _plain(value) for key, value in record.items()}


# -- transactions ---------------------------------------------------------------------------------------------
class Tx:
    """One transaction's queries, handed to the work function of `read_transaction`/`write_transaction`."""

    def __init__(self, tx: ManagedTransaction) -> None:
        self._tx = tx

    def rows(self, query: str, /, **params: Any) -> list[dict[str, Any]]:
        return [_row(record) for record in self._tx.run(query, params)]

    def row(self, query: str, /, **params: Any) -> dict[str, Any] | None:
        """The first row, or None when there is none."""
        record = self._tx.run(query, params).single(strict=False)
        return _row(record) if record is not None else None

    def run(self, query: str, /, **params: Any) -> None:
        """Run for effect; the result is discarded."""
        self._tx.run(query, params).consume()

    def records(self, query: str, params: Mapping[str, Any]) -> tuple[list[str], Iterator[Record]]:
        """The columns and a lazy stream of raw records, graph values intact (the analyst console's)."""
        result = self._tx.run(query, dict(params))
        return list(result.keys()), iter(result)


# -- the gateway ----------------------------------------------------------------------------------------------
class _Breaker:
    """Open after Neo4j was found unreachable: calls fail at once, and a quick probe every `cooldown_s`
    (one caller at a time) closes it when Neo4j answers again."""

    def __init__(self, cooldown_s: float) -> None:
        self.cooldown_s = cooldown_s
        self._down_since: float | None = None
        self._next_probe = 0.0
        self._reason = ""
        self._lock = threading.Lock()

    def trip(self, reason: str) -> None:
        with self._lock:
            now = time.monotonic()
            if self._down_since is None:
                self._down_since = now
            self._next_probe = now + self.cooldown_s
            self._reason = reason

    def close(self) -> None:
        self._down_since = None

    def check(self, probe: Callable[[], None]) -> None:
        """Return when calls may go to Neo4j; raise Neo4jUnavailable while it is known to be down."""
        if self._down_since is None:
            return
        with self._lock:
            if self._down_since is None:
                return
            if time.monotonic() >= self._next_probe:
                try:
                    probe()
                except Exception as exc:  # noqa: BLE001 - any failure: still down
                    self._next_probe = time.monotonic() + self.cooldown_s
                    self._reason = _first_line(exc.__cause__ or exc)
                else:
                    self._down_since = None
                    return
            down_for = time.monotonic() - self._down_since
        raise Neo4jUnavailable(f"Neo4j has been unreachable for {down_for:.0f} s ({self._reason}); retry later")


def _is_outage(exc: BaseException | None) -> bool:
    """The server cannot be reached (not merely busy or in a deadlock)."""
    return isinstance(exc, neo4j_errors.ServiceUnavailable | neo4j_errors.SessionExpired) and not isinstance(
        exc, neo4j_errors.ConnectionAcquisitionTimeoutError)


class Gateway:
    """Neo4j for one database, opened lazily from `connect` and reopened after `reset()`."""

    def __init__(self, connect: Callable[[], Driver], database: str = "neo4j", *, cooldown_s: float = 2.0) -> None:
        self.database = database
        self._connect = connect
        self._driver: Driver | None = None
        self._lock = threading.Lock()
        self._observers: list[Observer] = []
        self._breaker = _Breaker(cooldown_s)

    @classmethod
    def to(cls, target: Any, *, verify: bool = True) -> Gateway:
        """A gateway to a `Neo4jTarget`; with `verify`, a clear error now rather than at the first query."""
        gateway = cls(lambda: open_driver(target.uri, target.username, target.password), target.database)
        if verify:
            try:
                gateway.ping()
            except Neo4jUnavailable as exc:
                raise Neo4jUnavailable(f"Neo4j at {target.uri} is unreachable: {exc}") from exc.__cause__
            except ConfigurationError as exc:
                raise ConfigurationError(
                    f"Neo4j at {target.uri} rejected the credentials for {target.username!r}") from exc.__cause__
        return gateway

    # -- plumbing --
    def observe(self, observer: Observer) -> Callable[[], None]:
        """Call `observer(operation, seconds)` after every call (metrics). Returns what stops it."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer)

    def _open(self) -> Driver:
        driver = self._driver
        if driver is None:
            with self._lock:
                if self._driver is None:
                    with _translated():
                        self._driver = self._connect()
                driver = self._driver
        return driver

    @contextmanager
    def _call(self, operation: str) -> Iterator[Driver]:
        started = time.perf_counter()
        try:
            self._breaker.check(self._probe)
            with _translated():
                yield self._open()
        except Neo4jUnavailable as exc:
            if _is_outage(exc.__cause__):
                self._breaker.trip(_first_line(exc.__cause__))
            raise
        finally:
            if self._observers:
                seconds = time.perf_counter() - started
                for observer in self._observers:
                    observer(operation, seconds)

    def _probe(self) -> None:
        """One connectivity check without the driver's retries: it fails as soon as the server does."""
        with _translated():
            self._open().verify_connectivity()

    def _session(self, driver: Driver, **options: Any):
        return driver.session(database=self.database, bookmark_manager=driver.execute_query_bookmark_manager,
                              **options)

    @staticmethod
    def _limit(timeout: float | None) -> float | None:
        return timeout if timeout is not None else _time_limit.get()

    # -- queries --
    def rows(self, query: str, /, **params: Any) -> list[dict[str, Any]]:
        """Rows of a read query, on a reader of the cluster."""
        return self._auto(query, params, "r", "read")

    def write(self, query: str, /, **params: Any) -> list[dict[str, Any]]:
        """Rows of one write query in a transaction of its own (retried on transient failures)."""
        return self._auto(query, params, "w", "write")

    def _auto(self, query: str, params: dict[str, Any], routing: str, operation: str) -> list[dict[str, Any]]:
        limit = self._limit(None)
        with self._call(operation) as driver:
            records, _, _ = driver.execute_query(
                Query(query, timeout=limit) if limit else query, parameters_=params,
                database_=self.database, routing_=routing)
            return [_row(record) for record in records]

    def read_transaction(self, work: Callable[[Tx], T], *, timeout: float | None = None,
                         fetch_size: int | None = None) -> T:
        options = {"default_access_mode": READ_ACCESS} | ({"fetch_size": fetch_size} if fetch_size else {})
        return self._managed(work, timeout, "read_transaction", options, write=False)

    def write_transaction(self, work: Callable[[Tx], T], *, timeout: float | None = None) -> T:
        """`work(tx)` in one transaction; the driver runs it again after a transient failure, so it must
        not have effects outside the transaction before it returns."""
        return self._managed(work, timeout, "write_transaction", {}, write=True)

    def _managed(self, work: Callable[[Tx], T], timeout: float | None, operation: str,
                 options: dict[str, Any], *, write: bool) -> T:
        limit = self._limit(timeout)

        def unit(tx: ManagedTransaction) -> T:
            return work(Tx(tx))

        unit = unit_of_work(timeout=limit)(unit) if limit else unit
        with self._call(operation) as driver, self._session(driver, **options) as session:
            return session.execute_write(unit) if write else session.execute_read(unit)

    def run_implicit(self, query: str, /, **params: Any) -> list[dict[str, Any]]:
        """A query that manages its own transactions (`CALL { … } IN TRANSACTIONS`), which only an
        auto-commit transaction may run; it is not retried. The `time_limit` in force applies to it too."""
        limit = self._limit(None)
        with self._call("implicit") as driver, self._session(driver) as session:
            return [_row(record) for record in session.run(Query(query, timeout=limit) if limit else query, params)]

    def explain(self, query: str, params: Mapping[str, Any] | None = None, *, timeout: float | None = None) -> Any:
        """Neo4j's plan of `query` (its `ResultSummary`), from EXPLAIN on a read session: nothing runs.
        Planning gets `timeout` (else the `time_limit` in force): a query of many patterns can keep the
        planner busy for long. Driver errors other than connectivity and the time limit pass as they
        are, for the analyst guard to judge."""
        limit = self._limit(timeout)
        explained = "EXPLAIN\n" + query
        with self._call("explain") as driver, self._session(driver, default_access_mode=READ_ACCESS) as session:
            return session.run(Query(explained, timeout=limit) if limit else explained, dict(params or {})).consume()

    # -- the server --
    def ping(self) -> None:
        """Raise `Neo4jUnavailable` (or `ConfigurationError` for bad credentials) unless Neo4j answers."""
        with self._call("ping") as driver:
            driver.verify_connectivity()

    def server_info(self) -> dict[str, str]:
        """Name, version and edition of the server."""
        with self._call("read") as driver:
            records, _, _ = driver.execute_query(
                "CALL dbms.components() YIELD name, versions, edition RETURN name, versions[0] AS version, edition",
                database_="system", routing_="r")
        row = records[0]
        return {"name": row["name"], "version": row["version"], "edition": row["edition"]}

    def reset(self) -> None:
        """Close the driver; the next call opens a new one (after a restart of Neo4j, say)."""
        with self._lock:
            driver, self._driver = self._driver, None
        if driver is not None:
            driver.close()

    close = reset


def open_driver(uri: str, username: str, password: str, *, retry_s: float = 10.0,
                connect_timeout_s: float = 5.0, user_agent: str | None = None) -> Driver:
    """A pooled driver. `retry_s` bounds how long a transaction is retried through transient failures
    (a leader switch, a deadlock) before the caller hears of it; `connect_timeout_s` how long opening a
    connection may take; `user_agent` names the connections in the server's list (the driver's own by
    default). Neo4j's notifications are off: "property key does not exist" fires on every
    query that tests a property no node has yet (retracted_at on a fresh graph), which is noise here."""
    named = {"user_agent": user_agent} if user_agent else {}
    return GraphDatabase.driver(uri, auth=(username, password), max_connection_pool_size=50,
                                connection_acquisition_timeout=30.0, connection_timeout=connect_timeout_s,
                                max_transaction_retry_time=retry_s, notifications_min_severity="OFF", **named)
